package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
)

// The one ChatService.Subscribe reader behind Server-Sent Events (sse.go)
// and WebSocket (websocket.go): it opens the stream with the caller's
// metadata, exactly as the grpc-gateway mux would for the NDJSON route, and
// hands the writes on one by one.

const subscribeMethod = "/parley.v1.ChatService/Subscribe"

// jsonOptions is how a response is written as JSON: every field, set or
// not, so a client sees a stable shape ({"messages":[]}, "hasOlder":false).
var jsonOptions = protojson.MarshalOptions{EmitUnpopulated: true}

// eventJSONOptions is how an event is written, wherever it appears: only
// the fields its kind sets (protojson's default), so a message carries its
// text and a gap its range, not twenty zero values (docs/api.md, "Events").
var eventJSONOptions = protojson.MarshalOptions{}

// marshalJSON writes a response as one line of JSON.
func marshalJSON(m proto.Message) []byte {
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		// Only invalid UTF-8 fails, and the server never sends it.
		return []byte("{}")
	}
	return b
}

// marshalEventJSON writes an event as one line of JSON.
func marshalEventJSON(e *parleyv1.Event) []byte {
	b, err := eventJSONOptions.Marshal(e)
	if err != nil {
		return []byte("{}")
	}
	return b
}

// streamWrite is one write of a Subscribe stream, or how it ended: err is
// io.EOF for a clean end (OK), else the stream's status error.
type streamWrite struct {
	events []*parleyv1.Event
	err    error
}

// subscription is an open Subscribe call. Writes arrive on C in order; the
// last item carries the end (err set), after which C is closed. Nothing is
// read ahead: the server's flow control, and so its gap policy, sees a slow
// reader.
type subscription struct {
	C      <-chan streamWrite
	cancel context.CancelFunc
}

// Close cancels the call; safe to call more than once.
func (s *subscription) Close() { s.cancel() }

// subscribe opens ChatService.Subscribe for req with r's headers as metadata
// (Authorization and what the mux's header matcher forwards). route is the
// matched HTTP pattern, for logs and errors.
func (g *realtime) subscribe(ctx context.Context, r *http.Request, route string, req *parleyv1.SubscribeRequest) (*subscription, error) {
	ctx, cancel := context.WithCancel(ctx)
	actx, err := runtime.AnnotateContext(ctx, g.mux, r, subscribeMethod, runtime.WithHTTPPathPattern(route))
	if err != nil {
		cancel()
		return nil, err
	}
	stream, err := g.clients.Chat.Subscribe(actx, req)
	if err != nil {
		cancel()
		return nil, err
	}
	c := make(chan streamWrite)
	go func() {
		defer close(c)
		for {
			resp, err := stream.Recv()
			w := streamWrite{err: err}
			if err == nil {
				w.events = resp.GetEvents()
			}
			select {
			case c <- w:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return &subscription{C: c, cancel: cancel}, nil
}

// isCleanEnd reports whether a stream ended with OK.
func isCleanEnd(err error) bool { return errors.Is(err, io.EOF) }

// shuttingDown is the error a stream ends with when the gateway stops.
func shuttingDown() apierror.Error {
	return apierror.New(http.StatusServiceUnavailable, codes.Unavailable, "SHUTTING_DOWN", "",
		"the gateway is shutting down; reconnect to resume")
}

// hasCursor reports whether the event moves a reader's resume point: a
// stored event, not a gap marker or a live-only one (sequence 0).
func hasCursor(e *parleyv1.Event) bool {
	return e.GetSequence() != 0 && e.GetKind() != parleyv1.EventKind_EVENT_KIND_GAP
}

// The query names of the resume point. `after` is the gateway's short alias.
const (
	afterSequenceParam = "after_sequence"
	afterSequenceJSON  = "afterSequence"
	afterAlias         = "after"
)

// hasAfterSequence reports whether the query sets the resume point under
// either of its proto names.
func hasAfterSequence(q map[string][]string) bool {
	_, a := q[afterSequenceParam]
	_, b := q[afterSequenceJSON]
	return a || b
}

// subscribeRequest builds the SubscribeRequest of a stream route from its
// path parameters and query, as the generated handler would.
func subscribeRequest(r *http.Request, params map[string]string) (*parleyv1.SubscribeRequest, error) {
	req := &parleyv1.SubscribeRequest{}
	filter := &utilities.DoubleArray{}
	if room, ok := params["room"]; ok {
		req.Room = room
		filter = utilities.NewDoubleArray([][]string{{"room"}})
	}
	if err := runtime.PopulateQueryParameters(req, r.URL.Query(), filter); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return req, nil
}

// parseSequence parses a resume point given outside the query (a
// Last-Event-ID header, a WebSocket query alias).
func parseSequence(v string) (uint64, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	return n, err == nil
}
