package chitchat

import (
	"context"
	"net/http"

	"google.golang.org/grpc/status"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
	"parley/gateway/internal/compat"
)

// tokenResponse is ChitChat's answer with a room token.
type tokenResponse struct {
	Status bool   `json:"status"`
	Name   string `json:"name"`
	RoomID string `json:"room_id"`
	Token  string `json:"token"`
}

type tokenRequest struct {
	Secret string `json:"secret"`
	Name   string `json:"name"`
}

func tokenResponseOf(t *parleyv1.RoomToken) tokenResponse {
	return tokenResponse{Status: true, Name: t.GetName(), RoomID: t.GetRoomId(), Token: t.GetToken()}
}

func statusOf(err error) *status.Status { return status.Convert(err) }

func (a *API) createToken(ctx context.Context, w http.ResponseWriter, r *http.Request, params map[string]string) {
	var req tokenRequest
	if e := decode(r, &req); e != nil {
		writeError(w, *e, tokenFields)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, compat.CallTimeout)
	defer cancel()
	tok, err := a.clients.Rooms.CreateRoomToken(cctx, &parleyv1.CreateRoomTokenRequest{
		Room: params["room"], Secret: req.Secret, Name: req.Name})
	if err != nil {
		writeError(w, apierror.FromError(err), tokenFields)
		return
	}
	compat.WriteJSON(w, http.StatusOK, tokenResponseOf(tok))
}

func (a *API) renewToken(ctx context.Context, w http.ResponseWriter, _ *http.Request, params map[string]string) {
	cctx, cancel := context.WithTimeout(ctx, compat.CallTimeout)
	defer cancel()
	tok, err := a.clients.Rooms.RenewRoomToken(cctx, &parleyv1.RenewRoomTokenRequest{Room: params["room"]})
	if err != nil {
		writeError(w, apierror.FromError(err), tokenFields)
		return
	}
	compat.WriteJSON(w, http.StatusOK, tokenResponseOf(tok))
}
