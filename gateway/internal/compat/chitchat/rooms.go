package chitchat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
	"parley/gateway/internal/compat"
)

// room is ChitChat's chat room resource.
type room struct {
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Visibility  string   `json:"visibility"`
	CreatedAt   string   `json:"createdAt"`
	UpdatedAt   string   `json:"updatedAt"`
	ID          string   `json:"id"`
	Users       []string `json:"users"`
}

// roomRequest is the body of POST and PUT /chats: ChitChat's writable
// fields, and its read-only ones, which a client may send back and which
// are ignored.
type roomRequest struct {
	Title       *string `json:"title"`
	Description *string `json:"description"`
	Visibility  *string `json:"visibility"`
	Password    *string `json:"password"`

	ID        json.RawMessage `json:"id"`
	CreatedAt json.RawMessage `json:"createdAt"`
	UpdatedAt json.RawMessage `json:"updatedAt"`
	Users     json.RawMessage `json:"users"`
}

// guestName is the display name of the room token the gateway takes on
// behalf of a caller without a token, in a public room.
const guestName = "guest"

var visibilities = map[string]parleyv1.Visibility{
	"public":  parleyv1.Visibility_VISIBILITY_PUBLIC,
	"private": parleyv1.Visibility_VISIBILITY_PRIVATE,
	"hidden":  parleyv1.Visibility_VISIBILITY_HIDDEN,
}

// parseVisibility reads ChitChat's visibility, in any case.
func parseVisibility(name string) (parleyv1.Visibility, *apierror.Error) {
	v, ok := visibilities[strings.ToLower(name)]
	if !ok {
		e := badRequest("INVALID_VISIBILITY", "visibility", "visibility must be public, private or hidden")
		return v, &e
	}
	return v, nil
}

func visibilityName(v parleyv1.Visibility) string {
	for name, value := range visibilities {
		if value == v {
			return name
		}
	}
	return "public"
}

func roomOf(r *parleyv1.Room, users []string) room {
	if users == nil {
		users = []string{}
	}
	return room{Title: r.GetName(), Description: r.GetDescription(), Visibility: visibilityName(r.GetVisibility()),
		CreatedAt: compat.Time(r.GetCreateTime()), UpdatedAt: compat.Time(r.GetUpdateTime()), ID: r.GetId(), Users: users}
}

func badRequest(reason, field, msg string) apierror.Error {
	return apierror.New(http.StatusBadRequest, codes.InvalidArgument, reason, field, msg)
}

// decode reads one JSON object into v, refusing unknown fields.
func decode(r *http.Request, v any) *apierror.Error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		e := badRequest(apierror.MalformedJSON, "", "reading the body: "+err.Error())
		return &e
	}
	// null would decode into the zero request, and an array or a string
	// into a type error that names no field.
	if !startsJSONObject(body) {
		e := badRequest(apierror.MalformedJSON, "", "the body must be one JSON object")
		return &e
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var e apierror.Error
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			e = badRequest(apierror.InvalidFieldValue, typeErr.Field, "field "+typeErr.Field+" has the wrong type")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			e = badRequest(apierror.UnknownField, field, "unknown field "+field)
		default:
			e = badRequest(apierror.MalformedJSON, "", "the body must be one JSON object: "+err.Error())
		}
		return &e
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		e := badRequest(apierror.MalformedJSON, "", "unexpected data after the JSON object")
		return &e
	}
	return nil
}

// startsJSONObject reports whether data, past white space, opens a JSON
// object.
func startsJSONObject(data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}

// withToken is ctx calling with token instead of the caller's own.
func withToken(ctx context.Context, token string) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set("authorization", "Bearer "+token)
	return metadata.NewOutgoingContext(ctx, md)
}

// hasToken reports whether the request carries a token.
func hasToken(r *http.Request) bool { return r.Header.Get("Authorization") != "" }

// guestContext is ctx with a room token for guestName in room, which
// Parley issues without a secret for a public room only: what a caller
// without a token may do in a public room, ChitChat's rule. Elsewhere the
// caller is told to authorize (or that a hidden room does not exist).
func (a *API) guestContext(ctx context.Context, roomID string) (context.Context, error) {
	tok, err := a.clients.Rooms.CreateRoomToken(ctx, &parleyv1.CreateRoomTokenRequest{Room: roomID, Name: guestName})
	if err != nil {
		if reason, _ := apierror.Reason(statusOf(err)); reason == "WRONG_SECRET" {
			return nil, apierror.StatusError(codes.Unauthenticated, "TOKEN_MISSING", "",
				"this room is password-protected: get a token at /chats/"+roomID+"/token and send it as Authorization: Bearer")
		}
		return nil, err
	}
	return withToken(ctx, tok.GetToken()), nil
}

func (a *API) createRoom(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) {
	var req roomRequest
	if e := decode(r, &req); e != nil {
		writeError(w, *e, fieldNames)
		return
	}
	create := &parleyv1.CreateRoomRequest{}
	if req.Title == nil || *req.Title == "" {
		writeError(w, badRequest("INVALID_ROOM_NAME", "title", "title is required"), fieldNames)
		return
	}
	create.Title = *req.Title
	if req.Description != nil {
		create.Description = *req.Description
	}
	if req.Visibility == nil {
		writeError(w, badRequest("INVALID_VISIBILITY", "visibility", "visibility is required: public, private or hidden"), fieldNames)
		return
	}
	v, e := parseVisibility(*req.Visibility)
	if e != nil {
		writeError(w, *e, fieldNames)
		return
	}
	create.Visibility = v
	if req.Password != nil {
		create.Password = *req.Password
	}
	cctx, cancel := context.WithTimeout(ctx, compat.CallTimeout)
	defer cancel()
	created, err := a.clients.Rooms.CreateRoom(cctx, create)
	if err != nil {
		writeError(w, apierror.FromError(err), fieldNames)
		return
	}
	compat.WriteJSON(w, http.StatusCreated, roomOf(created, nil))
}

func (a *API) getRoom(ctx context.Context, w http.ResponseWriter, r *http.Request, params map[string]string) {
	cctx, cancel := context.WithTimeout(ctx, compat.CallTimeout)
	defer cancel()
	if !hasToken(r) {
		var err error
		if cctx, err = a.guestContext(cctx, params["room"]); err != nil {
			writeError(w, apierror.FromError(err), fieldNames)
			return
		}
	}
	got, err := a.clients.Rooms.GetRoom(cctx, &parleyv1.GetRoomRequest{Room: params["room"]})
	if err != nil {
		writeError(w, apierror.FromError(err), fieldNames)
		return
	}
	compat.WriteJSON(w, http.StatusOK, roomOf(got, a.users(cctx, got.GetId())))
}

// users names who is in the room's chat now (has a stream open), as far as
// the caller may see; none when it may not.
func (a *API) users(ctx context.Context, roomID string) []string {
	presence, err := a.clients.Presence.ListPresence(ctx, &parleyv1.ListPresenceRequest{Room: roomID})
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(presence.GetUsers()))
	for _, u := range presence.GetUsers() {
		names = append(names, u.GetName())
	}
	return names
}

func (a *API) updateRoom(ctx context.Context, w http.ResponseWriter, r *http.Request, params map[string]string) {
	var req roomRequest
	if e := decode(r, &req); e != nil {
		writeError(w, *e, fieldNames)
		return
	}
	update := &parleyv1.UpdateRoomRequest{Room: params["room"], Name: req.Title, Description: req.Description, Password: req.Password}
	if req.Visibility != nil {
		v, e := parseVisibility(*req.Visibility)
		if e != nil {
			writeError(w, *e, fieldNames)
			return
		}
		update.Visibility = &v
	}
	cctx, cancel := context.WithTimeout(ctx, compat.CallTimeout)
	defer cancel()
	updated, err := a.clients.Rooms.UpdateRoom(cctx, update)
	if err != nil {
		writeError(w, apierror.FromError(err), fieldNames)
		return
	}
	compat.WriteJSON(w, http.StatusOK, roomOf(updated, a.users(cctx, updated.GetId())))
}

func (a *API) deleteRoom(ctx context.Context, w http.ResponseWriter, _ *http.Request, params map[string]string) {
	cctx, cancel := context.WithTimeout(ctx, compat.CallTimeout)
	defer cancel()
	if _, err := a.clients.Rooms.DeleteRoom(cctx, &parleyv1.DeleteRoomRequest{Room: params["room"]}); err != nil {
		writeError(w, apierror.FromError(err), fieldNames)
		return
	}
	compat.WriteJSON(w, http.StatusOK, struct {
		Status bool `json:"status"`
	}{true})
}
