// Package messagingapi reproduces the Messaging API (seed 001): users under
// /user, chats under /chat and one WebSocket, /ws, whose frames are
// {"type":...,"content":...} both ways. A chat is a Parley room, a user a
// Parley account; every route but creating a user takes the caller's user
// token, and the token alone says who the caller is.
package messagingapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"parley/gateway/internal/apierror"
	"parley/gateway/internal/compat"
)

// API is the Messaging API on clients.
type API struct{ clients *compat.Clients }

// New returns the API on Parley's clients.
func New(clients *compat.Clients) *API { return &API{clients: clients} }

func (a *API) Routes() []compat.Route {
	return []compat.Route{
		{Method: http.MethodGet, Pattern: "/user", Serve: a.listUsers},
		{Method: http.MethodPost, Pattern: "/user", Serve: a.createUser},
		{Method: http.MethodGet, Pattern: "/user/{id}", Serve: a.getUser},
		{Method: http.MethodPut, Pattern: "/user/{id}", Serve: a.updateUser},
		{Method: http.MethodDelete, Pattern: "/user/{id}", Serve: a.deleteUser},
		{Method: http.MethodGet, Pattern: "/user/username/{username}", Serve: a.getUser},
		{Method: http.MethodGet, Pattern: "/user/chat/{chat_id}", Serve: a.usersOfChat},
		{Method: http.MethodGet, Pattern: "/chat", Serve: a.listChats},
		{Method: http.MethodPost, Pattern: "/chat", Serve: a.createChat},
		{Method: http.MethodGet, Pattern: "/chat/{id}", Serve: a.getChat},
		{Method: http.MethodPut, Pattern: "/chat/{id}", Serve: a.updateChat},
		{Method: http.MethodDelete, Pattern: "/chat/{id}", Serve: a.deleteChat},
		{Method: http.MethodGet, Pattern: "/chat/user/{user_id}", Serve: a.addUserToChat},
		{Method: http.MethodDelete, Pattern: "/chat/user/{user_id}", Serve: a.removeUserFromChat},
		{Method: http.MethodGet, Pattern: "/chat/user/{user_id}/chat/{chat_id}/access", Serve: a.userHasAccess},
	}
}

func (a *API) Sockets() []compat.Socket { return []compat.Socket{socket{clients: a.clients}} }

func (a *API) WriteError(w http.ResponseWriter, e apierror.Error) { writeError(w, e) }

// rawJSON is m in protojson, for the Parley values a frame carries as they
// are (a time, an event of a kind the Messaging API does not know).
func rawJSON(m proto.Message) json.RawMessage {
	b, err := protojson.Marshal(m)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// readID reads an id given as a JSON string or number (the Messaging API
// numbers its ids); absent or null is "".
func readID(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil && !strings.ContainsAny(n.String(), ".eE-") {
		return n.String(), true
	}
	return "", false
}
