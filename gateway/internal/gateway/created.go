package gateway

import (
	"context"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// The header-metadata keys in which the server asks for an HTTP status other
// than 200 (e.g. "201") and names a created resource by its path (e.g.
// "/v1/rooms/<uuid>"). They become the response's status and absolute
// Location header, never Grpc-Metadata-* headers.
const (
	httpCodeKey = "x-http-code"
	locationKey = "x-location"
)

// forwardStatusAndLocation is the runtime.WithForwardResponseOption that
// applies x-http-code and x-location to a successful unary response. It runs
// after grpc-gateway set Content-Type and before the body is written.
func forwardStatusAndLocation(ctx context.Context, w http.ResponseWriter, resp proto.Message) error {
	if resp == nil {
		return nil // the start of a stream, before any message
	}
	if sw, ok := w.(*statusWriter); ok && sw.wroteHeader {
		return nil // a later message of a stream
	}
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok {
		return nil
	}
	if loc := first(md.HeaderMD, locationKey); loc != "" {
		w.Header().Set("Location", absoluteURL(ctx, loc))
	}
	if c, err := strconv.Atoi(first(md.HeaderMD, httpCodeKey)); err == nil && c >= 200 && c < 300 && c != http.StatusOK {
		w.WriteHeader(c)
	}
	return nil
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
