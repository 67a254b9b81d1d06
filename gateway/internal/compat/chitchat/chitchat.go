// Package chitchat reproduces the ChitChat API (seed 002): chat rooms by id
// or title under /chats, room tokens for a display name, and a WebSocket
// per room, translated to Parley's rooms, room tokens and streams.
package chitchat

import "parley/gateway/internal/compat"

// API is ChitChat on clients.
type API struct{ clients *compat.Clients }

// New returns the API on Parley's clients.
func New(clients *compat.Clients) *API { return &API{clients: clients} }

func (a *API) Routes() []compat.Route { return nil }

func (a *API) Sockets() []compat.Socket { return []compat.Socket{socket{clients: a.clients}} }
