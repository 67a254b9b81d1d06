package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Seed 004's lobby routes exactly as it wrote them: GET /messages (no id),
// POST /message, GET /users; no token needed.

// recentMessages GETs target and checks seed 004's shape exactly: only the
// key "messages", each message only timestamp (a JSON number), user, text.
func recentMessages(t *testing.T, s *stack, target string) []recent {
	t.Helper()
	r := s.req(t, http.MethodGet, target, "", nil, "Content-Type", "application/json")
	var raw map[string][]map[string]json.RawMessage
	mustStatus(t, r, 200, &raw)
	if len(raw) != 1 || raw["messages"] == nil {
		t.Fatalf("GET %s = %s, want {\"messages\":[...]}", target, r.body)
	}
	var out []recent
	for _, m := range raw["messages"] {
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if strings.Join(keys, ",") != "text,timestamp,user" {
			t.Fatalf("message keys %v, want timestamp, user, text: %s", keys, r.body)
		}
		var rc recent
		if err := json.Unmarshal(m["timestamp"], &rc.Timestamp); err != nil {
			t.Fatalf("timestamp %s is not a JSON number: %v", m["timestamp"], err)
		}
		_ = json.Unmarshal(m["user"], &rc.User)
		_ = json.Unmarshal(m["text"], &rc.Text)
		out = append(out, rc)
	}
	return out
}

type recent struct {
	Timestamp int64
	User      string
	Text      string
}

func postRecent(t *testing.T, s *stack, user, text string) {
	t.Helper()
	r := s.req(t, http.MethodPost, "/message", "", map[string]string{"user": user, "text": text})
	if r.status != 200 || compactJSON(t, r.body) != `{"ok":true}` {
		t.Fatalf("POST /message = %v, want 200 {\"ok\":true}", r)
	}
}

func posters(t *testing.T, s *stack) []string {
	t.Helper()
	r := s.req(t, http.MethodGet, "/users", "", nil)
	var body map[string][]string
	mustStatus(t, r, 200, &body)
	if len(body) != 1 || body["users"] == nil {
		t.Fatalf("GET /users = %s, want {\"users\":[...]}", r.body)
	}
	return body["users"]
}

func TestSeed004MessagesAndUsers(t *testing.T) {
	s := startStack(t)
	start := time.Now().Unix()

	if got := recentMessages(t, s, "/messages"); len(got) != 0 {
		t.Errorf("fresh server lists %+v", got)
	}
	if got := posters(t, s); len(got) != 0 {
		t.Errorf("fresh server's posters %v", got)
	}

	postRecent(t, s, "superman", "hello")
	postRecent(t, s, "batman", "hello")
	postRecent(t, s, "superman", "again")
	got := recentMessages(t, s, "/messages")
	want := []recent{{0, "superman", "hello"}, {0, "batman", "hello"}, {0, "superman", "again"}}
	if len(got) != len(want) {
		t.Fatalf("GET /messages = %+v", got)
	}
	for i := range got {
		if got[i].User != want[i].User || got[i].Text != want[i].Text {
			t.Errorf("message %d = %+v, want %+v", i, got[i], want[i])
		}
		if got[i].Timestamp < start || got[i].Timestamp > time.Now().Unix()+1 {
			t.Errorf("message %d timestamp %d, want a unix time since %d", i, got[i].Timestamp, start)
		}
		if i > 0 && got[i].Timestamp < got[i-1].Timestamp {
			t.Errorf("timestamps not sorted: %+v", got)
		}
	}
	if p := posters(t, s); !slices.Equal(p, []string{"superman", "batman"}) {
		t.Errorf("GET /users = %v, want [superman batman]", p)
	}

	for _, c := range []struct {
		name        string
		body        any
		status      int
		code, field string
	}{
		{"no user", map[string]string{"text": "hi"}, 400, "", "user"},
		{"empty user", map[string]string{"user": "", "text": "hi"}, 400, "", "user"},
		{"no text", map[string]string{"user": "robin"}, 400, "", "text"},
		{"no body", nil, 400, "", ""},
		{"text too long", map[string]string{"user": "robin", "text": strings.Repeat("t", 4097)}, 413, "MESSAGE_TOO_LONG", "text"},
		{"user too long", map[string]string{"user": strings.Repeat("u", 129), "text": "hi"}, 400, "", "user"},
		{"malformed JSON", `{"user":"robin","text":"hi"`, 400, "MALFORMED_JSON", "-"},
		{"unknown field", `{"user":"robin","text":"hi","timestamp":1}`, 400, "UNKNOWN_FIELD", "timestamp"},
		{"wrong type", `{"user":"robin","text":7}`, 400, "INVALID_FIELD_VALUE", "text"},
	} {
		t.Run("POST /message "+c.name, func(t *testing.T) {
			wantError(t, s.req(t, http.MethodPost, "/message", "", c.body), c.status, c.code, c.field)
		})
	}
	wantError(t, s.req(t, http.MethodGet, "/message", "", nil), 405, "METHOD_NOT_ALLOWED", "-")
	wantError(t, s.req(t, http.MethodDelete, "/users", "", nil), 405, "METHOD_NOT_ALLOWED", "-")
	if p := posters(t, s); !slices.Equal(p, []string{"superman", "batman"}) {
		t.Errorf("refused posts changed the posters: %v", p)
	}

	// n: the default is 100, the most recent, oldest first.
	for i := 0; i < 105; i++ {
		postRecent(t, s, fmt.Sprintf("user%d", i%7), fmt.Sprintf("bulk %03d", i))
	}
	got = recentMessages(t, s, "/messages")
	if len(got) != 100 || got[0].Text != "bulk 005" || got[99].Text != "bulk 104" {
		t.Errorf("default page: %d messages from %+v to %+v, want bulk 005..bulk 104", len(got), got[0], got[len(got)-1])
	}
	if n0 := recentMessages(t, s, "/messages?n=0"); len(n0) != 100 {
		t.Errorf("n=0 gave %d, want the default 100", len(n0))
	}
	got = recentMessages(t, s, "/messages?n=3")
	if len(got) != 3 || got[0].Text != "bulk 102" || got[2].Text != "bulk 104" {
		t.Errorf("n=3 = %+v", got)
	}
	if all := recentMessages(t, s, "/messages?n=500"); len(all) != 108 || all[0].Text != "hello" || all[0].User != "superman" {
		t.Errorf("n=500 gave %d messages starting %+v, want all 108", len(all), all[0])
	}
	// The project's own route to the same list.
	if own := recentMessages(t, s, "/v1/lobby/recent-messages?n=3"); !slices.Equal(own, got) {
		t.Errorf("/v1/lobby/recent-messages?n=3 = %+v, /messages?n=3 = %+v", own, got)
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/lobby/recent-messages?n=1001", "", nil), 400, "PAGE_TOO_LARGE", "n")
	wantError(t, s.req(t, http.MethodGet, "/messages?n=abc", "", nil), 400, "", "n")
	wantError(t, s.req(t, http.MethodGet, "/messages?n=-1", "", nil), 400, "", "n")
	wantError(t, s.req(t, http.MethodGet, "/messages?n=1001", "", nil), 400, "", "n")
	if p := posters(t, s); len(p) != 9 || p[0] != "superman" || p[1] != "batman" || p[2] != "user0" {
		t.Errorf("posters = %v, want superman, batman, user0..user6", p)
	}
}

// Seed 004's lobby is seed 000's: the same log, the same clients.
func TestSeed004AndSeed000ShareTheLobby(t *testing.T) {
	s := startStack(t)
	mustOK(t, s.get(t, "/join?id=alice"), nil)
	s.drain(t, "alice")

	postRecent(t, s, "superman", "to the lobby")
	got := s.receiveUntil(t, "alice", countKind("EVENT_KIND_MESSAGE", 1))
	if m := messages(got); m[0].Sender != "superman" || m[0].Text != "to the lobby" || m[0].Room != "lobby" {
		t.Errorf("alice received %+v, want superman's post", m)
	}

	mustOK(t, s.get(t, "/send?id=alice&message=from+alice"), nil)
	recents := recentMessages(t, s, "/messages")
	if len(recents) != 2 || recents[1].User != "alice" || recents[1].Text != "from alice" {
		t.Errorf("GET /messages = %+v, want superman's then alice's", recents)
	}
	if p := posters(t, s); !slices.Equal(p, []string{"superman", "alice"}) {
		t.Errorf("GET /users = %v", p)
	}
	// /messages with an id is still the long poll.
	var polled eventsReply
	mustOK(t, s.get(t, "/messages?id=alice&timeout=1"), &polled)
	if m := messages(polled.Events); len(m) != 1 || m[0].Text != "from alice" {
		t.Errorf("long poll = %+v, want alice's own message", polled.Events)
	}
	wantError(t, s.get(t, "/messages?id=ghost&timeout=1"), 400, "NOT_JOINED", "id")
	wantError(t, s.get(t, "/messages?id=&n=3"), 400, "ID_REQUIRED", "id")

	mustOK(t, s.call(t, http.MethodPost, "/leave?id=alice"), nil)
	wantError(t, s.call(t, http.MethodPost, "/leave?id=alice"), 400, "NOT_JOINED", "id")
	// Leaving does not take back what was posted.
	if p := posters(t, s); !slices.Equal(p, []string{"superman", "alice"}) {
		t.Errorf("GET /users after leave = %v", p)
	}
}
