package integration

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The parley.v1 resources as protojson writes them (camelCase, 64-bit
// integers as strings, every field present), and helpers for the signed-in
// REST routes.

type user struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"displayName"`
	CreateTime  string `json:"createTime"`
	UpdateTime  string `json:"updateTime"`
}

type userList struct {
	Users         []user `json:"users"`
	NextPageToken string `json:"nextPageToken"`
}

type room struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	Description       string `json:"description"`
	Visibility        string `json:"visibility"`
	OwnerID           string `json:"ownerId"`
	PasswordProtected bool   `json:"passwordProtected"`
	CreateTime        string `json:"createTime"`
	UpdateTime        string `json:"updateTime"`
	LastSequence      uint64 `json:"lastSequence,string"`
	MemberCount       int    `json:"memberCount"`
}

type roomList struct {
	Rooms         []room `json:"rooms"`
	NextPageToken string `json:"nextPageToken"`
}

type member struct {
	RoomID   string `json:"roomId"`
	User     user   `json:"user"`
	Role     string `json:"role"`
	JoinTime string `json:"joinTime"`
}

type memberList struct {
	Members []member `json:"members"`
}

type access struct {
	Allowed bool   `json:"allowed"`
	Role    string `json:"role"`
	Reason  string `json:"reason"`
}

type roomToken struct {
	Status     bool   `json:"status"`
	Name       string `json:"name"`
	RoomID     string `json:"roomId"`
	Token      string `json:"token"`
	ExpireTime string `json:"expireTime"`
}

type messageList struct {
	Messages []event `json:"messages"`
	HasOlder bool    `json:"hasOlder"`
	HasNewer bool    `json:"hasNewer"`
}

type purgeReply struct {
	Purged uint64 `json:"purged,string"`
	Event  event  `json:"event"`
}

type signInReply struct {
	Token      string `json:"token"`
	ExpireTime string `json:"expireTime"`
	User       user   `json:"user"`
}

type renewReply struct {
	Token      string `json:"token"`
	ExpireTime string `json:"expireTime"`
}

// account is a signed-up, signed-in user.
type account struct {
	user
	password string
	token    string
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func isUUID(s string) bool { return uuidRE.MatchString(strings.ToLower(s)) }

func passwordOf(username string) string { return username + "-secret-pw" }

// signUp creates username (display name: the username in capitals) and
// signs it in.
func (s *stack) signUp(t *testing.T, username string) account {
	t.Helper()
	a := account{password: passwordOf(username)}
	r := s.req(t, http.MethodPost, "/v1/users", "", map[string]string{
		"username": username, "password": a.password, "display_name": strings.ToUpper(username),
	})
	mustStatus(t, r, http.StatusCreated, &a.user)
	if !isUUID(a.ID) || a.Username != username {
		t.Fatalf("sign up of %s = %s", username, r.body)
	}
	a.token = s.signIn(t, username, a.password).Token
	return a
}

func (s *stack) signIn(t *testing.T, username, password string) signInReply {
	t.Helper()
	var in signInReply
	mustStatus(t, s.req(t, http.MethodPost, "/v1/auth/sign-in", "",
		map[string]string{"username": username, "password": password}), http.StatusOK, &in)
	if in.Token == "" || in.User.Username != username {
		t.Fatalf("sign in of %s = %+v", username, in)
	}
	return in
}

// createRoom creates a room; password only for private and hidden ones.
func (s *stack) createRoom(t *testing.T, token, name, visibility, password string) room {
	t.Helper()
	body := map[string]string{"name": name}
	if visibility != "" {
		body["visibility"] = visibility
	}
	if password != "" {
		body["password"] = password
	}
	var rm room
	mustStatus(t, s.req(t, http.MethodPost, "/v1/rooms", token, body), http.StatusCreated, &rm)
	if !isUUID(rm.ID) || rm.Name != name {
		t.Fatalf("created room %+v, want %s with a UUID", rm, name)
	}
	return rm
}

// post posts text to room (UUID or name) and returns the message.
func (s *stack) post(t *testing.T, token, room, text string) event {
	t.Helper()
	var ev event
	mustStatus(t, s.req(t, http.MethodPost, "/v1/rooms/"+url.PathEscape(room)+"/messages", token,
		map[string]string{"text": text}), http.StatusCreated, &ev)
	if ev.Kind != "EVENT_KIND_MESSAGE" || ev.Text != text || !isUUID(ev.ID) || ev.Sequence == 0 {
		t.Fatalf("posted %q, got %+v", text, ev)
	}
	return ev
}

// listMessages GETs a page of room's messages; query is the raw query.
func (s *stack) listMessages(t *testing.T, token, room, query string) messageList {
	t.Helper()
	var page messageList
	target := "/v1/rooms/" + url.PathEscape(room) + "/messages"
	if query != "" {
		target += "?" + query
	}
	mustStatus(t, s.req(t, http.MethodGet, target, token, nil), http.StatusOK, &page)
	return page
}

// allMessages pages backwards through room's whole history, n at a time,
// and returns it oldest first. (Paging forwards cannot start at the very
// beginning: after=0 is the same as no `after` in proto3, the most recent
// page.)
func (s *stack) allMessages(t *testing.T, token, room string, n int) []event {
	t.Helper()
	var all []event
	before := uint64(0)
	for {
		q := fmt.Sprintf("n=%d", n)
		if before != 0 {
			q += fmt.Sprintf("&before=%d", before)
		}
		page := s.listMessages(t, token, room, q)
		all = append(page.Messages, all...)
		if len(page.Messages) == 0 || !page.HasOlder {
			return all
		}
		before = page.Messages[0].Sequence
	}
}

// forwardFrom pages forwards through room's history after sequence after,
// n at a time.
func (s *stack) forwardFrom(t *testing.T, token, room string, after uint64, n int) []event {
	t.Helper()
	var all []event
	for {
		page := s.listMessages(t, token, room, fmt.Sprintf("n=%d&after=%d", n, after))
		all = append(all, page.Messages...)
		if len(page.Messages) == 0 || !page.HasNewer {
			return all
		}
		after = page.Messages[len(page.Messages)-1].Sequence
	}
}

// lobbyID is the UUID of the seed-000 lobby, which the server keeps as a
// room of its own.
const lobbyID = "00000000-0000-4000-8000-000000000000"

// withoutLobby drops the lobby from a room list, for the tests that are not
// about it (TestSeed003Rooms asserts what a fresh server lists).
func withoutLobby(rooms []room) []room {
	var out []room
	for _, rm := range rooms {
		if rm.ID != lobbyID {
			out = append(out, rm)
		}
	}
	return out
}

func texts(events []event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Text)
	}
	return out
}

func sequences(events []event) []uint64 {
	var out []uint64
	for _, e := range events {
		out = append(out, e.Sequence)
	}
	return out
}

func parseTime(t *testing.T, what, ts string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		t.Fatalf("%s %q: %v", what, ts, err)
	}
	return tm
}

// noSecretsIn asserts that no response body so far holds a password, a
// password hash, or any of the given strings.
func (s *stack) noSecretsIn(t *testing.T, secrets ...string) {
	t.Helper()
	for _, b := range s.responseBodies() {
		for _, bad := range append([]string{"$argon2", "argon2id", "passwordHash", "password_hash"}, secrets...) {
			if strings.Contains(b, bad) {
				t.Errorf("a response body holds %q: %s", bad, b)
			}
		}
		if strings.Contains(b, `"password":`) {
			t.Errorf("a response body has a password field: %s", b)
		}
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
