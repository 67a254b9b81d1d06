package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
)

// realtimeSubscribe serves the rooms named rt-*: scripted streams for the
// SSE and WebSocket tests. The first write is empty, as the server's.
func (f *fakeChat) realtimeSubscribe(req *parleyv1.SubscribeRequest, stream grpc.ServerStreamingServer[parleyv1.SubscribeResponse]) error {
	send := func(events ...*parleyv1.Event) error {
		return stream.Send(&parleyv1.SubscribeResponse{Events: events})
	}
	fail := func(c codes.Code, reason, msg string) error {
		return apierror.StatusError(c, reason, "", msg)
	}
	hold := func() error {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	msg := func(seq uint64, text string) *parleyv1.Event {
		return &parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Room: req.GetRoom(), Sequence: seq, Text: text, Sender: "ANN", Color: "#112233"}
	}
	if err := send(); err != nil {
		return err
	}
	switch req.GetRoom() {
	case "rt-events":
		err := send(msg(5, "five"),
			&parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_TYPING, Sender: "BOB"},
			&parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_GAP, GapFirstSequence: 6, GapLastSequence: 7})
		if err != nil {
			return err
		}
		if err := send(&parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_EDIT, Sequence: 8, TargetSequence: 5, Text: "FIVE"}); err != nil {
			return err
		}
		return fail(codes.Unavailable, "SHUTTING_DOWN", "server shutting down")
	case "rt-end":
		return nil
	case "rt-hold":
		if err := send(msg(1, "hello")); err != nil {
			return err
		}
		return hold()
	case "rt-aborted":
		return fail(codes.Aborted, "SUPERSEDED", "another reader took over")
	case "rt-seed":
		err := send(
			&parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_JOIN, Sender: "david", Color: "#445566"},
			msg(3, "hi all"),
			&parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_EDIT, Sequence: 4, Text: "edited"},
			&parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_LEAVE, Sender: "david", Color: "#445566"})
		if err != nil {
			return err
		}
		return hold()
	case "rt-seed1":
		ts := timestamppb.New(time.Unix(1700000000, 0))
		bob := func(k parleyv1.EventKind) *parleyv1.Event {
			return &parleyv1.Event{Kind: k, Room: "rt-seed1", RoomId: roomID, Sender: "BOB", SenderId: "u-bob"}
		}
		mine := func(k parleyv1.EventKind, seq uint64) *parleyv1.Event {
			return &parleyv1.Event{Kind: k, Room: "rt-seed1", RoomId: roomID, Sequence: seq, Sender: "ALICE", SenderId: userID, CreateTime: ts}
		}
		m3, m4, edit, del := mine(parleyv1.EventKind_EVENT_KIND_MESSAGE, 3), mine(parleyv1.EventKind_EVENT_KIND_MESSAGE, 4),
			mine(parleyv1.EventKind_EVENT_KIND_EDIT, 5), mine(parleyv1.EventKind_EVENT_KIND_DELETE, 6)
		m3.Id, m3.Text = "m3", "hi"
		m4.Id, m4.Deleted = "m4", true
		edit.Id, edit.TargetId, edit.TargetSequence, edit.Text = "e5", "m3", 3, "hello"
		del.Id, del.TargetId, del.TargetSequence = "d6", "m3", 3
		err := send(bob(parleyv1.EventKind_EVENT_KIND_JOIN), m3, m4, edit, del,
			bob(parleyv1.EventKind_EVENT_KIND_TYPING), bob(parleyv1.EventKind_EVENT_KIND_LEAVE))
		if err != nil {
			return err
		}
		return hold()
	}
	return fail(codes.NotFound, "ROOM_NOT_FOUND", "no such room")
}

// seed001History pages through room rt-seed1's history, newest page first:
// the caller's most recent message that is not deleted, m-old, is on the
// older page.
func seed001History(req *parleyv1.ListMessagesRequest) *parleyv1.ListMessagesResponse {
	msg := func(seq uint64, id, senderID string, deleted bool) *parleyv1.Event {
		return &parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Sequence: seq, Id: id, SenderId: senderID, Deleted: deleted}
	}
	if req.Before == nil {
		return &parleyv1.ListMessagesResponse{HasOlder: true, Messages: []*parleyv1.Event{
			msg(9, "m-deleted", userID, true), msg(10, "m-theirs", "u-bob", false)}}
	}
	if req.GetBefore() == 9 {
		return &parleyv1.ListMessagesResponse{Messages: []*parleyv1.Event{
			msg(7, "m-old", userID, false), msg(8, "m-older-theirs", "u-bob", false)}}
	}
	return &parleyv1.ListMessagesResponse{}
}

func (f *fakeMessages) EditMessage(ctx context.Context, req *parleyv1.EditMessageRequest) (*parleyv1.Event, error) {
	f.record("EditMessage " + req.GetRoom() + " " + req.GetMessage() + " " + req.GetText())
	if err := signedIn(ctx); err != nil {
		return nil, err
	}
	// The message as it now is, as the server answers.
	return &parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, RoomId: roomID, Sequence: 3, Id: req.GetMessage(),
		Text: req.GetText(), Sender: "ALICE", SenderId: userID}, nil
}

func (f *fakeChat) Poll(ctx context.Context, req *parleyv1.PollRequest) (*parleyv1.PollResponse, error) {
	f.mu.Lock()
	f.polled = append(f.polled, req)
	f.mu.Unlock()
	if err := signedIn(ctx); err != nil {
		return nil, err
	}
	return &parleyv1.PollResponse{NextAfterSequence: req.GetAfterSequence()}, nil
}

func (f *fakeChat) lastSubscribe(t *testing.T) *parleyv1.SubscribeRequest {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subscribed) == 0 {
		t.Fatal("no Subscribe reached the server")
	}
	return f.subscribed[len(f.subscribed)-1]
}

type fakePresence struct {
	parleyv1.UnimplementedPresenceServiceServer
	record func(string)
}

func (f *fakePresence) SendTyping(ctx context.Context, req *parleyv1.SendTypingRequest) (*parleyv1.SendTypingResponse, error) {
	f.record("SendTyping room=" + req.GetRoom() + " user=" + req.GetUser())
	if err := signedIn(ctx); err != nil {
		return nil, err
	}
	return &parleyv1.SendTypingResponse{ExpireTime: timestamppb.New(time.Unix(1700000000, 0))}, nil
}

func (f *fakePresence) SetReadMarker(ctx context.Context, req *parleyv1.SetReadMarkerRequest) (*parleyv1.ReadMarker, error) {
	if err := signedIn(ctx); err != nil {
		return nil, err
	}
	return &parleyv1.ReadMarker{RoomId: roomID, Sequence: req.GetSequence()}, nil
}

// sseMessage is one parsed SSE message; comment holds a comment line's text.
type sseMessage struct {
	id, event, data, retry, comment string
	hasID                           bool
}

// readSSE parses SSE messages from r until it ends.
func readSSE(t *testing.T, r io.Reader) []sseMessage {
	t.Helper()
	var out []sseMessage
	sc := bufio.NewScanner(r)
	var m sseMessage
	empty := true
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if !empty {
				out = append(out, m)
			}
			m, empty = sseMessage{}, true
			continue
		}
		empty = false
		if !m.parseLine(line) {
			t.Errorf("unexpected SSE line %q", line)
		}
	}
	if !empty {
		t.Errorf("stream ended inside a message: %+v", m)
	}
	return out
}

// parseLine adds one line of a message; false for a field SSE has not.
func (m *sseMessage) parseLine(line string) bool {
	field, value, _ := strings.Cut(line, ":")
	value = strings.TrimPrefix(value, " ")
	switch field {
	case "":
		m.comment = value
	case "id":
		m.id, m.hasID = value, true
	case "event":
		m.event = value
	case "data":
		m.data = value
	case "retry":
		m.retry = value
	default:
		return false
	}
	return true
}

func sseGet(t *testing.T, f *fixture, target string, header ...string) (*http.Response, []sseMessage) {
	t.Helper()
	resp, _ := f.openStream(t, target, append([]string{"Accept", "text/event-stream"}, header...)...)
	return resp, readSSE(t, resp.Body)
}

func TestSSEWritesOneMessagePerEventWithIDsOnlyForStoredEvents(t *testing.T) {
	f := start(t)
	resp, msgs := sseGet(t, f, "/v1/rooms/rt-events:subscribe", "Authorization", goodToken)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if len(msgs) != 6 {
		t.Fatalf("got %d messages, want retry + 4 events + error: %+v", len(msgs), msgs)
	}
	if msgs[0].retry != "2000" {
		t.Errorf("first message %+v, want retry: 2000", msgs[0])
	}
	for i, want := range []struct {
		id, event, kind string
		hasID           bool
	}{
		{"5", "message", "EVENT_KIND_MESSAGE", true},
		{"", "typing", "EVENT_KIND_TYPING", false},
		{"", "gap", "EVENT_KIND_GAP", false},
		{"8", "edit", "EVENT_KIND_EDIT", true},
	} {
		m := msgs[i+1]
		if m.id != want.id || m.hasID != want.hasID || m.event != want.event {
			t.Errorf("message %d = %+v, want id %q event %q", i+1, m, want.id, want.event)
		}
		// The NDJSON stream's event JSON: camelCase, only the fields set.
		var ev map[string]any
		if err := json.Unmarshal([]byte(m.data), &ev); err != nil {
			t.Fatalf("data %q: %v", m.data, err)
		}
		if _, zero := ev["previousVersions"]; ev["kind"] != want.kind || zero {
			t.Errorf("data %s, want kind %s with only its fields", m.data, want.kind)
		}
	}
	last := msgs[5]
	if last.event != "error" || last.hasID {
		t.Fatalf("last message %+v, want an error event", last)
	}
	var body apierror.Body
	if err := json.Unmarshal([]byte(last.data), &body); err != nil {
		t.Fatal(err)
	}
	if e := body.Error; e.Code != "SHUTTING_DOWN" || e.Status != 503 || e.GRPCCode != "UNAVAILABLE" || e.Message == "" {
		t.Errorf("error event %+v", e)
	}
}

func TestSSEResumePointComesFromQueryAfterOrLastEventID(t *testing.T) {
	f := start(t)
	for _, c := range []struct {
		target, lastEventID string
		want                *uint64
	}{
		{"/v1/rooms/rt-end:subscribe", "", nil},
		{"/v1/rooms/rt-end:subscribe", "41", ptr(41)},
		{"/v1/rooms/rt-end:subscribe?after=7", "41", ptr(7)},
		{"/v1/rooms/rt-end:subscribe?afterSequence=0", "41", ptr(0)},
		{"/v1/rooms/rt-end:subscribe?after_sequence=3&after=9", "", ptr(3)},
		{"/room/rt-end/subscribe", "12", ptr(12)},
	} {
		header := []string{"Authorization", goodToken}
		if c.lastEventID != "" {
			header = append(header, lastEventIDHeader, c.lastEventID)
		}
		resp, _ := sseGet(t, f, c.target, header...)
		// Seed 003's route answers 200 here too: EventSource wants nothing else.
		if resp.StatusCode != 200 {
			t.Errorf("%s: status %d", c.target, resp.StatusCode)
		}
		got := f.chat.lastSubscribe(t)
		if got.GetRoom() != "rt-end" || (got.AfterSequence == nil) != (c.want == nil) || (c.want != nil && got.GetAfterSequence() != *c.want) {
			t.Errorf("%s with Last-Event-ID %q: server got %v, want room rt-end after %v", c.target, c.lastEventID, got, c.want)
		}
	}
	// The NDJSON stream takes `after` too.
	resp, lines := f.openStream(t, "/v1/rooms/rt-end:subscribe?after=7", "Authorization", goodToken)
	for lines.Scan() {
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("without Accept: Content-Type %q, want NDJSON's", ct)
	}
	if got := f.chat.lastSubscribe(t); got.GetAfterSequence() != 7 {
		t.Errorf("NDJSON with after=7: server got %v", got)
	}
	r := f.do(t, http.MethodGet, "/v1/rooms/rt-end:subscribe", "", "", "Accept", "text/event-stream",
		"Authorization", goodToken, lastEventIDHeader, "abc")
	wantError(t, r, 400, apierror.InvalidFieldValue, "INVALID_ARGUMENT", lastEventIDHeader)
	r = f.do(t, http.MethodGet, "/v1/rooms/rt-end:subscribe?after=abc", "", "", "Accept", "text/event-stream", "Authorization", goodToken)
	wantError(t, r, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "after_sequence")
}

func ptr(n uint64) *uint64 { return &n }

func TestSSERefusalIsAnOrdinaryErrorResponse(t *testing.T) {
	f := start(t)
	r := f.do(t, http.MethodGet, "/v1/rooms/missing:subscribe", "", "", "Accept", "text/event-stream", "Authorization", goodToken)
	wantError(t, r, 404, "ROOM_NOT_FOUND", "NOT_FOUND", "room")
	r = f.do(t, http.MethodGet, "/v1/direct-messages:subscribe", "", "", "Accept", "text/event-stream")
	wantError(t, r, 401, "TOKEN_MISSING", "UNAUTHENTICATED", "")
	if r.header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
	}
	// The lobby stream by id works the same way.
	r = f.do(t, http.MethodGet, "/subscribe?id=stranger", "", "", "Accept", "text/event-stream")
	wantError(t, r, 400, "NOT_JOINED", "FAILED_PRECONDITION", "id")
}

func TestSSESendsKeepalivesAndEndsResumablyAtShutdown(t *testing.T) {
	ctx, shutdown := context.WithCancel(context.Background())
	defer shutdown()
	f := startWith(t, ctx, handlerConfig{realtime: realtimeConfig{sseKeepalive: 10 * time.Millisecond, sseRetry: 1500 * time.Millisecond}})
	resp, lines := f.openStream(t, "/v1/rooms/wait:subscribe", "Accept", "text/event-stream", "Authorization", goodToken)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var seen []string
	keepalives := 0
	for keepalives < 2 && lines.Scan() {
		seen = append(seen, lines.Text())
		if lines.Text() == ": keepalive" {
			keepalives++
		}
	}
	if seen[0] != "retry: 1500" || keepalives < 2 {
		t.Fatalf("lines %q, want retry: 1500 then keepalives", seen)
	}
	shutdown()
	msgs := readSSE(t, resp.Body)
	last := msgs[len(msgs)-1]
	var body apierror.Body
	if err := json.Unmarshal([]byte(last.data), &body); err != nil || last.event != "error" ||
		body.Error.Status != 503 || body.Error.Code != "SHUTTING_DOWN" {
		t.Errorf("last message %+v, want a 503 SHUTTING_DOWN error event", last)
	}
}

func TestPollRoutesTakeAfterAndSetDirectMessages(t *testing.T) {
	f := start(t)
	for _, c := range []struct {
		target string
		want   string
	}{
		{"/v1/rooms/r1/events?after=5&timeout=1", `room:"r1" after_sequence:5 timeout:1`},
		{"/v1/rooms/r1/events?afterSequence=6&after=5", `room:"r1" after_sequence:6`},
		{"/v1/direct-messages/events?after=2", `direct_messages:true after_sequence:2`},
		{"/v1/direct-messages/events?directMessages=false", `direct_messages:true`},
	} {
		r := f.do(t, http.MethodGet, c.target, "", "", "Authorization", goodToken)
		if r.status != 200 {
			t.Errorf("%s: %d %s", c.target, r.status, r.body)
			continue
		}
		f.chat.mu.Lock()
		got := f.chat.polled[len(f.chat.polled)-1]
		f.chat.mu.Unlock()
		if s := strings.Join(strings.Fields(got.String()), " "); s != c.want {
			t.Errorf("%s: server got %s, want %s", c.target, s, c.want)
		}
	}
	wantError(t, f.get(t, "/v1/rooms/r1/events?after=5"), 401, "TOKEN_MISSING", "UNAUTHENTICATED", "")
}

func TestIdempotencyKeyHeaderReachesTheServerAsMetadata(t *testing.T) {
	f := start(t)
	r := f.do(t, http.MethodPost, "/v1/rooms/r1/messages", "application/json", `{"text":"hi"}`,
		"Authorization", goodToken, "Idempotency-Key", "key-1")
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	wantCalls(t, f, "PostMessage r1 hi", "idempotency-key metadata key-1")
}

// The token comes from Authorization alone: grpc-gateway's Grpc-Metadata-*
// pass-through is off, so Grpc-Metadata-Authorization neither signs in nor
// stands beside Authorization as a second token, and two Authorization
// headers are refused rather than one of them picked.
func TestOnlyAuthorizationCarriesTheToken(t *testing.T) {
	f := start(t)
	wantError(t, f.do(t, http.MethodGet, "/v1/users/me", "", "", "Grpc-Metadata-Authorization", goodToken),
		401, "TOKEN_MISSING", "UNAUTHENTICATED", "")
	for i := 0; i < 30; i++ {
		r := f.do(t, http.MethodGet, "/v1/users/me", "", "", "Authorization", goodToken,
			"Grpc-Metadata-Authorization", "Bearer other")
		if r.status != 200 {
			t.Fatalf("Authorization with a Grpc-Metadata-Authorization beside it: %d %s", r.status, r.body)
		}
	}
	req, err := http.NewRequest(http.MethodGet, f.url+"/v1/users/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Add("Authorization", goodToken)
	req.Header.Add("Authorization", "Bearer other")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), "TOKEN_MALFORMED") {
		t.Errorf("two Authorization headers: %d %s, want 401 TOKEN_MALFORMED", resp.StatusCode, body)
	}
}

// dialWS opens a WebSocket to the fixture; protocols are the offered
// subprotocols.
func dialWS(t *testing.T, f *fixture, target string, header http.Header, protocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.url, "http")+target, &websocket.DialOptions{
		HTTPHeader: header, Subprotocols: protocols,
	})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// wsFrame is a Parley socket frame as the client sees it.
type wsFrame struct {
	Type   string          `json:"type"`
	Ref    json.RawMessage `json:"ref"`
	Event  map[string]any  `json:"event"`
	Result map[string]any  `json:"result"`
	Error  *apierror.Error `json:"error"`
}

func readFrame(t *testing.T, c *websocket.Conn) wsFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	var f wsFrame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	return f
}

func writeFrame(t *testing.T, c *websocket.Conn, frame string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		t.Fatal(err)
	}
}

// readClose reads until the server closes, and returns its close error.
func readClose(t *testing.T, c *websocket.Conn) (websocket.CloseError, []wsFrame) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var frames []wsFrame
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("socket ended without a close frame: %v", err)
			}
			return ce, frames
		}
		var f wsFrame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		frames = append(frames, f)
	}
}

func TestWebSocketStreamsEventsAndAnswersCommands(t *testing.T) {
	f := start(t)
	c, _, err := dialWS(t, f, "/v1/rooms/rt-hold:ws?after=4", nil, socketSubprotocol, "good")
	if err != nil {
		t.Fatal(err)
	}
	if c.Subprotocol() != socketSubprotocol {
		t.Errorf("subprotocol %q, want %s", c.Subprotocol(), socketSubprotocol)
	}
	ev := readFrame(t, c)
	if ev.Type != "event" || ev.Event["text"] != "hello" || ev.Event["sequence"] != "1" {
		t.Fatalf("first frame %+v", ev)
	}
	if got := f.chat.lastSubscribe(t); got.GetRoom() != "rt-hold" || got.GetAfterSequence() != 4 {
		t.Errorf("server got %v", got)
	}

	writeFrame(t, c, `{"type":"send","ref":"r1","text":"hi","idempotencyKey":"k1"}`)
	ack := readFrame(t, c)
	if ack.Type != "ack" || string(ack.Ref) != `"r1"` || ack.Event["text"] != "hi" || ack.Event["id"] != "m1" {
		t.Errorf("ack %+v", ack)
	}
	writeFrame(t, c, `{"type":"typing","ref":2}`)
	if ack := readFrame(t, c); ack.Type != "ack" || string(ack.Ref) != "2" || ack.Result["expireTime"] != "2023-11-14T22:13:20Z" {
		t.Errorf("typing ack %+v", ack)
	}
	writeFrame(t, c, `{"type":"read","ref":"r3","sequence":"12"}`)
	if ack := readFrame(t, c); ack.Type != "ack" || ack.Result["sequence"] != "12" {
		t.Errorf("read ack %+v", ack)
	}

	for _, bad := range []struct {
		frame, ref, code, field string
	}{
		{`{"type":"send",`, "", apierror.MalformedJSON, ""},
		{`null`, "", apierror.MalformedJSON, ""},
		{`[{"type":"send","ref":"r9"}]`, "", apierror.MalformedJSON, ""},
		{`"send"`, "", apierror.MalformedJSON, ""},
		{`{"type":"shout","ref":"r4"}`, `"r4"`, apierror.UnknownFrameType, "type"},
		{`{"type":"send","ref":"r5","colour":"red"}`, `"r5"`, apierror.UnknownField, "colour"},
		{`{"type":"read","ref":"r6","sequence":-1}`, `"r6"`, apierror.InvalidFieldValue, "sequence"},
		{`{"type":"send","ref":"r7","text":5}`, `"r7"`, apierror.InvalidFieldValue, "text"},
	} {
		writeFrame(t, c, bad.frame)
		e := readFrame(t, c)
		if e.Type != "error" || string(e.Ref) != bad.ref || e.Error == nil || e.Error.Code != bad.code ||
			e.Error.Status != 400 || e.Error.Field != bad.field {
			t.Errorf("%s: frame %+v (error %+v), want %s on field %q", bad.frame, e, e.Error, bad.code, bad.field)
		}
	}
	// A failed call: the server's error, with the command's ref.
	writeFrame(t, c, `{"type":"delete","ref":"r8","message":"m1"}`)
	if e := readFrame(t, c); e.Type != "error" || string(e.Ref) != `"r8"` || e.Error.GRPCCode != "UNIMPLEMENTED" {
		t.Errorf("delete: %+v", e)
	}
	wantCalls(t, f, "Subscribe room=rt-hold", "PostMessage rt-hold hi", "idempotency_key field k1", "SendTyping room=rt-hold user=")

	// The client's close ends the upstream stream.
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestWebSocketTakesTheTokenFromTheHeaderOrTheOnlySubprotocol(t *testing.T) {
	f := start(t)
	// Seed 002's way: the raw token as the only subprotocol, echoed back.
	c, _, err := dialWS(t, f, "/v1/rooms/rt-hold:ws", nil, "good")
	if err != nil {
		t.Fatal(err)
	}
	if c.Subprotocol() != "good" {
		t.Errorf("subprotocol %q, want the token echoed", c.Subprotocol())
	}
	// The socket opens once the subscription is in place.
	if got := f.chat.lastSubscribe(t); got.GetRoom() != "rt-hold" {
		t.Errorf("server got %v", got)
	}
	if ev := readFrame(t, c); ev.Type != "event" {
		t.Errorf("frame %+v", ev)
	}
	f.chat.mu.Lock()
	f.chat.holdInbox = true
	f.chat.mu.Unlock()
	c, _, err = dialWS(t, f, "/v1/direct-messages:ws", http.Header{"Authorization": {goodToken}})
	if err != nil {
		t.Fatal(err)
	}
	if ev := readFrame(t, c); ev.Type != "event" || ev.Event["room"] != nil {
		t.Errorf("frame %+v", ev)
	}
	if got := f.chat.lastSubscribe(t); !got.GetDirectMessages() || got.AfterSequence != nil {
		t.Errorf("server got %v, want the inbox, live only", got)
	}
	writeFrame(t, c, `{"type":"typing","ref":"t","user":"bob"}`)
	if ack := readFrame(t, c); ack.Type != "ack" {
		t.Errorf("typing to bob: %+v", ack)
	}
	writeFrame(t, c, `{"type":"edit","ref":"e","message":"m1","text":"x"}`)
	if e := readFrame(t, c); e.Type != "error" || e.Error.Code != reasonUnsupportedOnSocket {
		t.Errorf("edit on the inbox socket: %+v", e)
	}
}

func TestWebSocketClosesWith4000PlusTheHTTPStatus(t *testing.T) {
	f := start(t)
	for _, c := range []struct {
		target, token string
		code          websocket.StatusCode
		reason        string
	}{
		{"/v1/rooms/rt-hold:ws", "forged", 4401, "TOKEN_MALFORMED"},
		{"/v1/rooms/missing:ws", "good", 4404, "ROOM_NOT_FOUND"},
		{"/v1/rooms/private:ws", "good", 4403, "NOT_A_MEMBER"},
		{"/v1/rooms/rt-aborted:ws", "good", 4409, "SUPERSEDED"},
		{"/v1/rooms/rt-events:ws", "good", 4503, "SHUTTING_DOWN"},
		{"/v1/rooms/rt-end:ws", "good", websocket.StatusNormalClosure, ""},
	} {
		conn, _, err := dialWS(t, f, c.target, nil, socketSubprotocol, c.token)
		if err != nil {
			t.Fatalf("%s: %v", c.target, err)
		}
		ce, frames := readClose(t, conn)
		if ce.Code != c.code || ce.Reason != c.reason {
			t.Errorf("%s: closed with %d %q, want %d %q", c.target, ce.Code, ce.Reason, c.code, c.reason)
		}
		if c.code != websocket.StatusNormalClosure {
			last := frames[len(frames)-1]
			if last.Type != "error" || last.Error.Code != c.reason || last.Error.Status != int(c.code)-4000 {
				t.Errorf("%s: last frame %+v, want the error", c.target, last)
			}
		}
	}
}

func TestWebSocketRefusesWhatCannotBecomeASocket(t *testing.T) {
	f := startWith(t, context.Background(), handlerConfig{realtime: realtimeConfig{wsOrigins: []string{"*.example.com"}}})
	wantError(t, f.get(t, "/v1/rooms/r1:ws"), 426, reasonUpgradeRequired, "FAILED_PRECONDITION", "")

	_, resp, err := dialWS(t, f, "/v1/rooms/rt-hold:ws", http.Header{"Origin": {"https://evil.test"}}, "good")
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("foreign origin: %v %v, want 403", resp, err)
	}
	if _, _, err := dialWS(t, f, "/v1/rooms/rt-hold:ws", http.Header{"Origin": {"https://chat.example.com"}}, "good"); err != nil {
		t.Errorf("allowed origin: %v", err)
	}
	_, resp, err = dialWS(t, f, "/v1/rooms/rt-hold:ws?after=x", nil, "good")
	if err == nil || resp == nil || resp.StatusCode != 400 {
		t.Errorf("bad cursor: %v %v, want 400", resp, err)
	}
}

func TestChitChatSocketSpeaksChitChatFrames(t *testing.T) {
	f := start(t)
	c, _, err := dialWS(t, f, "/chats/rt-seed/ws", nil, "good")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for len(got) < 3 {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	want := []string{
		`{"event_type":"join","name":"david","color":"#445566"}`,
		`{"event_type":"send","name":"ANN","color":"#112233","msg":"hi all"}`,
		`{"event_type":"leave","name":"david","color":"#445566"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("frames\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	writeFrame(t, c, `{"event_type":"join","name":"david","color":"#445566","msg":""}`)
	writeFrame(t, c, `{"event_type":"send","name":"david","color":"#445566","msg":"yo"}`)
	writeFrame(t, c, `{"event_type":"dance"}`)
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		EventType string `json:"event_type"`
		Error     struct {
			Code  int    `json:"code"`
			Field string `json:"field"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil || e.EventType != "error" || e.Error.Code != 201 || e.Error.Field != "event_type" {
		t.Errorf("frame %s, want ChitChat's error 201 on event_type", b)
	}
	wantCalls(t, f, "Subscribe room=rt-seed", "PostMessage rt-seed yo")
}

func TestRealtimeStreamsAreCountedByRouteAndTransport(t *testing.T) {
	f := start(t)
	sseGet(t, f, "/v1/rooms/rt-end:subscribe", "Authorization", goodToken)
	c, _, err := dialWS(t, f, "/v1/rooms/rt-hold:ws", nil, "good")
	if err != nil {
		t.Fatal(err)
	}
	readFrame(t, c)
	r := f.get(t, "/metrics")
	wantLines(t, linesOf(r.body),
		`parley_gateway_streams_opened_total{route="/v1/rooms/{room}:subscribe",transport="sse"} 1`,
		`parley_gateway_streams_opened_total{route="/v1/rooms/{room}:ws",transport="websocket"} 1`,
		`parley_gateway_open_streams{route="/v1/rooms/{room}:ws"} 1`,
	)
}

func TestShutdownClosesWebSocketsResumably(t *testing.T) {
	ctx, shutdown := context.WithCancel(context.Background())
	defer shutdown()
	f := startWith(t, ctx, handlerConfig{})
	c, _, err := dialWS(t, f, "/v1/rooms/rt-hold:ws", nil, "good")
	if err != nil {
		t.Fatal(err)
	}
	readFrame(t, c)
	shutdown()
	if ce, _ := readClose(t, c); ce.Code != 4503 || ce.Reason != "SHUTTING_DOWN" {
		t.Errorf("closed with %d %q, want 4503 SHUTTING_DOWN", ce.Code, ce.Reason)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.handler.rt.wait(wctx); err != nil {
		t.Errorf("sockets still open: %v", err)
	}
}

func TestSocketTokenAndSubprotocolSelection(t *testing.T) {
	for _, c := range []struct {
		offered, authorization string
		token, selected        string
	}{
		{"", "", "", ""},
		{"parley.v1, tok", "", "tok", "parley.v1"},
		{"tok, parley.v1", "", "tok", "parley.v1"},
		{"tok", "", "tok", "tok"},
		{"a, b", "", "", ""},
		{"parley.v1", "Bearer h", "", "parley.v1"},
		{"tok", "Bearer h", "", "tok"},
	} {
		r, _ := http.NewRequest(http.MethodGet, "http://gw/v1/rooms/r:ws", nil)
		if c.offered != "" {
			r.Header.Set("Sec-WebSocket-Protocol", c.offered)
		}
		if c.authorization != "" {
			r.Header.Set("Authorization", c.authorization)
		}
		if token, selected := socketAuth(r); token != c.token || selected != c.selected {
			t.Errorf("offered %q, Authorization %q: token %q, selected %q; want %q, %q",
				c.offered, c.authorization, token, selected, c.token, c.selected)
		}
	}
}

func TestOriginCheck(t *testing.T) {
	patterns := []string{"*.example.com", "https://app.test"}
	trusted := TrustedProxies{netip.MustParsePrefix("10.0.0.0/8")}
	for _, c := range []struct {
		origin, peer, forwardedHost string
		ok                          bool
	}{
		{"", "192.0.2.1:1234", "", true},
		{"http://gw:8080", "192.0.2.1:1234", "", true},
		{"https://GW:8080", "192.0.2.1:1234", "", true},
		{"https://chat.example.com", "192.0.2.1:1234", "", true},
		{"https://app.test", "192.0.2.1:1234", "", true},
		{"http://app.test", "192.0.2.1:1234", "", false},
		{"https://evil.test", "192.0.2.1:1234", "", false},
		{"null", "192.0.2.1:1234", "", false},
		// A forwarded host counts from a trusted proxy only, and then
		// instead of the Host the proxy addressed.
		{"https://public.example.org", "10.1.2.3:1234", "public.example.org", true},
		{"http://gw:8080", "10.1.2.3:1234", "public.example.org", false},
		{"https://public.example.org", "192.0.2.1:1234", "public.example.org", false},
		{"http://gw:8080", "192.0.2.1:1234", "public.example.org", true},
		{"https://evil.test", "192.0.2.1:1234", "evil.test", false},
	} {
		r, _ := http.NewRequest(http.MethodGet, "http://gw:8080/v1/rooms/r:ws", nil)
		r.RemoteAddr = c.peer
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.forwardedHost != "" {
			r.Header.Set("X-Forwarded-Host", c.forwardedHost)
		}
		r = r.WithContext(withOrigin(r.Context(), externalOrigin(r, trusted)))
		if got := originAllowed(r, patterns); got != c.ok {
			t.Errorf("Origin %q from %s (forwarded host %q): allowed %v, want %v", c.origin, c.peer, c.forwardedHost, got, c.ok)
		}
	}
}

// readSeed001 reads one frame of seed 001's socket, compacted.
func readSeed001(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	return compact(t, string(b))
}

// seed001Error reads a frame and returns its error, failing unless it is
// one.
func messagingAPIError(t *testing.T, c *websocket.Conn) apierror.Error {
	t.Helper()
	frame := readSeed001(t, c)
	var f struct {
		Type    string         `json:"type"`
		Content apierror.Error `json:"content"`
	}
	if err := json.Unmarshal([]byte(frame), &f); err != nil || f.Type != "error" || f.Content.Message == "" {
		t.Fatalf("frame %s, want an error", frame)
	}
	return f.Content
}

func TestMessagingAPISocketConnectsToAChatAndSpeaksItsFrames(t *testing.T) {
	f := start(t)
	c, _, err := dialWS(t, f, "/ws", nil, "good")
	if err != nil {
		t.Fatal(err)
	}
	if c.Subprotocol() != "good" {
		t.Errorf("subprotocol %q, want the token echoed", c.Subprotocol())
	}
	wantErr := func(frame string, status int, code, field string) {
		t.Helper()
		writeFrame(t, c, frame)
		if e := messagingAPIError(t, c); e.Status != status || e.Code != code || e.Field != field {
			t.Errorf("%s: error %+v, want %d %s on field %q", frame, e, status, code, field)
		}
	}
	// Before connect-chat, and frames that cannot be read.
	wantErr(`{"type":"send-message","content":{"chatId":1,"customerId":1,"content":"Hi world."}}`, 400, "NOT_CONNECTED", "")
	wantErr(`{"type":"connect-chat",`, 400, apierror.MalformedJSON, "")
	wantErr(`{"type":"dance"}`, 400, apierror.UnknownFrameType, "type")
	wantErr(`{"type":"delete-message","content":{"id":1}}`, 400, apierror.InvalidFieldValue, "content")
	wantErr(`{"type":"connect-chat","content":{"chatId":true}}`, 400, apierror.InvalidFieldValue, "content.chatId")
	wantErr(`{"type":"connect-chat","content":{"customerId":1}}`, 400, "ROOM_REQUIRED", "content.chatId")

	// The seed's own connect-chat (customerId misspelt as it is there), with
	// a resume point: the ack, then the room's events in seed 001's shape.
	writeFrame(t, c, `{"type":"connect-chat","content":{"customerd":1,"chatId":"rt-seed1","username":"name","afterSequence":"2"}}`)
	r := strings.NewReplacer("ROOM", roomID, "USER", userID)
	for _, want := range []string{
		`{"type":"ack","content":{"type":"connect-chat","content":{"chatId":"ROOM","name":"rt-seed1","customerId":"USER","username":"alice"}}}`,
		`{"type":"join","content":{"chatId":"ROOM","customerId":"u-bob","username":"BOB"}}`,
		`{"type":"send-message","content":{"chatId":"ROOM","customerId":"USER","username":"ALICE","content":"hi","messageId":"m3","sequence":3,"createTime":"2023-11-14T22:13:20Z"}}`,
		`{"type":"update-message","content":{"chatId":"ROOM","customerId":"USER","username":"ALICE","content":"hello","messageId":"m3","sequence":5,"createTime":"2023-11-14T22:13:20Z"}}`,
		`{"type":"delete-message","content":"m3"}`,
		`{"type":"typing","content":{"kind":"EVENT_KIND_TYPING",`,
		`{"type":"leave","content":{"chatId":"ROOM","customerId":"u-bob","username":"BOB"}}`,
	} {
		want = r.Replace(want)
		if got := readSeed001(t, c); got != want && !(strings.HasSuffix(want, ",") && strings.HasPrefix(got, want)) {
			t.Errorf("frame\n%s\nwant\n%s", got, want)
		}
	}
	if got := f.chat.lastSubscribe(t); got.GetRoom() != "rt-seed1" || got.GetAfterSequence() != 2 {
		t.Errorf("server got %v", got)
	}

	ack := func(frame, want string) {
		t.Helper()
		writeFrame(t, c, frame)
		if got, want := readSeed001(t, c), r.Replace(want); got != want {
			t.Errorf("%s: frame\n%s\nwant\n%s", frame, got, want)
		}
	}
	ack(`{"type":"send-message","content":{"customerId":1,"content":"Hi world."}}`,
		`{"type":"ack","content":{"type":"send-message","content":{"chatId":"","customerId":"","username":"","content":"Hi world.","messageId":"m1","sequence":1}}}`)
	ack(`{"type":"send-message","content":{"chatId":7,"content":"x"}}`,
		`{"type":"ack","content":{"type":"send-message","content":{"chatId":"","customerId":"","username":"","content":"x","messageId":"m1","sequence":1}}}`)
	ack(`{"type":"update-message","content":{"chatId":"rt-seed1","customerId":1,"content":"Hello world!","messageId":"m3"}}`,
		`{"type":"ack","content":{"type":"update-message","content":{"chatId":"ROOM","customerId":"USER","username":"ALICE","content":"Hello world!","messageId":"m3","sequence":3}}}`)
	// Without messageId: the caller's most recent message, not deleted.
	ack(`{"type":"update-message","content":{"content":"again"}}`,
		`{"type":"ack","content":{"type":"update-message","content":{"chatId":"ROOM","customerId":"USER","username":"ALICE","content":"again","messageId":"m-old","sequence":3}}}`)
	wantErr(`{"type":"update-message","content":{"chatId":"r1","content":"nothing to edit"}}`, 404, "MESSAGE_NOT_FOUND", "content.messageId")
	// The server's refusals, with its fields named as in the frame.
	wantErr(`{"type":"delete-message","content":"m3"}`, 501, "UNIMPLEMENTED", "")
	wantErr(`{"type":"send-message","content":{"chatId":"missing","content":"y"}}`, 404, "ROOM_NOT_FOUND", "content.chatId")
	wantErr(`{"type":"connect-chat","content":{"chatId":"missing"}}`, 404, "ROOM_NOT_FOUND", "content.chatId")

	// Another connect-chat switches rooms.
	writeFrame(t, c, `{"type":"connect-chat","content":{"chatId":"rt-hold"}}`)
	if got := readSeed001(t, c); !strings.Contains(got, `"type":"connect-chat","content":{"chatId":"`+roomID+`","name":"rt-hold"`) {
		t.Errorf("switch ack %s", got)
	}
	if got := readSeed001(t, c); !strings.HasPrefix(got, `{"type":"send-message","content":{"chatId":"","customerId":"","username":"ANN","content":"hello"`) {
		t.Errorf("rt-hold's message %s", got)
	}
	if got := f.chat.lastSubscribe(t); got.GetRoom() != "rt-hold" || got.AfterSequence != nil {
		t.Errorf("server got %v, want rt-hold live", got)
	}
	writeFrame(t, c, `{"type":"send-message","content":{"content":"z"}}`)
	readSeed001(t, c)
	wantCalls(t, f, "GetUser me", "GetRoom rt-seed1", "Subscribe room=rt-seed1",
		"PostMessage rt-seed1 Hi world.", "PostMessage 7 x",
		"EditMessage rt-seed1 m3 Hello world!", "ListMessages rt-seed1", "ListMessages rt-seed1", "EditMessage rt-seed1 m-old again",
		"ListMessages r1", "PostMessage missing y", "GetRoom missing", "Subscribe room=missing",
		"GetRoom rt-hold", "Subscribe room=rt-hold", "PostMessage rt-hold z")
}

func TestMessagingAPISocketChecksTheTokenWhenItOpens(t *testing.T) {
	ctx, shutdown := context.WithCancel(context.Background())
	defer shutdown()
	f := startWith(t, ctx, handlerConfig{})
	for _, c := range []struct {
		protocols []string
		code      websocket.StatusCode
		reason    string
	}{
		{[]string{"forged"}, 4401, "TOKEN_MALFORMED"},
		{[]string{socketSubprotocol, "forged"}, 4401, "TOKEN_MALFORMED"},
		{nil, 4401, "TOKEN_MISSING"},
	} {
		conn, _, err := dialWS(t, f, "/ws", nil, c.protocols...)
		if err != nil {
			t.Fatalf("%v: %v", c.protocols, err)
		}
		if e := messagingAPIError(t, conn); e.Code != c.reason || e.Status != int(c.code)-4000 {
			t.Errorf("%v: error %+v", c.protocols, e)
		}
		if ce, _ := readClose(t, conn); ce.Code != c.code || ce.Reason != c.reason {
			t.Errorf("%v: closed with %d %q, want %d %q", c.protocols, ce.Code, ce.Reason, c.code, c.reason)
		}
	}

	// A good token opens the socket, which, with no room yet, still closes
	// resumably at shutdown.
	conn, _, err := dialWS(t, f, "/ws", http.Header{"Authorization": {goodToken}})
	if err != nil {
		t.Fatal(err)
	}
	writeFrame(t, conn, `{"type":"delete-message","content":"m1"}`)
	if e := messagingAPIError(t, conn); e.Code != "NOT_CONNECTED" {
		t.Errorf("error %+v", e)
	}
	shutdown()
	if ce, _ := readClose(t, conn); ce.Code != 4503 || ce.Reason != "SHUTTING_DOWN" {
		t.Errorf("closed with %d %q, want 4503 SHUTTING_DOWN", ce.Code, ce.Reason)
	}
}
