package messagingapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
	"parley/gateway/internal/compat"
)

// The Messaging API's socket, GET /ws: {"type":...,"content":...} both
// ways. It opens without a room, once the token is checked; connect-chat
// subscribes to a room (another connect-chat switches), and send-message,
// update-message and delete-message call MessageService. The token says who
// the caller is: the frames' customerId and username are informational and
// ignored.

type socket struct{ clients *compat.Clients }

func (socket) Pattern() string { return "/ws" }

// Open checks the token, as a subscription would, and knows its user; the
// socket streams nothing until connect-chat.
func (s socket) Open(ctx context.Context, conn compat.Conn, _ map[string]string, _ *uint64) (compat.Session, *parleyv1.SubscribeRequest, error) {
	sess := &session{clients: s.clients, conn: conn}
	cctx, cancel := context.WithTimeout(conn.CallContext(), compat.CallTimeout)
	defer cancel()
	me, err := s.clients.Users.GetUser(cctx, &parleyv1.GetUserRequest{User: "me"})
	if err != nil {
		return sess, nil, err
	}
	sess.me = me
	return sess, nil, nil
}

// session is one connection: its user, and the room connect-chat named.
// Its fields are the reader goroutine's.
type session struct {
	clients *compat.Clients
	conn    compat.Conn
	me      *parleyv1.User
	room    string // "" before connect-chat
}

func (s *session) EventFrame(e *parleyv1.Event) any {
	if f, ok := eventFrame(e); ok {
		return f
	}
	return nil
}

func (s *session) writeError(ctx context.Context, e apierror.Error) {
	_ = s.conn.Write(ctx, s.ErrorFrame(e))
}

// reasonNotConnected refuses a command sent before connect-chat.
const reasonNotConnected = "NOT_CONNECTED"

// frame is a server→client frame of the Messaging API's socket.
type frame struct {
	Type    string `json:"type"`
	Content any    `json:"content"`
}

// message is the content of send-message and update-message frames.
type message struct {
	ChatID     string          `json:"chatId"`     // the room's UUID
	CustomerID string          `json:"customerId"` // the author's user UUID
	Username   string          `json:"username"`   // the author's display name
	Content    string          `json:"content"`    // the text
	MessageID  string          `json:"messageId"`  // the message's UUID
	Sequence   uint64          `json:"sequence"`   // the event's (an ack's: the message's)
	CreateTime json.RawMessage `json:"createTime,omitempty"`
}

// member is the content of join and leave frames.
type member struct {
	ChatID     string `json:"chatId"`
	CustomerID string `json:"customerId"`
	Username   string `json:"username"`
}

// chatAck is the content of connect-chat's ack.
type chatAck struct {
	ChatID     string `json:"chatId"`
	Name       string `json:"name"`
	CustomerID string `json:"customerId"`
	Username   string `json:"username"`
}

// frameFields renames the server's request fields in errors to where the
// client put them.
var frameFields = map[string]string{
	"room":           "content.chatId",
	"text":           "content.content",
	"message":        "content.messageId",
	"after_sequence": "content.afterSequence",
}

func (s *session) ErrorFrame(e apierror.Error) any {
	if f, ok := frameFields[e.Field]; ok {
		e.Field = f
	}
	return frame{Type: "error", Content: e}
}

// eventFrame is an event in the Messaging API's shape; ok is false for a
// deleted message read from history (the delete-message frame follows it).
// Kinds the Messaging API does not know keep the event's JSON under their own name.
func eventFrame(e *parleyv1.Event) (f frame, ok bool) {
	switch e.GetKind() {
	case parleyv1.EventKind_EVENT_KIND_MESSAGE:
		if e.GetDeleted() {
			return f, false
		}
		return frame{Type: "send-message", Content: messageOf(e)}, true
	case parleyv1.EventKind_EVENT_KIND_EDIT:
		return frame{Type: "update-message", Content: messageOf(e)}, true
	case parleyv1.EventKind_EVENT_KIND_DELETE:
		return frame{Type: "delete-message", Content: messageID(e)}, true
	case parleyv1.EventKind_EVENT_KIND_JOIN, parleyv1.EventKind_EVENT_KIND_LEAVE:
		return frame{Type: compat.EventName(e.GetKind()), Content: member{
			ChatID: e.GetRoomId(), CustomerID: e.GetSenderId(), Username: e.GetSender()}}, true
	}
	return frame{Type: compat.EventName(e.GetKind()), Content: rawJSON(e)}, true
}

// ackFrame answers command typ with the message it posted or changed,
// as it now is: MessageService returns the message itself (a tombstone
// after a delete), not the event it broadcast.
func ackFrame(typ string, e *parleyv1.Event) frame {
	var content any = messageOf(e)
	if typ == "delete-message" {
		content = messageID(e)
	}
	return frame{Type: "ack", Content: frame{Type: typ, Content: content}}
}

func messageOf(e *parleyv1.Event) message {
	m := message{ChatID: e.GetRoomId(), CustomerID: e.GetSenderId(), Username: e.GetSender(),
		Content: e.GetText(), MessageID: messageID(e), Sequence: e.GetSequence()}
	if ts := e.GetCreateTime(); ts != nil {
		m.CreateTime = rawJSON(ts)
	}
	return m
}

// messageID is the id of the message e is, or that an edit or
// delete event concerns.
func messageID(e *parleyv1.Event) string {
	switch e.GetKind() {
	case parleyv1.EventKind_EVENT_KIND_EDIT, parleyv1.EventKind_EVENT_KIND_DELETE:
		return e.GetTargetId()
	}
	return e.GetId()
}

// request is a client frame of the Messaging API's socket, decoded.
type request struct {
	typ           string
	chatID        string  // content.chatId; "" when absent
	text          string  // content.content
	messageID     string  // content.messageId; delete-message's content
	afterSequence *uint64 // content.afterSequence
}

// decodeFrame decodes one frame. Unknown fields are ignored: the Messaging API's
// own connect-chat example spells customerId "customerd".
func decodeFrame(data []byte) (request, *apierror.Error) {
	var req request
	bad := func(reason, field, msg string) (request, *apierror.Error) {
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
		id, ok := readID(frame.Content)
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
	if req.chatID, ok = readID(content["chatId"]); !ok {
		return bad(apierror.InvalidFieldValue, "content.chatId", "content.chatId must be a string or a number")
	}
	if req.messageID, ok = readID(content["messageId"]); !ok {
		return bad(apierror.InvalidFieldValue, "content.messageId", "content.messageId must be a string")
	}
	if v := content["content"]; len(v) > 0 && string(v) != "null" {
		if err := json.Unmarshal(v, &req.text); err != nil {
			return bad(apierror.InvalidFieldValue, "content.content", "content.content must be a string")
		}
	}
	if v := content["afterSequence"]; len(v) > 0 && string(v) != "null" {
		after, err := strconv.ParseUint(strings.Trim(string(v), `"`), 10, 64)
		if err != nil {
			return bad(apierror.InvalidFieldValue, "content.afterSequence", "content.afterSequence must be a sequence number")
		}
		req.afterSequence = &after
	}
	return req, nil
}

// Command runs one frame and answers with an ack or an error frame.
func (s *session) Command(ctx context.Context, data []byte) {
	req, e := decodeFrame(data)
	if e != nil {
		s.writeError(ctx, *e)
		return
	}
	if req.typ == "connect-chat" {
		s.connectChat(ctx, req)
		return
	}
	if s.room == "" {
		s.writeError(ctx, apierror.New(http.StatusBadRequest, codes.FailedPrecondition, reasonNotConnected, "",
			req.typ+" before connect-chat: connect to a chat first"))
		return
	}
	cctx, cancel := context.WithTimeout(s.conn.CallContext(), compat.CallTimeout)
	defer cancel()
	room := cmp.Or(req.chatID, s.room)

	var (
		event *parleyv1.Event
		err   error
	)
	switch req.typ {
	case "send-message":
		event, err = s.clients.Messages.PostMessage(cctx, &parleyv1.PostMessageRequest{Room: room, Text: req.text})
	case "update-message":
		id := req.messageID
		if id == "" {
			id, err = s.lastOwnMessage(cctx, room)
		}
		if err == nil {
			event, err = s.clients.Messages.EditMessage(cctx, &parleyv1.EditMessageRequest{Room: room, Message: id, Text: req.text})
		}
	case "delete-message":
		event, err = s.clients.Messages.DeleteMessage(cctx, &parleyv1.DeleteMessageRequest{Room: s.room, Message: req.messageID})
	}
	if err != nil {
		s.writeError(ctx, apierror.FromError(err))
		return
	}
	_ = s.conn.Write(ctx, ackFrame(req.typ, event))
}

// lastOwnMessage finds the caller's most recent message in room that is not
// deleted, paging back through the room's history; NOT_FOUND when there is
// none.
func (s *session) lastOwnMessage(ctx context.Context, room string) (string, error) {
	req := &parleyv1.ListMessagesRequest{Room: room}
	for {
		page, err := s.clients.Messages.ListMessages(ctx, req)
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

// connectChat makes the frame's room the socket's stream, acknowledged
// before any of its events. A refusal leaves the socket where it was.
func (s *session) connectChat(ctx context.Context, req request) {
	if req.chatID == "" {
		s.writeError(ctx, apierror.New(http.StatusBadRequest, codes.InvalidArgument, "ROOM_REQUIRED", "content.chatId",
			"connect-chat needs content.chatId: a room's UUID or name"))
		return
	}
	cctx, cancel := context.WithTimeout(s.conn.CallContext(), compat.CallTimeout)
	defer cancel()
	room, err := s.clients.Rooms.GetRoom(cctx, &parleyv1.GetRoomRequest{Room: req.chatID})
	if err != nil {
		s.writeError(ctx, apierror.FromError(err))
		return
	}
	ack := frame{Type: "ack", Content: frame{Type: "connect-chat", Content: chatAck{
		ChatID: room.GetId(), Name: room.GetName(), CustomerID: s.me.GetId(), Username: s.me.GetUsername()}}}
	err = s.conn.Switch(ctx, &parleyv1.SubscribeRequest{Room: req.chatID, AfterSequence: req.afterSequence}, ack)
	switch {
	case err == nil:
		s.room = req.chatID
	case !errors.Is(err, compat.ErrClosing):
		s.writeError(ctx, apierror.FromError(err))
	}
}
