package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The ChitChat API (seed 002) on /chats, one test per route, with the
// seed's own example bodies.

// seedRoom is the seed's example body of POST /chats.
const seedRoom = `{
"title":"My chat room",
"description":"There are many like it, but this one is mine",
"visibility":"public"
}`

// chitchatRoom is ChitChat's room resource.
type chitchatRoom struct {
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Visibility  string   `json:"visibility"`
	CreatedAt   string   `json:"createdAt"`
	UpdatedAt   string   `json:"updatedAt"`
	ID          string   `json:"id"`
	Users       []string `json:"users"`
}

// wantKeys fails unless the JSON object body has exactly keys.
func wantKeys(t *testing.T, body []byte, keys ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("keys %v, want exactly %v in %s", got, want, body)
	}
}

// wantChitChatError asserts ChitChat's error body with its status, number
// and field.
func wantChitChatError(t *testing.T, r reply, status, code int, field string) {
	t.Helper()
	var e struct {
		Status *bool `json:"status"`
		Error  struct {
			Code  int     `json:"code"`
			Error string  `json:"error"`
			Field *string `json:"field"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Status == nil || *e.Status || e.Error.Error == "" || e.Error.Field == nil {
		t.Errorf("got %v, want ChitChat's {\"status\":false,\"error\":{\"code\",\"error\",\"field\"}}", r)
		return
	}
	if r.status != status || e.Error.Code != code || *e.Error.Field != field {
		t.Errorf("got %v, want %d with code %d on field %q", r, status, code, field)
	}
}

func (s *stack) chitchatRoom(t *testing.T, token string) chitchatRoom {
	t.Helper()
	var rm chitchatRoom
	mustStatus(t, s.req(t, http.MethodPost, "/chats", token, seedRoom), http.StatusCreated, &rm)
	return rm
}

func TestChitChatCreateRoom(t *testing.T) {
	s := startStack(t)
	ann := s.signUp(t, "ann")
	r := s.req(t, http.MethodPost, "/chats", ann.token, seedRoom)
	var rm chitchatRoom
	mustStatus(t, r, http.StatusCreated, &rm)
	wantKeys(t, r.body, "title", "description", "visibility", "createdAt", "updatedAt", "id", "users")
	if rm.Title != "My chat room" || rm.Description != "There are many like it, but this one is mine" ||
		rm.Visibility != "public" || !isUUID(rm.ID) || rm.Users == nil || len(rm.Users) != 0 {
		t.Errorf("created %+v", rm)
	}
	created := parseTime(t, "createdAt", rm.CreatedAt)
	if updated := parseTime(t, "updatedAt", rm.UpdatedAt); updated.Before(created) {
		t.Errorf("updatedAt %s before createdAt %s", rm.UpdatedAt, rm.CreatedAt)
	}

	// The seed's own error: a duplicate title is 400, code 102.
	dup := s.req(t, http.MethodPost, "/chats", ann.token, seedRoom)
	wantChitChatError(t, dup, http.StatusBadRequest, 102, "title")
	if !strings.Contains(string(dup.body), `"error":"Room error: Duplicate room"`) {
		t.Errorf("duplicate: %v, want the seed's text", dup)
	}
	// Private and hidden rooms need a password.
	wantChitChatError(t, s.req(t, http.MethodPost, "/chats", ann.token,
		`{"title":"Secret","visibility":"private"}`), http.StatusBadRequest, 103, "password")
	var hidden chitchatRoom
	mustStatus(t, s.req(t, http.MethodPost, "/chats", ann.token,
		`{"title":"Den","description":"","visibility":"hidden","password":"my_secret"}`), http.StatusCreated, &hidden)
	if hidden.Visibility != "hidden" || strings.Contains(string(s.responseBodies()[len(s.responseBodies())-1]), "my_secret") {
		t.Errorf("hidden room %+v", hidden)
	}
	wantChitChatError(t, s.req(t, http.MethodPost, "/chats", ann.token, `{"title":"x","visibility":"secret"}`), http.StatusBadRequest, 103, "visibility")
	wantChitChatError(t, s.req(t, http.MethodPost, "/chats", ann.token, `{"title":"x","visibility":"public","colour":"red"}`), http.StatusBadRequest, 201, "colour")
	wantChitChatError(t, s.req(t, http.MethodPost, "/chats", ann.token, `{"title":`), http.StatusBadRequest, 201, "")
	// Creating makes the caller the owner, so it takes a user token.
	wantChitChatError(t, s.req(t, http.MethodPost, "/chats", "", seedRoom), http.StatusUnauthorized, 301, "")
}

func TestChitChatGetRoomByIDOrTitle(t *testing.T) {
	s := startStack(t)
	ann := s.signUp(t, "ann")
	rm := s.chitchatRoom(t, ann.token)
	for _, target := range []string{"/chats/" + rm.ID, "/chats/" + url.PathEscape(rm.Title)} {
		// A public room needs no token, and a user token works too.
		for _, token := range []string{"", ann.token} {
			r := s.req(t, http.MethodGet, target, token, nil)
			var got chitchatRoom
			mustStatus(t, r, http.StatusOK, &got)
			wantKeys(t, r.body, "title", "description", "visibility", "createdAt", "updatedAt", "id", "users")
			if got.ID != rm.ID || got.Title != rm.Title || got.CreatedAt != rm.CreatedAt {
				t.Errorf("GET %s = %+v, want %+v", target, got, rm)
			}
		}
	}
	wantChitChatError(t, s.req(t, http.MethodGet, "/chats/nowhere", "", nil), http.StatusNotFound, 101, "room_id")

	// A private room needs its token (or a user token).
	mustStatus(t, s.req(t, http.MethodPost, "/chats", ann.token,
		`{"title":"Private","description":"","visibility":"private","password":"my_secret"}`), http.StatusCreated, nil)
	wantChitChatError(t, s.req(t, http.MethodGet, "/chats/Private", "", nil), http.StatusUnauthorized, 301, "")
	tok := s.chitchatToken(t, "Private", `{"secret":"my_secret","name":"david"}`)
	mustStatus(t, s.req(t, http.MethodGet, "/chats/Private", tok.Token, nil), http.StatusOK, nil)
	// A hidden room does not exist for a caller without its token.
	mustStatus(t, s.req(t, http.MethodPost, "/chats", ann.token,
		`{"title":"Den","description":"","visibility":"hidden","password":"my_secret"}`), http.StatusCreated, nil)
	wantChitChatError(t, s.req(t, http.MethodGet, "/chats/Den", "", nil), http.StatusNotFound, 101, "room_id")
}

func TestChitChatUpdateRoom(t *testing.T) {
	s := startStack(t)
	ann := s.signUp(t, "ann")
	bob := s.signUp(t, "bob")
	rm := s.chitchatRoom(t, ann.token)
	r := s.req(t, http.MethodPut, "/chats/"+url.PathEscape(rm.Title), ann.token,
		`{"title":"My chat room","description":"Still mine","visibility":"public"}`)
	var got chitchatRoom
	mustStatus(t, r, http.StatusOK, &got)
	wantKeys(t, r.body, "title", "description", "visibility", "createdAt", "updatedAt", "id", "users")
	if got.ID != rm.ID || got.Description != "Still mine" || got.UpdatedAt == rm.UpdatedAt {
		t.Errorf("updated %+v", got)
	}
	// By id, sending back the whole resource (its read-only fields are ignored).
	back, _ := json.Marshal(got)
	mustStatus(t, s.req(t, http.MethodPut, "/chats/"+rm.ID, ann.token, string(back)), http.StatusOK, nil)

	// ChitChat lets anyone change a public room; Parley lets its owner.
	wantChitChatError(t, s.req(t, http.MethodPut, "/chats/"+rm.ID, bob.token, `{"description":"bob's now"}`), http.StatusForbidden, 304, "")
	wantChitChatError(t, s.req(t, http.MethodPut, "/chats/"+rm.ID, "", `{"description":"anyone's"}`), http.StatusUnauthorized, 301, "")
	guest := s.chitchatToken(t, rm.ID, `{"secret":"","name":"guest"}`)
	wantChitChatError(t, s.req(t, http.MethodPut, "/chats/"+rm.ID, guest.Token, `{"description":"a guest's"}`), http.StatusForbidden, 304, "")
	wantChitChatError(t, s.req(t, http.MethodPut, "/chats/"+rm.ID, ann.token, `{"visibility":"private"}`), http.StatusBadRequest, 103, "password")
	wantChitChatError(t, s.req(t, http.MethodPut, "/chats/nowhere", ann.token, `{"description":"x"}`), http.StatusNotFound, 101, "room_id")
}

func TestChitChatDeleteRoom(t *testing.T) {
	s := startStack(t)
	ann := s.signUp(t, "ann")
	bob := s.signUp(t, "bob")
	rm := s.chitchatRoom(t, ann.token)
	wantChitChatError(t, s.req(t, http.MethodDelete, "/chats/"+rm.ID, "", nil), http.StatusUnauthorized, 301, "")
	wantChitChatError(t, s.req(t, http.MethodDelete, "/chats/"+rm.ID, bob.token, nil), http.StatusForbidden, 304, "")
	r := s.req(t, http.MethodDelete, "/chats/"+url.PathEscape(rm.Title), ann.token, nil)
	mustStatus(t, r, http.StatusOK, nil)
	if strings.TrimSpace(string(r.body)) != `{"status":true}` {
		t.Errorf("delete answered %v", r)
	}
	wantChitChatError(t, s.req(t, http.MethodGet, "/chats/"+rm.ID, "", nil), http.StatusNotFound, 101, "room_id")
	wantChitChatError(t, s.req(t, http.MethodDelete, "/chats/"+rm.ID, ann.token, nil), http.StatusNotFound, 101, "room_id")
}

// chitchatToken is ChitChat's token answer.
type chitchatToken struct {
	Status bool   `json:"status"`
	Name   string `json:"name"`
	RoomID string `json:"room_id"`
	Token  string `json:"token"`
}

func (s *stack) chitchatToken(t *testing.T, room, body string) chitchatToken {
	t.Helper()
	r := s.req(t, http.MethodPost, "/chats/"+url.PathEscape(room)+"/token", "", body)
	var tok chitchatToken
	mustStatus(t, r, http.StatusOK, &tok)
	wantKeys(t, r.body, "status", "name", "room_id", "token")
	return tok
}

func TestChitChatRoomToken(t *testing.T) {
	s := startStack(t)
	ann := s.signUp(t, "ann")
	var rm chitchatRoom
	mustStatus(t, s.req(t, http.MethodPost, "/chats", ann.token,
		`{"title":"My chat room","description":"mine","visibility":"private","password":"my_secret"}`), http.StatusCreated, &rm)
	// The seed's example request and answer.
	tok := s.chitchatToken(t, rm.ID, `{
"secret":"my_secret",
"name":"david"
}`)
	if !tok.Status || tok.Name != "david" || tok.RoomID != rm.ID || strings.Count(tok.Token, ".") != 2 {
		t.Errorf("token %+v", tok)
	}
	// The seed's own error: a wrong secret is code 304 on "secret".
	r := s.req(t, http.MethodPost, "/chats/"+rm.ID+"/token", "", `{"secret":"wrong","name":"david"}`)
	wantChitChatError(t, r, http.StatusForbidden, 304, "secret")
	if !strings.Contains(string(r.body), `"error":"Unauthorized operation"`) {
		t.Errorf("wrong secret: %v, want the seed's text", r)
	}
	wantChitChatError(t, s.req(t, http.MethodPost, "/chats/"+rm.ID+"/token", "", `{"secret":"my_secret","name":""}`), http.StatusBadRequest, 201, "name")
	wantChitChatError(t, s.req(t, http.MethodPost, "/chats/nowhere/token", "", `{"secret":"","name":"david"}`), http.StatusNotFound, 101, "room_id")
	// The token authorizes the room's messages.
	if got := s.listMessages(t, tok.Token, rm.ID, ""); len(got.Messages) != 0 {
		t.Errorf("messages %+v", got)
	}
}

func TestChitChatRenewToken(t *testing.T) {
	s := startStack(t)
	ann := s.signUp(t, "ann")
	rm := s.chitchatRoom(t, ann.token)
	tok := s.chitchatToken(t, rm.ID, `{"secret":"","name":"david"}`)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		r := s.req(t, method, "/chats/"+url.PathEscape(rm.Title)+"/token/renew", tok.Token, nil)
		var renewed chitchatToken
		mustStatus(t, r, http.StatusOK, &renewed)
		wantKeys(t, r.body, "status", "name", "room_id", "token")
		if !renewed.Status || renewed.Name != "david" || renewed.RoomID != rm.ID || renewed.Token == "" {
			t.Errorf("%s renew: %+v", method, renewed)
		}
		wantChitChatError(t, s.req(t, method, "/chats/"+rm.ID+"/token/renew", "", nil), http.StatusUnauthorized, 301, "")
	}
	// Another room's token renews nothing here.
	other := s.createRoom(t, ann.token, "other", "VISIBILITY_PUBLIC", "")
	wantChitChatError(t, s.req(t, http.MethodPost, "/chats/"+other.ID+"/token/renew", tok.Token, nil), http.StatusForbidden, 304, "room_id")
}

func TestChitChatSocketOnAPublicRoomNeedsNoToken(t *testing.T) {
	s := startStack(t)
	ann := s.signUp(t, "ann")
	rm := s.chitchatRoom(t, ann.token)
	target := "/chats/" + url.PathEscape(rm.Title) + "/ws"
	a := s.mustDialWS(t, target, nil)
	b := s.mustDialWS(t, target, nil)
	a.write(t, `{"event_type":"join","name":"david","color":"#000000","msg":""}`)
	a.write(t, `{"event_type":"send","name":"david","color":"#000000","msg":"hello, no token"}`)
	for _, c := range []*wsConn{a, b} {
		f := c.chitchatFrameWhere(t, func(f chitchatFrame) bool { return f.EventType == "send" })
		if f.Name != "david" || f.Msg != "hello, no token" || !strings.HasPrefix(f.Color, "#") {
			t.Errorf("send frame %+v", f)
		}
	}
	if got := s.listMessages(t, ann.token, rm.ID, "").Messages; len(got) != 1 || got[0].Sender != "david" {
		t.Errorf("history %+v", got)
	}
	// A bad frame is answered in ChitChat's error shape.
	a.write(t, `{"event_type":"dance"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, data, err := a.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), `"event_type":"error"`) {
			if !strings.Contains(string(data), `"code":201`) || !strings.Contains(string(data), `"field":"event_type"`) {
				t.Errorf("error frame %s", data)
			}
			break
		}
	}
	a.Close(websocket.StatusNormalClosure, "")
}

// chitchatFrame is ChitChat's socket frame.
type chitchatFrame struct {
	EventType string `json:"event_type"`
	Name      string `json:"name"`
	Color     string `json:"color"`
	Msg       string `json:"msg"`
}

func (c *wsConn) chitchatFrame(t *testing.T) chitchatFrame {
	t.Helper()
	return readFrameAs[chitchatFrame](t, c)
}

// chitchatFrameWhere reads ChitChat frames until one satisfies ok.
func (c *wsConn) chitchatFrameWhere(t *testing.T, ok func(chitchatFrame) bool) chitchatFrame {
	t.Helper()
	for {
		if f := c.chitchatFrame(t); ok(f) {
			return f
		}
	}
}

func TestChitChatSocketWithARoomToken(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	rm := s.createRoom(t, owner.token, "My chat room", "VISIBILITY_PRIVATE", "my_secret")
	david := s.roomToken(t, rm.Name, "my_secret", "david")
	eve := s.roomToken(t, rm.ID, "my_secret", "eve")
	target := "/chats/" + url.PathEscape(rm.Name) + "/ws"

	d := s.mustDialWS(t, target, nil, david.Token)
	if d.Subprotocol() != david.Token {
		t.Errorf("subprotocol %q, want the token echoed", d.Subprotocol())
	}
	e := s.mustDialWS(t, "/chats/"+rm.ID+"/ws", nil, eve.Token)
	joined := d.chitchatFrameWhere(t, func(f chitchatFrame) bool { return f.EventType == "join" && f.Name == "eve" })
	if !strings.HasPrefix(joined.Color, "#") || len(joined.Color) != 7 {
		t.Errorf("join frame %+v, want a #rrggbb colour", joined)
	}

	e.write(t, `{"event_type":"join","name":"eve","color":"#000000","msg":""}`)
	e.write(t, `{"event_type":"send","name":"eve","color":"#000000","msg":"hello from eve"}`)
	for _, c := range []*wsConn{d, e} {
		f := c.chitchatFrameWhere(t, func(f chitchatFrame) bool { return f.EventType == "send" })
		if f.Name != "eve" || f.Msg != "hello from eve" || f.Color != joined.Color {
			t.Errorf("send frame %+v", f)
		}
	}
	e.Close(websocket.StatusNormalClosure, "")
	if f := d.chitchatFrameWhere(t, func(f chitchatFrame) bool { return f.EventType != "send" }); f.EventType != "leave" || f.Name != "eve" {
		t.Errorf("after eve left: %+v, want her leave", f)
	}
	if got := s.listMessages(t, owner.token, rm.ID, "").Messages; len(got) != 1 || got[0].Text != "hello from eve" || got[0].Sender != "eve" {
		t.Errorf("history %+v", got)
	}

	// Without a token the private room closes the socket with 4401.
	anon := s.mustDialWS(t, target, nil)
	if ce := anon.closeError(t); ce.Code != 4401 {
		t.Errorf("no token: close %d %q, want 4401", ce.Code, ce.Reason)
	}
}
