package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
	"parley/gateway/internal/compat"
)

// WebSocket: a Subscribe stream plus commands on one connection, for
// browsers and the reproduced APIs. This file is the connection; what the
// frames look like and what a command does is the route's compat.Socket:
// Parley's own (websocket_parley.go) or a reproduced API's
// (internal/compat/...).
//
// The token comes from the Authorization header, or from
// Sec-WebSocket-Protocol, which browsers can set: offered "parley.v1" plus
// the token, "parley.v1" is selected; offered one value only (ChitChat's
// way), that value is the token and is echoed back. The stream's end closes
// the socket: 1000 for OK, else 4000 + the HTTP status of the error (4401,
// 4403, 4404, 4409 superseded, 4503 shutting down: reconnect and resume)
// with the error code as the reason, after the session's error frame. A
// request that cannot become a socket (no upgrade, a foreign Origin, a
// malformed cursor) is an ordinary JSON error response instead.

const (
	// socketSubprotocol is the subprotocol of Parley's own frames.
	socketSubprotocol = "parley.v1"
	// maxFrameBytes caps one frame from the client: a message of the
	// server's largest size, JSON-escaped, fits.
	maxFrameBytes = 64 << 10
	// maxCloseReason is the longest close reason a close frame can carry.
	maxCloseReason = 123
)

// Reasons of the socket's own errors.
const (
	reasonUpgradeRequired  = "WEBSOCKET_UPGRADE_REQUIRED"
	reasonOriginNotAllowed = "ORIGIN_NOT_ALLOWED"
	reasonBinaryFrame      = "BINARY_FRAME"
)

// serveWebSocket is the handler of one WebSocket route.
func (g *realtime) serveWebSocket(api compat.Socket) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		g.sockets.Add()
		// handedOff: a live client of a shared log (websocket_live.go)
		// keeps the count and its place in the log past the handler.
		handedOff := false
		defer func() {
			if !handedOff {
				g.sockets.Done()
			}
		}()
		if !isUpgrade(r) {
			w.Header().Set("Upgrade", "websocket")
			apierror.Write(w, apierror.New(http.StatusUpgradeRequired, codes.FailedPrecondition, reasonUpgradeRequired, "",
				"this route is a WebSocket: send Connection: Upgrade and Upgrade: websocket"))
			return
		}
		if !originAllowed(r, g.cfg.wsOrigins) {
			apierror.Write(w, apierror.New(http.StatusForbidden, codes.PermissionDenied, reasonOriginNotAllowed, "",
				"origin "+r.Header.Get("Origin")+" may not open a socket here (see --ws_origins)"))
			return
		}
		after, e := socketCursor(r.URL.Query())
		if e != nil {
			apierror.Write(w, *e)
			return
		}

		token, subprotocol := socketAuth(r)
		r = r.Clone(r.Context())
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		s := &socket{g: g, route: routePattern(r), r: r, switches: make(chan roomSwitch)}
		s.hasToken = r.Header.Get("Authorization") != ""
		s.callCtx, e = s.annotate(ctx)
		if e != nil {
			apierror.Write(w, *e)
			return
		}

		// The upgrade completes once the first subscription is in place
		// (its first write, empty or not, or its refusal): whatever is
		// posted after the client sees the socket open reaches it. Without
		// a subscription, once the session has opened.
		var (
			first  streamWrite
			sub    *subscription
			shared *fanoutClient
		)
		session, req, err := api.Open(ctx, s, params, after)
		if _, ownFrames := api.(parleySocket); err == nil && ownFrames && g.sharedStream(req) {
			// Parley's own frames come from the log's shared stream
			// (fanout.go); the reproduced APIs' sockets keep their own.
			shared, err = g.fanout.join(ctx, s.callCtx, req, s.r.Header.Get("Authorization"))
			switch {
			case err == nil:
				defer func() {
					if !handedOff {
						g.fanout.leave(shared)
					}
				}()
			case ctx.Err() != nil:
				return
			case g.fanout.notServed(err):
				shared, err = nil, nil // a stream of its own, below
			}
		}
		switch {
		case err != nil:
			first.err = err
		case shared != nil:
		case req != nil:
			if sub, err = g.subscribe(ctx, s.r, s.route, req); err != nil {
				first.err = err
				break
			}
			defer sub.Close()
			select {
			case write, ok := <-sub.C:
				if !ok {
					return
				}
				first = write
			case <-ctx.Done():
				return
			case <-g.stopping:
				apierror.Write(w, shuttingDown())
				return
			}
		}
		if session == nil {
			session = refusedSession{}
		}
		s.session = session
		if shared != nil {
			handedOff = s.serveLive(w, r, shared, req, subprotocol)
			return
		}

		opts := &websocket.AcceptOptions{InsecureSkipVerify: true} // originAllowed checked it
		if subprotocol != "" {
			opts.Subprotocols = []string{subprotocol}
		}
		conn, err := websocket.Accept(w, r, opts)
		if err != nil {
			g.log.Debug("websocket: accept failed", "path", r.URL.Path, "err", err)
			return // Accept answered
		}
		defer conn.CloseNow()
		conn.SetReadLimit(maxFrameBytes)
		s.conn = conn
		s.run(ctx, sub, first)
	}
}

// isUpgrade reports whether r asks for a WebSocket.
func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerTokens(h http.Header, key string) []string {
	var out []string
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, t := range headerTokens(h, key) {
		if strings.EqualFold(t, token) {
			return true
		}
	}
	return false
}

// originAllowed lets through requests without an Origin (not a browser),
// same-host origins (the request's external host, as externalOrigin found
// it: a trusted proxy's forwarded host, else the request's own Host), and
// origins whose host (or scheme://host, when the pattern has a scheme)
// matches one of patterns (path.Match syntax). The scheme of a same-host
// origin is not compared: behind a TLS-terminating proxy that is not among
// --trusted_proxies the gateway sees plain HTTP while the page is https.
func originAllowed(r *http.Request, patterns []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if self := originFrom(r.Context()).host; self != "" && strings.EqualFold(u.Host, self) {
		return true
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, err := path.Match(strings.ToLower(p), strings.ToLower(target)); err == nil && ok {
			return true
		}
	}
	return false
}

// socketAuth finds the token offered in Sec-WebSocket-Protocol and the
// subprotocol to select. An Authorization header wins over it.
func socketAuth(r *http.Request) (token, subprotocol string) {
	offered := headerTokens(r.Header, "Sec-WebSocket-Protocol")
	switch {
	case containsFold(offered, socketSubprotocol):
		subprotocol = socketSubprotocol
		for _, p := range offered {
			if !strings.EqualFold(p, socketSubprotocol) {
				token = p
				break
			}
		}
	case len(offered) == 1:
		token, subprotocol = offered[0], offered[0]
	}
	if r.Header.Get("Authorization") != "" {
		token = ""
	}
	return token, subprotocol
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// socketCursor reads the resume point of a socket from its query:
// after_sequence, afterSequence or after, in that order of precedence.
func socketCursor(q url.Values) (*uint64, *apierror.Error) {
	for _, name := range []string{afterSequenceParam, afterSequenceJSON, afterAlias} {
		if _, ok := q[name]; !ok {
			continue
		}
		n, ok := parseSequence(q.Get(name))
		if !ok {
			e := apierror.New(http.StatusBadRequest, codes.InvalidArgument, apierror.InvalidFieldValue, name,
				"query parameter "+name+" must be a sequence number")
			return nil, &e
		}
		return &n, nil
	}
	return nil, nil
}

// socket is one accepted WebSocket connection, the compat.Conn of its
// session. Once it runs, the reader goroutine (readLoop) runs the session's
// commands; the writes of both goroutines go through conn, which allows one
// reader and concurrent writers.
type socket struct {
	g        *realtime
	conn     *websocket.Conn
	session  compat.Session
	route    string // the matched pattern, for logs and metadata
	hasToken bool   // the client offered a token
	// switches hands a new subscription from the reader to run.
	switches chan roomSwitch
	// edge, once set, is the live client of a shared log whose connection
	// the frames go to (websocket_live.go); conn is then nil.
	edge *fanoutClient

	mu sync.Mutex
	r  *http.Request // the upgrade request, with the token as Authorization
	// callCtx carries the caller's metadata for the commands' calls.
	callCtx context.Context
}

// roomSwitch is a subscription to stream from now on, with its first write
// and the frame acknowledging the switch, to be sent before that write.
type roomSwitch struct {
	sub   *subscription
	first streamWrite
	ack   any
}

// annotate builds the context of the socket's calls from its request.
func (s *socket) annotate(ctx context.Context) (context.Context, *apierror.Error) {
	callCtx, err := runtime.AnnotateContext(ctx, s.g.mux, s.r, subscribeMethod, runtime.WithHTTPPathPattern(s.route))
	if err != nil {
		e := apierror.FromError(err)
		return nil, &e
	}
	return callCtx, nil
}

func (s *socket) CallContext() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.callCtx
}

func (s *socket) HasToken() bool { return s.hasToken }

func (s *socket) Authorize(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.r == nil {
		return // live (websocket_live.go): Parley's frames carry no token
	}
	s.r.Header.Set("Authorization", "Bearer "+token)
	if callCtx, e := s.annotate(context.WithoutCancel(s.callCtx)); e == nil {
		s.callCtx = callCtx
	}
}

func (s *socket) request() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r
}

func (s *socket) Write(ctx context.Context, frame any) error {
	b, err := json.Marshal(frame)
	if err != nil {
		return err
	}
	if s.edge != nil {
		s.edge.send(textFrame(b))
		return nil
	}
	return s.conn.Write(ctx, websocket.MessageText, b)
}

// Switch subscribes and hands the subscription to run.
func (s *socket) Switch(ctx context.Context, req *parleyv1.SubscribeRequest, ack any) error {
	if s.edge != nil {
		return status.Error(codes.Unimplemented, "a shared log's socket does not switch streams")
	}
	sub, err := s.g.subscribe(ctx, s.request(), s.route, req)
	if err != nil {
		return err
	}
	var first streamWrite
	select {
	case write, ok := <-sub.C:
		if !ok {
			sub.Close()
			return compat.ErrClosing
		}
		first = write
	case <-ctx.Done():
		sub.Close()
		return compat.ErrClosing
	case <-s.g.stopping:
		sub.Close() // run closes the socket
		return compat.ErrClosing
	}
	if first.err != nil && !isCleanEnd(first.err) {
		sub.Close()
		return first.err
	}
	select {
	case s.switches <- roomSwitch{sub: sub, first: first, ack: ack}:
		return nil
	case <-ctx.Done():
		sub.Close()
		return compat.ErrClosing
	}
}

// run streams events, starting with the subscription's first write (sub is
// nil while the session has no stream), until the stream, the client or
// the gateway ends it.
func (s *socket) run(ctx context.Context, sub *subscription, first streamWrite) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() {
		if sub != nil {
			sub.Close()
		}
	}()
	if s.deliver(ctx, first) {
		return
	}
	var writes <-chan streamWrite
	if sub != nil {
		writes = sub.C
	}

	// The reader runs the client's commands; the pinger checks the peer is
	// there. Either ending (the client closed, or is gone) ends the socket.
	go func() {
		defer cancel()
		s.readLoop(ctx)
	}()
	go func() {
		defer cancel()
		s.pingLoop(ctx)
	}()

	for {
		select {
		case write, ok := <-writes:
			if !ok || s.deliver(ctx, write) {
				return
			}
		case sw := <-s.switches:
			// The old stream's events still queued are dropped: the client
			// asked for the new one.
			if sub != nil {
				sub.Close()
			}
			sub, writes = sw.sub, sw.sub.C
			if s.Write(ctx, sw.ack) != nil || s.deliver(ctx, sw.first) {
				return
			}
		case <-s.g.stopping:
			s.closeWithError(ctx, shuttingDown())
			return
		case <-ctx.Done():
			return
		}
	}
}

// deliverEvents writes events in the session's frames.
func (s *socket) deliverEvents(ctx context.Context, events []*parleyv1.Event) error {
	for _, e := range events {
		if f := s.session.EventFrame(e); f != nil {
			if err := s.Write(ctx, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// deliver writes one write of the stream, or closes the socket as the
// stream ended; it reports whether the socket is done.
func (s *socket) deliver(ctx context.Context, write streamWrite) bool {
	if write.err != nil {
		switch {
		case isCleanEnd(write.err):
			_ = s.conn.Close(websocket.StatusNormalClosure, "")
		case ctx.Err() != nil:
		default:
			s.closeWithError(ctx, apierror.FromError(write.err))
		}
		return true
	}
	for _, e := range write.events {
		f := s.session.EventFrame(e)
		if f == nil {
			continue
		}
		if err := s.Write(ctx, f); err != nil {
			return true
		}
	}
	return false
}

func (s *socket) readLoop(ctx context.Context) {
	for {
		typ, data, err := s.conn.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			e := apierror.New(http.StatusBadRequest, codes.InvalidArgument, reasonBinaryFrame, "",
				"frames are JSON text, not binary")
			_ = s.Write(ctx, s.session.ErrorFrame(e))
			continue
		}
		s.session.Command(ctx, data)
	}
}

func (s *socket) pingLoop(ctx context.Context) {
	t := time.NewTicker(s.g.cfg.wsPingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !s.ping(ctx) {
				return
			}
		}
	}
}

// ping sends a ping and waits up to the ping interval for its pong; false
// when none came.
func (s *socket) ping(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(ctx, s.g.cfg.wsPingInterval)
	err := s.conn.Ping(pctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.g.log.Debug("websocket: no pong; closing", "route", s.route, "err", err)
		}
		return false
	}
	return true
}

// closeWithError sends the session's error frame, then closes with 4000 +
// its HTTP status and its code as the reason.
func (s *socket) closeWithError(ctx context.Context, e apierror.Error) {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = s.Write(wctx, s.session.ErrorFrame(e))
	_ = s.conn.Close(closeCode(e), closeReason(e.Code))
}

func closeCode(e apierror.Error) websocket.StatusCode {
	if e.Status < 100 || e.Status > 999 {
		return websocket.StatusInternalError
	}
	return websocket.StatusCode(4000 + e.Status)
}

func closeReason(code string) string {
	if len(code) > maxCloseReason {
		code = code[:maxCloseReason]
	}
	return code
}

// refusedSession speaks for a socket whose session could not open: the
// socket only reports why, in Parley's frame, and closes.
type refusedSession struct{}

func (refusedSession) EventFrame(*parleyv1.Event) any { return nil }
func (refusedSession) ErrorFrame(e apierror.Error) any {
	return socketFrame{Type: "error", Error: &e}
}
func (refusedSession) Command(context.Context, []byte) {}
