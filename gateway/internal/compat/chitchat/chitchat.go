// Package chitchat reproduces the ChitChat API (seed 002): chat rooms by id
// or title under /chats, room tokens for a display name, and a WebSocket
// per room, translated to Parley's rooms, room tokens and streams.
//
// Where ChitChat asks for no credential, Parley asks for the least that
// keeps a room safe (docs/decisions.md, "The reproduced APIs"): reading a
// public room and its socket need none (the gateway takes a room token for
// "guest" on the caller's behalf, which Parley gives for a public room
// without a secret); creating a room takes a user token, which makes its
// creator the owner; changing or deleting one takes the owner's (or an
// admin's) user token, not a room token, which anyone may get for a public
// room and any member knows the password of for a private one.
package chitchat

import (
	"net/http"

	"parley/gateway/internal/apierror"
	"parley/gateway/internal/compat"
)

// API is ChitChat on clients.
type API struct{ clients *compat.Clients }

// New returns the API on Parley's clients.
func New(clients *compat.Clients) *API { return &API{clients: clients} }

func (a *API) Routes() []compat.Route {
	return []compat.Route{
		{Method: http.MethodPost, Pattern: "/chats", Serve: a.createRoom},
		{Method: http.MethodGet, Pattern: "/chats/{room}", Serve: a.getRoom},
		{Method: http.MethodPut, Pattern: "/chats/{room}", Serve: a.updateRoom},
		{Method: http.MethodDelete, Pattern: "/chats/{room}", Serve: a.deleteRoom},
		{Method: http.MethodPost, Pattern: "/chats/{room}/token", Serve: a.createToken},
		{Method: http.MethodPost, Pattern: "/chats/{room}/token/renew", Serve: a.renewToken},
		{Method: http.MethodGet, Pattern: "/chats/{room}/token/renew", Serve: a.renewToken},
	}
}

func (a *API) Sockets() []compat.Socket { return []compat.Socket{socket{clients: a.clients}} }

func (a *API) WriteError(w http.ResponseWriter, e apierror.Error) { writeError(w, e, fieldNames) }
