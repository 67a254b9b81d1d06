package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
)

// The fakes of the signed-in services. "Bearer good" is the one valid token;
// a room named "code-N" fails GetRoom with gRPC code N.

const (
	goodToken = "Bearer good"
	roomID    = "0b7c6f3e-3c1a-4d59-9a57-6a1f0e8f2d10"
	userID    = "7d0f3a52-5e0b-4d3e-8c7e-2f6f3b1c9a44"
)

func tokenError(ctx context.Context) (reason, msg string) {
	md, _ := metadata.FromIncomingContext(ctx)
	switch v := md.Get("authorization"); {
	case len(v) == 0:
		return "TOKEN_MISSING", "sign in first"
	case v[0] != goodToken:
		return "TOKEN_MALFORMED", "bad token"
	}
	return "", ""
}

// signedIn fails a unary call the way the server does without a valid token.
func signedIn(ctx context.Context) error {
	if reason, msg := tokenError(ctx); reason != "" {
		return refuse(ctx, codes.Unauthenticated, reason, "", msg)
	}
	return nil
}

// created marks a creation as the server does: 201 and the new resource's
// path, in header metadata.
func created(ctx context.Context, path string) {
	_ = grpc.SetHeader(ctx, metadata.Pairs(httpCodeKey, "201", locationKey, path))
}

type fakeRooms struct {
	parleyv1.UnimplementedRoomServiceServer
	record func(string)

	mu    sync.Mutex
	rooms []*parleyv1.Room
}

func (f *fakeRooms) CreateRoom(ctx context.Context, req *parleyv1.CreateRoomRequest) (*parleyv1.Room, error) {
	f.record("CreateRoom " + req.GetName())
	if err := signedIn(ctx); err != nil {
		return nil, err
	}
	switch req.GetName() {
	case "":
		return nil, refuse(ctx, codes.InvalidArgument, "NAME_REQUIRED", "name", "name is required")
	case "taken":
		return nil, refuse(ctx, codes.AlreadyExists, "ROOM_NAME_TAKEN", "name", "room name taken")
	}
	room := &parleyv1.Room{Id: roomID, Name: req.GetName(), Visibility: parleyv1.Visibility_VISIBILITY_PUBLIC}
	f.mu.Lock()
	f.rooms = append(f.rooms, room)
	f.mu.Unlock()
	created(ctx, "/v1/rooms/"+roomID)
	return room, nil
}

func (f *fakeRooms) ListRooms(ctx context.Context, _ *parleyv1.ListRoomsRequest) (*parleyv1.ListRoomsResponse, error) {
	f.record("ListRooms")
	if err := signedIn(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &parleyv1.ListRoomsResponse{Rooms: f.rooms}, nil
}

func (f *fakeRooms) GetRoom(ctx context.Context, req *parleyv1.GetRoomRequest) (*parleyv1.Room, error) {
	f.record("GetRoom " + req.GetRoom())
	if n, ok := strings.CutPrefix(req.GetRoom(), "code-"); ok {
		c, _ := strconv.Atoi(n)
		return nil, refuse(ctx, codes.Code(c), "CODE_"+n, "room", "failed as asked")
	}
	return &parleyv1.Room{Id: roomID, Name: req.GetRoom()}, nil
}

type fakeMessages struct {
	parleyv1.UnimplementedMessageServiceServer
	record func(string)
}

func (f *fakeMessages) PostMessage(ctx context.Context, req *parleyv1.PostMessageRequest) (*parleyv1.Event, error) {
	f.record("PostMessage " + req.GetRoom() + " " + req.GetText())
	md, _ := metadata.FromIncomingContext(ctx)
	if key := md.Get("idempotency-key"); len(key) > 0 {
		f.record("idempotency-key metadata " + key[0])
	}
	if req.GetIdempotencyKey() != "" {
		f.record("idempotency_key field " + req.GetIdempotencyKey())
	}
	if err := signedIn(ctx); err != nil {
		return nil, err
	}
	if req.GetRoom() == "missing" {
		return nil, refuse(ctx, codes.NotFound, "ROOM_NOT_FOUND", "room", "no such room")
	}
	created(ctx, "/v1/rooms/"+req.GetRoom()+"/messages/m1")
	return &parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Id: "m1", Sequence: 1, Text: req.GetText()}, nil
}

func (f *fakeMessages) ListMessages(ctx context.Context, req *parleyv1.ListMessagesRequest) (*parleyv1.ListMessagesResponse, error) {
	f.record("ListMessages " + req.GetRoom())
	if err := signedIn(ctx); err != nil {
		return nil, err
	}
	if req.GetRoom() == "rt-seed1" {
		return seed001History(req), nil
	}
	return &parleyv1.ListMessagesResponse{}, nil
}

type fakeUsers struct {
	parleyv1.UnimplementedUserServiceServer
	record func(string)
}

func (f *fakeUsers) CreateUser(ctx context.Context, req *parleyv1.CreateUserRequest) (*parleyv1.User, error) {
	f.record("CreateUser " + req.GetUsername())
	created(ctx, "/v1/users/"+userID)
	return &parleyv1.User{Id: userID, Username: req.GetUsername(), DisplayName: req.GetDisplayName()}, nil
}

func (f *fakeUsers) GetUser(ctx context.Context, req *parleyv1.GetUserRequest) (*parleyv1.User, error) {
	f.record("GetUser " + req.GetUser())
	if err := signedIn(ctx); err != nil {
		return nil, err
	}
	return &parleyv1.User{Id: userID, Username: "alice"}, nil
}

// The seed-004 lobby calls of ChatService.

func (f *fakeChat) ListRecentMessages(_ context.Context, req *parleyv1.ListRecentMessagesRequest) (*parleyv1.ListRecentMessagesResponse, error) {
	f.record("ListRecentMessages " + strconv.Itoa(int(req.GetN())))
	return &parleyv1.ListRecentMessagesResponse{Messages: []*parleyv1.RecentMessage{
		{Timestamp: 1491345710, User: "superman", Text: "hello"},
		{Timestamp: 1491345713, User: "batman", Text: "hello"},
	}}, nil
}

func (f *fakeChat) PostRecentMessage(ctx context.Context, req *parleyv1.PostRecentMessageRequest) (*parleyv1.PostRecentMessageResponse, error) {
	f.record("PostRecentMessage " + req.GetUser() + " " + req.GetText())
	if req.GetUser() == "" {
		return nil, refuse(ctx, codes.InvalidArgument, "USER_REQUIRED", "user", "user is required")
	}
	return &parleyv1.PostRecentMessageResponse{Ok: true}, nil
}

func (f *fakeChat) ListPosters(context.Context, *parleyv1.ListPostersRequest) (*parleyv1.ListPostersResponse, error) {
	f.record("ListPosters")
	return &parleyv1.ListPostersResponse{}, nil
}

// subscribeSignedIn is a room or direct-message stream: refusals before the
// first write, then an empty first write as soon as the stream is in place,
// then one message. Room "wait" holds the message until release.
func (f *fakeChat) subscribeSignedIn(req *parleyv1.SubscribeRequest, stream grpc.ServerStreamingServer[parleyv1.SubscribeResponse]) error {
	what := "room=" + req.GetRoom()
	if req.GetDirectMessages() {
		what = "direct_messages"
	}
	f.record("Subscribe " + what)
	f.mu.Lock()
	f.subscribed = append(f.subscribed, req)
	f.mu.Unlock()
	fail := func(c codes.Code, reason, field, msg string) error {
		return apierror.StatusError(c, reason, field, msg)
	}
	if reason, msg := tokenError(stream.Context()); reason != "" {
		return fail(codes.Unauthenticated, reason, "", msg)
	}
	if strings.HasPrefix(req.GetRoom(), "rt-") {
		return f.realtimeSubscribe(req, stream)
	}
	switch req.GetRoom() {
	case "missing":
		return fail(codes.NotFound, "ROOM_NOT_FOUND", "room", "no such room")
	case "private":
		return fail(codes.PermissionDenied, "NOT_A_MEMBER", "room", "not a member")
	}
	if err := stream.Send(&parleyv1.SubscribeResponse{}); err != nil {
		return err
	}
	if req.GetRoom() == "wait" {
		select {
		case <-f.release:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
	err := stream.Send(&parleyv1.SubscribeResponse{Events: []*parleyv1.Event{{
		Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Sequence: 1, Text: "hello", Room: req.GetRoom(),
	}}})
	f.mu.Lock()
	hold := f.holdInbox && req.GetDirectMessages()
	f.mu.Unlock()
	if err == nil && hold {
		<-stream.Context().Done()
		err = stream.Context().Err()
	}
	return err
}

// compact is body without insignificant white space (protojson varies it).
func compact(t *testing.T, body string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(body)); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	return b.String()
}

func wantCalls(t *testing.T, f *fixture, want ...string) {
	t.Helper()
	if got := f.chat.recorded(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("server got %q, want %q", got, want)
	}
}

// Seed 004: GET /messages without id lists recent messages; with id it is
// still the long poll.
func TestMessagesWithoutIDListsRecentMessages(t *testing.T) {
	f := start(t)
	r := f.get(t, "/messages")
	const want = `{"messages":[{"timestamp":1491345710,"user":"superman","text":"hello"},` +
		`{"timestamp":1491345713,"user":"batman","text":"hello"}]}`
	if r.status != 200 || compact(t, r.body) != want {
		t.Errorf("GET /messages = %d %s, want 200 %s", r.status, r.body, want)
	}
	if r := f.get(t, "/messages?n=5"); r.status != 200 {
		t.Errorf("GET /messages?n=5 = %d %s", r.status, r.body)
	}
	if r := f.get(t, "/messages?id=a&timeout=1"); r.status != 200 || compact(t, r.body) != `{"events":[]}` {
		t.Errorf("GET /messages?id=a = %d %s, want the long poll", r.status, r.body)
	}
	f.get(t, "/messages?id=") // an empty id is still the long poll, which refuses it
	wantCalls(t, f, "ListRecentMessages 0", "ListRecentMessages 5", "Receive a", "Receive ")

	wantError(t, f.get(t, "/messages?n=abc"), 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "n")
	wantError(t, f.get(t, "/messages?n=-1"), 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "n")
	wantError(t, f.do(t, http.MethodPost, "/messages", "", ""), 405, "METHOD_NOT_ALLOWED", "UNIMPLEMENTED", "")
	if n := len(f.chat.recorded()); n != 4 {
		t.Errorf("bad requests reached the server: %q", f.chat.recorded())
	}
}

func TestSeed004PostMessageAndUsers(t *testing.T) {
	f := start(t)
	r := f.do(t, http.MethodPost, "/message", "application/json", `{"user":"superman","text":"hello"}`)
	if r.status != 200 || compact(t, r.body) != `{"ok":true}` {
		t.Errorf("POST /message = %d %s, want 200 {\"ok\":true}", r.status, r.body)
	}
	wantError(t, f.do(t, http.MethodPost, "/message", "application/json", `{"text":"hello"}`),
		400, "USER_REQUIRED", "INVALID_ARGUMENT", "user")
	if r := f.get(t, "/users"); r.status != 200 || compact(t, r.body) != `{"users":[]}` {
		t.Errorf("GET /users = %d %s, want 200 {\"users\":[]}", r.status, r.body)
	}
	wantCalls(t, f, "PostRecentMessage superman hello", "PostRecentMessage  hello", "ListPosters")
}

func TestCreationAnswers201WithAnAbsoluteLocation(t *testing.T) {
	// The test's client is the trusted proxy: forwarded headers count.
	f := startWith(t, context.Background(), handlerConfig{trustedProxies: loopbackProxies})
	host := strings.TrimPrefix(f.url, "http://")
	for _, c := range []struct {
		name, method, target, body string
		header                     []string
		location                   string
	}{
		{"seed 003 POST /rooms", "POST", "/rooms", `{"name":"general"}`, nil,
			"http://" + host + "/v1/rooms/" + roomID},
		{"POST /v1/rooms", "POST", "/v1/rooms", `{"name":"general"}`, nil,
			"http://" + host + "/v1/rooms/" + roomID},
		{"behind a proxy", "POST", "/rooms", `{"name":"general"}`,
			[]string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "chat.example.com, inner.local"},
			"https://chat.example.com/v1/rooms/" + roomID},
		{"a forwarded host that is not a host is ignored", "POST", "/rooms", `{"name":"general"}`,
			[]string{"X-Forwarded-Proto", "javascript", "X-Forwarded-Host", "evil.example/x?"},
			"http://" + host + "/v1/rooms/" + roomID},
		{"behind an RFC 7239 proxy", "POST", "/rooms", `{"name":"general"}`,
			[]string{"Forwarded", `for=192.0.2.60;proto=https;host="chat.example.com:8443", for=10.0.0.1;host=inner.local`},
			"https://chat.example.com:8443/v1/rooms/" + roomID},
		{"seed 003 POST /room/{roomId}/messages", "POST", "/room/r1/messages", `{"text":"hi"}`, nil,
			"http://" + host + "/v1/rooms/r1/messages/m1"},
		{"sign up", "POST", "/v1/users", `{"username":"alice","password":"secret-pw"}`, nil,
			"http://" + host + "/v1/users/" + userID},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.do(t, c.method, c.target, "application/json", c.body,
				append([]string{"Authorization", goodToken}, c.header...)...)
			if r.status != http.StatusCreated {
				t.Errorf("status = %d, want 201; body %s", r.status, r.body)
			}
			if got := r.header.Get("Location"); got != c.location {
				t.Errorf("Location = %q, want %q", got, c.location)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			for k := range r.header {
				if strings.HasPrefix(k, "Grpc-Metadata-X-") {
					t.Errorf("status metadata leaked as %s: %s", k, r.header.Get(k))
				}
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(r.body), &body); err != nil || len(body) == 0 {
				t.Errorf("body %s: %v", r.body, err)
			}
		})
	}

	// Without the server's metadata: 200 and no Location.
	r := f.do(t, http.MethodGet, "/v1/rooms/general", "", "", "Authorization", goodToken)
	if r.status != 200 || r.header.Get("Location") != "" {
		t.Errorf("GET room = %d Location %q, want 200 without Location", r.status, r.header.Get("Location"))
	}
	// Failures keep their own status.
	wantError(t, f.do(t, http.MethodPost, "/rooms", "application/json", `{"name":"taken"}`, "Authorization", goodToken),
		409, "ROOM_NAME_TAKEN", "ALREADY_EXISTS", "name")
	wantError(t, f.do(t, http.MethodPost, "/room/missing/messages", "application/json", `{"text":"hi"}`, "Authorization", goodToken),
		404, "ROOM_NOT_FOUND", "NOT_FOUND", "room")
}

func TestAuthorizationHeaderReachesTheServer(t *testing.T) {
	f := start(t)
	r := f.do(t, http.MethodGet, "/v1/users/me", "", "", "Authorization", goodToken)
	if r.status != 200 || !strings.Contains(r.body, `"alice"`) {
		t.Errorf("with a token = %d %s", r.status, r.body)
	}
	r = f.get(t, "/v1/users/me")
	wantError(t, r, 401, "TOKEN_MISSING", "UNAUTHENTICATED", "")
	if got := r.header.Get("WWW-Authenticate"); got != "Bearer" {
		t.Errorf("WWW-Authenticate = %q, want Bearer", got)
	}
	wantError(t, f.do(t, http.MethodGet, "/rooms", "", "", "Authorization", "Bearer forged"), 401, "TOKEN_MALFORMED", "UNAUTHENTICATED", "")
}

// A token too long to be one is refused before any call, on unary routes,
// streams and the reproduced APIs alike: forwarded, it would overflow the
// server's limit on a call's metadata and fail as a 500.
func TestOversizedTokenIs401BeforeTheServer(t *testing.T) {
	f := start(t)
	big := "Bearer " + strings.Repeat("A", maxAuthorizationBytes)
	wantError(t, f.do(t, http.MethodGet, "/v1/users/me", "", "", "Authorization", big), 401, "TOKEN_MALFORMED", "UNAUTHENTICATED", "")
	wantError(t, f.do(t, http.MethodGet, "/v1/rooms/general:subscribe", "", "", "Authorization", big), 401, "TOKEN_MALFORMED", "UNAUTHENTICATED", "")
	if r := f.do(t, http.MethodGet, "/chats/general", "", "", "Authorization", big); r.status != 401 || !strings.Contains(r.body, `"code":303`) {
		t.Errorf("ChitChat: %d %s, want 401 with code 303", r.status, r.body)
	}
	if calls := f.chat.recorded(); len(calls) != 0 {
		t.Errorf("server got %q, want no calls", calls)
	}
	// A token just within the limit is forwarded.
	if r := f.do(t, http.MethodGet, "/v1/users/me", "", "", "Authorization", big[:maxAuthorizationBytes]); r.status != 401 {
		t.Errorf("a token within the limit: %d %s, want the server's 401", r.status, r.body)
	}
	if calls := f.chat.recorded(); len(calls) != 1 {
		t.Errorf("server got %q, want the one call", calls)
	}
}

// Headers the gateway forwards as metadata are bounded in all, short of the
// server's limit: over it, grpc-go would fail the call as a 500. Headers it
// does not forward (cookies, the user agent, Grpc-Metadata-*) cannot
// overflow it: the call goes through without them.
func TestOversizedHeadersAre431BeforeTheServer(t *testing.T) {
	f := start(t)
	big := strings.Repeat("c", maxMetadataBytes)
	wantError(t, f.do(t, http.MethodGet, "/v1/users/me", "", "", "Idempotency-Key", big, "Authorization", goodToken),
		431, "REQUEST_HEADERS_TOO_LARGE", "INVALID_ARGUMENT", "")
	if r := f.do(t, http.MethodGet, "/chats/general", "", "", "Idempotency-Key", big); r.status != 431 || !strings.Contains(r.body, `"code":201`) {
		t.Errorf("ChitChat: %d %s, want 431 with code 201", r.status, r.body)
	}
	if calls := f.chat.recorded(); len(calls) != 0 {
		t.Errorf("server got %q, want no calls", calls)
	}
	for _, h := range []string{"Cookie", "User-Agent", "Grpc-Metadata-X"} {
		if r := f.do(t, http.MethodGet, "/v1/users/me", "", "", h, big, "Authorization", goodToken); r.status != 200 {
			t.Errorf("a large %s, not forwarded: %d %s, want 200", h, r.status, r.body)
		}
	}
	if calls := f.chat.recorded(); len(calls) != 3 {
		t.Errorf("server got %q, want the three calls", calls)
	}
}

// openStream starts a GET whose body is read line by line by the caller.
func (f *fixture) openStream(t *testing.T, target string, header ...string) (*http.Response, *bufio.Scanner) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.url+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, bufio.NewScanner(resp.Body)
}

// Seed 003: GET /room/{roomId}/subscribe answers 202 as soon as the stream
// is in place, before any message; the /v1 route answers 200.
func TestSeedRoomSubscribeAnswers202AtOnce(t *testing.T) {
	f := start(t)
	resp, lines := f.openStream(t, "/room/wait/subscribe", "Authorization", goodToken)
	// The fake holds the message until released: the status came with the
	// empty first write.
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status = %d, want 202", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !lines.Scan() || compact(t, lines.Text()) != `{"result":{"events":[]}}` {
		t.Fatalf("first line = %q, want the empty first write", lines.Text())
	}
	f.chat.release <- struct{}{}
	if !lines.Scan() || !strings.Contains(lines.Text(), `"hello"`) {
		t.Fatalf("second line = %q, want the message", lines.Text())
	}

	resp, lines = f.openStream(t, "/v1/rooms/r1:subscribe", "Authorization", goodToken)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/v1/rooms/r1:subscribe status = %d, want 200", resp.StatusCode)
	}
	for lines.Scan() {
	}
	wantCalls(t, f, "Subscribe room=wait", "Subscribe room=r1")
}

func TestStreamRefusalsKeepTheirStatusAndErrorShape(t *testing.T) {
	f := start(t)
	for _, c := range []struct {
		target, token    string
		status           int
		code, grpc, fiel string
	}{
		{"/room/r1/subscribe", "", 401, "TOKEN_MISSING", "UNAUTHENTICATED", ""},
		{"/room/missing/subscribe", goodToken, 404, "ROOM_NOT_FOUND", "NOT_FOUND", "room"},
		{"/room/private/subscribe", goodToken, 403, "NOT_A_MEMBER", "PERMISSION_DENIED", "room"},
		{"/v1/rooms/missing:subscribe", goodToken, 404, "ROOM_NOT_FOUND", "NOT_FOUND", "room"},
		{"/v1/direct-messages:subscribe", "Bearer forged", 401, "TOKEN_MALFORMED", "UNAUTHENTICATED", ""},
	} {
		t.Run(c.target, func(t *testing.T) {
			var header []string
			if c.token != "" {
				header = []string{"Authorization", c.token}
			}
			r := f.do(t, http.MethodGet, c.target, "", "", header...)
			wantError(t, r, c.status, c.code, c.grpc, c.fiel)
			if c.status == 401 && r.header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("WWW-Authenticate = %q, want Bearer", r.header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestDirectMessagesSubscribeSetsTheFlag(t *testing.T) {
	f := start(t)
	for _, target := range []string{
		"/v1/direct-messages:subscribe",
		"/v1/direct-messages:subscribe?direct_messages=false",
		"/v1/direct-messages:subscribe?directMessages=false&afterSequence=0",
	} {
		resp, lines := f.openStream(t, target, "Authorization", goodToken)
		if resp.StatusCode != 200 {
			t.Errorf("%s: status %d", target, resp.StatusCode)
		}
		n := 0
		for lines.Scan() {
			n++
		}
		if n != 2 {
			t.Errorf("%s: %d lines, want 2", target, n)
		}
	}
	wantCalls(t, f, "Subscribe direct_messages", "Subscribe direct_messages", "Subscribe direct_messages")
}

// The verb routes of ChatService must win over GetRoom's /v1/rooms/{room}.
func TestRoomSubscribeIsNotTakenForARoomName(t *testing.T) {
	f := start(t)
	resp, lines := f.openStream(t, "/v1/rooms/abc:subscribe", "Authorization", goodToken)
	for lines.Scan() {
	}
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	f.do(t, http.MethodGet, "/v1/rooms/a:b", "", "", "Authorization", goodToken)
	wantCalls(t, f, "Subscribe room=abc", "GetRoom a:b")
}

func TestRoomListIsABareArrayOnTheSeedRoute(t *testing.T) {
	f := start(t)
	auth := []string{"Authorization", goodToken}
	if r := f.do(t, http.MethodGet, "/rooms", "", "", auth...); r.status != 200 || compact(t, r.body) != `[]` {
		t.Errorf("GET /rooms with no rooms = %d %s, want 200 []", r.status, r.body)
	}
	if r := f.do(t, http.MethodGet, "/v1/rooms", "", "", auth...); r.status != 200 ||
		compact(t, r.body) != `{"rooms":[],"nextPageToken":""}` {
		t.Errorf("GET /v1/rooms with no rooms = %d %s", r.status, r.body)
	}
	f.do(t, http.MethodPost, "/rooms", "application/json", `{"name":"one"}`, auth...)
	f.do(t, http.MethodPost, "/rooms", "application/json", `{"name":"two"}`, auth...)
	r := f.do(t, http.MethodGet, "/rooms", "", "", auth...)
	var rooms []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(r.body), &rooms); err != nil || r.status != 200 {
		t.Fatalf("GET /rooms = %d %s: %v", r.status, r.body, err)
	}
	if len(rooms) != 2 || rooms[0].Name != "one" || rooms[1].Name != "two" || rooms[0].ID != roomID {
		t.Errorf("GET /rooms = %s", r.body)
	}
	wantError(t, f.get(t, "/rooms"), 401, "TOKEN_MISSING", "UNAUTHENTICATED", "")
}

func TestGRPCCodesMapToHTTPStatuses(t *testing.T) {
	f := start(t)
	for _, c := range []struct {
		code   codes.Code
		status int
	}{
		{codes.InvalidArgument, 400},
		{codes.FailedPrecondition, 400},
		{codes.OutOfRange, 400},
		{codes.Unauthenticated, 401},
		{codes.PermissionDenied, 403},
		{codes.NotFound, 404},
		{codes.AlreadyExists, 409},
		{codes.Aborted, 409},
		{codes.ResourceExhausted, 429},
		{codes.Unimplemented, 501},
		{codes.Unavailable, 503},
		{codes.DeadlineExceeded, 504},
	} {
		t.Run(c.code.String(), func(t *testing.T) {
			n := strconv.Itoa(int(c.code))
			wantError(t, f.get(t, "/v1/rooms/code-"+n), c.status, "CODE_"+n, code.Code(c.code).String(), "room")
		})
	}
}

// Bad bodies are 400 with the error shape and, where there is one, the
// field; they never reach the server.
func TestMalformedBodiesAre400(t *testing.T) {
	f := start(t)
	for _, c := range []struct {
		name, body  string
		code, field string
	}{
		{"truncated", `{"name":"x"`, apierror.MalformedJSON, ""},
		{"not JSON", `name=x`, apierror.MalformedJSON, ""},
		{"an array", `[]`, apierror.MalformedJSON, ""},
		{"null", `null`, apierror.MalformedJSON, ""},
		{"a string", `"general"`, apierror.MalformedJSON, ""},
		{"trailing data", `{"name":"x"} {"name":"y"}`, apierror.MalformedJSON, ""},
		{"trailing garbage", `{"name":"x"}garbage`, apierror.MalformedJSON, ""},
		{"wrong type", `{"name":5}`, apierror.InvalidFieldValue, "name"},
		{"object for a string", `{"description":{"a":1}}`, apierror.InvalidFieldValue, "description"},
		{"unknown enum", `{"name":"x","visibility":"VISIBILITY_SECRET"}`, apierror.InvalidFieldValue, "visibility"},
		{"unknown field", `{"name":"x","colour":"red"}`, apierror.UnknownField, "colour"},
		{"duplicate field", `{"name":"x","name":"y"}`, apierror.DuplicateField, "name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.do(t, http.MethodPost, "/rooms", "application/json", c.body, "Authorization", goodToken)
			wantError(t, r, 400, c.code, "INVALID_ARGUMENT", c.field)
		})
	}
	wantCalls(t, f)

	// Both JSON names and proto names are accepted; an empty body is an
	// empty request, which the server judges.
	for _, body := range []string{`{"name":"a","visibility":"VISIBILITY_PUBLIC"}`, `{"display_name":"A","username":"a"}`} {
		target := "/rooms"
		if strings.Contains(body, "username") {
			target = "/v1/users"
		}
		if r := f.do(t, http.MethodPost, target, "application/json", body, "Authorization", goodToken); r.status != 201 {
			t.Errorf("POST %s %s = %d %s", target, body, r.status, r.body)
		}
	}
	wantError(t, f.do(t, http.MethodPost, "/rooms", "application/json", "", "Authorization", goodToken),
		400, "NAME_REQUIRED", "INVALID_ARGUMENT", "name")
	wantError(t, f.do(t, http.MethodPost, "/rooms", "application/json", " \n", "Authorization", goodToken),
		400, "NAME_REQUIRED", "INVALID_ARGUMENT", "name")
	wantCalls(t, f, "CreateRoom a", "CreateUser a", "CreateRoom ", "CreateRoom ")
}

// Invalid UTF-8 anywhere in a request, the path of the new routes included,
// is refused before the server.
func TestInvalidUTF8OnTheNewRoutes(t *testing.T) {
	f := start(t)
	auth := []string{"Authorization", goodToken}
	for _, c := range []struct {
		name, method, target, body string
		code, field                string
	}{
		{"path parameter", "GET", "/v1/rooms/%FF", "", apierror.InvalidUTF8, "room"},
		{"seed path parameter", "POST", "/room/ab%C3%28/messages", `{"text":"hi"}`, apierror.InvalidUTF8, "room"},
		{"stream path parameter", "GET", "/room/%FE/subscribe", "", apierror.InvalidUTF8, "room"},
		{"verb route path parameter", "GET", "/v1/rooms/%FE:subscribe", "", apierror.InvalidUTF8, "room"},
		{"query", "GET", "/v1/rooms?pageToken=%FF", "", apierror.InvalidUTF8, "pageToken"},
		{"seed 004 query", "GET", "/messages?n=1&x=%FF", "", apierror.InvalidUTF8, "x"},
		{"JSON body", "POST", "/rooms", "{\"name\":\"\xff\"}", apierror.InvalidUTF8, ""},
		// A lone surrogate escape is no valid string either; protojson
		// refuses it.
		{"JSON body escape", "POST", "/message", `{"user":"a","text":"\udc00"}`, apierror.MalformedJSON, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.do(t, c.method, c.target, "application/json", c.body, auth...)
			wantError(t, r, 400, c.code, "INVALID_ARGUMENT", c.field)
		})
	}
	wantCalls(t, f)
}
