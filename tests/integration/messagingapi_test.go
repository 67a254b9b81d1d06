package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// The Messaging API (seed 001) on /user, /chat and /ws, one test per route.
// The seed gives no REST bodies; these are its fields (username, chatName
// as its chat_name) with a password long enough for Parley.

type messagingUser struct {
	CustomerID string `json:"customerId"`
	Username   string `json:"username"`
	CreatedAt  string `json:"createdAt"`
}

type messagingChat struct {
	ChatID    string `json:"chatId"`
	ChatName  string `json:"chatName"`
	CreatedAt string `json:"createdAt"`
}

// wantMessagingError asserts the API's error body, {"error":"..."}.
func wantMessagingError(t *testing.T, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("got %v, want %d", r, status)
	}
	wantKeys(t, r.body, "error")
}

// messagingSignUp creates a user through POST /user and signs in.
func (s *stack) messagingSignUp(t *testing.T, username string) (messagingUser, string) {
	t.Helper()
	var u messagingUser
	r := s.req(t, http.MethodPost, "/user", "", `{"username":"`+username+`","password":"`+passwordOf(username)+`"}`)
	mustStatus(t, r, http.StatusCreated, &u)
	return u, s.signIn(t, username, passwordOf(username)).Token
}

func (s *stack) messagingChat(t *testing.T, token, name string) messagingChat {
	t.Helper()
	var c messagingChat
	mustStatus(t, s.req(t, http.MethodPost, "/chat", token, `{"chatName":"`+name+`"}`), http.StatusCreated, &c)
	return c
}

func TestMessagingAPICreateUser(t *testing.T) {
	s := startStack(t)
	r := s.req(t, http.MethodPost, "/user", "", `{"username":"name","password":"`+passwordOf("name")+`"}`)
	var u messagingUser
	mustStatus(t, r, http.StatusCreated, &u)
	wantKeys(t, r.body, "customerId", "username", "createdAt")
	if !isUUID(u.CustomerID) || u.Username != "name" {
		t.Errorf("created %+v", u)
	}
	parseTime(t, "createdAt", u.CreatedAt)
	wantMessagingError(t, s.req(t, http.MethodPost, "/user", "", `{"username":"name","password":"`+passwordOf("name")+`"}`), http.StatusConflict)
	wantMessagingError(t, s.req(t, http.MethodPost, "/user", "", `{"username":"example","password":"secret"}`), http.StatusBadRequest)
	wantMessagingError(t, s.req(t, http.MethodPost, "/user", "", `{"username":`), http.StatusBadRequest)
	s.noSecretsIn(t, passwordOf("name"))
}

func TestMessagingAPIListUsers(t *testing.T) {
	s := startStack(t)
	ann, token := s.messagingSignUp(t, "ann")
	bob, _ := s.messagingSignUp(t, "bob")
	r := s.req(t, http.MethodGet, "/user", token, nil)
	var users []messagingUser
	mustStatus(t, r, http.StatusOK, &users)
	if len(users) != 2 || users[0] != ann || users[1] != bob {
		t.Errorf("users %+v, want ann and bob", users)
	}
	wantMessagingError(t, s.req(t, http.MethodGet, "/user", "", nil), http.StatusUnauthorized)
}

func TestMessagingAPIGetUserByID(t *testing.T) {
	s := startStack(t)
	ann, token := s.messagingSignUp(t, "ann")
	r := s.req(t, http.MethodGet, "/user/"+ann.CustomerID, token, nil)
	var got messagingUser
	mustStatus(t, r, http.StatusOK, &got)
	wantKeys(t, r.body, "customerId", "username", "createdAt")
	if got != ann {
		t.Errorf("got %+v, want %+v", got, ann)
	}
	wantMessagingError(t, s.req(t, http.MethodGet, "/user/00000000-0000-4000-8000-00000000beef", token, nil), http.StatusNotFound)
	wantMessagingError(t, s.req(t, http.MethodGet, "/user/"+ann.CustomerID, "", nil), http.StatusUnauthorized)
}

func TestMessagingAPIUpdateUser(t *testing.T) {
	s := startStack(t)
	ann, token := s.messagingSignUp(t, "ann")
	bob, bobToken := s.messagingSignUp(t, "bob")
	r := s.req(t, http.MethodPut, "/user/"+ann.CustomerID, token, `{"username":"ann","password":"a brand new password"}`)
	var got messagingUser
	mustStatus(t, r, http.StatusOK, &got)
	wantKeys(t, r.body, "customerId", "username", "createdAt")
	s.signIn(t, "ann", "a brand new password")
	wantMessagingError(t, s.req(t, http.MethodPut, "/user/"+ann.CustomerID, token, `{"username":"updated"}`), http.StatusUnauthorized) // the change signed ann out
	token = s.signIn(t, "ann", "a brand new password").Token
	wantMessagingError(t, s.req(t, http.MethodPut, "/user/"+ann.CustomerID, token, `{"username":"updated"}`), http.StatusBadRequest)
	// Another user's account is not yours to change.
	wantMessagingError(t, s.req(t, http.MethodPut, "/user/"+ann.CustomerID, bobToken, `{"password":"bob was here!"}`), http.StatusForbidden)
	_ = bob
}

func TestMessagingAPIDeleteUser(t *testing.T) {
	s := startStack(t)
	ann, token := s.messagingSignUp(t, "ann")
	_, bobToken := s.messagingSignUp(t, "bob")
	wantMessagingError(t, s.req(t, http.MethodDelete, "/user/"+ann.CustomerID, bobToken, nil), http.StatusForbidden)
	r := s.req(t, http.MethodDelete, "/user/"+ann.CustomerID, token, nil)
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Errorf("delete: %v, want 204 and no body", r)
	}
	wantMessagingError(t, s.req(t, http.MethodGet, "/user/"+ann.CustomerID, bobToken, nil), http.StatusNotFound)
}

func TestMessagingAPIFindUserByUsername(t *testing.T) {
	s := startStack(t)
	ann, token := s.messagingSignUp(t, "ann")
	var got messagingUser
	mustStatus(t, s.req(t, http.MethodGet, "/user/username/ann", token, nil), http.StatusOK, &got)
	if got != ann {
		t.Errorf("got %+v, want %+v", got, ann)
	}
	wantMessagingError(t, s.req(t, http.MethodGet, "/user/username/nobody", token, nil), http.StatusNotFound)
}

func TestMessagingAPIFindUsersByChat(t *testing.T) {
	s := startStack(t)
	ann, token := s.messagingSignUp(t, "ann")
	c := s.messagingChat(t, token, "new chat")
	var users []messagingUser
	mustStatus(t, s.req(t, http.MethodGet, "/user/chat/"+c.ChatID, token, nil), http.StatusOK, &users)
	if len(users) != 1 || users[0].CustomerID != ann.CustomerID || users[0].Username != "ann" {
		t.Errorf("users %+v, want the creator", users)
	}
	wantMessagingError(t, s.req(t, http.MethodGet, "/user/chat/nowhere", token, nil), http.StatusNotFound)
}

func TestMessagingAPIListChats(t *testing.T) {
	s := startStack(t)
	_, token := s.messagingSignUp(t, "ann")
	var none []messagingChat
	mustStatus(t, s.req(t, http.MethodGet, "/chat", token, nil), http.StatusOK, &none)
	if none == nil || len(none) != 0 {
		t.Errorf("chats %v, want []", none)
	}
	c := s.messagingChat(t, token, "new chat")
	var chats []messagingChat
	mustStatus(t, s.req(t, http.MethodGet, "/chat", token, nil), http.StatusOK, &chats)
	if len(chats) != 1 || chats[0] != c {
		t.Errorf("chats %+v, want %+v", chats, c)
	}
	wantMessagingError(t, s.req(t, http.MethodGet, "/chat", "", nil), http.StatusUnauthorized)
}

func TestMessagingAPICreateChat(t *testing.T) {
	s := startStack(t)
	_, token := s.messagingSignUp(t, "ann")
	// The API's own request collection spells it chat_name.
	r := s.req(t, http.MethodPost, "/chat", token, `{"chat_name":"new chat"}`)
	var c messagingChat
	mustStatus(t, r, http.StatusCreated, &c)
	wantKeys(t, r.body, "chatId", "chatName", "createdAt")
	if !isUUID(c.ChatID) || c.ChatName != "new chat" {
		t.Errorf("created %+v", c)
	}
	wantMessagingError(t, s.req(t, http.MethodPost, "/chat", token, `{"chatName":"new chat"}`), http.StatusConflict)
	wantMessagingError(t, s.req(t, http.MethodPost, "/chat", token, `{}`), http.StatusBadRequest)
	wantMessagingError(t, s.req(t, http.MethodPost, "/chat", "", `{"chatName":"mine"}`), http.StatusUnauthorized)
}

func TestMessagingAPIGetChatByID(t *testing.T) {
	s := startStack(t)
	_, token := s.messagingSignUp(t, "ann")
	c := s.messagingChat(t, token, "new chat")
	for _, id := range []string{c.ChatID, url.PathEscape(c.ChatName)} {
		r := s.req(t, http.MethodGet, "/chat/"+id, token, nil)
		var got messagingChat
		mustStatus(t, r, http.StatusOK, &got)
		wantKeys(t, r.body, "chatId", "chatName", "createdAt")
		if got != c {
			t.Errorf("got %+v, want %+v", got, c)
		}
	}
	wantMessagingError(t, s.req(t, http.MethodGet, "/chat/nowhere", token, nil), http.StatusNotFound)
}

func TestMessagingAPIUpdateChat(t *testing.T) {
	s := startStack(t)
	_, token := s.messagingSignUp(t, "ann")
	_, bobToken := s.messagingSignUp(t, "bob")
	c := s.messagingChat(t, token, "new chat")
	var got messagingChat
	mustStatus(t, s.req(t, http.MethodPut, "/chat/"+c.ChatID, token, `{"chat_name":"updated name"}`), http.StatusOK, &got)
	if got.ChatID != c.ChatID || got.ChatName != "updated name" {
		t.Errorf("updated %+v", got)
	}
	wantMessagingError(t, s.req(t, http.MethodPut, "/chat/"+c.ChatID, bobToken, `{"chatName":"bob's"}`), http.StatusForbidden)
}

func TestMessagingAPIDeleteChat(t *testing.T) {
	s := startStack(t)
	_, token := s.messagingSignUp(t, "ann")
	_, bobToken := s.messagingSignUp(t, "bob")
	c := s.messagingChat(t, token, "new chat")
	wantMessagingError(t, s.req(t, http.MethodDelete, "/chat/"+c.ChatID, bobToken, nil), http.StatusForbidden)
	if r := s.req(t, http.MethodDelete, "/chat/"+c.ChatID, token, nil); r.status != http.StatusNoContent {
		t.Errorf("delete: %v, want 204", r)
	}
	wantMessagingError(t, s.req(t, http.MethodGet, "/chat/"+c.ChatID, token, nil), http.StatusNotFound)
}

func TestMessagingAPIAddAndRemoveUserFromChat(t *testing.T) {
	s := startStack(t)
	_, token := s.messagingSignUp(t, "ann")
	bob, bobToken := s.messagingSignUp(t, "bob")
	c := s.messagingChat(t, token, "new chat")

	// Joining: bob adds himself (the chat comes as ?chat_id=).
	r := s.req(t, http.MethodGet, "/chat/user/"+bob.CustomerID+"?chat_id="+c.ChatID, bobToken, nil)
	mustStatus(t, r, http.StatusCreated, nil)
	wantKeys(t, r.body, "customerId", "chatId", "role", "joinedAt")
	if !strings.Contains(string(r.body), `"customerId":"`+bob.CustomerID+`"`) {
		t.Errorf("membership %v", r)
	}
	wantMessagingError(t, s.req(t, http.MethodGet, "/chat/user/"+bob.CustomerID, bobToken, nil), http.StatusBadRequest)
	var users []messagingUser
	mustStatus(t, s.req(t, http.MethodGet, "/user/chat/"+c.ChatID, token, nil), http.StatusOK, &users)
	if len(users) != 2 {
		t.Errorf("members %+v, want ann and bob", users)
	}

	// Removing: the owner removes bob.
	if r := s.req(t, http.MethodDelete, "/chat/user/"+bob.CustomerID+"?chat_id="+c.ChatID, token, nil); r.status != http.StatusNoContent {
		t.Errorf("remove: %v, want 204", r)
	}
	wantMessagingError(t, s.req(t, http.MethodDelete, "/chat/user/"+bob.CustomerID+"?chat_id="+c.ChatID, token, nil), http.StatusNotFound)
	wantMessagingError(t, s.req(t, http.MethodDelete, "/chat/user/"+bob.CustomerID, token, nil), http.StatusBadRequest)
}

func TestMessagingAPICheckAccess(t *testing.T) {
	s := startStack(t)
	ann, token := s.messagingSignUp(t, "ann")
	bob, _ := s.messagingSignUp(t, "bob")
	c := s.messagingChat(t, token, "new chat")
	priv := s.createRoom(t, token, "private", "VISIBILITY_PRIVATE", "a password!")
	for _, tc := range []struct {
		user, chat string
		want       string
	}{
		{ann.CustomerID, c.ChatID, `{"has_access":true}`},
		{bob.CustomerID, c.ChatID, `{"has_access":true}`}, // a public chat
		{bob.CustomerID, priv.ID, `{"has_access":false}`},
	} {
		r := s.req(t, http.MethodGet, "/chat/user/"+tc.user+"/chat/"+tc.chat+"/access", token, nil)
		mustStatus(t, r, http.StatusOK, nil)
		if strings.TrimSpace(string(r.body)) != tc.want {
			t.Errorf("access of %s to %s: %v, want %s", tc.user, tc.chat, r, tc.want)
		}
	}
	wantMessagingError(t, s.req(t, http.MethodGet, "/chat/user/"+bob.CustomerID+"/chat/nowhere/access", token, nil), http.StatusNotFound)
}

// messagingFrame is a frame of the Messaging API's socket, /ws.
type messagingFrame struct {
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// messagingMessage is the content of its send-message and update-message
// frames.
type messagingMessage struct {
	ChatID     string `json:"chatId"`
	CustomerID string `json:"customerId"`
	Username   string `json:"username"`
	Content    string `json:"content"`
	MessageID  string `json:"messageId"`
	Sequence   uint64 `json:"sequence"`
	CreateTime string `json:"createTime"`
}

func (f messagingFrame) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(f.Content, v); err != nil {
		t.Fatalf("%s frame content %s: %v", f.Type, f.Content, err)
	}
}

func (f messagingFrame) message(t *testing.T) messagingMessage {
	t.Helper()
	var m messagingMessage
	f.decode(t, &m)
	return m
}

func (f messagingFrame) text(t *testing.T) string {
	t.Helper()
	var s string
	f.decode(t, &s)
	return s
}

func (c *wsConn) messagingFrame(t *testing.T) messagingFrame {
	t.Helper()
	return readFrameAs[messagingFrame](t, c)
}

// messagingWhere reads frames until one of type typ ("": any) satisfies ok
// (nil: any).
func (c *wsConn) messagingWhere(t *testing.T, typ string, ok func(messagingFrame) bool) messagingFrame {
	t.Helper()
	for {
		if f := c.messagingFrame(t); (typ == "" || f.Type == typ) && (ok == nil || ok(f)) {
			return f
		}
	}
}

// messagingAck reads until the answer to a command, which must be an ack of
// an event of type typ, and returns that event's frame.
func (c *wsConn) messagingAck(t *testing.T, typ string) messagingFrame {
	t.Helper()
	f := c.messagingWhere(t, "", func(f messagingFrame) bool { return f.Type == "ack" || f.Type == "error" })
	var inner messagingFrame
	if f.Type == "ack" {
		f.decode(t, &inner)
	}
	if inner.Type != typ {
		t.Fatalf("answer %s %s, want an ack of %s", f.Type, f.Content, typ)
	}
	return inner
}

// messagingError reads until the answer to a command, which must be an
// error.
func (c *wsConn) messagingError(t *testing.T) (e struct {
	Code     string `json:"code"`
	Status   int    `json:"status"`
	GRPCCode string `json:"grpc_code"`
	Field    string `json:"field"`
}) {
	t.Helper()
	f := c.messagingWhere(t, "", func(f messagingFrame) bool { return f.Type == "ack" || f.Type == "error" })
	if f.Type != "error" {
		t.Fatalf("answer %s %s, want an error", f.Type, f.Content)
	}
	f.decode(t, &e)
	return e
}

func TestMessagingAPISocket(t *testing.T) {
	s := startStack(t)
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")
	rm := s.createRoom(t, alice.token, "messaging", "", "")
	seed := func(typ string, content any) map[string]any { return map[string]any{"type": typ, "content": content} }

	a := s.mustDialWS(t, "/ws", bearer(alice.token))
	b := s.mustDialWS(t, "/ws", nil, bob.token) // the token as the only subprotocol

	// Before connect-chat, and a frame that is not JSON: error frames, and
	// the socket stays open.
	b.write(t, seed("send-message", map[string]any{"chatId": 1, "customerId": 2, "content": "too early"}))
	if e := b.messagingError(t); e.Code != "NOT_CONNECTED" || e.Status != 400 || e.GRPCCode != "FAILED_PRECONDITION" {
		t.Errorf("send-message before connect-chat: %+v", e)
	}
	b.write(t, `{"type":"connect-chat",`)
	if e := b.messagingError(t); e.Code != "MALFORMED_JSON" || e.Status != 400 {
		t.Errorf("bad JSON: %+v", e)
	}

	// connect-chat by UUID and by name. The token says who the caller is;
	// customerId and username are informational.
	type chat struct{ ChatID, Name, CustomerID, Username string }
	var ca, cb chat
	a.write(t, seed("connect-chat", map[string]any{"customerId": 1, "chatId": rm.ID, "username": "someone else"}))
	a.messagingAck(t, "connect-chat").decode(t, &ca)
	b.write(t, seed("connect-chat", map[string]any{"customerId": 2, "chatId": rm.Name, "username": "bob"}))
	b.messagingAck(t, "connect-chat").decode(t, &cb)
	if ca != (chat{rm.ID, rm.Name, alice.ID, "alice"}) || cb != (chat{rm.ID, rm.Name, bob.ID, "bob"}) {
		t.Errorf("connect-chat acks %+v and %+v", ca, cb)
	}
	var joined struct{ ChatID, CustomerID, Username string }
	a.messagingWhere(t, "join", nil).decode(t, &joined)
	if joined.ChatID != rm.ID || joined.CustomerID != bob.ID || joined.Username != "BOB" {
		t.Errorf("alice saw bob join as %+v", joined)
	}

	// send-message reaches the other user.
	b.write(t, seed("send-message", map[string]any{"chatId": rm.ID, "customerId": 2, "content": "Hi world."}))
	sent := b.messagingAck(t, "send-message").message(t)
	if !isUUID(sent.MessageID) || sent.Content != "Hi world." || sent.CustomerID != bob.ID || sent.Sequence == 0 {
		t.Fatalf("send-message ack %+v", sent)
	}
	if got := a.messagingWhere(t, "send-message", nil).message(t); got != sent || got.ChatID != rm.ID || got.Username != "BOB" {
		t.Errorf("alice got %+v, want %+v", got, sent)
	}

	// alice posts last; bob's update-message without messageId still edits
	// his own most recent message.
	a.write(t, seed("send-message", map[string]any{"content": "alice here"}))
	hers := a.messagingAck(t, "send-message").message(t)
	b.write(t, seed("update-message", map[string]any{"chatId": rm.ID, "customerId": 2, "content": "Hello world!"}))
	if u := b.messagingAck(t, "update-message").message(t); u.MessageID != sent.MessageID || u.Content != "Hello world!" {
		t.Errorf("update-message without messageId: ack %+v, want message %s edited", u, sent.MessageID)
	}
	isUpdate := func(text string) func(messagingFrame) bool {
		return func(f messagingFrame) bool { return f.message(t).Content == text }
	}
	if u := a.messagingWhere(t, "update-message", isUpdate("Hello world!")).message(t); u.MessageID != sent.MessageID || u.CustomerID != bob.ID {
		t.Errorf("alice saw the edit as %+v", u)
	}
	b.write(t, seed("update-message", map[string]any{"messageId": sent.MessageID, "content": "Hello again!"}))
	if u := b.messagingAck(t, "update-message").message(t); u.MessageID != sent.MessageID {
		t.Errorf("update-message with messageId: ack %+v", u)
	}
	a.messagingWhere(t, "update-message", isUpdate("Hello again!"))
	b.write(t, seed("update-message", map[string]any{"messageId": hers.MessageID, "content": "hijacked"}))
	if e := b.messagingError(t); e.Status != 403 {
		t.Errorf("editing alice's message: %+v, want 403", e)
	}

	// delete-message takes the id as its content.
	b.write(t, seed("delete-message", sent.MessageID))
	if id := b.messagingAck(t, "delete-message").text(t); id != sent.MessageID {
		t.Errorf("delete-message ack %q", id)
	}
	if id := a.messagingWhere(t, "delete-message", nil).text(t); id != sent.MessageID {
		t.Errorf("alice saw the delete of %q", id)
	}
	got := s.listMessages(t, alice.token, rm.ID, "").Messages
	if len(got) != 2 || got[0].ID != sent.MessageID || !got[0].Deleted || got[1].ID != hers.MessageID {
		t.Errorf("history %+v", got)
	}

	// A room that does not exist: an error frame. A bad token closes the
	// socket with 4401, a room token with 4403: /ws needs a user.
	b.write(t, seed("connect-chat", map[string]any{"chatId": "no-such-room"}))
	if e := b.messagingError(t); e.Status != 404 || e.Field != "content.chatId" {
		t.Errorf("connect-chat to a missing room: %+v", e)
	}
	priv := s.createRoom(t, alice.token, "closed", "VISIBILITY_PRIVATE", "closed-pw")
	for token, code := range map[string]websocket.StatusCode{
		"not-a-token": 4401,
		s.roomToken(t, priv.ID, "closed-pw", "david").Token: 4403,
	} {
		bad := s.mustDialWS(t, "/ws", nil, token)
		f := bad.messagingFrame(t)
		if ce := bad.closeError(t); f.Type != "error" || ce.Code != code {
			t.Errorf("token %.20s: frame %+v, close %d %q; want an error and %d", token, f, ce.Code, ce.Reason, code)
		}
	}

	// Resuming from the beginning replays the room in the same frames; the
	// deleted message is left out, its delete-message is not.
	r := s.mustDialWS(t, "/ws", bearer(alice.token))
	r.write(t, seed("connect-chat", map[string]any{"chatId": rm.ID, "afterSequence": 0}))
	r.messagingAck(t, "connect-chat")
	var replayed []string
	for f := r.messagingFrame(t); f.Type != "delete-message"; f = r.messagingFrame(t) {
		if f.Type == "send-message" {
			replayed = append(replayed, f.message(t).Content)
		}
	}
	if !slices.Equal(replayed, []string{"alice here"}) {
		t.Errorf("replayed messages %q", replayed)
	}
}
