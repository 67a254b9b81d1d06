package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
)

// WebSocket: a room's or the caller's direct-message stream, plus commands
// (send, edit, delete, typing, read) on the same connection, for browsers.
//
//	GET /v1/rooms/{room}:ws[?after_sequence=N|after=N]
//	GET /v1/direct-messages:ws[?after_sequence=N|after=N]
//	GET /chats/{room}/ws                 seed 002's frames
//	GET /ws                              seed 001's frames; connect-chat
//	                                     picks the room (websocket_seed001.go)
//
// The token comes from the Authorization header, or from
// Sec-WebSocket-Protocol, which browsers can set: offered "parley.v1" plus
// the token, "parley.v1" is selected; offered one value only (seed 002),
// that value is the token and is echoed back. The stream's end closes the
// socket: 1000 for OK, else 4000 + the HTTP status of the error (4401,
// 4403, 4404, 4409 superseded, 4503 shutting down: reconnect and resume)
// with the error code as the reason, after an error frame with the full
// JSON error. A request that cannot become a socket (no upgrade, a foreign
// Origin, a malformed cursor) is an ordinary JSON error response instead.

const (
	// socketSubprotocol is the subprotocol of Parley's own frames.
	socketSubprotocol = "parley.v1"
	// maxFrameBytes caps one frame from the client: a message of the
	// server's largest size, JSON-escaped, fits.
	maxFrameBytes = 64 << 10
	// commandTimeout bounds the gRPC call of one command.
	commandTimeout = 30 * time.Second
	// maxCloseReason is the longest close reason a close frame can carry.
	maxCloseReason = 123
)

// Reasons of the socket's own errors.
const (
	reasonUpgradeRequired   = "WEBSOCKET_UPGRADE_REQUIRED"
	reasonOriginNotAllowed  = "ORIGIN_NOT_ALLOWED"
	reasonBinaryFrame       = "BINARY_FRAME"
	reasonUnsupportedOnSock = "UNSUPPORTED_ON_THIS_SOCKET"
)

type socketKind int

const (
	roomSocket    socketKind = iota // Parley frames, one room
	directSocket                    // Parley frames, the caller's inbox
	seedSocket                      // seed 002's frames, one room
	seed001Socket                   // seed 001's frames, the room connect-chat names
)

// serveWebSocket is the handler of one WebSocket route.
func (g *realtime) serveWebSocket(kind socketKind) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		g.sockets.Add()
		defer g.sockets.Done()
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
		// Seed 001's socket subscribes when the client names the room.
		var req *parleyv1.SubscribeRequest
		if kind != seed001Socket {
			req = &parleyv1.SubscribeRequest{}
			if kind == directSocket {
				req.DirectMessages = true
			} else {
				req.Room = params["room"]
			}
			after, e := socketCursor(r.URL.Query())
			if e != nil {
				apierror.Write(w, *e)
				return
			}
			req.AfterSequence = after
		}

		token, subprotocol := socketAuth(r)
		if token != "" {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+token)
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		s := &socket{g: g, kind: kind, route: routePattern(r), r: r}

		// The upgrade completes once the subscription is in place (its
		// first write, empty or not, or its refusal): whatever is posted
		// after the client sees the socket open reaches it. Without a
		// subscription yet, once the token is checked and its user known.
		var (
			first streamWrite
			sub   *subscription
			err   error
		)
		if req == nil {
			s.me, first.err = g.whoAmI(ctx, r, s.route)
			s.switches = make(chan roomSwitch)
		} else if sub, err = g.subscribe(ctx, r, s.route, req); err != nil {
			first.err = err
		} else {
			s.room = req.GetRoom()
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
// same-host origins (the host the request names, or a proxy's
// X-Forwarded-Host, which a page's script cannot set on a WebSocket), and
// origins whose host (or scheme://host, when the pattern has a scheme)
// matches one of patterns (path.Match syntax).
func originAllowed(r *http.Request, patterns []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	if _, host, ok := strings.Cut(requestOrigin(r), "://"); ok && strings.EqualFold(u.Host, host) {
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

// socket is one accepted WebSocket connection. Once it runs, the reader
// goroutine (readLoop) alone uses room and callCtx; the writes of both
// goroutines go through conn, which allows one reader and concurrent
// writers.
type socket struct {
	g     *realtime
	conn  *websocket.Conn
	kind  socketKind
	route string         // the matched pattern, for logs and metadata
	r     *http.Request  // the upgrade request, with the token as Authorization
	room  string         // the room of commands; "" for the inbox, or before connect-chat
	me    *parleyv1.User // seed 001's socket: the token's user
	// switches hands a new room's subscription from the reader to run
	// (seed 001's connect-chat); nil on the other sockets.
	switches chan roomSwitch
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

// run streams events, starting with the subscription's first write (sub is
// nil while seed 001's socket has no room), until the stream, the client or
// the gateway ends it.
func (s *socket) run(ctx context.Context, sub *subscription, first streamWrite) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() {
		if sub != nil {
			sub.Close()
		}
	}()
	callCtx, err := runtime.AnnotateContext(ctx, s.g.mux, s.r, subscribeMethod, runtime.WithHTTPPathPattern(s.route))
	if err != nil {
		s.closeWithError(ctx, apierror.FromError(err))
		return
	}
	s.callCtx = callCtx
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
			// The old room's events still queued are dropped: the client
			// asked for the new room.
			if sub != nil {
				sub.Close()
			}
			sub, writes = sw.sub, sw.sub.C
			if s.writeJSON(ctx, sw.ack) != nil || s.deliver(ctx, sw.first) {
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
		if err := s.writeEvent(ctx, e); err != nil {
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
			s.writeError(ctx, nil, e)
			continue
		}
		switch s.kind {
		case seedSocket:
			s.seedCommand(ctx, data)
		case seed001Socket:
			s.seed001Command(ctx, data)
		default:
			s.command(ctx, data)
		}
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
			pctx, cancel := context.WithTimeout(ctx, s.g.cfg.wsPingInterval)
			err := s.conn.Ping(pctx)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					s.g.log.Debug("websocket: no pong; closing", "path", s.r.URL.Path, "err", err)
				}
				return
			}
		}
	}
}

// socketFrame is a server→client frame of Parley's socket.
type socketFrame struct {
	Type   string          `json:"type"`
	Ref    json.RawMessage `json:"ref,omitempty"`
	Event  json.RawMessage `json:"event,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *apierror.Error `json:"error,omitempty"`
}

// seedFrame is seed 002's frame, both ways.
type seedFrame struct {
	EventType string          `json:"event_type"`
	Name      string          `json:"name,omitempty"`
	Color     string          `json:"color,omitempty"`
	Msg       string          `json:"msg,omitempty"`
	Error     *apierror.Error `json:"error,omitempty"`
}

func (s *socket) writeJSON(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.conn.Write(ctx, websocket.MessageText, b)
}

func (s *socket) writeEvent(ctx context.Context, e *parleyv1.Event) error {
	switch s.kind {
	case seedSocket:
	case seed001Socket:
		if f, ok := seed001EventFrame(e); ok {
			return s.writeJSON(ctx, f)
		}
		return nil
	default:
		return s.writeJSON(ctx, socketFrame{Type: "event", Event: encodedEvents.marshal(e)})
	}
	var t string
	switch e.GetKind() {
	case parleyv1.EventKind_EVENT_KIND_JOIN:
		t = "join"
	case parleyv1.EventKind_EVENT_KIND_LEAVE:
		t = "leave"
	case parleyv1.EventKind_EVENT_KIND_MESSAGE:
		if e.GetDeleted() {
			return nil
		}
		t = "send"
	default:
		return nil // seed 002 has no frame for it
	}
	return s.writeJSON(ctx, seedFrame{EventType: t, Name: e.GetSender(), Color: e.GetColor(), Msg: e.GetText()})
}

// writeError sends an error frame; ref is the command's, nil for none.
func (s *socket) writeError(ctx context.Context, ref json.RawMessage, e apierror.Error) {
	switch s.kind {
	case seedSocket:
		_ = s.writeJSON(ctx, seedFrame{EventType: "error", Error: &e})
	case seed001Socket:
		_ = s.writeJSON(ctx, seed001ErrorFrame(e))
	default:
		_ = s.writeJSON(ctx, socketFrame{Type: "error", Ref: ref, Error: &e})
	}
}

// closeWithError sends the error frame, then closes with 4000 + its HTTP
// status and its code as the reason.
func (s *socket) closeWithError(ctx context.Context, e apierror.Error) {
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s.writeError(wctx, nil, e)
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

// socketCommand is a client→server frame of Parley's socket.
type socketCommand struct {
	Type string          `json:"type"`
	Ref  json.RawMessage `json:"ref"`
	// send, edit
	Text string `json:"text"`
	// send: the request's idempotency_key.
	IdempotencyKey      string `json:"idempotencyKey"`
	IdempotencyKeyProto string `json:"idempotency_key"`
	// edit, delete: the message's UUID.
	Message string `json:"message"`
	// On the direct-message socket, send and typing: the recipient.
	User string `json:"user"`
	// read: the last sequence number read.
	Sequence flexUint `json:"sequence"`
}

// flexUint takes a JSON number or, as protojson writes 64-bit integers, a
// string of digits.
type flexUint uint64

func (f *flexUint) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseUint(strings.Trim(string(b), `"`), 10, 64)
	if err != nil {
		return errors.New("not a sequence number")
	}
	*f = flexUint(n)
	return nil
}

var unknownJSONFieldRE = regexp.MustCompile(`unknown field "([^"]*)"`)

// decodeCommand decodes one frame strictly: one JSON object, known fields.
func decodeCommand(data []byte) (socketCommand, *apierror.Error) {
	var cmd socketCommand
	bad := func(reason, field, msg string) (socketCommand, *apierror.Error) {
		e := apierror.New(http.StatusBadRequest, codes.InvalidArgument, reason, field, msg)
		return cmd, &e
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cmd); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch m := unknownJSONFieldRE.FindStringSubmatch(err.Error()); {
		case m != nil:
			return bad(apierror.UnknownField, m[1], "frame: unknown field "+m[1])
		case errors.As(err, &typeErr):
			return bad(apierror.InvalidFieldValue, typeErr.Field, "frame: field "+typeErr.Field+" has the wrong type")
		case strings.Contains(err.Error(), "not a sequence number"):
			return bad(apierror.InvalidFieldValue, "sequence", "frame: sequence must be a sequence number")
		}
		return bad(apierror.MalformedJSON, "", "frame is not one JSON object: "+err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad(apierror.MalformedJSON, "", "frame: unexpected data after the JSON object")
	}
	return cmd, nil
}

// command runs one frame of Parley's socket and answers with an ack or an
// error frame.
func (s *socket) command(ctx context.Context, data []byte) {
	cmd, e := decodeCommand(data)
	if e != nil {
		// Answer to the frame's ref if it has one that can be read.
		var loose struct {
			Ref json.RawMessage `json:"ref"`
		}
		_ = json.Unmarshal(data, &loose)
		s.writeError(ctx, loose.Ref, *e)
		return
	}
	cctx, cancel := context.WithTimeout(s.callCtx, commandTimeout)
	defer cancel()
	key := cmd.IdempotencyKey
	if key == "" {
		key = cmd.IdempotencyKeyProto
	}
	direct := s.kind == directSocket

	var (
		event  *parleyv1.Event
		result proto.Message
		err    error
	)
	switch {
	case cmd.Type == "send" && direct:
		event, err = s.g.messages.SendDirectMessage(cctx, &parleyv1.SendDirectMessageRequest{
			User: cmd.User, Text: cmd.Text, IdempotencyKey: key})
	case cmd.Type == "send":
		event, err = s.g.messages.PostMessage(cctx, &parleyv1.PostMessageRequest{
			Room: s.room, Text: cmd.Text, IdempotencyKey: key})
	case cmd.Type == "edit" && !direct:
		event, err = s.g.messages.EditMessage(cctx, &parleyv1.EditMessageRequest{
			Room: s.room, Message: cmd.Message, Text: cmd.Text})
	case cmd.Type == "delete" && !direct:
		event, err = s.g.messages.DeleteMessage(cctx, &parleyv1.DeleteMessageRequest{
			Room: s.room, Message: cmd.Message})
	case cmd.Type == "typing" && direct:
		result, err = s.g.presence.SendTyping(cctx, &parleyv1.SendTypingRequest{User: cmd.User})
	case cmd.Type == "typing":
		result, err = s.g.presence.SendTyping(cctx, &parleyv1.SendTypingRequest{Room: s.room})
	case cmd.Type == "read" && !direct:
		result, err = s.g.presence.SetReadMarker(cctx, &parleyv1.SetReadMarkerRequest{
			Room: s.room, Sequence: uint64(cmd.Sequence)})
	case cmd.Type == "edit" || cmd.Type == "delete" || cmd.Type == "read":
		s.writeError(ctx, cmd.Ref, apierror.New(http.StatusBadRequest, codes.InvalidArgument, reasonUnsupportedOnSock, "type",
			cmd.Type+" is for room sockets; direct messages cannot be edited, deleted or marked read here"))
		return
	default:
		s.writeError(ctx, cmd.Ref, apierror.New(http.StatusBadRequest, codes.InvalidArgument, apierror.UnknownFrameType, "type",
			"frame type "+strconv.Quote(cmd.Type)+" is not one of send, edit, delete, typing, read"))
		return
	}
	if err != nil {
		s.writeError(ctx, cmd.Ref, apierror.FromError(err))
		return
	}
	ack := socketFrame{Type: "ack", Ref: cmd.Ref}
	if event != nil {
		ack.Event = marshalJSON(event)
	} else {
		ack.Result = marshalJSON(result)
	}
	_ = s.writeJSON(ctx, ack)
}

// seedCommand runs one seed-002 frame: "send" posts msg to the room; "join"
// and "leave" are accepted and ignored, since the server announces both
// when the socket opens and closes.
func (s *socket) seedCommand(ctx context.Context, data []byte) {
	var f seedFrame
	if err := json.Unmarshal(data, &f); err != nil {
		s.writeError(ctx, nil, apierror.New(http.StatusBadRequest, codes.InvalidArgument, apierror.MalformedJSON, "",
			"frame is not one JSON object: "+err.Error()))
		return
	}
	switch f.EventType {
	case "join", "leave":
		return
	case "send":
	default:
		s.writeError(ctx, nil, apierror.New(http.StatusBadRequest, codes.InvalidArgument, apierror.UnknownFrameType, "event_type",
			"event_type "+strconv.Quote(f.EventType)+" is not one of join, leave, send"))
		return
	}
	cctx, cancel := context.WithTimeout(s.callCtx, commandTimeout)
	defer cancel()
	if _, err := s.g.messages.PostMessage(cctx, &parleyv1.PostMessageRequest{Room: s.room, Text: f.Msg}); err != nil {
		s.writeError(ctx, nil, apierror.FromError(err))
	}
}
