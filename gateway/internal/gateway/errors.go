package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The trailing-metadata keys in which the server names the problem of a
// failed call: a stable reason such as NOT_JOINED, and the request field at
// fault.
const (
	reasonKey = "parley-error-reason"
	fieldKey  = "parley-error-field"
	// errorDomain is the ErrorInfo domain of reasons copied from trailers.
	errorDomain = "parley"
)

// Reasons the gateway itself gives, for input it refuses before any call.
const (
	reasonInvalidUTF8     = "INVALID_UTF8"
	reasonRequestTooLarge = "REQUEST_TOO_LARGE"
	// A request body that is not one JSON object.
	reasonMalformedBody = "MALFORMED_JSON"
	// A body field the request message does not have.
	reasonUnknownField = "UNKNOWN_FIELD"
	// A body field given twice.
	reasonDuplicateField = "DUPLICATE_FIELD"
	// A body field whose value has the wrong type or is out of range.
	reasonInvalidFieldValue = "INVALID_FIELD_VALUE"
)

// reasonHTTPStatus overrides the status grpc-gateway derives from the gRPC
// code, where the reason says more than the code.
var reasonHTTPStatus = map[string]int{
	"MESSAGE_TOO_LONG":    http.StatusRequestEntityTooLarge,
	reasonRequestTooLarge: http.StatusRequestEntityTooLarge,
}

// apiError is the one error shape of every error response:
//
//	{"error":{"code":"NOT_JOINED","status":400,"grpc_code":"FAILED_PRECONDITION","message":"...","field":"id"}}
type apiError struct {
	// Code is the server's reason when it gave one, else the gRPC code name.
	Code string `json:"code"`
	// Status repeats the HTTP status, for clients that only see the body.
	Status int `json:"status"`
	// GRPCCode is the canonical gRPC code name, e.g. INVALID_ARGUMENT.
	GRPCCode string `json:"grpc_code"`
	Message  string `json:"message"`
	// Field names the request field at fault, for bad input.
	Field string `json:"field,omitempty"`
}

type errorBody struct {
	Error apiError `json:"error"`
}

func codeName(c codes.Code) string {
	return code.Code(c).String()
}

// newAPIError builds the error for a gRPC status and the reason and field the
// server gave, if any.
func newAPIError(st *status.Status, reason, field string) apiError {
	e := apiError{
		Code:     reason,
		Status:   runtime.HTTPStatusFromCode(st.Code()),
		GRPCCode: codeName(st.Code()),
		Message:  st.Message(),
		Field:    field,
	}
	if e.Code == "" {
		e.Code = e.GRPCCode
	}
	if s, ok := reasonHTTPStatus[e.Code]; ok {
		e.Status = s
	}
	return e
}

// gatewayError is an error the gateway answers itself, without a call.
func gatewayError(httpStatus int, c codes.Code, reason, field, msg string) apiError {
	e := newAPIError(status.New(c, msg), reason, field)
	e.Status = httpStatus
	return e
}

func writeError(w http.ResponseWriter, e apiError) {
	h := w.Header()
	// A stream that fails before its first message has already set these.
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: e})
}

// reasonFrom finds the server's reason and field for a failed call: in the
// trailers of a unary call (grpc-gateway keeps them in ServerMetadata), else
// in an ErrorInfo detail, where streamErrorReasonInterceptor puts a stream's.
func reasonFrom(ctx context.Context, st *status.Status) (reason, field string) {
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		if r := first(md.TrailerMD, reasonKey); r != "" {
			return r, first(md.TrailerMD, fieldKey)
		}
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() != "" {
			return info.GetReason(), info.GetMetadata()["field"]
		}
	}
	return "", ""
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

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

		reason, field := reasonFrom(ctx, st)
		if reason == "" && st.Code() == codes.InvalidArgument {
			// grpc-gateway flattens a body decoding error into the message.
			reason, field = bodyErrorReason(st.Message())
		}
		e := newAPIError(st, reason, field)
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
		writeError(w, e)
	}
}

// routingErrorHandler answers requests that match no route.
func routingErrorHandler(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusNotFound:
		writeError(w, gatewayError(httpStatus, codes.NotFound, "NOT_FOUND", "", "no route for "+r.URL.Path))
	case http.StatusMethodNotAllowed:
		writeError(w, gatewayError(httpStatus, codes.Unimplemented, "METHOD_NOT_ALLOWED", "",
			"method "+r.Method+" is not allowed on "+r.URL.Path))
	case http.StatusBadRequest:
		writeError(w, gatewayError(httpStatus, codes.InvalidArgument, "", "", "malformed request path"))
	default:
		writeError(w, gatewayError(httpStatus, codes.Internal, "", "", http.StatusText(httpStatus)))
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
// failed stream gets the same shape as every other error, and events (in
// history pages and stream lines) come from the encoded-event cache
// (eventjson.go).
type jsonMarshaler struct {
	*runtime.JSONPb
}

func (m *jsonMarshaler) Marshal(v any) ([]byte, error) {
	// grpc-gateway marshals a stream's error as {"error": <google.rpc.Status>}.
	if chunk, ok := v.(map[string]proto.Message); ok && len(chunk) == 1 {
		if sp, ok := chunk["error"].(*spb.Status); ok {
			st := status.FromProto(sp)
			reason, field := reasonFrom(context.Background(), st)
			return json.Marshal(errorBody{Error: newAPIError(st, reason, field)})
		}
	}
	if b, ok := marshalEvents(v); ok {
		return b, nil
	}
	// What JSONPb.Marshal writes for a message, without its copy through
	// a bytes.Buffer.
	if pm, ok := v.(proto.Message); ok {
		b, err := m.MarshalOptions.Marshal(pm)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	return m.JSONPb.Marshal(v)
}

// streamErrorReasonInterceptor copies the reason and field from a failed
// stream's trailers into an ErrorInfo detail of its status: grpc-gateway
// keeps no trailers for streams, only the error. It also checks the request
// for UTF-8 (see reasonStream.SendMsg).
func streamErrorReasonInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &reasonStream{ClientStream: cs}, nil
}

type reasonStream struct {
	grpc.ClientStream
}

// SendMsg refuses a request that is not valid UTF-8, as utf8UnaryInterceptor
// does for unary calls.
func (s *reasonStream) SendMsg(m any) error {
	if err := checkMessageUTF8(m); err != nil {
		return err
	}
	return s.ClientStream.SendMsg(m)
}

func (s *reasonStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return withTrailerReason(err, s.ClientStream.Trailer())
}

func withTrailerReason(err error, trailer metadata.MD) error {
	reason := first(trailer, reasonKey)
	if reason == "" {
		return err
	}
	info := &errdetails.ErrorInfo{Reason: reason, Domain: errorDomain}
	if field := first(trailer, fieldKey); field != "" {
		info.Metadata = map[string]string{"field": field}
	}
	st, derr := status.Convert(err).WithDetails(info)
	if derr != nil {
		return err
	}
	return st.Err()
}
