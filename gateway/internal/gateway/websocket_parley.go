package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
	"parley/gateway/internal/compat"
)

// Parley's own WebSocket frames, on a room's stream or the caller's inbox:
//
//	GET /v1/rooms/{room}:ws[?after_sequence=N|after=N]
//	GET /v1/direct-messages:ws[?after_sequence=N|after=N]
//
// The server sends {"type":"event"|"ack"|"error",...}; the client sends
// send, edit, delete, typing and read commands, each answered by an ack or
// an error frame with the command's ref.

// reasonUnsupportedOnSocket refuses a room command on the inbox socket.
const reasonUnsupportedOnSocket = "UNSUPPORTED_ON_THIS_SOCKET"

// parleySocket is the compat.Socket of Parley's frames: one room, or the
// caller's inbox (inbox).
type parleySocket struct {
	pattern  string
	clients  *compat.Clients
	inbox    bool
	encoding *eventJSON
}

func (p parleySocket) Pattern() string { return p.pattern }

func (p parleySocket) Open(_ context.Context, conn compat.Conn, params map[string]string, after *uint64) (compat.Session, *parleyv1.SubscribeRequest, error) {
	req := &parleyv1.SubscribeRequest{AfterSequence: after}
	if p.inbox {
		req.DirectMessages = true
	} else {
		req.Room = params["room"]
	}
	return &parleySession{socket: p, conn: conn, room: req.Room}, req, nil
}

type parleySession struct {
	socket parleySocket
	conn   compat.Conn
	room   string // "" for the inbox
}

// socketFrame is a server→client frame of Parley's socket.
type socketFrame struct {
	Type   string          `json:"type"`
	Ref    json.RawMessage `json:"ref,omitempty"`
	Event  json.RawMessage `json:"event,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *apierror.Error `json:"error,omitempty"`
}

func (s *parleySession) EventFrame(e *parleyv1.Event) any {
	return socketFrame{Type: "event", Event: s.socket.encoding.marshal(e)}
}

func (s *parleySession) ErrorFrame(e apierror.Error) any {
	return socketFrame{Type: "error", Error: &e}
}

func (s *parleySession) writeError(ctx context.Context, ref json.RawMessage, e apierror.Error) {
	_ = s.conn.Write(ctx, socketFrame{Type: "error", Ref: ref, Error: &e})
}

// socketCommand is a client→server frame of Parley's socket.
type socketCommand struct {
	Type string          `json:"type"`
	Ref  json.RawMessage `json:"ref"`
	// send, edit
	Text string `json:"text"`
	// send: the request's idempotency_key.
	IdempotencyKey      string `json:"idempotencyKey"`
	IdempotencyKeyProto string `json:"idempotency_key"`
	// edit, delete: the message's UUID.
	Message string `json:"message"`
	// On the direct-message socket, send and typing: the recipient.
	User string `json:"user"`
	// read: the last sequence number read.
	Sequence flexUint `json:"sequence"`
}

// flexUint takes a JSON number or, as protojson writes 64-bit integers, a
// string of digits.
type flexUint uint64

func (f *flexUint) UnmarshalJSON(b []byte) error {
	n, err := strconv.ParseUint(strings.Trim(string(b), `"`), 10, 64)
	if err != nil {
		return errors.New("not a sequence number")
	}
	*f = flexUint(n)
	return nil
}

var unknownJSONFieldRE = regexp.MustCompile(`unknown field "([^"]*)"`)

// decodeCommand decodes one frame strictly: one JSON object, known fields.
func decodeCommand(data []byte) (socketCommand, *apierror.Error) {
	var cmd socketCommand
	bad := func(reason, field, msg string) (socketCommand, *apierror.Error) {
		e := apierror.New(http.StatusBadRequest, codes.InvalidArgument, reason, field, msg)
		return cmd, &e
	}
	// null decodes into the zero command, and an array or a string into a
	// type error that names no field: a command is an object.
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return bad(apierror.MalformedJSON, "", "frame is not one JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cmd); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch m := unknownJSONFieldRE.FindStringSubmatch(err.Error()); {
		case m != nil:
			return bad(apierror.UnknownField, m[1], "frame: unknown field "+m[1])
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return bad(apierror.InvalidFieldValue, typeErr.Field, "frame: field "+typeErr.Field+" has the wrong type")
		case strings.Contains(err.Error(), "not a sequence number"):
			return bad(apierror.InvalidFieldValue, "sequence", "frame: sequence must be a sequence number")
		}
		return bad(apierror.MalformedJSON, "", "frame is not one JSON object: "+err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad(apierror.MalformedJSON, "", "frame: unexpected data after the JSON object")
	}
	return cmd, nil
}

// Command runs one frame and answers with an ack or an error frame.
func (s *parleySession) Command(ctx context.Context, data []byte) {
	cmd, e := decodeCommand(data)
	if e != nil {
		// Answer to the frame's ref if it has one that can be read.
		var loose struct {
			Ref json.RawMessage `json:"ref"`
		}
		_ = json.Unmarshal(data, &loose)
		s.writeError(ctx, loose.Ref, *e)
		return
	}
	cctx, cancel := context.WithTimeout(s.conn.CallContext(), compat.CallTimeout)
	defer cancel()
	key := cmd.IdempotencyKey
	if key == "" {
		key = cmd.IdempotencyKeyProto
	}
	c := s.socket.clients
	inbox := s.socket.inbox

	var (
		event  *parleyv1.Event
		result proto.Message
		err    error
	)
	switch {
	case cmd.Type == "send" && inbox:
		event, err = c.Messages.SendDirectMessage(cctx, &parleyv1.SendDirectMessageRequest{
			User: cmd.User, Text: cmd.Text, IdempotencyKey: key})
	case cmd.Type == "send":
		event, err = c.Messages.PostMessage(cctx, &parleyv1.PostMessageRequest{
			Room: s.room, Text: cmd.Text, IdempotencyKey: key})
	case cmd.Type == "edit" && !inbox:
		event, err = c.Messages.EditMessage(cctx, &parleyv1.EditMessageRequest{
			Room: s.room, Message: cmd.Message, Text: cmd.Text})
	case cmd.Type == "delete" && !inbox:
		event, err = c.Messages.DeleteMessage(cctx, &parleyv1.DeleteMessageRequest{
			Room: s.room, Message: cmd.Message})
	case cmd.Type == "typing" && inbox:
		result, err = c.Presence.SendTyping(cctx, &parleyv1.SendTypingRequest{User: cmd.User})
	case cmd.Type == "typing":
		result, err = c.Presence.SendTyping(cctx, &parleyv1.SendTypingRequest{Room: s.room})
	case cmd.Type == "read" && !inbox:
		result, err = c.Presence.SetReadMarker(cctx, &parleyv1.SetReadMarkerRequest{
			Room: s.room, Sequence: uint64(cmd.Sequence)})
	case cmd.Type == "edit" || cmd.Type == "delete" || cmd.Type == "read":
		s.writeError(ctx, cmd.Ref, apierror.New(http.StatusBadRequest, codes.InvalidArgument, reasonUnsupportedOnSocket, "type",
			cmd.Type+" is for room sockets; direct messages cannot be edited, deleted or marked read here"))
		return
	default:
		s.writeError(ctx, cmd.Ref, apierror.New(http.StatusBadRequest, codes.InvalidArgument, apierror.UnknownFrameType, "type",
			"frame type "+strconv.Quote(cmd.Type)+" is not one of send, edit, delete, typing, read"))
		return
	}
	if err != nil {
		s.writeError(ctx, cmd.Ref, apierror.FromError(err))
		return
	}
	ack := socketFrame{Type: "ack", Ref: cmd.Ref}
	if event != nil {
		ack.Event = s.socket.encoding.marshal(event)
	} else {
		ack.Result = marshalJSON(result)
	}
	_ = s.conn.Write(ctx, ack)
}
