package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Seed 003's routes exactly as it wrote them: GET|POST /rooms,
// GET|POST /room/{roomId}/messages, GET /room/{roomId}/subscribe, each with
// Authorization: Bearer.

func compactJSON(t *testing.T, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return out.String()
}

func TestSeed003Rooms(t *testing.T) {
	s := startStack(t)
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")

	// 401 without a token; an empty array when there are no rooms.
	wantError(t, s.req(t, http.MethodGet, "/rooms", "", nil), 401, "TOKEN_MISSING", "")
	wantError(t, s.req(t, http.MethodGet, "/rooms", "not-a-token", nil), 401, "", "")
	r := s.req(t, http.MethodGet, "/rooms", alice.token, nil)
	if r.status != 200 || compactJSON(t, r.body) != "[]" {
		t.Errorf("GET /rooms with no rooms = %v, want 200 []", r)
	}

	// 201 with an absolute Location that GETs the room.
	r = s.req(t, http.MethodPost, "/rooms", alice.token, map[string]string{"name": "general"})
	var general room
	mustStatus(t, r, http.StatusCreated, &general)
	loc := r.header.Get("Location")
	if loc != s.httpURL+"/v1/rooms/"+general.ID {
		t.Errorf("Location = %q, want %s/v1/rooms/%s", loc, s.httpURL, general.ID)
	}
	var fetched room
	resp := func() reply {
		req, _ := http.NewRequest(http.MethodGet, loc, nil)
		req.Header.Set("Authorization", "Bearer "+bob.token)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(res.Body)
		return reply{status: res.StatusCode, header: res.Header, body: b.Bytes()}
	}()
	mustStatus(t, resp, 200, &fetched)
	if fetched.ID != general.ID || fetched.Name != "general" {
		t.Errorf("GET Location = %+v", fetched)
	}
	// Behind a proxy, the Location names the proxy's scheme and host.
	r = s.req(t, http.MethodPost, "/rooms", alice.token, map[string]string{"name": "proxied"},
		"X-Forwarded-Proto", "https", "X-Forwarded-Host", "chat.example.com")
	var proxied room
	mustStatus(t, r, http.StatusCreated, &proxied)
	if loc := r.header.Get("Location"); loc != "https://chat.example.com/v1/rooms/"+proxied.ID {
		t.Errorf("Location behind a proxy = %q", loc)
	}
	for k := range r.header {
		if strings.HasPrefix(strings.ToLower(k), "grpc-metadata-x-") {
			t.Errorf("gRPC status metadata leaked: %s", k)
		}
	}

	// 400 bad input, 401, 409 on a taken name.
	for _, c := range []struct {
		name, token string
		body        any
		status      int
		code, field string
	}{
		{"no name", alice.token, map[string]string{}, 400, "", "name"},
		{"empty body", alice.token, nil, 400, "", "name"},
		{"name too long", alice.token, map[string]string{"name": strings.Repeat("n", 101)}, 400, "", "name"},
		{"malformed JSON", alice.token, `{"name": general}`, 400, "MALFORMED_JSON", "-"},
		{"name not a string", alice.token, `{"name": 42}`, 400, "INVALID_FIELD_VALUE", "name"},
		{"not an object", alice.token, `["general"]`, 400, "MALFORMED_JSON", "-"},
		{"unknown field", alice.token, `{"Name":"x"}`, 400, "UNKNOWN_FIELD", "Name"},
		{"no token", "", map[string]string{"name": "other"}, 401, "TOKEN_MISSING", ""},
		{"bad token", "garbage", map[string]string{"name": "other"}, 401, "", ""},
		{"taken name", bob.token, map[string]string{"name": "general"}, 409, "", "name"},
	} {
		t.Run("POST /rooms "+c.name, func(t *testing.T) {
			wantError(t, s.req(t, http.MethodPost, "/rooms", c.token, c.body), c.status, c.code, c.field)
		})
	}

	// The list: a bare array of rooms with their ids.
	var rooms []room
	mustStatus(t, s.req(t, http.MethodGet, "/rooms", bob.token, nil), 200, &rooms)
	rooms = withoutLobby(rooms)
	if len(rooms) != 2 || rooms[0].ID != general.ID || rooms[0].Name != "general" || rooms[1].ID != proxied.ID {
		t.Errorf("GET /rooms = %+v", rooms)
	}
}

func TestSeed003RoomMessages(t *testing.T) {
	s := startStack(t)
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")
	general := s.createRoom(t, alice.token, "general", "", "")
	path := "/room/" + general.ID + "/messages"

	var page messageList
	mustStatus(t, s.req(t, http.MethodGet, path, bob.token, nil), 200, &page)
	if len(page.Messages) != 0 {
		t.Errorf("new room lists %+v", page)
	}
	// Bob posts without joining.
	var posted event
	mustStatus(t, s.req(t, http.MethodPost, path, bob.token, map[string]string{"text": "hello, seed 003"}), http.StatusCreated, &posted)
	if posted.Text != "hello, seed 003" || posted.SenderID != bob.ID || posted.RoomID != general.ID {
		t.Errorf("posted %+v", posted)
	}
	mustStatus(t, s.req(t, http.MethodPost, "/room/general/messages", alice.token, map[string]string{"text": "by name"}), http.StatusCreated, nil)
	mustStatus(t, s.req(t, http.MethodGet, path, alice.token, nil), 200, &page)
	if !equalStrings(texts(page.Messages), "hello, seed 003", "by name") {
		t.Errorf("messages = %v", texts(page.Messages))
	}

	const unknownID = "00000000-0000-4000-8000-00000000abcd"
	for _, c := range []struct {
		method, target, token string
		status                int
		code                  string
	}{
		{"GET", path, "", 401, "TOKEN_MISSING"},
		{"POST", path, "", 401, "TOKEN_MISSING"},
		{"GET", "/room/" + unknownID + "/messages", bob.token, 404, "ROOM_NOT_FOUND"},
		{"POST", "/room/" + unknownID + "/messages", bob.token, 404, "ROOM_NOT_FOUND"},
		{"GET", "/room/nowhere/messages", bob.token, 404, "ROOM_NOT_FOUND"},
		{"POST", "/room/nowhere/messages", bob.token, 404, "ROOM_NOT_FOUND"},
		{"POST", path, bob.token, 400, ""}, // no text
	} {
		t.Run(c.method+" "+c.target, func(t *testing.T) {
			var body any
			if c.method == "POST" && c.status != 400 {
				body = map[string]string{"text": "x"}
			}
			wantError(t, s.req(t, c.method, c.target, c.token, body), c.status, c.code, "")
		})
	}
}

func equalStrings(got []string, want ...string) bool {
	return strings.Join(got, "\x00") == strings.Join(want, "\x00") && len(got) == len(want)
}

func TestSeed003Subscribe(t *testing.T) {
	s := startStack(t)
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")
	general := s.createRoom(t, alice.token, "general", "", "")

	st := s.openStream(t, "/room/"+general.ID+"/subscribe", alice.token)
	if code := st.waitStatus(t); code != http.StatusAccepted {
		t.Fatalf("GET /room/{roomId}/subscribe = %d, want 202", code)
	}
	// Messages posted by another user arrive as NDJSON lines.
	var sent []event
	for _, text := range []string{"one", "two", "three"} {
		var ev event
		mustStatus(t, s.req(t, http.MethodPost, "/room/"+general.ID+"/messages", bob.token, map[string]string{"text": text}), 201, &ev)
		sent = append(sent, ev)
	}
	got := messages(st.collect(t, func(evs []event) bool { return len(messages(evs)) >= 3 }))
	for i, m := range got {
		if m.ID != sent[i].ID || m.Text != sent[i].Text || m.Sender != "BOB" || m.Sequence != sent[i].Sequence {
			t.Errorf("streamed %d = %+v, want %+v", i, m, sent[i])
		}
	}

	wantError(t, s.req(t, http.MethodGet, "/room/"+general.ID+"/subscribe", "", nil), 401, "TOKEN_MISSING", "")
	wantError(t, s.req(t, http.MethodGet, "/room/00000000-0000-4000-8000-00000000abcd/subscribe", alice.token, nil), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodGet, "/room/nowhere/subscribe", alice.token, nil), 404, "ROOM_NOT_FOUND", "room")
}
