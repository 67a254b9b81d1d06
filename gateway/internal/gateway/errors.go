package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"parley/gateway/internal/apierror"
	"parley/gateway/internal/compat"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// errorHandler is the runtime.ErrorHandlerFunc of every failed call.
func errorHandler(log *slog.Logger) runtime.ErrorHandlerFunc {
	return func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
		httpStatus := 0
		var custom *runtime.HTTPStatusError
		if errors.As(err, &custom) {
			httpStatus, err = custom.HTTPStatus, custom.Err
		}
		st, ok := status.FromError(err)
		if !ok && httpStatus == http.StatusBadRequest {
			st = status.New(codes.InvalidArgument, err.Error())
		}

		reason, field := apierror.Reason(st)
		if reason == "" && st.Code() == codes.InvalidArgument {
			// grpc-gateway flattens a body decoding error into the message.
			reason, field = bodyErrorReason(st.Message())
		}
		e := apierror.Make(st, reason, field)
		if reason == "" && st.Code() == codes.InvalidArgument {
			// grpc-gateway reports a query value it cannot parse (timeout=abc)
			// as a bare InvalidArgument; find the parameter to name it.
			if param, perr := badQueryParameter(ctx, r); param != "" {
				e.Field = param
				e.Message = "query parameter " + param + ": " + perr.Error()
			}
		}
		if httpStatus != 0 {
			e.Status = httpStatus
		}

		switch {
		case st.Code() == codes.Canceled && r.Context().Err() != nil:
			log.Debug("client went away", "method", r.Method, "path", r.URL.Path)
		case e.Status >= 500:
			log.Error("request failed", "method", r.Method, "path", r.URL.Path, "grpc_code", e.GRPCCode, "err", st.Message())
		default:
			log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", e.Code, "field", e.Field)
		}
		if st.Code() == codes.Unauthenticated {
			w.Header().Set("WWW-Authenticate", "Bearer")
		}
		apierror.Write(w, e)
	}
}

// refusals answers the gateway's own refusals of a request (no route, bad
// input) in the error body of the API whose paths the request is under: a
// reproduced API's own, else Parley's.
type refusals map[string]func(http.ResponseWriter, apierror.Error) // first path segment -> writer

func newRefusals(apis []compat.API) refusals {
	rf := refusals{}
	for _, api := range apis {
		for _, route := range api.Routes() {
			rf[firstSegment(route.Pattern)] = api.WriteError
		}
		for _, socket := range api.Sockets() {
			rf[firstSegment(socket.Pattern())] = api.WriteError
		}
	}
	return rf
}

func firstSegment(path string) string {
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return first
}

// write answers e to r.
func (rf refusals) write(w http.ResponseWriter, r *http.Request, e apierror.Error) {
	if write, ok := rf[firstSegment(r.URL.Path)]; ok {
		write(w, e)
		return
	}
	apierror.Write(w, e)
}

// routingError answers requests that match no route.
func (rf refusals) routingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusNotFound:
		rf.write(w, r, apierror.New(httpStatus, codes.NotFound, "NOT_FOUND", "", "no route for "+r.URL.Path))
	case http.StatusMethodNotAllowed:
		rf.write(w, r, apierror.New(httpStatus, codes.Unimplemented, "METHOD_NOT_ALLOWED", "",
			"method "+r.Method+" is not allowed on "+r.URL.Path))
	case http.StatusBadRequest:
		rf.write(w, r, apierror.New(httpStatus, codes.InvalidArgument, "", "", "malformed request path"))
	default:
		rf.write(w, r, apierror.New(httpStatus, codes.Internal, "", "", http.StatusText(httpStatus)))
	}
}

// badQueryParameter finds the first query parameter (in name order) that
// grpc-gateway cannot parse into the request message of the RPC in ctx.
func badQueryParameter(ctx context.Context, r *http.Request) (string, error) {
	method, ok := runtime.RPCMethod(ctx) // "/parley.v1.ChatService/Receive"
	if !ok {
		return "", nil
	}
	name := protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(method, "/"), "/", "."))
	desc, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		return "", nil
	}
	md, ok := desc.(protoreflect.MethodDescriptor)
	if !ok {
		return "", nil
	}
	input, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
	if err != nil {
		return "", nil
	}
	values := r.Form
	if values == nil {
		values, _ = url.ParseQuery(r.URL.RawQuery)
	}
	var parser runtime.DefaultQueryParser
	for _, key := range slices.Sorted(maps.Keys(values)) {
		one := url.Values{key: values[key]}
		if err := parser.Parse(input.New().Interface(), one, &utilities.DoubleArray{}); err != nil {
			return key, err
		}
	}
	return "", nil
}

// jsonMarshaler is protojson with two changes: the error line that ends a
// failed stream gets the same shape as every other error, and events
// (alone, in history pages, stream lines and other responses) come from the
// encoded-event cache with only the fields their kind sets (eventjson.go).
type jsonMarshaler struct {
	*runtime.JSONPb
}

func (m *jsonMarshaler) Marshal(v any) ([]byte, error) {
	// grpc-gateway marshals a stream's error as {"error": <google.rpc.Status>}.
	if chunk, ok := v.(map[string]proto.Message); ok && len(chunk) == 1 {
		if sp, ok := chunk["error"].(*spb.Status); ok {
			st := status.FromProto(sp)
			reason, field := apierror.Reason(st)
			return json.Marshal(apierror.Body{Error: apierror.Make(st, reason, field)})
		}
	}
	if b, ok := marshalEvents(v); ok {
		return b, nil
	}
	// What JSONPb.Marshal writes for a message, without its copy through
	// a bytes.Buffer; events as eventJSONOptions writes them.
	if pm, ok := v.(proto.Message); ok {
		if b, ok := marshalWithEvents(pm); ok {
			return b, nil
		}
		b, err := m.MarshalOptions.Marshal(pm)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	return m.JSONPb.Marshal(v)
}

// utf8StreamInterceptor checks a stream's request for UTF-8, as
// utf8UnaryInterceptor does for unary calls.
func utf8StreamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &utf8Stream{ClientStream: cs}, nil
}

type utf8Stream struct {
	grpc.ClientStream
}

// SendMsg refuses a request that is not valid UTF-8.
func (s *utf8Stream) SendMsg(m any) error {
	if err := checkMessageUTF8(m); err != nil {
		return err
	}
	return s.ClientStream.SendMsg(m)
}
