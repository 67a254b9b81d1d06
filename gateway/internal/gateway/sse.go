package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
)

// Server-Sent Events on every Subscribe route, for a request that accepts
// text/event-stream. Each event is one SSE message:
//
//	id: 42               (stored events only: not gaps, not live-only ones)
//	event: message       (the kind, lower case, without EVENT_KIND_)
//	data: {"kind":"EVENT_KIND_MESSAGE",...}
//
// so that a browser's EventSource resumes after the last stored event it
// saw: its Last-Event-ID header becomes after_sequence. The stream opens
// with `retry:` and carries a `: keepalive` comment every SSEKeepalive. A
// refusal before the stream is in place is an ordinary JSON error response
// (EventSource does not retry it); an error after that is an `event: error`
// message with the JSON error body, and the end of the response.

// lastEventIDHeader is the header EventSource resends on reconnection.
const lastEventIDHeader = "Last-Event-ID"

// acceptsEventStream reports whether the request's Accept lists
// text/event-stream.
func acceptsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// serveSSE streams the Subscribe call of a stream route as Server-Sent
// Events.
func (g *realtime) serveSSE(w http.ResponseWriter, r *http.Request, route string, params map[string]string) {
	ctx := r.Context()
	// onError names a bad query parameter from the RPC in its context.
	errCtx, err := runtime.AnnotateContext(ctx, g.mux, r, subscribeMethod, runtime.WithHTTPPathPattern(route))
	if err != nil {
		g.onError(ctx, g.mux, g.marshaler, w, r, err)
		return
	}
	req, err := subscribeRequest(r, params)
	if err != nil {
		g.onError(errCtx, g.mux, g.marshaler, w, r, err)
		return
	}
	if id := r.Header.Get(lastEventIDHeader); id != "" && !hasAfterSequence(r.URL.Query()) {
		seq, ok := parseSequence(id)
		if !ok {
			apierror.Write(w, apierror.New(http.StatusBadRequest, codes.InvalidArgument, apierror.InvalidFieldValue,
				lastEventIDHeader, "Last-Event-ID must be the sequence number of an event"))
			return
		}
		req.AfterSequence = &seq
	}
	if g.sharedStream(req) && g.serveSSEShared(w, r, errCtx, req) {
		return
	}
	sub, err := g.subscribe(ctx, r, route, req)
	if err != nil {
		g.onError(errCtx, g.mux, g.marshaler, w, r, err)
		return
	}
	defer sub.Close()

	sse := &sseWriter{w: w, rc: http.NewResponseController(w), retry: g.cfg.sseRetry}
	keepalive := time.NewTicker(g.cfg.sseKeepalive)
	defer keepalive.Stop()
	for {
		select {
		case write, ok := <-sub.C:
			if !ok {
				return
			}
			if write.err != nil {
				switch {
				case isCleanEnd(write.err):
					sse.start() // a stream that ended before its first write
				case ctx.Err() != nil:
					// The client went away.
				case !sse.started:
					// Refused: the status and error body of the NDJSON route.
					g.onError(errCtx, g.mux, g.marshaler, w, r, write.err)
				default:
					sse.error(apierror.FromError(write.err))
				}
				return
			}
			if err := sse.events(write.events); err != nil {
				return
			}
		case <-keepalive.C:
			if err := sse.comment("keepalive"); err != nil {
				return
			}
		case <-g.stopping:
			sse.error(shuttingDown())
			return
		case <-ctx.Done():
			return
		}
	}
}

// serveSSEShared serves a room or inbox stream from the log's shared stream
// (fanout.go): admitted by the server with the client's token (callCtx
// carries it), then its history after its resume point, then its queue.
// It reports false, having written nothing, when the servers serve no
// fan-out or the connection cannot be hijacked: the stream is then the
// client's own.
func (g *realtime) serveSSEShared(w http.ResponseWriter, r *http.Request, callCtx context.Context, req *parleyv1.SubscribeRequest) bool {
	ctx := r.Context()
	c, err := g.fanout.join(ctx, callCtx, req, r.Header.Get("Authorization"))
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return true
	case g.fanout.notServed(err):
		return false
	default:
		g.onError(callCtx, g.mux, g.marshaler, w, r, err)
		return true
	}
	if g.sseLive(w, r, callCtx, req, c) {
		return true
	}
	// A connection that cannot be hijacked (not HTTP/1) gets a stream of
	// its own.
	g.fanout.leave(c)
	return false
}

// setSSEHeaders sets the headers of an event stream on h.
func setSSEHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
}

// sseRetryField tells EventSource how long to wait before reconnecting.
func sseRetryField(d time.Duration) string {
	return "retry: " + strconv.FormatInt(d.Milliseconds(), 10) + "\n\n"
}

// sseKeepaliveComment keeps an idle stream's proxies open.
var sseKeepaliveComment = []byte(": keepalive\n\n")

// sseLive streams client c on its hijacked connection: the head and the
// history after its resume point from this handler, then live
// (edgeconn.go), after the handler returned. It reports false, having
// written nothing and with c still the caller's, when the connection
// cannot be hijacked.
func (g *realtime) sseLive(w http.ResponseWriter, r *http.Request, callCtx context.Context, req *parleyv1.SubscribeRequest, c *fanoutClient) bool {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	_ = conn.SetDeadline(time.Time{})
	brw.Reader.Reset(nil) // the request has no body to read
	release := keepStream(r)
	g.sockets.Add()
	o := newEdgeOut(c, conn)
	o.frame = func(e *sharedEvent) []byte { return e.sse }
	o.endBytes = func(end error) []byte {
		if isCleanEnd(end) {
			return nil
		}
		return sseErrorMessage(endError(end))
	}
	o.afterEnd = o.close
	stopKeepalive := func() {}
	o.onClose = func() {
		stopKeepalive()
		g.unregisterLive(o)
		g.fanout.leave(c)
		release()
		g.sockets.Done()
	}

	// The headers set on w, and the stream's; the body runs to the
	// connection's end, which therefore closes.
	h := w.Header().Clone()
	setSSEHeaders(h)
	h.Set("Connection", "close")
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	hb := bytes.NewBufferString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(hb)
	hb.WriteString("\r\n" + sseRetryField(g.cfg.sseRetry))
	head := hb.Bytes()

	var cursor clientCursor
	if req.AfterSequence != nil {
		cursor = clientCursor{at: req.GetAfterSequence(), known: true}
		at, err := g.fanout.history(callCtx, req, c, cursor.at, func(events []*parleyv1.Event) error {
			for _, e := range events {
				head = appendSSEMessage(head, e, encodedEvents.marshal(e))
			}
			_, err := conn.Write(head)
			head = head[:0]
			return err
		})
		if err != nil {
			if r.Context().Err() == nil {
				_ = conn.SetWriteDeadline(time.Now().Add(endWriteTimeout))
				_, _ = conn.Write(append(head, sseErrorMessage(apierror.FromError(err))...))
			}
			o.close()
			return true
		}
		cursor.at = max(cursor.at, at)
	}
	if len(head) > 0 {
		if _, err := conn.Write(head); err != nil {
			o.close()
			return true
		}
	}
	stopKeepalive = every(g.cfg.sseKeepalive, func() bool {
		c.send(sseKeepaliveComment)
		return true
	})
	go readUntilClosed(conn, o)
	g.goLive(o, cursor)
	return true
}

// readUntilClosed reads (and drops) what an SSE client sends until its
// connection ends, then lets it go.
func readUntilClosed(conn net.Conn, o *edgeOut) {
	var b [64]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			o.close()
			return
		}
	}
}

// sseErrorMessage is `event: error` with the JSON error body.
func sseErrorMessage(e apierror.Error) []byte {
	b, _ := json.Marshal(apierror.Body{Error: e})
	out := append([]byte("event: error\ndata: "), b...)
	return append(out, "\n\n"...)
}

// sseWriter writes and flushes SSE messages; the first write sends the
// 200 and the retry delay.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	retry   time.Duration
	started bool
	buf     bytes.Buffer
}

func (s *sseWriter) start() {
	if s.started {
		return
	}
	s.started = true
	setSSEHeaders(s.w.Header())
	// EventSource accepts only 200: not seed 003's 202.
	s.w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(s.w, sseRetryField(s.retry))
}

// flush sends what is buffered.
func (s *sseWriter) flush() error {
	s.start()
	if s.buf.Len() > 0 {
		_, err := s.w.Write(s.buf.Bytes())
		s.buf.Reset()
		if err != nil {
			return err
		}
	}
	return s.rc.Flush()
}

func (s *sseWriter) events(events []*parleyv1.Event) error {
	s.start()
	for _, e := range events {
		s.buf.Write(appendSSEMessage(s.buf.AvailableBuffer(), e, encodedEvents.marshal(e)))
	}
	return s.flush()
}

func (s *sseWriter) comment(text string) error {
	s.start()
	s.buf.WriteString(": " + text + "\n\n")
	return s.flush()
}

// error sends `event: error` with the JSON error body.
func (s *sseWriter) error(e apierror.Error) {
	s.start()
	s.buf.Write(sseErrorMessage(e))
	_ = s.flush()
}
