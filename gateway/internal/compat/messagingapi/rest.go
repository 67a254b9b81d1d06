package messagingapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
	"parley/gateway/internal/compat"
)

// The Messaging API's /user and /chat routes. A user is a Parley account,
// a chat a Parley room (public: the API has no other kind), a chat's users
// its members. Ids are Parley's UUIDs; a user may also be named by
// username and a chat by name, as everywhere in Parley. Errors are
// {"error":"<message>"} with Parley's HTTP status.

// user is the API's user: customerId is what its socket frames call a
// user's id.
type user struct {
	CustomerID string `json:"customerId"`
	Username   string `json:"username"`
	CreatedAt  string `json:"createdAt"`
}

// chat is the API's chat.
type chat struct {
	ChatID    string `json:"chatId"`
	ChatName  string `json:"chatName"`
	CreatedAt string `json:"createdAt"`
}

// membership is a user's place in a chat.
type membership struct {
	CustomerID string `json:"customerId"`
	ChatID     string `json:"chatId"`
	Role       string `json:"role"`
	JoinedAt   string `json:"joinedAt"`
}

// maxListPages bounds how many pages of Parley's paged lists one GET /user
// or GET /chat reads.
const maxListPages = 100

func userOf(u *parleyv1.User) user {
	return user{CustomerID: u.GetId(), Username: u.GetUsername(), CreatedAt: compat.Time(u.GetCreateTime())}
}

func chatOf(r *parleyv1.Room) chat {
	return chat{ChatID: r.GetId(), ChatName: r.GetName(), CreatedAt: compat.Time(r.GetCreateTime())}
}

// writeError answers the API's error body, {"error":"<message>"}.
func writeError(w http.ResponseWriter, e apierror.Error) {
	apierror.SetRetryAfter(w.Header(), e)
	apierror.WriteJSON(w, e.Status, struct {
		Error string `json:"error"`
	}{e.Message})
}

func badRequest(reason, field, msg string) apierror.Error {
	return apierror.New(http.StatusBadRequest, codes.InvalidArgument, reason, field, msg)
}

// decode reads one JSON object into v; unknown fields are ignored, as the
// API does. Anything else (null, which would decode into the zero request,
// an array, data after the object) is MALFORMED_JSON.
func decode(r *http.Request, v any) *apierror.Error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		e := badRequest(apierror.MalformedJSON, "", "reading the body: "+err.Error())
		return &e
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		e := badRequest(apierror.MalformedJSON, "", "the body must be a JSON object")
		return &e
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	err = dec.Decode(v)
	var typeErr *json.UnmarshalTypeError
	var e apierror.Error
	switch {
	case err == nil:
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			e = badRequest(apierror.MalformedJSON, "", "the body must be one JSON object, with nothing after it")
			return &e
		}
		return nil
	case errors.As(err, &typeErr) && typeErr.Field != "":
		e = badRequest(apierror.InvalidFieldValue, typeErr.Field, "field "+typeErr.Field+" has the wrong type")
	default:
		e = badRequest(apierror.MalformedJSON, "", "the body must be a JSON object: "+err.Error())
	}
	return &e
}

// call runs one gRPC call for a route and answers its error; ok is false
// when it failed.
func call[T any](ctx context.Context, w http.ResponseWriter, rpc func(context.Context) (T, error)) (T, bool) {
	cctx, cancel := context.WithTimeout(ctx, compat.CallTimeout)
	defer cancel()
	out, err := rpc(cctx)
	if err != nil {
		writeError(w, apierror.FromError(err))
		return out, false
	}
	return out, true
}

// listAll reads every page of a paged list (at most maxListPages); ok is
// false when a call failed, which it answered.
func listAll[T any](ctx context.Context, w http.ResponseWriter, page func(c context.Context, token string) ([]T, string, error)) ([]T, bool) {
	out := []T{}
	token := ""
	for range maxListPages {
		type result struct {
			items []T
			next  string
		}
		got, ok := call(ctx, w, func(c context.Context) (result, error) {
			items, next, err := page(c, token)
			return result{items, next}, err
		})
		if !ok {
			return nil, false
		}
		out = append(out, got.items...)
		if token = got.next; token == "" {
			break
		}
	}
	return out, true
}

func (a *API) listUsers(ctx context.Context, w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	users, ok := listAll(ctx, w, func(c context.Context, token string) ([]user, string, error) {
		page, err := a.clients.Users.ListUsers(c, &parleyv1.ListUsersRequest{PageToken: token})
		var out []user
		for _, u := range page.GetUsers() {
			out = append(out, userOf(u))
		}
		return out, page.GetNextPageToken(), err
	})
	if ok {
		compat.WriteJSON(w, http.StatusOK, users)
	}
}

func (a *API) getUser(ctx context.Context, w http.ResponseWriter, _ *http.Request, params map[string]string) {
	name := params["id"]
	if name == "" {
		name = params["username"]
	}
	if u, ok := call(ctx, w, func(c context.Context) (*parleyv1.User, error) {
		return a.clients.Users.GetUser(c, &parleyv1.GetUserRequest{User: name})
	}); ok {
		compat.WriteJSON(w, http.StatusOK, userOf(u))
	}
}

// userRequest is the body of POST and PUT /user.
type userRequest struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
}

func (a *API) createUser(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) {
	var req userRequest
	if e := decode(r, &req); e != nil {
		writeError(w, *e)
		return
	}
	create := &parleyv1.CreateUserRequest{}
	if req.Username != nil {
		create.Username = *req.Username
	}
	if req.Password != nil {
		create.Password = *req.Password
	}
	if u, ok := call(ctx, w, func(c context.Context) (*parleyv1.User, error) { return a.clients.Users.CreateUser(c, create) }); ok {
		compat.WriteJSON(w, http.StatusCreated, userOf(u))
	}
}

// updateUser changes the password; a username is for good in Parley, so
// one that differs from the user's is refused.
func (a *API) updateUser(ctx context.Context, w http.ResponseWriter, r *http.Request, params map[string]string) {
	var req userRequest
	if e := decode(r, &req); e != nil {
		writeError(w, *e)
		return
	}
	current, ok := call(ctx, w, func(c context.Context) (*parleyv1.User, error) {
		return a.clients.Users.GetUser(c, &parleyv1.GetUserRequest{User: params["id"]})
	})
	if !ok {
		return
	}
	if req.Username != nil && !strings.EqualFold(*req.Username, current.GetUsername()) {
		writeError(w, badRequest("USERNAME_IMMUTABLE", "username", "a username cannot change; the user is "+current.GetUsername()))
		return
	}
	update := &parleyv1.UpdateUserRequest{User: current.GetId(), Password: req.Password}
	if u, ok := call(ctx, w, func(c context.Context) (*parleyv1.User, error) { return a.clients.Users.UpdateUser(c, update) }); ok {
		compat.WriteJSON(w, http.StatusOK, userOf(u))
	}
}

func (a *API) deleteUser(ctx context.Context, w http.ResponseWriter, _ *http.Request, params map[string]string) {
	if _, ok := call(ctx, w, func(c context.Context) (*parleyv1.DeleteUserResponse, error) {
		return a.clients.Users.DeleteUser(c, &parleyv1.DeleteUserRequest{User: params["id"]})
	}); ok {
		compat.WriteJSON(w, http.StatusNoContent, nil)
	}
}

func (a *API) usersOfChat(ctx context.Context, w http.ResponseWriter, _ *http.Request, params map[string]string) {
	members, ok := call(ctx, w, func(c context.Context) (*parleyv1.ListMembersResponse, error) {
		return a.clients.Rooms.ListMembers(c, &parleyv1.ListMembersRequest{Room: params["chat_id"]})
	})
	if !ok {
		return
	}
	out := make([]user, 0, len(members.GetMembers()))
	for _, m := range members.GetMembers() {
		out = append(out, userOf(m.GetUser()))
	}
	compat.WriteJSON(w, http.StatusOK, out)
}

func (a *API) listChats(ctx context.Context, w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	chats, ok := listAll(ctx, w, func(c context.Context, token string) ([]chat, string, error) {
		page, err := a.clients.Rooms.ListRooms(c, &parleyv1.ListRoomsRequest{PageToken: token})
		var out []chat
		for _, r := range page.GetRooms() {
			out = append(out, chatOf(r))
		}
		return out, page.GetNextPageToken(), err
	})
	if ok {
		compat.WriteJSON(w, http.StatusOK, chats)
	}
}

func (a *API) getChat(ctx context.Context, w http.ResponseWriter, _ *http.Request, params map[string]string) {
	if r, ok := call(ctx, w, func(c context.Context) (*parleyv1.Room, error) {
		return a.clients.Rooms.GetRoom(c, &parleyv1.GetRoomRequest{Room: params["id"]})
	}); ok {
		compat.WriteJSON(w, http.StatusOK, chatOf(r))
	}
}

// chatRequest is the body of POST and PUT /chat: chatName, or chat_name as
// the API's own request collection spells it.
type chatRequest struct {
	ChatName      *string `json:"chatName"`
	ChatNameSnake *string `json:"chat_name"`
}

func (c chatRequest) name() *string {
	if c.ChatName != nil {
		return c.ChatName
	}
	return c.ChatNameSnake
}

func (a *API) createChat(ctx context.Context, w http.ResponseWriter, r *http.Request, _ map[string]string) {
	var req chatRequest
	if e := decode(r, &req); e != nil {
		writeError(w, *e)
		return
	}
	name := req.name()
	if name == nil {
		writeError(w, badRequest("INVALID_ROOM_NAME", "chatName", "chatName is required"))
		return
	}
	if room, ok := call(ctx, w, func(c context.Context) (*parleyv1.Room, error) {
		return a.clients.Rooms.CreateRoom(c, &parleyv1.CreateRoomRequest{Name: *name})
	}); ok {
		compat.WriteJSON(w, http.StatusCreated, chatOf(room))
	}
}

func (a *API) updateChat(ctx context.Context, w http.ResponseWriter, r *http.Request, params map[string]string) {
	var req chatRequest
	if e := decode(r, &req); e != nil {
		writeError(w, *e)
		return
	}
	if room, ok := call(ctx, w, func(c context.Context) (*parleyv1.Room, error) {
		return a.clients.Rooms.UpdateRoom(c, &parleyv1.UpdateRoomRequest{Room: params["id"], Name: req.name()})
	}); ok {
		compat.WriteJSON(w, http.StatusOK, chatOf(room))
	}
}

func (a *API) deleteChat(ctx context.Context, w http.ResponseWriter, _ *http.Request, params map[string]string) {
	if _, ok := call(ctx, w, func(c context.Context) (*parleyv1.DeleteRoomResponse, error) {
		return a.clients.Rooms.DeleteRoom(c, &parleyv1.DeleteRoomRequest{Room: params["id"]})
	}); ok {
		compat.WriteJSON(w, http.StatusNoContent, nil)
	}
}

// chatOfQuery is the chat that /chat/user/{user_id} adds to or removes
// from: the API's route has no place for it, so it comes as ?chat_id=
// (or chatId).
func chatOfQuery(r *http.Request) (string, *apierror.Error) {
	q := r.URL.Query()
	for _, key := range []string{"chat_id", "chatId"} {
		if v := q.Get(key); v != "" {
			return v, nil
		}
	}
	e := badRequest("ROOM_REQUIRED", "chat_id", "name the chat as ?chat_id=<chat id or name>")
	return "", &e
}

func (a *API) addUserToChat(ctx context.Context, w http.ResponseWriter, r *http.Request, params map[string]string) {
	room, e := chatOfQuery(r)
	if e != nil {
		writeError(w, *e)
		return
	}
	if m, ok := call(ctx, w, func(c context.Context) (*parleyv1.Member, error) {
		return a.clients.Rooms.AddMember(c, &parleyv1.AddMemberRequest{Room: room, User: params["user_id"], Password: r.URL.Query().Get("password")})
	}); ok {
		compat.WriteJSON(w, http.StatusCreated, membership{CustomerID: m.GetUser().GetId(), ChatID: m.GetRoomId(),
			Role: m.GetRole(), JoinedAt: compat.Time(m.GetJoinTime())})
	}
}

func (a *API) removeUserFromChat(ctx context.Context, w http.ResponseWriter, r *http.Request, params map[string]string) {
	room, e := chatOfQuery(r)
	if e != nil {
		writeError(w, *e)
		return
	}
	if _, ok := call(ctx, w, func(c context.Context) (*parleyv1.RemoveMemberResponse, error) {
		return a.clients.Rooms.RemoveMember(c, &parleyv1.RemoveMemberRequest{Room: room, User: params["user_id"]})
	}); ok {
		compat.WriteJSON(w, http.StatusNoContent, nil)
	}
}

func (a *API) userHasAccess(ctx context.Context, w http.ResponseWriter, _ *http.Request, params map[string]string) {
	if access, ok := call(ctx, w, func(c context.Context) (*parleyv1.CheckAccessResponse, error) {
		return a.clients.Rooms.CheckAccess(c, &parleyv1.CheckAccessRequest{Room: params["chat_id"], User: params["user_id"]})
	}); ok {
		compat.WriteJSON(w, http.StatusOK, struct {
			HasAccess bool `json:"has_access"`
		}{access.GetAllowed()})
	}
}
