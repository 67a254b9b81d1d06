package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The access-control matrix: user A owns a public, a private and a hidden
// room, each with a message, and sends B and C direct messages. B (signed
// in, not a member) and an anonymous caller try every route against each of
// A's objects; every cell has its exact status.
func TestAccessControlMatrix(t *testing.T) {
	s := startStack(t)
	a := s.signUp(t, "alice")
	b := s.signUp(t, "bob")
	c := s.signUp(t, "carol")

	type target struct {
		kind string
		room room
		msg  event
	}
	var targets []target
	for _, kind := range []string{"public", "private", "hidden"} {
		vis, pw := "VISIBILITY_"+strings.ToUpper(kind), kind+"-room-password"
		if kind == "public" {
			pw = ""
		}
		rm := s.createRoom(t, a.token, kind+"-room", vis, pw)
		targets = append(targets, target{kind, rm, s.post(t, a.token, rm.ID, "alice in the "+kind+" room")})
	}
	dmToB := "a word for bob only"
	dmToC := "carol's secret from alice"
	mustStatus(t, s.req(t, http.MethodPost, "/v1/users/bob/messages", a.token, map[string]string{"text": dmToB}), 201, nil)
	var toC event
	mustStatus(t, s.req(t, http.MethodPost, "/v1/users/carol/messages", a.token, map[string]string{"text": dmToC}), 201, &toC)
	mustStatus(t, s.req(t, http.MethodPost, "/v1/users/alice/messages", c.token, map[string]string{"text": "carol to alice"}), 201, nil)

	// want holds, per caller, the status for the public, private and hidden
	// room.
	type want struct{ b, anon [3]int }
	every := func(pub, priv, hid int) want { return want{b: [3]int{pub, priv, hid}, anon: [3]int{401, 401, 401}} }
	cases := []struct {
		name   string
		method string
		path   func(target) string
		body   any
		want   want
	}{
		{"get room by id", "GET", func(x target) string { return "/v1/rooms/" + x.room.ID }, nil, every(200, 200, 404)},
		{"get room by name", "GET", func(x target) string { return "/v1/rooms/" + x.room.Name }, nil, every(200, 200, 404)},
		{"list messages", "GET", func(x target) string { return "/v1/rooms/" + x.room.ID + "/messages" }, nil, every(200, 403, 404)},
		{"list messages (seed 003)", "GET", func(x target) string { return "/room/" + x.room.ID + "/messages" }, nil, every(200, 403, 404)},
		{"get message", "GET", func(x target) string { return "/v1/rooms/" + x.room.ID + "/messages/" + x.msg.ID }, nil, every(200, 403, 404)},
		{"edit A's message", "PATCH", func(x target) string { return "/v1/rooms/" + x.room.ID + "/messages/" + x.msg.ID },
			map[string]string{"text": "hijacked"}, every(403, 403, 404)},
		{"delete A's message", "DELETE", func(x target) string { return "/v1/rooms/" + x.room.ID + "/messages/" + x.msg.ID }, nil, every(403, 403, 404)},
		{"purge", "POST", func(x target) string { return "/v1/rooms/" + x.room.ID + "/messages:purge" }, map[string]string{}, every(403, 403, 404)},
		{"update room", "PATCH", func(x target) string { return "/v1/rooms/" + x.room.ID }, map[string]string{"description": "mine now"}, every(403, 403, 404)},
		{"delete room", "DELETE", func(x target) string { return "/v1/rooms/" + x.room.ID }, nil, every(403, 403, 404)},
		{"list members", "GET", func(x target) string { return "/v1/rooms/" + x.room.ID + "/members" }, nil, every(200, 403, 404)},
		{"add another member", "POST", func(x target) string { return "/v1/rooms/" + x.room.ID + "/members" },
			map[string]string{"user": "carol"}, every(403, 403, 404)},
		{"remove the owner", "DELETE", func(x target) string { return "/v1/rooms/" + x.room.ID + "/members/alice" }, nil, every(403, 403, 404)},
		{"check own access", "GET", func(x target) string { return "/v1/rooms/" + x.room.ID + "/access/me" }, nil, every(200, 200, 404)},
		{"subscribe", "GET", func(x target) string { return "/v1/rooms/" + x.room.ID + ":subscribe" }, nil, every(0, 403, 404)},
		{"subscribe (seed 003)", "GET", func(x target) string { return "/room/" + x.room.ID + "/subscribe" }, nil, every(0, 403, 404)},
		{"room token, no secret", "POST", func(x target) string { return "/v1/rooms/" + x.room.ID + "/token" },
			map[string]string{"name": "intruder"}, want{b: [3]int{200, 403, 404}, anon: [3]int{200, 403, 404}}},
		{"post message", "POST", func(x target) string { return "/v1/rooms/" + x.room.ID + "/messages" },
			map[string]string{"text": "from outside"}, every(201, 403, 404)},
		{"post message (seed 003)", "POST", func(x target) string { return "/room/" + x.room.ID + "/messages" },
			map[string]string{"text": "from outside"}, every(201, 403, 404)},
		// Last, as it makes B a member of the public room.
		{"join without password", "POST", func(x target) string { return "/v1/rooms/" + x.room.Name + "/members" },
			map[string]string{}, every(200, 403, 404)},
		{"join with a wrong password", "POST", func(x target) string { return "/v1/rooms/" + x.room.Name + "/members" },
			map[string]string{"password": "a guess"}, every(200, 403, 404)},
	}
	setupBodies := len(s.responseBodies())
	for _, tc := range cases {
		for i, x := range targets {
			for _, caller := range []struct {
				name, token string
				status      int
			}{{"B", b.token, tc.want.b[i]}, {"anonymous", "", tc.want.anon[i]}} {
				t.Run(fmt.Sprintf("%s/%s/%s", tc.name, x.kind, caller.name), func(t *testing.T) {
					if caller.status == 0 { // a stream that opens: checked below
						return
					}
					r := s.req(t, tc.method, tc.path(x), caller.token, tc.body)
					switch {
					case caller.status >= 400:
						code := map[int]string{401: "TOKEN_MISSING", 404: "", 403: ""}[caller.status]
						wantError(t, r, caller.status, code, "")
					case r.status != caller.status:
						t.Errorf("got %v, want %d", r, caller.status)
					}
				})
			}
		}
	}
	// B's stream on the public room opens, on both routes.
	for _, route := range []string{"/v1/rooms/" + targets[0].room.ID + ":subscribe", "/room/" + targets[0].room.ID + "/subscribe"} {
		st := s.openStream(t, route, b.token)
		if code := st.waitStatus(t); code != 200 && code != 202 {
			t.Errorf("B subscribing to the public room via %s: %d", route, code)
		}
		st.cancel()
	}
	// Hidden is indistinguishable from missing.
	missing := s.req(t, http.MethodGet, "/v1/rooms/00000000-0000-4000-8000-00000000abcd/messages", b.token, nil)
	hidden := s.req(t, http.MethodGet, "/v1/rooms/"+targets[2].room.ID+"/messages", b.token, nil)
	wantError(t, missing, 404, "ROOM_NOT_FOUND", "room")
	wantError(t, hidden, 404, "ROOM_NOT_FOUND", "room")

	// Nothing B or the anonymous caller did changed A's rooms or messages.
	for _, x := range targets {
		var got event
		mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+x.room.ID+"/messages/"+x.msg.ID, a.token, nil), 200, &got)
		if got.Text != x.msg.Text || got.Deleted {
			t.Errorf("A's message in the %s room is now %+v", x.kind, got)
		}
		var rm room
		mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+x.room.ID, a.token, nil), 200, &rm)
		members := 1
		if x.kind == "public" {
			members = 2 // B joined
		}
		if rm.Description != "" || rm.MemberCount != members {
			t.Errorf("A's %s room is now %+v", x.kind, rm)
		}
	}

	// Direct messages: B reads only B's, whatever B asks for.
	for _, target := range []string{
		"/v1/direct-messages",
		"/v1/direct-messages?user=carol",
		"/v1/direct-messages?user=" + c.ID,
		"/v1/direct-messages?recipient_id=" + c.ID,
		"/v1/direct-messages?after=0&n=1000",
	} {
		var inbox messageList
		mustStatus(t, s.req(t, http.MethodGet, target, b.token, nil), 200, &inbox)
		if len(inbox.Messages) != 1 || inbox.Messages[0].Text != dmToB {
			t.Errorf("B's GET %s = %v, want only B's own message", target, texts(inbox.Messages))
		}
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/direct-messages", "", nil), 401, "TOKEN_MISSING", "")
	// A DM's id is no room message anywhere.
	for _, x := range targets {
		r := s.req(t, http.MethodGet, "/v1/rooms/"+x.room.ID+"/messages/"+toC.ID, b.token, nil)
		if r.status == 200 {
			t.Errorf("B read carol's direct message through the %s room: %v", x.kind, r)
		}
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/lobby/messages/"+toC.ID, b.token, nil), 404, "", "")
	wantError(t, s.req(t, http.MethodGet, "/v1/users/carol/messages", b.token, nil), 405, "METHOD_NOT_ALLOWED", "-")
	// B's direct-message stream, even resumed from the start, is B's.
	st := s.openStream(t, "/v1/direct-messages:subscribe?after_sequence=0&room=&id=", b.token)
	if code := st.waitStatus(t); code != 200 {
		t.Fatalf("B's direct-message stream: %d", code)
	}
	got := messages(st.collect(t, func(evs []event) bool { return len(messages(evs)) >= 1 }))
	if len(got) != 1 || got[0].Text != dmToB {
		t.Errorf("B's stream = %v", texts(got))
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/direct-messages:subscribe?after_sequence=0", "", nil), 401, "TOKEN_MISSING", "")

	// Carol's direct message appears in no response after it was sent;
	// no password or hash appears in any.
	for _, body := range s.responseBodies()[setupBodies:] {
		if strings.Contains(body, dmToC) {
			t.Errorf("carol's direct message leaked: %s", body)
		}
	}
	s.noSecretsIn(t, "private-room-password", "hidden-room-password")
}
