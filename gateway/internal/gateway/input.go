package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"parley/gateway/internal/apierror"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxBodyBytes caps a request body: a JSON object, or an HTML form on the
// seed-000 routes.
const maxBodyBytes = 1 << 20

// checkInput refuses what must never reach the server: paths with an empty
// segment, query strings and bodies that are not valid UTF-8 (grpc-go would
// fail to marshal the request and the client would see a 500), malformed
// query strings and oversized bodies. A body it has read is handed on in
// memory. rf answers a refusal.
func checkInput(next http.Handler, rf refusals) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hasEmptySegment(r.URL.Path) {
			rf.write(w, r, apierror.New(http.StatusNotFound, codes.NotFound, "NOT_FOUND", "", "no route for "+r.URL.Path))
			return
		}
		if e := checkQuery(r.URL.RawQuery, "query"); e != nil {
			rf.write(w, r, *e)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
			if err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					rf.write(w, r, apierror.New(http.StatusRequestEntityTooLarge, codes.InvalidArgument,
						apierror.RequestTooLarge, "", "request body is larger than 1 MiB"))
				} else {
					rf.write(w, r, apierror.New(http.StatusBadRequest, codes.InvalidArgument, "", "",
						"reading request body: "+err.Error()))
				}
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if isForm(r) {
				if e := checkQuery(string(body), "form"); e != nil {
					rf.write(w, r, *e)
					return
				}
			} else if !utf8.Valid(body) {
				rf.write(w, r, apierror.New(http.StatusBadRequest, codes.InvalidArgument,
					apierror.InvalidUTF8, "", "request body is not valid UTF-8"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// hasEmptySegment reports whether path has an empty segment, such as
// /v1/users/ or /v1/users/:typing: no route has one, but the mux would bind
// an empty path variable, which the server reads as the caller where a
// user is named (DELETE /v1/users/ deleted the caller).
func hasEmptySegment(path string) bool {
	return path != "/" && (strings.HasSuffix(path, "/") || strings.Contains(path, "//") || strings.Contains(path, "/:"))
}

func isForm(r *http.Request) bool {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && ct == "application/x-www-form-urlencoded"
}

// checkQuery checks a URL-encoded query or form; where says which, for the
// message.
func checkQuery(raw, where string) *apierror.Error {
	if raw == "" {
		return nil
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		e := apierror.New(http.StatusBadRequest, codes.InvalidArgument, "", "", "malformed "+where+": "+err.Error())
		return &e
	}
	if validUTF8Values(values) {
		return nil // the common case, without sorting the keys
	}
	// The keys are sorted so that the error names the same parameter
	// whatever the map's order.
	for _, key := range slices.Sorted(maps.Keys(values)) {
		if !utf8.ValidString(key) {
			e := apierror.New(http.StatusBadRequest, codes.InvalidArgument, apierror.InvalidUTF8,
				strings.ToValidUTF8(key, "\uFFFD"), "a "+where+" parameter name is not valid UTF-8")
			return &e
		}
		for _, v := range values[key] {
			if !utf8.ValidString(v) {
				e := apierror.New(http.StatusBadRequest, codes.InvalidArgument, apierror.InvalidUTF8,
					key, where+" parameter "+key+" is not valid UTF-8")
				return &e
			}
		}
	}
	return nil
}

// validUTF8Values reports whether every name and value in values is valid
// UTF-8.
func validUTF8Values(values url.Values) bool {
	for key, vs := range values {
		if !utf8.ValidString(key) {
			return false
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return false
			}
		}
	}
	return true
}

// maxAuthorizationBytes bounds the Authorization the gateway forwards: far
// more than any token Parley issues, and short enough that a call's
// metadata stays within maxMetadataBytes.
const maxAuthorizationBytes = 2048

// maxMetadataBytes bounds the metadata of a call (the forwarded headers, as
// HTTP/2 counts a header list: name, value and 32 bytes each), leaving room
// for gRPC's own headers within the server's limit (8 KiB), over which
// grpc-go fails the call with INTERNAL before sending it.
const maxMetadataBytes = 7 << 10

// metadataUnaryInterceptor refuses a call whose metadata the server would
// not take: a token longer than maxAuthorizationBytes, as the server
// refuses a token it cannot parse; headers over maxMetadataBytes in all.
func metadataUnaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := checkMetadataSize(ctx); err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// metadataStreamInterceptor is metadataUnaryInterceptor for streams.
func metadataStreamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if err := checkMetadataSize(ctx); err != nil {
		return nil, err
	}
	return streamer(ctx, desc, cc, method, opts...)
}

func checkMetadataSize(ctx context.Context) error {
	md, _ := metadata.FromOutgoingContext(ctx)
	// One caller per call: with two Authorization headers the server would
	// take whichever came first.
	if len(md.Get("authorization")) > 1 {
		return apierror.StatusError(codes.Unauthenticated, "TOKEN_MALFORMED", "",
			"malformed token: more than one Authorization header")
	}
	for _, v := range md.Get("authorization") {
		if len(v) > maxAuthorizationBytes {
			return apierror.StatusError(codes.Unauthenticated, "TOKEN_MALFORMED", "",
				fmt.Sprintf("malformed token: longer than %d bytes", maxAuthorizationBytes))
		}
	}
	size := 0
	for key, values := range md {
		for _, v := range values {
			size += len(key) + len(v) + 32
		}
	}
	if size > maxMetadataBytes {
		return apierror.StatusError(codes.InvalidArgument, apierror.HeadersTooLarge, "",
			fmt.Sprintf("the request's headers are larger than the %d bytes the gateway forwards", maxMetadataBytes))
	}
	return nil
}

// utf8UnaryInterceptor refuses a request message with a string that is not
// valid UTF-8 before it is sent: grpc-go would fail to marshal it and the
// client would see a 500. checkInput has checked the query and the body
// already; what remains is a path parameter such as /v1/rooms/%FF.
func utf8UnaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := checkMessageUTF8(req); err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// checkMessageUTF8 is INVALID_ARGUMENT with reason INVALID_UTF8 and the
// field (its JSON name, dotted when nested) when m has a string that is not
// valid UTF-8.
func checkMessageUTF8(m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	field := invalidUTF8Field(pm.ProtoReflect())
	if field == "" {
		return nil
	}
	return apierror.StatusError(codes.InvalidArgument, apierror.InvalidUTF8, field, field+" is not valid UTF-8")
}

// invalidUTF8Field names the first string field of m that is not valid
// UTF-8; empty when there is none.
func invalidUTF8Field(m protoreflect.Message) string {
	var bad string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := fd.JSONName()
		switch {
		case fd.IsList():
			list := v.List()
			for i := 0; i < list.Len() && bad == ""; i++ {
				bad = invalidUTF8Value(fd, list.Get(i), name)
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapKey().Kind() == protoreflect.StringKind && !utf8.ValidString(k.String()) {
					bad = name
				} else {
					bad = invalidUTF8Value(fd.MapValue(), mv, name)
				}
				return bad == ""
			})
		default:
			bad = invalidUTF8Value(fd, v, name)
		}
		return bad == ""
	})
	return bad
}

func invalidUTF8Value(fd protoreflect.FieldDescriptor, v protoreflect.Value, name string) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if !utf8.ValidString(v.String()) {
			return name
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if inner := invalidUTF8Field(v.Message()); inner != "" {
			return name + "." + inner
		}
	}
	return ""
}
