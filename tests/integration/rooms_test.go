package integration

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestCreateListGetUpdateDeleteRooms(t *testing.T) {
	s := startStack(t, withAdmins("root"))
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")
	root := s.signUp(t, "root")

	// Create.
	r := s.req(t, http.MethodPost, "/v1/rooms", alice.token, map[string]string{"name": "general", "description": "all things"})
	var general room
	mustStatus(t, r, http.StatusCreated, &general)
	if loc := r.header.Get("Location"); loc != s.httpURL+"/v1/rooms/"+general.ID {
		t.Errorf("Location = %q", loc)
	}
	if !isUUID(general.ID) || general.Name != "general" || general.Description != "all things" ||
		general.Visibility != "VISIBILITY_PUBLIC" || general.OwnerID != alice.ID || general.PasswordProtected ||
		general.MemberCount != 1 || general.LastSequence != 0 || general.CreateTime == "" {
		t.Errorf("created %s", r.body)
	}
	// Seed 002 calls the name the title.
	var titled room
	mustStatus(t, s.req(t, http.MethodPost, "/v1/rooms", alice.token, map[string]string{"title": "By Title"}), 201, &titled)
	if titled.Name != "By Title" {
		t.Errorf("room created by title = %+v", titled)
	}
	secret := s.createRoom(t, alice.token, "secret", "VISIBILITY_PRIVATE", "open sesame")
	if !secret.PasswordProtected || secret.Visibility != "VISIBILITY_PRIVATE" {
		t.Errorf("private room = %+v", secret)
	}
	hidden := s.createRoom(t, alice.token, "hideout", "VISIBILITY_HIDDEN", "hush hush")

	for _, c := range []struct {
		name        string
		token       string
		body        any
		status      int
		code, field string
	}{
		{"no token", "", map[string]string{"name": "x"}, 401, "TOKEN_MISSING", ""},
		{"taken name", bob.token, map[string]string{"name": "general"}, 409, "", "name"},
		{"no name", bob.token, map[string]string{"description": "nameless"}, 400, "", "name"},
		{"name too long", bob.token, map[string]string{"name": strings.Repeat("n", 101)}, 400, "", "name"},
		{"control character", bob.token, map[string]string{"name": "bell\a"}, 400, "", "name"},
		{"description too long", bob.token, map[string]string{"name": "x", "description": strings.Repeat("d", 1001)}, 400, "", "description"},
		{"private without password", bob.token, map[string]string{"name": "x", "visibility": "VISIBILITY_PRIVATE"}, 400, "", "password"},
		{"hidden without password", bob.token, map[string]string{"name": "x", "visibility": "VISIBILITY_HIDDEN"}, 400, "", "password"},
		{"public with password", bob.token, map[string]string{"name": "x", "password": "pw"}, 400, "", "password"},
		{"unknown visibility", bob.token, `{"name":"x","visibility":"VISIBILITY_SECRET"}`, 400, "INVALID_FIELD_VALUE", "visibility"},
		{"malformed JSON", bob.token, `{"name":`, 400, "MALFORMED_JSON", "-"},
		{"unknown field", bob.token, `{"name":"x","topic":"y"}`, 400, "UNKNOWN_FIELD", "topic"},
		{"room token", s.roomToken(t, general.ID, "", "guest").Token, map[string]string{"name": "x"}, 403, "USER_TOKEN_REQUIRED", ""},
	} {
		t.Run("create "+c.name, func(t *testing.T) {
			wantError(t, s.req(t, http.MethodPost, "/v1/rooms", c.token, c.body), c.status, c.code, c.field)
		})
	}

	// List: public and private to everyone, hidden to members only.
	listNames := func(token string) []string {
		var l roomList
		mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms", token, nil), 200, &l)
		var names []string
		for _, rm := range withoutLobby(l.Rooms) {
			names = append(names, rm.Name)
		}
		return names
	}
	if got := strings.Join(listNames(alice.token), ","); got != "By Title,general,hideout,secret" {
		t.Errorf("alice lists %s", got)
	}
	if got := strings.Join(listNames(bob.token), ","); got != "By Title,general,secret" {
		t.Errorf("bob lists %s", got)
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms", "", nil), 401, "", "")
	var full roomList
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms", alice.token, nil), 200, &full)
	var paged []room
	for token, pages := "", 0; ; pages++ {
		if pages > len(full.Rooms) {
			t.Fatalf("more pages than rooms")
		}
		var page roomList
		mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms?page_size=2&page_token="+url.QueryEscape(token), alice.token, nil), 200, &page)
		if len(page.Rooms) == 0 || len(page.Rooms) > 2 {
			t.Fatalf("page of 2 = %+v", page)
		}
		paged = append(paged, page.Rooms...)
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	if len(paged) != len(full.Rooms) {
		t.Errorf("paged %d rooms, listed %d", len(paged), len(full.Rooms))
	}
	for i := range paged {
		if i < len(full.Rooms) && paged[i].ID != full.Rooms[i].ID {
			t.Errorf("paged room %d = %s, listed %s", i, paged[i].Name, full.Rooms[i].Name)
		}
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms?page_size=1001", alice.token, nil), 400, "PAGE_TOO_LARGE", "page_size")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms?page_token=bogus", alice.token, nil), 400, "INVALID_PAGE_TOKEN", "page_token")

	// Get by id or name.
	for _, which := range []string{general.ID, "general"} {
		var got room
		mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+url.PathEscape(which), bob.token, nil), 200, &got)
		if got.ID != general.ID {
			t.Errorf("GET %s = %+v", which, got)
		}
	}
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/By%20Title", bob.token, nil), 200, nil)
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/nowhere", bob.token, nil), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/00000000-0000-4000-8000-00000000abcd", bob.token, nil), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+hidden.ID, bob.token, nil), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/hideout", bob.token, nil), 404, "ROOM_NOT_FOUND", "room")
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+hidden.ID, root.token, nil), 200, nil) // admin
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+secret.ID, bob.token, nil), 200, nil)
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+general.ID, "", nil), 401, "", "")

	// Update: owner or admin.
	var renamed room
	mustStatus(t, s.req(t, http.MethodPatch, "/v1/rooms/"+general.ID, alice.token,
		map[string]string{"name": "general-chat", "description": "renamed"}), 200, &renamed)
	if renamed.Name != "general-chat" || renamed.Description != "renamed" || renamed.ID != general.ID ||
		renamed.UpdateTime == general.UpdateTime {
		t.Errorf("renamed = %+v", renamed)
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/general", alice.token, nil), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodPatch, "/v1/rooms/"+general.ID, bob.token, map[string]string{"description": "mine"}), 403, "NOT_ROOM_OWNER", "")
	wantError(t, s.req(t, http.MethodPatch, "/v1/rooms/"+hidden.ID, bob.token, map[string]string{"description": "mine"}), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodPatch, "/v1/rooms/"+general.ID, alice.token, map[string]string{"name": "secret"}), 409, "", "name")
	wantError(t, s.req(t, http.MethodPatch, "/v1/rooms/"+general.ID, alice.token, map[string]string{"visibility": "VISIBILITY_PRIVATE"}), 400, "", "password")
	wantError(t, s.req(t, http.MethodPatch, "/v1/rooms/"+general.ID, alice.token, map[string]string{"name": ""}), 400, "", "name")
	wantError(t, s.req(t, http.MethodPatch, "/v1/rooms/nowhere", alice.token, map[string]string{"name": "y"}), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodPatch, "/v1/rooms/"+general.ID, "", map[string]string{"name": "y"}), 401, "", "")
	var closed room
	mustStatus(t, s.req(t, http.MethodPatch, "/v1/rooms/"+general.ID, alice.token,
		map[string]string{"visibility": "VISIBILITY_PRIVATE", "password": "now private"}), 200, &closed)
	if closed.Visibility != "VISIBILITY_PRIVATE" || !closed.PasswordProtected || closed.Name != "general-chat" {
		t.Errorf("made private = %+v", closed)
	}
	mustStatus(t, s.req(t, http.MethodPatch, "/v1/rooms/"+general.ID, root.token,
		map[string]string{"description": "admin was here"}), 200, nil)

	// Delete: owner or admin.
	wantError(t, s.req(t, http.MethodDelete, "/v1/rooms/"+titled.ID, bob.token, nil), 403, "NOT_ROOM_OWNER", "")
	wantError(t, s.req(t, http.MethodDelete, "/v1/rooms/"+titled.ID, "", nil), 401, "", "")
	wantError(t, s.req(t, http.MethodDelete, "/v1/rooms/"+hidden.ID, bob.token, nil), 404, "ROOM_NOT_FOUND", "room")
	mustStatus(t, s.req(t, http.MethodDelete, "/v1/rooms/"+titled.ID, alice.token, nil), 200, nil)
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+titled.ID, alice.token, nil), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodDelete, "/v1/rooms/"+titled.ID, alice.token, nil), 404, "ROOM_NOT_FOUND", "room")
	mustStatus(t, s.req(t, http.MethodDelete, "/v1/rooms/"+secret.ID, root.token, nil), 200, nil)
	// The name of a deleted room is free again.
	s.createRoom(t, bob.token, "By Title", "", "")

	s.noSecretsIn(t, "open sesame", "hush hush", "now private")
}

// roomToken asks for a room token (no user token needed).
func (s *stack) roomToken(t *testing.T, room, secret, name string) roomToken {
	t.Helper()
	var tok roomToken
	mustStatus(t, s.req(t, http.MethodPost, "/v1/rooms/"+url.PathEscape(room)+"/token", "",
		map[string]string{"secret": secret, "name": name}), 200, &tok)
	if !tok.Status || tok.Name != name || tok.Token == "" || tok.ExpireTime == "" {
		t.Fatalf("room token = %+v", tok)
	}
	return tok
}

func TestMembershipPasswordsAndAccess(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	bob := s.signUp(t, "bob")
	carol := s.signUp(t, "carol")
	pub := s.createRoom(t, owner.token, "pub", "", "")
	priv := s.createRoom(t, owner.token, "priv", "VISIBILITY_PRIVATE", "priv-pw")
	hid := s.createRoom(t, owner.token, "hid", "VISIBILITY_HIDDEN", "hid-pw")

	members := func(token, room string) map[string]string {
		t.Helper()
		var l memberList
		mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+room+"/members", token, nil), 200, &l)
		roles := map[string]string{}
		for _, m := range l.Members {
			roles[m.User.Username] = m.Role
			if m.RoomID != room {
				t.Errorf("member %+v lacks the room id", m)
			}
		}
		return roles
	}
	checkAccess := func(token, room, who string) access {
		t.Helper()
		var a access
		mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+room+"/access/"+who, token, nil), 200, &a)
		return a
	}
	addMember := func(token, room string, body map[string]string) reply {
		t.Helper()
		return s.req(t, http.MethodPost, "/v1/rooms/"+room+"/members", token, body)
	}

	if got := members(owner.token, priv.ID); len(got) != 1 || got["owner"] != "owner" {
		t.Errorf("members of a new room = %v, want its owner", got)
	}

	// Public room: anyone adds themself; access without membership.
	if a := checkAccess(bob.token, pub.ID, "me"); !a.Allowed || a.Role != "" {
		t.Errorf("bob's access to a public room = %+v, want allowed, no role", a)
	}
	var m member
	mustStatus(t, addMember(bob.token, pub.ID, map[string]string{}), 200, &m)
	if m.User.ID != bob.ID || m.Role != "member" || m.RoomID != pub.ID {
		t.Errorf("added = %+v", m)
	}
	if a := checkAccess(bob.token, pub.ID, "bob"); !a.Allowed || a.Role != "member" {
		t.Errorf("member's access = %+v", a)
	}
	wantError(t, addMember(bob.token, pub.ID, map[string]string{"user": "carol"}), 403, "NOT_ROOM_OWNER", "")

	// Private room: the password admits; the owner adds anyone.
	if a := checkAccess(bob.token, priv.ID, "me"); a.Allowed || a.Role != "" {
		t.Errorf("bob's access to a private room = %+v, want refused", a)
	}
	wantError(t, addMember(bob.token, priv.ID, map[string]string{}), 403, "WRONG_PASSWORD", "password")
	wantError(t, addMember(bob.token, priv.ID, map[string]string{"password": "guess"}), 403, "WRONG_PASSWORD", "password")
	mustStatus(t, addMember(bob.token, priv.ID, map[string]string{"password": "priv-pw"}), 200, nil)
	if a := checkAccess(owner.token, priv.ID, bob.ID); !a.Allowed || a.Role != "member" {
		t.Errorf("bob's access after the password = %+v", a)
	}
	mustStatus(t, addMember(owner.token, priv.ID, map[string]string{"user": "carol"}), 200, &m)
	if m.User.Username != "carol" || m.Role != "member" {
		t.Errorf("owner added %+v", m)
	}
	if got := members(bob.token, priv.ID); len(got) != 3 || got["owner"] != "owner" || got["bob"] != "member" || got["carol"] != "member" {
		t.Errorf("members = %v", got)
	}
	var rm room
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+priv.ID, bob.token, nil), 200, &rm)
	if rm.MemberCount != 3 {
		t.Errorf("memberCount = %d, want 3", rm.MemberCount)
	}

	// Hidden room: 404 to outsiders, the password admits who knows the name.
	wantError(t, addMember(bob.token, hid.ID, map[string]string{"password": "guess"}), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+hid.ID+"/members", bob.token, nil), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+hid.ID+"/access/me", bob.token, nil), 404, "ROOM_NOT_FOUND", "room")
	mustStatus(t, addMember(bob.token, "hid", map[string]string{"password": "hid-pw"}), 200, nil)
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+hid.ID, bob.token, nil), 200, nil)

	// Remove: a member removes themself; the owner removes anyone but
	// themself; nobody else removes anyone.
	wantError(t, s.req(t, http.MethodDelete, "/v1/rooms/"+priv.ID+"/members/carol", bob.token, nil), 403, "NOT_ROOM_OWNER", "")
	wantError(t, s.req(t, http.MethodDelete, "/v1/rooms/"+priv.ID+"/members/owner", bob.token, nil), 403, "NOT_ROOM_OWNER", "")
	r := s.req(t, http.MethodDelete, "/v1/rooms/"+priv.ID+"/members/me", owner.token, nil)
	wantError(t, r, r.status, "OWNER_CANNOT_LEAVE", "user")
	if r.status != 400 && r.status != 409 && r.status != 403 {
		t.Errorf("owner leaving = %v, want a 4xx refusal", r)
	}
	mustStatus(t, s.req(t, http.MethodDelete, "/v1/rooms/"+priv.ID+"/members/me", bob.token, nil), 200, nil)
	mustStatus(t, s.req(t, http.MethodDelete, "/v1/rooms/"+priv.ID+"/members/"+carol.ID, owner.token, nil), 200, nil)
	wantError(t, s.req(t, http.MethodDelete, "/v1/rooms/"+priv.ID+"/members/carol", owner.token, nil), 404, "", "user")
	wantError(t, s.req(t, http.MethodDelete, "/v1/rooms/"+priv.ID+"/members/nobody", owner.token, nil), 404, "USER_NOT_FOUND", "user")
	wantError(t, s.req(t, http.MethodDelete, "/v1/rooms/"+priv.ID+"/members/carol", "", nil), 401, "", "")
	if a := checkAccess(bob.token, priv.ID, "me"); a.Allowed {
		t.Errorf("bob's access after leaving = %+v", a)
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+priv.ID+"/members", bob.token, nil), 403, "NOT_A_MEMBER", "")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+priv.ID+"/members", "", nil), 401, "", "")
	wantError(t, addMember("", pub.ID, map[string]string{}), 401, "", "")
	wantError(t, addMember(owner.token, pub.ID, map[string]string{"user": "nobody"}), 404, "USER_NOT_FOUND", "user")
	wantError(t, addMember(owner.token, "nowhere", map[string]string{}), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+pub.ID+"/access/nobody", owner.token, nil), 404, "USER_NOT_FOUND", "user")

	s.noSecretsIn(t, "priv-pw", "hid-pw")
}

func TestRoomTokens(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	pub := s.createRoom(t, owner.token, "pub", "", "")
	priv := s.createRoom(t, owner.token, "priv", "VISIBILITY_PRIVATE", "priv-pw")
	hid := s.createRoom(t, owner.token, "hid", "VISIBILITY_HIDDEN", "hid-pw")
	other := s.createRoom(t, owner.token, "other", "", "")

	guest := s.roomToken(t, pub.ID, "", "Guest")
	if guest.RoomID != pub.ID {
		t.Errorf("room token for %s names room %s", pub.ID, guest.RoomID)
	}
	privTok := s.roomToken(t, "priv", "priv-pw", "Insider")
	if privTok.RoomID != priv.ID {
		t.Errorf("room token by name = %+v", privTok)
	}
	s.roomToken(t, hid.ID, "hid-pw", "Spy")

	for _, c := range []struct {
		name, room  string
		body        any
		status      int
		code, field string
	}{
		{"wrong secret", priv.ID, map[string]string{"secret": "guess", "name": "x"}, 403, "WRONG_SECRET", "secret"},
		{"no secret", priv.ID, map[string]string{"name": "x"}, 403, "WRONG_SECRET", "secret"},
		{"hidden, wrong secret", hid.ID, map[string]string{"secret": "guess", "name": "x"}, 404, "ROOM_NOT_FOUND", "room"},
		{"no name", pub.ID, map[string]string{}, 400, "", "name"},
		{"name too long", pub.ID, map[string]string{"name": strings.Repeat("n", 65)}, 400, "", "name"},
		{"no such room", "nowhere", map[string]string{"name": "x"}, 404, "ROOM_NOT_FOUND", "room"},
		{"malformed", pub.ID, `{"name":}`, 400, "MALFORMED_JSON", "-"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, s.req(t, http.MethodPost, "/v1/rooms/"+c.room+"/token", "", c.body), c.status, c.code, c.field)
		})
	}

	// The holder reads, posts and subscribes in that one room, under the
	// token's name.
	st := s.openStream(t, "/room/"+priv.ID+"/subscribe", privTok.Token)
	if code := st.waitStatus(t); code != http.StatusAccepted {
		t.Fatalf("subscribe with a room token: status %d", code)
	}
	posted := s.post(t, privTok.Token, priv.ID, "hello from a room token")
	if posted.Sender != "Insider" || posted.SenderID != "" {
		t.Errorf("posted with a room token = %+v, want sender Insider and no sender id", posted)
	}
	got := st.collect(t, func(evs []event) bool { return len(messages(evs)) >= 1 })
	if m := messages(got); m[0].ID != posted.ID || m[0].Sender != "Insider" {
		t.Errorf("streamed %+v, want %s", m, posted.ID)
	}
	if page := s.listMessages(t, privTok.Token, priv.ID, ""); len(page.Messages) != 1 {
		t.Errorf("list with a room token = %+v", page)
	}
	// Any other room, even a public one, does not exist for it.
	wantError(t, s.req(t, http.MethodPost, "/v1/rooms/"+other.ID+"/messages", privTok.Token, map[string]string{"text": "x"}), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+other.ID+"/messages", privTok.Token, nil), 404, "ROOM_NOT_FOUND", "room")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms", privTok.Token, nil), 403, "USER_TOKEN_REQUIRED", "")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+other.ID, privTok.Token, nil), 404, "ROOM_NOT_FOUND", "room")
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+priv.ID, privTok.Token, nil), 200, nil) // its own room
	wantError(t, s.req(t, http.MethodGet, "/v1/direct-messages", privTok.Token, nil), 403, "USER_TOKEN_REQUIRED", "")
	wantError(t, s.req(t, http.MethodPost, "/v1/auth/renew", privTok.Token, "{}"), 403, "USER_TOKEN_REQUIRED", "")

	// Renew, by POST or GET, with the room token only.
	var renewed roomToken
	mustStatus(t, s.req(t, http.MethodPost, "/v1/rooms/"+priv.ID+"/token:renew", privTok.Token, "{}"), 200, &renewed)
	if renewed.Token == "" || renewed.Token == privTok.Token || renewed.Name != "Insider" || renewed.RoomID != priv.ID || !renewed.Status {
		t.Errorf("renewed = %+v", renewed)
	}
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/priv/token:renew", renewed.Token, nil), 200, &renewed)
	s.post(t, renewed.Token, priv.ID, "with a renewed token")
	wantError(t, s.req(t, http.MethodPost, "/v1/rooms/"+priv.ID+"/token:renew", owner.token, "{}"), 403, "ROOM_TOKEN_REQUIRED", "")
	wantError(t, s.req(t, http.MethodPost, "/v1/rooms/"+pub.ID+"/token:renew", privTok.Token, "{}"), 403, "ROOM_TOKEN_MISMATCH", "room")
	wantError(t, s.req(t, http.MethodPost, "/v1/rooms/"+priv.ID+"/token:renew", "", "{}"), 401, "", "")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+priv.ID+"/token:renew", "", nil), 401, "", "")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+priv.ID+"/token:renew", owner.token, nil), 403, "ROOM_TOKEN_REQUIRED", "")

	s.noSecretsIn(t, "priv-pw", "hid-pw")
}
