package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The walk-through of seed 000, over the REST routes exactly as the seed
// wrote them.
func TestSeed000WalkThroughOverREST(t *testing.T) {
	s := startStack(t)

	var alice, bob eventReply
	mustOK(t, s.get(t, "/join?id=alice"), &alice)
	mustOK(t, s.call(t, http.MethodPost, "/join?id=bob"), &bob) // POST, empty body
	for _, j := range []struct {
		got  event
		name string
	}{{alice.Event, "alice"}, {bob.Event, "bob"}} {
		if j.got.Kind != "EVENT_KIND_JOIN" || j.got.Sender != j.name || j.got.Sequence == 0 {
			t.Errorf("join of %s = %+v, want a join event with a sequence number", j.name, j.got)
		}
	}
	if bob.Event.Sequence <= alice.Event.Sequence {
		t.Errorf("bob joined at %d, after alice at %d", bob.Event.Sequence, alice.Event.Sequence)
	}

	var sent1, sent2 eventReply
	mustOK(t, s.get(t, "/send?id=alice&"+url.Values{"message": {"hello, bob"}}.Encode()), &sent1)
	mustOK(t, s.call(t, http.MethodPost, "/send?id=bob&"+url.Values{"message": {"hi alice ✓"}}.Encode()), &sent2)
	if sent1.Event.Kind != "EVENT_KIND_MESSAGE" || sent1.Event.Text != "hello, bob" || sent1.Event.Sender != "alice" {
		t.Errorf("send reply = %+v", sent1.Event)
	}
	if sent2.Event.Sequence <= sent1.Event.Sequence {
		t.Errorf("second message has sequence %d, first %d", sent2.Event.Sequence, sent1.Event.Sequence)
	}

	gotAlice := s.receiveUntil(t, "alice", countKind("EVENT_KIND_MESSAGE", 2))
	gotBob := s.receiveUntil(t, "bob", countKind("EVENT_KIND_MESSAGE", 2))
	for name, got := range map[string][]event{"alice": gotAlice, "bob": gotBob} {
		for i := 1; i < len(got); i++ {
			if got[i].Sequence <= got[i-1].Sequence {
				t.Errorf("%s: sequence not increasing: %+v", name, got)
			}
		}
		msgs := messages(got)
		want := []struct{ sender, text string }{{"alice", "hello, bob"}, {"bob", "hi alice ✓"}}
		for i, w := range want {
			m := msgs[i]
			if m.Sender != w.sender || m.Text != w.text || m.Room != "lobby" || m.ID == "" {
				t.Errorf("%s: message %d = %+v, want %s: %q in lobby with an id", name, i, m, w.sender, w.text)
			}
			if _, err := time.Parse(time.RFC3339Nano, m.CreateTime); err != nil {
				t.Errorf("%s: message %d createTime %q: %v", name, i, m.CreateTime, err)
			}
		}
		if msgs[0].Sequence != sent1.Event.Sequence || msgs[1].Sequence != sent2.Event.Sequence {
			t.Errorf("%s: message sequences %d, %d, want %d, %d as acknowledged", name,
				msgs[0].Sequence, msgs[1].Sequence, sent1.Event.Sequence, sent2.Event.Sequence)
		}
	}
	if !countKind("EVENT_KIND_JOIN", 1)(gotAlice) {
		t.Errorf("alice saw no join event: %+v", gotAlice)
	}

	var left eventReply
	mustOK(t, s.get(t, "/leave?id=bob"), &left)
	if left.Event.Kind != "EVENT_KIND_LEAVE" || left.Event.Sender != "bob" {
		t.Errorf("leave reply = %+v", left.Event)
	}
	wantError(t, s.get(t, "/messages?id=bob&timeout=1"), 400, "NOT_JOINED", "id")

	after := s.receiveUntil(t, "alice", countKind("EVENT_KIND_LEAVE", 1))
	for _, e := range after {
		if e.Kind == "EVENT_KIND_LEAVE" && e.Sender != "bob" {
			t.Errorf("leave event %+v, want sender bob", e)
		}
	}
}

func TestEmptyLongPollReturnsEmptyListAfterItsTimeout(t *testing.T) {
	s := startStack(t)
	mustOK(t, s.get(t, "/join?id=idle"), nil)
	s.drain(t, "idle")

	start := time.Now()
	r := s.get(t, "/messages?id=idle&timeout=1")
	took := time.Since(start)
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"events":[]}` {
		t.Errorf("got %v, want 200 {\"events\":[]}", r)
	}
	if took < 900*time.Millisecond || took > 5*time.Second {
		t.Errorf("a 1s poll took %v", took)
	}
}

func TestWaitingLongPollReturnsAsSoonAsAMessageIsSent(t *testing.T) {
	s := startStack(t)
	mustOK(t, s.get(t, "/join?id=waiter"), nil)
	mustOK(t, s.get(t, "/join?id=talker"), nil)
	s.drain(t, "waiter")

	type result struct {
		r    reply
		when time.Time
	}
	done := make(chan result, 1)
	go func() {
		r, err := s.try(http.MethodGet, "/messages?id=waiter&timeout=30")
		if err != nil {
			r = reply{body: []byte(err.Error())}
		}
		done <- result{r, time.Now()}
	}()
	// The send comes once the gateway counts the poll as waiting.
	deadline := time.Now().Add(10 * time.Second)
	for s.scrape(t)["parley_gateway_open_long_polls"] < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the long poll never started waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sentAt := time.Now()
	mustOK(t, s.get(t, "/send?id=talker&message=wake+up"), nil)

	select {
	case res := <-done:
		var got eventsReply
		mustOK(t, res.r, &got)
		if m := messages(got.Events); len(m) != 1 || m[0].Text != "wake up" {
			t.Errorf("poll returned %v, want the message", res.r)
		}
		if lag := res.when.Sub(sentAt); lag > 3*time.Second {
			t.Errorf("poll returned %v after the send", lag)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting poll did not return within 10s of the send")
	}
}

func TestEveryBadRequestGetsAJSONErrorOverREST(t *testing.T) {
	s := startStack(t)
	mustOK(t, s.get(t, "/join?id=a"), nil)

	exact := url.Values{"id": {"a"}, "message": {strings.Repeat("x", 4096)}}.Encode()
	mustOK(t, s.get(t, "/send?"+exact), nil) // the limit itself is allowed

	for _, c := range []struct {
		method, target string
		status         int
		code, field    string
	}{
		{"GET", "/join", 400, "ID_REQUIRED", "id"},
		{"POST", "/join?id=", 400, "ID_REQUIRED", "id"},
		{"GET", "/join?id=" + strings.Repeat("i", 129), 400, "ID_TOO_LONG", "id"},
		{"GET", "/join?id=a", 409, "ALREADY_JOINED", "id"},
		{"GET", "/send?id=a&message=", 400, "MESSAGE_REQUIRED", "message"},
		{"GET", "/send?id=a", 400, "MESSAGE_REQUIRED", "message"},
		{"GET", "/send?id=a&message=" + strings.Repeat("x", 4097), 413, "MESSAGE_TOO_LONG", "message"},
		{"POST", "/send?id=ghost&message=hi", 400, "NOT_JOINED", "id"},
		{"GET", "/leave?id=ghost", 400, "NOT_JOINED", "id"},
		{"GET", "/messages?id=ghost&timeout=1", 400, "NOT_JOINED", "id"},
		{"GET", "/subscribe?id=ghost", 400, "NOT_JOINED", "id"},
		{"GET", "/join?id=%FF", 400, "INVALID_UTF8", "id"},
		{"GET", "/send?id=a&message=%FF", 400, "INVALID_UTF8", "message"},
		{"GET", "/send?id=a&message=ok%C3%28", 400, "INVALID_UTF8", "message"},
		{"GET", "/messages?id=a&timeout=abc", 400, "", "timeout"},
		{"GET", "/messages?id=a&timeout=-1", 400, "INVALID_TIMEOUT", "timeout"},
		{"GET", "/messages?id=a&timeout=NaN", 400, "INVALID_TIMEOUT", "timeout"},
		{"GET", "/nope", 404, "NOT_FOUND", "-"},
		{"POST", "/messages?id=a", 405, "METHOD_NOT_ALLOWED", "-"},
	} {
		r := s.call(t, c.method, c.target)
		short := c.target
		if len(short) > 60 {
			short = short[:60] + "..."
		}
		t.Run(c.method+" "+short, func(t *testing.T) { wantError(t, r, c.status, c.code, c.field) })
	}

	// None of it disturbed the session.
	mustOK(t, s.get(t, "/send?id=a&message=still+here"), nil)
}

func TestSubscribeStreamsEventsLiveAndEndsOnLeave(t *testing.T) {
	s := startStack(t)
	mustOK(t, s.get(t, "/join?id=reader"), nil)
	mustOK(t, s.get(t, "/join?id=writer"), nil)
	st := s.subscribe(t, "reader")

	for _, m := range []string{"one", "two", "three"} {
		mustOK(t, s.get(t, "/send?id=writer&message="+m), nil)
	}
	var got []event
	for len(messages(got)) < 3 {
		l, ok := st.next(t, 10*time.Second)
		if !ok {
			t.Fatalf("stream ended after %+v: %v", got, st.readErr())
		}
		if l.Result == nil {
			t.Fatalf("stream line %s, want a result", l.raw)
		}
		got = append(got, l.Result.Events...)
	}
	select {
	case code := <-st.status:
		if code != 200 {
			t.Errorf("stream status %d", code)
		}
	default:
		t.Error("lines arrived before the status")
	}
	msgs := messages(got)
	for i, want := range []string{"one", "two", "three"} {
		if msgs[i].Text != want || msgs[i].Sender != "writer" {
			t.Errorf("message %d = %+v, want %q from writer", i, msgs[i], want)
		}
		if i > 0 && msgs[i].Sequence <= msgs[i-1].Sequence {
			t.Errorf("sequence not increasing: %+v", msgs)
		}
	}

	mustOK(t, s.get(t, "/leave?id=reader"), nil)
	for {
		l, ok := st.next(t, 10*time.Second)
		if !ok {
			break
		}
		if l.Error != nil {
			t.Errorf("stream ended with an error line after leave: %s", l.raw)
		}
	}
	if err := st.readErr(); err != nil {
		t.Errorf("stream did not end cleanly: %v", err)
	}
}

func TestOpenAPIDocumentIsServed(t *testing.T) {
	s := startStack(t)
	r := s.get(t, "/openapi.json")
	var doc struct {
		Swagger string                     `json:"swagger"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	mustOK(t, r, &doc)
	if doc.Swagger != "2.0" {
		t.Errorf("swagger = %q", doc.Swagger)
	}
	if _, ok := doc.Paths["/join"]; !ok {
		t.Errorf("no /join in paths: %s", r.body)
	}
}
