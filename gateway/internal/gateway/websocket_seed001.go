package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
)

// Seed 001's frames on the one socket of websocket.go, GET /ws:
// {"type":...,"content":...} both ways. The socket opens without a room,
// once the token is checked; connect-chat subscribes to a room (another
// connect-chat switches), and send-message, update-message and
// delete-message call MessageService. The token says who the caller is: the
// frames' customerId and username are informational and ignored.

const getUserMethod = "/parley.v1.UserService/GetUser"

// reasonNotConnected refuses a command sent before connect-chat.
const reasonNotConnected = "NOT_CONNECTED"

// seed001Frame is a server→client frame of seed 001's socket.
type seed001Frame struct {
	Type    string `json:"type"`
	Content any    `json:"content"`
}

// seed001Message is the content of send-message and update-message frames.
type seed001Message struct {
	ChatID     string          `json:"chatId"`     // the room's UUID
	CustomerID string          `json:"customerId"` // the author's user UUID
	Username   string          `json:"username"`   // the author's display name
	Content    string          `json:"content"`    // the text
	MessageID  string          `json:"messageId"`  // the message's UUID
	Sequence   uint64          `json:"sequence"`   // the event's (an ack's: the message's)
	CreateTime json.RawMessage `json:"createTime,omitempty"`
}

// seed001Member is the content of join and leave frames.
type seed001Member struct {
	ChatID     string `json:"chatId"`
	CustomerID string `json:"customerId"`
	Username   string `json:"username"`
}

// seed001Chat is the content of connect-chat's ack.
type seed001Chat struct {
	ChatID     string `json:"chatId"`
	Name       string `json:"name"`
	CustomerID string `json:"customerId"`
	Username   string `json:"username"`
}

// seed001Fields renames the server's request fields in errors to where the
// client put them.
var seed001Fields = map[string]string{
	"room":           "content.chatId",
	"text":           "content.content",
	"message":        "content.messageId",
	"after_sequence": "content.afterSequence",
}

func seed001ErrorFrame(e apierror.Error) seed001Frame {
	if f, ok := seed001Fields[e.Field]; ok {
		e.Field = f
	}
	return seed001Frame{Type: "error", Content: e}
}

// seed001EventFrame is an event in seed 001's shape; ok is false for a
// deleted message read from history (the delete-message frame follows it).
// Kinds seed 001 does not know keep the event's JSON under their own name.
func seed001EventFrame(e *parleyv1.Event) (f seed001Frame, ok bool) {
	switch e.GetKind() {
	case parleyv1.EventKind_EVENT_KIND_MESSAGE:
		if e.GetDeleted() {
			return f, false
		}
		return seed001Frame{Type: "send-message", Content: seed001MessageOf(e)}, true
	case parleyv1.EventKind_EVENT_KIND_EDIT:
		return seed001Frame{Type: "update-message", Content: seed001MessageOf(e)}, true
	case parleyv1.EventKind_EVENT_KIND_DELETE:
		return seed001Frame{Type: "delete-message", Content: seed001MessageID(e)}, true
	case parleyv1.EventKind_EVENT_KIND_JOIN, parleyv1.EventKind_EVENT_KIND_LEAVE:
		return seed001Frame{Type: eventName(e.GetKind()), Content: seed001Member{
			ChatID: e.GetRoomId(), CustomerID: e.GetSenderId(), Username: e.GetSender()}}, true
	}
	return seed001Frame{Type: eventName(e.GetKind()), Content: json.RawMessage(marshalJSON(e))}, true
}

// seed001AckFrame answers command typ with the message it posted or changed,
// as it now is: MessageService returns the message itself (a tombstone
// after a delete), not the event it broadcast.
func seed001AckFrame(typ string, e *parleyv1.Event) seed001Frame {
	var content any = seed001MessageOf(e)
	if typ == "delete-message" {
		content = seed001MessageID(e)
	}
	return seed001Frame{Type: "ack", Content: seed001Frame{Type: typ, Content: content}}
}

func seed001MessageOf(e *parleyv1.Event) seed001Message {
	m := seed001Message{ChatID: e.GetRoomId(), CustomerID: e.GetSenderId(), Username: e.GetSender(),
		Content: e.GetText(), MessageID: seed001MessageID(e), Sequence: e.GetSequence()}
	if ts := e.GetCreateTime(); ts != nil {
		m.CreateTime = marshalJSON(ts)
	}
	return m
}

// seed001MessageID is the id of the message e is, or that an edit or
// delete event concerns.
func seed001MessageID(e *parleyv1.Event) string {
	switch e.GetKind() {
	case parleyv1.EventKind_EVENT_KIND_EDIT, parleyv1.EventKind_EVENT_KIND_DELETE:
		return e.GetTargetId()
	}
	return e.GetId()
}

// whoAmI checks r's token, as a socket's subscription would, and returns
// its user.
func (g *realtime) whoAmI(ctx context.Context, r *http.Request, route string) (*parleyv1.User, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	actx, err := runtime.AnnotateContext(ctx, g.mux, r, getUserMethod, runtime.WithHTTPPathPattern(route))
	if err != nil {
		return nil, err
	}
	me, err := g.users.GetUser(actx, &parleyv1.GetUserRequest{User: "me"})
	if err != nil {
		return nil, err
	}
	return me, nil
}

// seed001Request is a client frame of seed 001's socket, decoded.
type seed001Request struct {
	typ           string
	chatID        string  // content.chatId; "" when absent
	text          string  // content.content
	messageID     string  // content.messageId; delete-message's content
	afterSequence *uint64 // content.afterSequence
}

// decodeSeed001 decodes one frame. Unknown fields are ignored: seed 001's
// own connect-chat example spells customerId "customerd".
func decodeSeed001(data []byte) (seed001Request, *apierror.Error) {
	var req seed001Request
	bad := func(reason, field, msg string) (seed001Request, *apierror.Error) {
		e := apierror.New(http.StatusBadRequest, codes.InvalidArgument, reason, field, msg)
		return req, &e
	}
	var frame struct {
		Type    string          `json:"type"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(data, &frame); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return bad(apierror.InvalidFieldValue, typeErr.Field, "frame: field "+typeErr.Field+" has the wrong type")
		}
		return bad(apierror.MalformedJSON, "", "frame is not one JSON object: "+err.Error())
	}
	req.typ = frame.Type
	switch frame.Type {
	case "connect-chat", "send-message", "update-message":
	case "delete-message":
		id, ok := seed001ID(frame.Content)
		if !ok || id == "" {
			return bad(apierror.InvalidFieldValue, "content", "delete-message: content must be the message's id")
		}
		req.messageID = id
		return req, nil
	default:
		return bad(apierror.UnknownFrameType, "type", "frame type "+strconv.Quote(frame.Type)+
			" is not one of connect-chat, send-message, update-message, delete-message")
	}

	var content map[string]json.RawMessage
	if len(frame.Content) > 0 {
		if err := json.Unmarshal(frame.Content, &content); err != nil {
			return bad(apierror.InvalidFieldValue, "content", frame.Type+": content must be a JSON object")
		}
	}
	var ok bool
	if req.chatID, ok = seed001ID(content["chatId"]); !ok {
		return bad(apierror.InvalidFieldValue, "content.chatId", "content.chatId must be a string or a number")
	}
	if req.messageID, ok = seed001ID(content["messageId"]); !ok {
		return bad(apierror.InvalidFieldValue, "content.messageId", "content.messageId must be a string")
	}
	if v := content["content"]; len(v) > 0 && string(v) != "null" {
		if err := json.Unmarshal(v, &req.text); err != nil {
			return bad(apierror.InvalidFieldValue, "content.content", "content.content must be a string")
		}
	}
	if v := content["afterSequence"]; len(v) > 0 && string(v) != "null" {
		var n flexUint
		if err := n.UnmarshalJSON(v); err != nil {
			return bad(apierror.InvalidFieldValue, "content.afterSequence", "content.afterSequence must be a sequence number")
		}
		after := uint64(n)
		req.afterSequence = &after
	}
	return req, nil
}

// seed001ID reads an id given as a JSON string or number (seed 001 numbers
// its ids); absent or null is "".
func seed001ID(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}

// seed001Command runs one frame of seed 001's socket and answers with an
// ack or an error frame.
func (s *socket) seed001Command(ctx context.Context, data []byte) {
	req, e := decodeSeed001(data)
	if e != nil {
		s.writeError(ctx, nil, *e)
		return
	}
	if req.typ == "connect-chat" {
		s.connectChat(ctx, req)
		return
	}
	if s.room == "" {
		s.writeError(ctx, nil, apierror.New(http.StatusBadRequest, codes.FailedPrecondition, reasonNotConnected, "",
			req.typ+" before connect-chat: connect to a chat first"))
		return
	}
	cctx, cancel := context.WithTimeout(s.callCtx, commandTimeout)
	defer cancel()
	room := cmp.Or(req.chatID, s.room)

	var (
		event *parleyv1.Event
		err   error
	)
	switch req.typ {
	case "send-message":
		event, err = s.g.messages.PostMessage(cctx, &parleyv1.PostMessageRequest{Room: room, Text: req.text})
	case "update-message":
		id := req.messageID
		if id == "" {
			id, err = s.lastOwnMessage(cctx, room)
		}
		if err == nil {
			event, err = s.g.messages.EditMessage(cctx, &parleyv1.EditMessageRequest{Room: room, Message: id, Text: req.text})
		}
	case "delete-message":
		event, err = s.g.messages.DeleteMessage(cctx, &parleyv1.DeleteMessageRequest{Room: s.room, Message: req.messageID})
	}
	if err != nil {
		s.writeError(ctx, nil, apierror.FromError(err))
		return
	}
	_ = s.writeJSON(ctx, seed001AckFrame(req.typ, event))
}

// lastOwnMessage finds the caller's most recent message in room that is not
// deleted, paging back through the room's history; NOT_FOUND when there is
// none.
func (s *socket) lastOwnMessage(ctx context.Context, room string) (string, error) {
	req := &parleyv1.ListMessagesRequest{Room: room}
	for {
		page, err := s.g.messages.ListMessages(ctx, req)
		if err != nil {
			return "", err
		}
		msgs := page.GetMessages()
		for i := len(msgs) - 1; i >= 0; i-- {
			if m := msgs[i]; m.GetSenderId() == s.me.GetId() && !m.GetDeleted() {
				return m.GetId(), nil
			}
		}
		if !page.GetHasOlder() || len(msgs) == 0 {
			return "", apierror.StatusError(codes.NotFound, "MESSAGE_NOT_FOUND", "message",
				"update-message without messageId edits your most recent message in the chat, and you have none there")
		}
		before := msgs[0].GetSequence()
		req.Before = &before
	}
}

// connectChat subscribes to the frame's room and hands the subscription to
// run, which acks and streams it from then on. A refusal leaves the socket
// where it was.
func (s *socket) connectChat(ctx context.Context, req seed001Request) {
	if req.chatID == "" {
		s.writeError(ctx, nil, apierror.New(http.StatusBadRequest, codes.InvalidArgument, "ROOM_REQUIRED", "content.chatId",
			"connect-chat needs content.chatId: a room's UUID or name"))
		return
	}
	cctx, cancel := context.WithTimeout(s.callCtx, commandTimeout)
	defer cancel()
	room, err := s.g.rooms.GetRoom(cctx, &parleyv1.GetRoomRequest{Room: req.chatID})
	if err != nil {
		s.writeError(ctx, nil, apierror.FromError(err))
		return
	}
	sub, err := s.g.subscribe(ctx, s.r, s.route, &parleyv1.SubscribeRequest{Room: req.chatID, AfterSequence: req.afterSequence})
	if err != nil {
		s.writeError(ctx, nil, apierror.FromError(err))
		return
	}
	var first streamWrite
	select {
	case write, ok := <-sub.C:
		if !ok {
			sub.Close()
			return
		}
		first = write
	case <-ctx.Done():
		sub.Close()
		return
	case <-s.g.stopping:
		sub.Close() // run closes the socket
		return
	}
	if first.err != nil && !isCleanEnd(first.err) {
		sub.Close()
		s.writeError(ctx, nil, apierror.FromError(first.err))
		return
	}
	ack := seed001Frame{Type: "ack", Content: seed001Frame{Type: "connect-chat", Content: seed001Chat{
		ChatID: room.GetId(), Name: room.GetName(), CustomerID: s.me.GetId(), Username: s.me.GetUsername()}}}
	select {
	case s.switches <- roomSwitch{sub: sub, first: first, ack: ack}:
		s.room = req.chatID
	case <-ctx.Done():
		sub.Close()
	}
}
