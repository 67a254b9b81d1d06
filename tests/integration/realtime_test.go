package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Real time in every client: Server-Sent Events and WebSockets on the
// gateway, the long poll with a cursor, and idempotent sends, against the
// real binaries. Every way of reading a room resumes after a sequence number
// with no gap and no duplicate.

// sseMsg is one Server-Sent Events message.
type sseMsg struct {
	id, event, data string
	hasID           bool
}

// sseStream is an open SSE response, parsed in the background.
type sseStream struct {
	status chan int
	header chan http.Header
	msgs   chan sseMsg // closed when the stream ends
	cancel context.CancelFunc
}

// openSSE GETs target with Accept: text/event-stream, the token if not
// empty, and more header name, value pairs.
func (s *stack) openSSE(t *testing.T, target, token string, header ...string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st := &sseStream{status: make(chan int, 1), header: make(chan http.Header, 1), msgs: make(chan sseMsg, 1024), cancel: cancel}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.httpURL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	go func() {
		defer close(st.msgs)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		recordHit(http.MethodGet, target, resp.StatusCode)
		st.status <- resp.StatusCode
		st.header <- resp.Header
		sc := bufio.NewScanner(resp.Body)
		var m sseMsg
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				if m.event != "" || m.data != "" {
					st.msgs <- m
				}
				m = sseMsg{}
				continue
			}
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				m.id, m.hasID = value, true
			case "event":
				m.event = value
			case "data":
				m.data = value
			}
		}
	}()
	return st
}

func (st *sseStream) waitStatus(t *testing.T) (int, http.Header) {
	t.Helper()
	select {
	case code := <-st.status:
		return code, <-st.header
	case <-time.After(10 * time.Second):
		t.Fatal("no SSE status within 10s")
		return 0, nil
	}
}

// sseEvent is an SSE message with its data decoded as an event.
type sseEvent struct {
	sseMsg
	ev event
}

// collect reads messages until done says the events so far suffice. An
// error event or the end of the stream fails the test.
func (st *sseStream) collect(t *testing.T, done func([]sseEvent) bool) []sseEvent {
	t.Helper()
	var all []sseEvent
	for !done(all) {
		select {
		case m, ok := <-st.msgs:
			if !ok {
				t.Fatalf("SSE stream ended after %d events", len(all))
			}
			if m.event == "error" {
				t.Fatalf("SSE error event: %s", m.data)
			}
			var e sseEvent
			e.sseMsg = m
			if err := json.Unmarshal([]byte(m.data), &e.ev); err != nil {
				t.Fatalf("SSE data %q: %v", m.data, err)
			}
			all = append(all, e)
		case <-time.After(10 * time.Second):
			t.Fatalf("no SSE message within 10s after %d events", len(all))
		}
	}
	return all
}

func sseMessages(evs []sseEvent) []event {
	var out []event
	for _, e := range evs {
		if e.ev.Kind == "EVENT_KIND_MESSAGE" {
			out = append(out, e.ev)
		}
	}
	return out
}

func nMessages(n int) func([]sseEvent) bool {
	return func(evs []sseEvent) bool { return len(sseMessages(evs)) >= n }
}

func TestSSEResumesWithLastEventIDWithoutGapOrDuplicate(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	bob := s.signUp(t, "bob")
	rm := s.createRoom(t, owner.token, "sse", "", "")
	var posted []event
	for i := 1; i <= 3; i++ {
		posted = append(posted, s.post(t, owner.token, rm.ID, fmt.Sprintf("m%d", i)))
	}

	// From the beginning; cut after m2, whatever of m3 was already on the way.
	first := s.openSSE(t, "/v1/rooms/"+rm.ID+":subscribe?after=0", bob.token)
	if code, h := first.waitStatus(t); code != 200 || h.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", code, h.Get("Content-Type"))
	}
	seen := first.collect(t, nMessages(2))
	lastID := ""
	for _, e := range seen {
		switch {
		case e.ev.Sequence != 0 && e.ev.Kind != "EVENT_KIND_GAP":
			if !e.hasID || e.id != itoa(e.ev.Sequence) || e.event != strings.ToLower(strings.TrimPrefix(e.ev.Kind, "EVENT_KIND_")) {
				t.Errorf("stored event %+v: want id = sequence and the kind as event", e.sseMsg)
			}
			lastID = e.id
		case e.hasID:
			t.Errorf("event %+v without a sequence has an id", e.sseMsg)
		}
	}
	if got := sseMessages(seen); !slices.Equal(sequences(got), sequences(posted[:2])) {
		t.Fatalf("first stream = %v, want %v", sequences(got), sequences(posted[:2]))
	}
	first.cancel()

	// Missed while away.
	for i := 4; i <= 6; i++ {
		posted = append(posted, s.post(t, owner.token, rm.ID, fmt.Sprintf("m%d", i)))
	}
	resumed := s.openSSE(t, "/v1/rooms/"+rm.ID+":subscribe", bob.token, "Last-Event-ID", lastID)
	if code, _ := resumed.waitStatus(t); code != 200 {
		t.Fatalf("resumed: status %d", code)
	}
	got := sseMessages(resumed.collect(t, nMessages(4)))
	if !slices.Equal(sequences(got), sequences(posted[2:])) {
		t.Fatalf("resumed = %v, want exactly %v", sequences(got), sequences(posted[2:]))
	}
	// Then live, in the same JSON as the NDJSON stream's.
	ndjson := s.openStream(t, "/v1/rooms/"+rm.ID+":subscribe", bob.token)
	if l, ok := ndjson.next(t, 10*time.Second); !ok || l.Result == nil {
		t.Fatalf("NDJSON first line %q", l.raw)
	}
	live := s.post(t, owner.token, rm.ID, "live")
	var liveSSE sseEvent
	for _, e := range resumed.collect(t, nMessages(1)) {
		if e.ev.Kind == "EVENT_KIND_MESSAGE" {
			liveSSE = e
		}
	}
	if liveSSE.ev.ID != live.ID || liveSSE.id != itoa(live.Sequence) {
		t.Fatalf("live SSE event %+v, want %s", liveSSE.sseMsg, live.ID)
	}
	var ndLine streamLine
	for ndLine.Result == nil || len(messages(ndLine.Result.Events)) == 0 {
		var ok bool
		if ndLine, ok = ndjson.next(t, 10*time.Second); !ok {
			t.Fatal("NDJSON stream ended")
		}
	}
	var raw struct {
		Result struct {
			Events []json.RawMessage `json:"events"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(ndLine.raw), &raw); err != nil {
		t.Fatal(err)
	}
	for _, ev := range raw.Result.Events {
		var e event
		_ = json.Unmarshal(ev, &e)
		if e.ID == live.ID && compactJSON(t, ev) != compactJSON(t, []byte(liveSSE.data)) {
			t.Errorf("SSE data %s\nNDJSON event %s", liveSSE.data, ev)
		}
	}

	// Refusals stay ordinary error responses.
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+rm.ID+":subscribe", "", nil, "Accept", "text/event-stream"), 401, "", "")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+rm.ID+":subscribe", bob.token, nil,
		"Accept", "text/event-stream", "Last-Event-ID", "x"), 400, "INVALID_FIELD_VALUE", "Last-Event-ID")
}

// wsConn is a client WebSocket on the gateway.
type wsConn struct {
	*websocket.Conn
}

// dialWS opens target (a path) with header and subprotocols.
func (s *stack) dialWS(t *testing.T, target string, header http.Header, protocols ...string) (*wsConn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.httpURL, "http")+target, &websocket.DialOptions{
		HTTPHeader: header, Subprotocols: protocols,
	})
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsConn{c}, resp, nil
}

func (s *stack) mustDialWS(t *testing.T, target string, header http.Header, protocols ...string) *wsConn {
	t.Helper()
	c, _, err := s.dialWS(t, target, header, protocols...)
	if err != nil {
		t.Fatalf("dial %s: %v", target, err)
	}
	return c
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// wsFrame is a frame of Parley's socket.
type wsFrame struct {
	Type   string          `json:"type"`
	Ref    json.RawMessage `json:"ref"`
	Event  *event          `json:"event"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code     string `json:"code"`
		Status   int    `json:"status"`
		GRPCCode string `json:"grpc_code"`
		Message  string `json:"message"`
		Field    string `json:"field"`
	} `json:"error"`
}

// read returns the next frame; a close ends the test.
func (c *wsConn) read(t *testing.T) wsFrame {
	t.Helper()
	return readFrameAs[wsFrame](t, c)
}

// readFrameAs reads the next frame as a T, whatever API's frame it is; a
// close ends the test.
func readFrameAs[T any](t *testing.T, c *wsConn) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	var f T
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	return f
}

func (c *wsConn) write(t *testing.T, frame any) {
	t.Helper()
	b, ok := frame.(string)
	if !ok {
		j, err := json.Marshal(frame)
		if err != nil {
			t.Fatal(err)
		}
		b = string(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(b)); err != nil {
		t.Fatal(err)
	}
}

// events reads frames until done says the event frames so far suffice;
// other frames go to others.
func (c *wsConn) events(t *testing.T, done func([]event) bool, others *[]wsFrame) []event {
	t.Helper()
	var evs []event
	for !done(evs) {
		f := c.read(t)
		if f.Type == "event" && f.Event != nil {
			evs = append(evs, *f.Event)
		} else if others != nil {
			*others = append(*others, f)
		} else {
			t.Fatalf("unexpected frame %+v", f)
		}
	}
	return evs
}

// closeError reads until the server closes the socket.
func (c *wsConn) closeError(t *testing.T) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("socket ended without a close frame: %v", err)
			}
			return ce
		}
	}
}

func atLeast(n int) func([]event) bool {
	return func(evs []event) bool { return len(messages(evs)) >= n }
}

func TestWebSocketResumesAcksSendsAndReportsErrors(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	bob := s.signUp(t, "bob")
	rm := s.createRoom(t, owner.token, "ws", "", "")
	var posted []event
	for i := 1; i <= 3; i++ {
		posted = append(posted, s.post(t, owner.token, rm.ID, fmt.Sprintf("m%d", i)))
	}

	// From the beginning with the header token; cut after m2.
	first := s.mustDialWS(t, "/v1/rooms/"+rm.ID+":ws?after_sequence=0", bearer(bob.token))
	got := messages(first.events(t, atLeast(2), nil))
	if !slices.Equal(sequences(got[:2]), sequences(posted[:2])) {
		t.Fatalf("first socket = %v, want %v first", sequences(got), sequences(posted[:2]))
	}
	cursor := got[1].Sequence
	first.CloseNow()
	for i := 4; i <= 5; i++ {
		posted = append(posted, s.post(t, owner.token, rm.ID, fmt.Sprintf("m%d", i)))
	}

	// Resume with `after` and the token as a subprotocol next to parley.v1.
	c := s.mustDialWS(t, "/v1/rooms/"+rm.ID+":ws?after="+itoa(cursor), nil, "parley.v1", bob.token)
	if c.Subprotocol() != "parley.v1" {
		t.Errorf("subprotocol %q, want parley.v1", c.Subprotocol())
	}
	got = messages(c.events(t, atLeast(3), nil))
	if !slices.Equal(sequences(got), sequences(posted[2:])) {
		t.Fatalf("resumed socket = %v, want exactly %v", sequences(got), sequences(posted[2:]))
	}

	// A send with a ref and an idempotency key: the ack carries the stored
	// message, which then arrives live, once.
	c.write(t, map[string]any{"type": "send", "ref": "r1", "text": "via ws", "idempotencyKey": "k1"})
	var others []wsFrame
	live := messages(c.events(t, func(evs []event) bool { return len(messages(evs)) >= 1 && len(others) >= 1 }, &others))
	ack := others[0]
	if ack.Type != "ack" || string(ack.Ref) != `"r1"` || ack.Event == nil || ack.Event.Text != "via ws" || ack.Event.Sequence == 0 {
		t.Fatalf("ack %+v", ack)
	}
	if len(live) != 1 || live[0].ID != ack.Event.ID || live[0].Sequence != ack.Event.Sequence {
		t.Fatalf("live after the send = %+v, want the acked message", live)
	}
	// The same key again: the same message, nothing new stored.
	c.write(t, map[string]any{"type": "send", "ref": "r2", "text": "via ws", "idempotencyKey": "k1"})
	if again := frameFor(t, c, "r2"); again.Type != "ack" || again.Event == nil || again.Event.ID != ack.Event.ID {
		t.Errorf("retried send = %+v, want the ack of message %s", again, ack.Event.ID)
	}
	// Bad frames answer errors and keep the socket open.
	c.write(t, `{"type":"send","ref":"bad1",`)
	c.write(t, map[string]any{"type": "shout", "ref": "bad2"})
	c.write(t, map[string]any{"type": "send", "ref": "bad3", "text": ""})
	errs := map[string]string{}
	for len(errs) < 3 {
		f := c.read(t)
		if f.Type == "error" {
			errs[string(f.Ref)] = fmt.Sprintf("%s %d %s", f.Error.GRPCCode, f.Error.Status, f.Error.Field)
		}
	}
	for ref, want := range map[string]string{`"bad2"`: "INVALID_ARGUMENT 400 type", `"bad3"`: "INVALID_ARGUMENT 400 text"} {
		if errs[ref] != want {
			t.Errorf("error for %s = %q, want %q (all: %v)", ref, errs[ref], want, errs)
		}
	}
	if e, ok := errs[""]; !ok || !strings.HasPrefix(e, "INVALID_ARGUMENT 400") {
		t.Errorf("malformed frame: errors %v, want an INVALID_ARGUMENT without ref", errs)
	}

	// The room's history holds the socket's message once.
	n := 0
	for _, m := range s.allMessages(t, bob.token, rm.ID, 100) {
		if m.Text == "via ws" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("history holds %d copies of the idempotent send, want 1", n)
	}
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("client close: %v", err)
	}
}

func TestWebSocketEditDeleteTypingAndReadAcks(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	bob := s.signUp(t, "bob")
	rm := s.createRoom(t, owner.token, "cmds", "", "")
	watcher := s.mustDialWS(t, "/v1/rooms/"+rm.ID+":ws", bearer(owner.token))
	c := s.mustDialWS(t, "/v1/rooms/"+rm.ID+":ws", bearer(bob.token))

	c.write(t, map[string]any{"type": "send", "ref": 1, "text": "typo"})
	sent := ackFor(t, c, "1")
	c.write(t, map[string]any{"type": "edit", "ref": 2, "message": sent.Event.ID, "text": "fixed"})
	if a := ackFor(t, c, "2"); a.Event == nil || a.Event.Text != "fixed" {
		t.Errorf("edit ack %+v", a)
	}
	c.write(t, map[string]any{"type": "typing", "ref": 3})
	if a := ackFor(t, c, "3"); a.Result == nil || !strings.Contains(string(a.Result), "expireTime") {
		t.Errorf("typing ack %+v", a)
	}
	c.write(t, map[string]any{"type": "read", "ref": 4, "sequence": sent.Event.Sequence})
	var marker struct {
		Sequence uint64 `json:"sequence,string"`
	}
	if a := ackFor(t, c, "4"); json.Unmarshal(a.Result, &marker) != nil || marker.Sequence != sent.Event.Sequence {
		t.Errorf("read ack %+v", a)
	}
	c.write(t, map[string]any{"type": "delete", "ref": 5, "message": sent.Event.ID})
	if a := ackFor(t, c, "5"); a.Event == nil {
		t.Errorf("delete ack %+v", a)
	}
	// Someone else's message: the server's refusal, with the ref.
	other := s.post(t, owner.token, rm.ID, "owner's")
	c.write(t, map[string]any{"type": "edit", "ref": 6, "message": other.ID, "text": "hijacked"})
	if f := frameFor(t, c, "6"); f.Type != "error" || f.Error.Status != 403 {
		t.Errorf("editing another's message = %+v", f)
	}

	// The watcher saw the message, the edit, bob typing and the delete.
	kinds := map[string]bool{}
	watcher.events(t, func(evs []event) bool {
		for _, e := range evs {
			kinds[e.Kind] = true
		}
		return kinds["EVENT_KIND_MESSAGE"] && kinds["EVENT_KIND_EDIT"] && kinds["EVENT_KIND_TYPING"] && kinds["EVENT_KIND_DELETE"]
	}, nil)
}

// frameFor reads frames until the one answering ref, skipping events.
func frameFor(t *testing.T, c *wsConn, ref string) wsFrame {
	t.Helper()
	for {
		f := c.read(t)
		if f.Type != "event" && (string(f.Ref) == ref || string(f.Ref) == strconv.Quote(ref)) {
			return f
		}
	}
}

func ackFor(t *testing.T, c *wsConn, ref string) wsFrame {
	t.Helper()
	f := frameFor(t, c, ref)
	if f.Type != "ack" {
		t.Fatalf("frame for %s = %+v, want an ack (error %+v)", ref, f, f.Error)
	}
	return f
}

func TestWebSocketAuthBySubprotocolAndCloseCodes(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	bob := s.signUp(t, "bob")
	rm := s.createRoom(t, owner.token, "auth", "", "")
	priv := s.createRoom(t, owner.token, "closed", "VISIBILITY_PRIVATE", "closed-pw")

	// The raw token as the only subprotocol (seed 002's way), echoed back.
	c := s.mustDialWS(t, "/v1/rooms/"+rm.ID+":ws", nil, bob.token)
	if c.Subprotocol() != bob.token {
		t.Errorf("subprotocol %q, want the token echoed", c.Subprotocol())
	}
	posted := s.post(t, owner.token, rm.ID, "hello bob")
	if got := messages(c.events(t, atLeast(1), nil)); got[0].ID != posted.ID {
		t.Errorf("socket got %+v", got)
	}

	// Refusals close with 4000 + the HTTP status, the code as reason, after
	// an error frame.
	for _, tc := range []struct {
		target string
		protos []string
		code   websocket.StatusCode
	}{
		{"/v1/rooms/" + rm.ID + ":ws", []string{"parley.v1", "not-a-token"}, 4401},
		{"/v1/rooms/" + rm.ID + ":ws", nil, 4401},
		{"/v1/rooms/" + priv.ID + ":ws", []string{"parley.v1", bob.token}, 4403},
		{"/v1/rooms/no-such-room:ws", []string{"parley.v1", bob.token}, 4404},
		{"/v1/direct-messages:ws", []string{"parley.v1", "not-a-token"}, 4401},
	} {
		c := s.mustDialWS(t, tc.target, nil, tc.protos...)
		f := c.read(t)
		ce := c.closeError(t)
		if f.Type != "error" || f.Error == nil || ce.Code != tc.code || ce.Reason != f.Error.Code || f.Error.Status != int(tc.code)-4000 {
			t.Errorf("%s %v: frame %+v, close %d %q; want close %d with the error's code", tc.target, tc.protos, f, ce.Code, ce.Reason, tc.code)
		}
	}

	// The room is deleted under an open socket: 4404.
	doomed := s.createRoom(t, owner.token, "doomed", "", "")
	d := s.mustDialWS(t, "/v1/rooms/"+doomed.ID+":ws", bearer(bob.token))
	mustStatus(t, s.req(t, http.MethodDelete, "/v1/rooms/"+doomed.ID, owner.token, nil), 200, nil)
	if ce := d.closeError(t); ce.Code != 4404 {
		t.Errorf("deleted room: close %d %q, want 4404", ce.Code, ce.Reason)
	}

	// What cannot become a socket is an HTTP error.
	_, resp, err := s.dialWS(t, "/v1/rooms/"+rm.ID+":ws", http.Header{"Origin": {"http://evil.example"}}, bob.token)
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("foreign Origin: %v, %v; want 403", resp, err)
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+rm.ID+":ws", bob.token, nil), 426, "WEBSOCKET_UPGRADE_REQUIRED", "")
}

func TestWebSocketDirectMessages(t *testing.T) {
	s := startStack(t)
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")
	mustStatus(t, s.req(t, http.MethodPost, "/v1/users/bob/messages", alice.token, map[string]string{"text": "before"}), 201, nil)

	inbox := s.mustDialWS(t, "/v1/direct-messages:ws?after=0", nil, "parley.v1", bob.token)
	if got := messages(inbox.events(t, atLeast(1), nil)); got[0].Text != "before" {
		t.Errorf("inbox history %+v", got)
	}
	out := s.mustDialWS(t, "/v1/direct-messages:ws", bearer(alice.token))
	out.write(t, map[string]any{"type": "send", "ref": "dm", "user": "bob", "text": "psst", "idempotencyKey": "dm-1"})
	if a := ackFor(t, out, "dm"); a.Event.Text != "psst" || a.Event.RecipientID != bob.ID {
		t.Errorf("dm ack %+v", a.Event)
	}
	if got := messages(inbox.events(t, atLeast(1), nil)); got[0].Text != "psst" {
		t.Errorf("inbox live %+v", got)
	}
	out.write(t, map[string]any{"type": "typing", "ref": "ty", "user": "bob"})
	ackFor(t, out, "ty")
	inbox.events(t, func(evs []event) bool {
		return slices.ContainsFunc(evs, func(e event) bool { return e.Kind == "EVENT_KIND_TYPING" })
	}, nil)
	out.write(t, map[string]any{"type": "send", "ref": "nobody", "user": "no-such-user", "text": "x"})
	if f := frameFor(t, out, "nobody"); f.Type != "error" || f.Error.Status != 404 {
		t.Errorf("dm to a missing user: %+v", f)
	}
}

func TestLongPollWithCursorLosesNothingBetweenCalls(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	bob := s.signUp(t, "bob")
	rm := s.createRoom(t, owner.token, "poll", "", "")
	var posted []event
	for i := 1; i <= 3; i++ {
		posted = append(posted, s.post(t, owner.token, rm.ID, fmt.Sprintf("m%d", i)))
	}
	type pollReply struct {
		Events            []event `json:"events"`
		NextAfterSequence uint64  `json:"nextAfterSequence,string"`
	}
	poll := func(after uint64, timeout string) pollReply {
		t.Helper()
		var p pollReply
		// timeout=30 is longer than the harness client's 15 s: a poll that
		// waits instead of answering at once fails the test.
		mustOK(t, s.req(t, http.MethodGet, fmt.Sprintf("/v1/rooms/%s/events?after=%d&timeout=%s", rm.ID, after, timeout), bob.token, nil), &p)
		return p
	}

	// Stored events after the cursor come at once.
	p := poll(0, "30")
	if got := messages(p.Events); !slices.Equal(sequences(got), sequences(posted)) || p.NextAfterSequence != posted[2].Sequence {
		t.Fatalf("first poll = %v next %d, want %v next %d", sequences(got), p.NextAfterSequence, sequences(posted), posted[2].Sequence)
	}
	all := messages(p.Events)
	cursor := p.NextAfterSequence

	// A poll with nothing new waits; a post ends the wait with it.
	result := make(chan pollReply, 1)
	go func() {
		var p pollReply
		r, err := s.tryReq(http.MethodGet, fmt.Sprintf("/v1/rooms/%s/events?after=%d&timeout=10", rm.ID, cursor), bob.token, nil)
		if err == nil && r.status == 200 {
			_ = json.Unmarshal(r.body, &p)
		}
		result <- p
	}()
	deadline := time.Now().Add(10 * time.Second)
	for s.scrape(t)["parley_gateway_open_long_polls"] < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the long poll never started waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	posted = append(posted, s.post(t, owner.token, rm.ID, "m4"))
	select {
	case p = <-result:
	case <-time.After(15 * time.Second):
		t.Fatal("the waiting poll did not return the new message")
	}
	if got := messages(p.Events); len(got) != 1 || got[0].ID != posted[3].ID || p.NextAfterSequence != posted[3].Sequence {
		t.Fatalf("waiting poll = %+v next %d, want m4", got, p.NextAfterSequence)
	}
	all = append(all, messages(p.Events)...)
	cursor = p.NextAfterSequence

	// Posted between calls: the next call has them all.
	for i := 5; i <= 7; i++ {
		posted = append(posted, s.post(t, owner.token, rm.ID, fmt.Sprintf("m%d", i)))
	}
	p = poll(cursor, "30")
	all = append(all, messages(p.Events)...)
	if !slices.Equal(sequences(all), sequences(posted)) {
		t.Errorf("all polls = %v, want exactly %v", sequences(all), sequences(posted))
	}
	// Nothing new: an empty list once the timeout passes, the cursor kept.
	if p = poll(p.NextAfterSequence, "0.2"); len(p.Events) != 0 || p.NextAfterSequence != posted[6].Sequence {
		t.Errorf("idle poll = %+v", p)
	}
	// after_sequence is the same cursor under its proto name.
	var same pollReply
	mustOK(t, s.req(t, http.MethodGet, fmt.Sprintf("/v1/rooms/%s/events?after_sequence=%d&timeout=30", rm.ID, posted[5].Sequence), bob.token, nil), &same)
	if got := messages(same.Events); len(got) != 1 || got[0].ID != posted[6].ID {
		t.Errorf("after_sequence poll = %v", texts(got))
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+rm.ID+"/events?after=0", "", nil), 401, "", "")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/no-such-room/events?after=0", bob.token, nil), 404, "", "")

	// The inbox long poll.
	mustStatus(t, s.req(t, http.MethodPost, "/v1/users/bob/messages", owner.token, map[string]string{"text": "dm"}), 201, nil)
	var inbox pollReply
	mustOK(t, s.req(t, http.MethodGet, "/v1/direct-messages/events?after=0&timeout=30", bob.token, nil), &inbox)
	if got := messages(inbox.Events); len(got) != 1 || got[0].Text != "dm" || got[0].RecipientID != bob.ID {
		t.Errorf("inbox poll = %+v", inbox)
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/direct-messages/events?after=0", "", nil), 401, "", "")
}

func TestIdempotencyKeyOverRESTSurvivesARestart(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	rm := s.createRoom(t, owner.token, "idem", "", "")
	send := func(text, key string) reply {
		t.Helper()
		return s.req(t, http.MethodPost, "/v1/rooms/"+rm.ID+"/messages", owner.token, map[string]string{"text": text}, "Idempotency-Key", key)
	}
	var first, again event
	mustStatus(t, send("only once", "key-1"), 201, &first)
	r := send("only once", "key-1")
	if r.status != 200 && r.status != 201 {
		t.Fatalf("retry = %v", r)
	}
	mustStatus(t, r, r.status, &again)
	if again.ID != first.ID || again.Sequence != first.Sequence {
		t.Errorf("retry = %+v, want message %s again", again, first.ID)
	}
	wantError(t, send("another text", "key-1"), 409, "IDEMPOTENCY_KEY_REUSED", "")
	var other event
	mustStatus(t, send("only once", "key-2"), 201, &other)
	if other.ID == first.ID {
		t.Error("a new key stored no new message")
	}

	s.restart(t, false)
	var afterRestart event
	r = send("only once", "key-1")
	mustStatus(t, r, r.status, &afterRestart)
	if afterRestart.ID != first.ID {
		t.Errorf("retry after a restart = %v, want message %s", r, first.ID)
	}
	n := 0
	for _, m := range s.allMessages(t, owner.token, rm.ID, 100) {
		if m.ID == first.ID {
			n++
		}
	}
	if got := s.allMessages(t, owner.token, rm.ID, 100); len(got) != 2 || n != 1 {
		t.Errorf("history %v, want key-1's message once and key-2's", texts(got))
	}
}

// The presence, typing and read-marker routes, seen from an SSE stream.
func TestPresenceTypingAndReadMarkerRoutes(t *testing.T) {
	s := startStack(t)
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")
	rm := s.createRoom(t, alice.token, "presence", "", "")
	m := s.post(t, alice.token, rm.ID, "hi")

	roomStream := s.openSSE(t, "/v1/rooms/"+rm.ID+":subscribe", bob.token)
	if code, _ := roomStream.waitStatus(t); code != 200 {
		t.Fatalf("status %d", code)
	}
	inbox := s.openSSE(t, "/v1/direct-messages:subscribe", bob.token)
	if code, _ := inbox.waitStatus(t); code != 200 {
		t.Fatalf("status %d", code)
	}

	// bob's stream makes him present.
	var presence struct {
		Users []struct {
			UserID string `json:"userId"`
			Name   string `json:"name"`
		} `json:"users"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mustOK(t, s.req(t, http.MethodGet, "/v1/rooms/"+rm.ID+"/presence", alice.token, nil), &presence)
		if slices.ContainsFunc(presence.Users, func(u struct {
			UserID string `json:"userId"`
			Name   string `json:"name"`
		}) bool {
			return u.UserID == bob.ID
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence %+v, want bob", presence)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+rm.ID+"/presence", "", nil), 401, "", "")

	// Typing in the room and to bob: live-only events without an SSE id.
	mustOK(t, s.req(t, http.MethodPost, "/v1/rooms/"+rm.ID+":typing", alice.token, map[string]any{}), nil)
	typing := func(st *sseStream) {
		t.Helper()
		evs := st.collect(t, func(evs []sseEvent) bool {
			return slices.ContainsFunc(evs, func(e sseEvent) bool { return e.event == "typing" })
		})
		for _, e := range evs {
			if e.event == "typing" && (e.hasID || e.ev.Sequence != 0 || e.ev.Sender != "ALICE") {
				t.Errorf("typing event %+v", e.sseMsg)
			}
		}
	}
	typing(roomStream)
	mustOK(t, s.req(t, http.MethodPost, "/v1/users/bob:typing", alice.token, map[string]any{}), nil)
	typing(inbox)
	wantError(t, s.req(t, http.MethodPost, "/v1/rooms/no-such-room:typing", alice.token, map[string]any{}), 404, "", "")
	wantError(t, s.req(t, http.MethodPost, "/v1/users/no-such-user:typing", alice.token, map[string]any{}), 404, "", "")

	// The read marker.
	var marker struct {
		RoomID   string `json:"roomId"`
		Sequence uint64 `json:"sequence,string"`
	}
	mustOK(t, s.req(t, http.MethodPut, "/v1/rooms/"+rm.ID+"/read-marker", bob.token, map[string]any{"sequence": m.Sequence}), &marker)
	if marker.RoomID != rm.ID || marker.Sequence != m.Sequence {
		t.Errorf("read marker %+v", marker)
	}
	wantError(t, s.req(t, http.MethodPut, "/v1/rooms/"+rm.ID+"/read-marker", "", map[string]any{"sequence": 1}), 401, "", "")
}
