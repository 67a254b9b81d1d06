// Package compat is the seam between the gateway and the APIs it reproduces:
// each lives in a package of its own under compat/ (chitchat: the ChitChat
// API of seed 002; messagingapi: the Messaging API of seed 001) and only
// translates its routes and frames to and from Parley's gRPC services, so
// the server keeps one domain. The gateway mounts every API's Routes and
// Sockets; Parley's own WebSockets (/v1/...:ws) are Sockets too.
//
// Errors reach an API as an apierror.Error (the gRPC code and the reason and
// field of the status's google.rpc.ErrorInfo); each API renders it in its
// own body.
package compat

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
)

// ErrClosing is what Conn.Switch returns when the socket is closing anyway:
// no error frame is due.
var ErrClosing = errors.New("the socket is closing")

// CallTimeout bounds one gRPC call made for a REST request or a frame.
const CallTimeout = 30 * time.Second

// Clients are Parley's gRPC services on the gateway's one connection. Safe
// for concurrent use.
type Clients struct {
	Auth     parleyv1.AuthServiceClient
	Chat     parleyv1.ChatServiceClient
	Messages parleyv1.MessageServiceClient
	Presence parleyv1.PresenceServiceClient
	Rooms    parleyv1.RoomServiceClient
	Users    parleyv1.UserServiceClient
}

// NewClients returns the clients of every service on conn.
func NewClients(conn grpc.ClientConnInterface) *Clients {
	return &Clients{
		Auth:     parleyv1.NewAuthServiceClient(conn),
		Chat:     parleyv1.NewChatServiceClient(conn),
		Messages: parleyv1.NewMessageServiceClient(conn),
		Presence: parleyv1.NewPresenceServiceClient(conn),
		Rooms:    parleyv1.NewRoomServiceClient(conn),
		Users:    parleyv1.NewUserServiceClient(conn),
	}
}

// API is one reproduced API.
type API interface {
	// Routes are its REST routes.
	Routes() []Route
	// Sockets are its WebSocket routes.
	Sockets() []Socket
	// WriteError answers e in the API's error body: the gateway's own
	// refusals of a request under the API's paths (no such route, a
	// malformed query, a body too large or not UTF-8).
	WriteError(w http.ResponseWriter, e apierror.Error)
}

// Route is one REST route. Serve runs with ctx carrying the caller's
// metadata (Authorization and the forwarded headers), ready for a gRPC
// call; the gateway has checked the query and body for UTF-8 and size.
type Route struct {
	Method  string
	Pattern string // grpc-gateway's syntax, e.g. "/chats/{room}"
	Serve   func(ctx context.Context, w http.ResponseWriter, r *http.Request, params map[string]string)
}

// Socket is one WebSocket route and the frames it speaks. The gateway
// upgrades the request (token from Authorization or Sec-WebSocket-Protocol,
// origin check, resume cursor), then opens a Session for the connection.
type Socket interface {
	Pattern() string
	// Open starts the session of one connection. It returns the stream to
	// open first (nil: none until a command calls Conn.Switch). An error
	// refuses the socket: it is accepted, then closed with 4000 + the HTTP
	// status after an error frame, the returned session's when it is not
	// nil. after is the cursor of the request's query, nil when it has none.
	Open(ctx context.Context, conn Conn, params map[string]string, after *uint64) (Session, *parleyv1.SubscribeRequest, error)
}

// Session speaks one connection's frames. Command runs on the connection's
// reader goroutine, one frame at a time; EventFrame and ErrorFrame on its
// writer.
type Session interface {
	// EventFrame is the frame of one event of the stream; nil sends none.
	EventFrame(e *parleyv1.Event) any
	// ErrorFrame is the frame of an error the gateway reports on the
	// socket: a frame it cannot read, the stream's end.
	ErrorFrame(e apierror.Error) any
	// Command runs one text frame from the client and answers it.
	Command(ctx context.Context, data []byte)
}

// Conn is an open WebSocket, as its session acts on it. Safe for
// concurrent use.
type Conn interface {
	// CallContext carries the caller's metadata; a command's calls derive
	// their contexts from it.
	CallContext() context.Context
	// Authorize replaces the token of the socket's later calls and
	// streams (before the first stream opens: Open's).
	Authorize(token string)
	// HasToken reports whether the client offered a token.
	HasToken() bool
	// Write sends one frame as JSON.
	Write(ctx context.Context, frame any) error
	// Switch opens req and, once it is in place, makes it the socket's
	// stream: ack is written first, then its events; the old stream's
	// events not yet sent are dropped. A refusal leaves the socket as it
	// was and is returned.
	Switch(ctx context.Context, req *parleyv1.SubscribeRequest, ack any) error
}

// Time is t as the reproduced APIs write times: RFC 3339 in UTC, "" when
// unset.
func Time(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339Nano)
}

// WriteJSON answers v as JSON with httpStatus; nil writes no body (204).
func WriteJSON(w http.ResponseWriter, httpStatus int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// EventName is a kind's name in lower case: EVENT_KIND_MEMBER_ADDED is
// member_added (SSE event names, frame types).
func EventName(k parleyv1.EventKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "EVENT_KIND_"))
}
