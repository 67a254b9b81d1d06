package chitchat

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
	"parley/gateway/internal/compat"
)

// ChitChat's socket, GET /chats/{room}/ws: the room's joins, leaves and
// messages as {"event_type","name","color","msg"}; a client's "send" posts
// to the room, its "join" and "leave" are accepted and ignored (the server
// announces both when a socket opens and closes). The token is the
// Sec-WebSocket-Protocol, needed for private and hidden rooms only.

type socket struct{ clients *compat.Clients }

func (socket) Pattern() string { return "/chats/{room}/ws" }

// Open subscribes to the room. A client without a token reads and writes a
// public room as a guest, as ChitChat lets it; its messages go out under
// the frame's name.
func (s socket) Open(ctx context.Context, conn compat.Conn, params map[string]string, after *uint64) (compat.Session, *parleyv1.SubscribeRequest, error) {
	room := params["room"]
	sess := &session{clients: s.clients, conn: conn, room: room}
	if !conn.HasToken() {
		cctx, cancel := context.WithTimeout(conn.CallContext(), compat.CallTimeout)
		defer cancel()
		guest, err := s.clients.Rooms.CreateRoomToken(cctx, &parleyv1.CreateRoomTokenRequest{Room: room, Name: guestName})
		if err != nil {
			if reason, _ := apierror.Reason(statusOf(err)); reason == "WRONG_SECRET" {
				err = apierror.StatusError(codes.Unauthenticated, "TOKEN_MISSING", "",
					"this room is password-protected: send its token as the Sec-WebSocket-Protocol")
			}
			return sess, nil, err
		}
		conn.Authorize(guest.GetToken())
		sess.names = map[string]string{}
	}
	return sess, &parleyv1.SubscribeRequest{Room: room, AfterSequence: after}, nil
}

type session struct {
	clients *compat.Clients
	conn    compat.Conn
	room    string
	// names holds a guest's room tokens by display name (nil when the
	// client brought a token of its own); the reader goroutine's.
	names map[string]string
}

// frame is ChitChat's frame, both ways.
type frame struct {
	EventType string `json:"event_type"`
	Name      string `json:"name,omitempty"`
	Color     string `json:"color,omitempty"`
	Msg       string `json:"msg,omitempty"`
}

func (s *session) EventFrame(e *parleyv1.Event) any {
	var t string
	switch e.GetKind() {
	case parleyv1.EventKind_EVENT_KIND_JOIN:
		t = "join"
	case parleyv1.EventKind_EVENT_KIND_LEAVE:
		t = "leave"
	case parleyv1.EventKind_EVENT_KIND_MESSAGE:
		if e.GetDeleted() {
			return nil
		}
		t = "send"
	default:
		return nil // ChitChat has no frame for it
	}
	return frame{EventType: t, Name: e.GetSender(), Color: e.GetColor(), Msg: e.GetText()}
}

// ErrorFrame is {"event_type":"error","error":{"code","error","field"}},
// ChitChat's error in a frame.
func (s *session) ErrorFrame(e apierror.Error) any {
	_, body := render(e, tokenFields)
	return errorFrame{EventType: "error", Error: body.Error}
}

type errorFrame struct {
	EventType string      `json:"event_type"`
	Error     errorDetail `json:"error"`
}

// decodeFrame decodes one client frame, a JSON object; unknown fields are
// ignored.
func decodeFrame(data []byte) (frame, *apierror.Error) {
	var f frame
	malformed := func(msg string) (frame, *apierror.Error) {
		e := apierror.New(http.StatusBadRequest, codes.InvalidArgument, apierror.MalformedJSON, "", msg)
		return f, &e
	}
	if !startsJSONObject(data) { // null would decode into the zero frame
		return malformed("frame is not one JSON object")
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return malformed("frame is not one JSON object: " + err.Error())
	}
	return f, nil
}

// Command runs one frame: "send" posts msg to the room.
func (s *session) Command(ctx context.Context, data []byte) {
	f, e := decodeFrame(data)
	if e != nil {
		_ = s.conn.Write(ctx, s.ErrorFrame(*e))
		return
	}
	switch f.EventType {
	case "join", "leave":
		return
	case "send":
	default:
		_ = s.conn.Write(ctx, s.ErrorFrame(apierror.New(http.StatusBadRequest, codes.InvalidArgument, apierror.UnknownFrameType, "event_type",
			"event_type "+strconv.Quote(f.EventType)+" is not one of join, leave, send")))
		return
	}
	cctx, cancel := context.WithTimeout(s.conn.CallContext(), compat.CallTimeout)
	defer cancel()
	if s.names != nil && f.Name != "" {
		token, ok := s.names[f.Name]
		if !ok {
			t, err := s.clients.Rooms.CreateRoomToken(cctx, &parleyv1.CreateRoomTokenRequest{Room: s.room, Name: f.Name})
			if err != nil {
				_ = s.conn.Write(ctx, s.ErrorFrame(apierror.FromError(err)))
				return
			}
			token = t.GetToken()
			s.names[f.Name] = token
		}
		cctx = withToken(cctx, token)
	}
	if _, err := s.clients.Messages.PostMessage(cctx, &parleyv1.PostMessageRequest{Room: s.room, Text: f.Msg}); err != nil {
		_ = s.conn.Write(ctx, s.ErrorFrame(apierror.FromError(err)))
	}
}
