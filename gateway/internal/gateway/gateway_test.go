package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
)

// fakeChat stands in for the C++ server: just enough behaviour to drive every
// path of the gateway, with the server's error trailers.
type fakeChat struct {
	parleyv1.UnimplementedChatServiceServer

	mu    sync.Mutex
	calls []string // "Send a hi", in arrival order

	receiveCancelled chan struct{}                // closed when a blocking Receive sees its ctx end
	release          chan struct{}                // each receive lets Subscribe send one more line
	subscribed       []*parleyv1.SubscribeRequest // every room or inbox Subscribe, in order
	polled           []*parleyv1.PollRequest      // every Poll, in order
	holdInbox        bool                         // inbox streams stay open after their message
}

func newFakeChat() *fakeChat {
	return &fakeChat{receiveCancelled: make(chan struct{}), release: make(chan struct{})}
}

func (f *fakeChat) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeChat) recorded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// refuse fails a call the way the C++ server does: a status with the reason
// and field in an ErrorInfo detail.
func refuse(_ context.Context, c codes.Code, reason, field, msg string) error {
	return apierror.StatusError(c, reason, field, msg)
}

func (f *fakeChat) Join(ctx context.Context, req *parleyv1.JoinRequest) (*parleyv1.JoinResponse, error) {
	f.record("Join " + req.GetId())
	switch req.GetId() {
	case "":
		return nil, refuse(ctx, codes.InvalidArgument, "ID_REQUIRED", "id", "id is required")
	case "taken":
		return nil, refuse(ctx, codes.AlreadyExists, "ALREADY_JOINED", "id", "already joined")
	case "plain":
		return nil, status.Error(codes.NotFound, "no reason given")
	}
	return &parleyv1.JoinResponse{Event: &parleyv1.Event{
		Kind: parleyv1.EventKind_EVENT_KIND_JOIN, Room: "lobby", Sequence: 1, Sender: req.GetId(),
	}}, nil
}

func (f *fakeChat) Send(ctx context.Context, req *parleyv1.SendRequest) (*parleyv1.SendResponse, error) {
	f.record("Send " + req.GetId() + " " + req.GetMessage())
	if len(req.GetMessage()) > 10 {
		return nil, refuse(ctx, codes.InvalidArgument, "MESSAGE_TOO_LONG", "message", "message too long")
	}
	return &parleyv1.SendResponse{Event: &parleyv1.Event{
		Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Sequence: 2, Sender: req.GetId(), Text: req.GetMessage(),
	}}, nil
}

func (f *fakeChat) Receive(ctx context.Context, req *parleyv1.ReceiveRequest) (*parleyv1.ReceiveResponse, error) {
	f.record("Receive " + req.GetId())
	if req.GetId() == "block" {
		<-ctx.Done()
		close(f.receiveCancelled)
		return nil, ctx.Err()
	}
	return &parleyv1.ReceiveResponse{}, nil
}

func (f *fakeChat) Subscribe(req *parleyv1.SubscribeRequest, stream grpc.ServerStreamingServer[parleyv1.SubscribeResponse]) error {
	if req.GetRoom() != "" || req.GetDirectMessages() {
		return f.subscribeSignedIn(req, stream)
	}
	f.record("Subscribe " + req.GetId())
	if req.GetId() == "stranger" {
		return apierror.StatusError(codes.FailedPrecondition, "NOT_JOINED", "id", "not joined")
	}
	for i := 1; i <= 3; i++ {
		if i > 1 {
			select {
			case <-f.release:
			case <-stream.Context().Done():
				return stream.Context().Err()
			}
		}
		err := stream.Send(&parleyv1.SubscribeResponse{Events: []*parleyv1.Event{{
			Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Sequence: uint64(i), Text: "m" + strconv.Itoa(i),
		}}})
		if err != nil {
			return err
		}
	}
	if req.GetId() == "shutdown" {
		return status.Error(codes.Unavailable, "server shutting down")
	}
	return nil
}

// client bounds every request, so that a gateway that fails to flush or to
// end a stream fails the test instead of hanging it.
var client = &http.Client{Timeout: 10 * time.Second}

type fixture struct {
	chat   *fakeChat
	rooms  *fakeRooms
	msgs   *fakeMessages
	users  *fakeUsers
	pres   *fakePresence
	health *health.Server
	url    string
	grpc   *grpc.Server
	addr   string // of the fake gRPC server
	// handler is the gateway under test.
	handler *handler
}

// start runs the fake server on a free port and the gateway handler in
// front of it.
func start(t *testing.T) *fixture {
	t.Helper()
	return startWith(t, context.Background(), handlerConfig{})
}

// startWith is start with the handler's context (its end is the gateway's
// shutdown) and settings.
func startWith(t *testing.T, ctx context.Context, cfg handlerConfig) *fixture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{chat: newFakeChat(), health: health.NewServer(), grpc: grpc.NewServer(), addr: ln.Addr().String()}
	f.rooms, f.msgs, f.users = &fakeRooms{record: f.chat.record}, &fakeMessages{record: f.chat.record}, &fakeUsers{record: f.chat.record}
	f.pres = &fakePresence{record: f.chat.record}
	parleyv1.RegisterChatServiceServer(f.grpc, f.chat)
	parleyv1.RegisterPresenceServiceServer(f.grpc, f.pres)
	parleyv1.RegisterRoomServiceServer(f.grpc, f.rooms)
	parleyv1.RegisterMessageServiceServer(f.grpc, f.msgs)
	parleyv1.RegisterUserServiceServer(f.grpc, f.users)
	healthpb.RegisterHealthServer(f.grpc, f.health)
	go f.grpc.Serve(ln)
	t.Cleanup(f.grpc.Stop)

	conn, err := grpc.NewClient(ln.Addr().String(), DialOptions(defaultMaxRecvMsgBytes)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := newHandler(ctx, conn, log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.handler = h
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

type response struct {
	status int
	header http.Header
	body   string
}

func (f *fixture) do(t *testing.T, method, target, contentType, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, f.url+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (f *fixture) get(t *testing.T, target string) response {
	t.Helper()
	return f.do(t, http.MethodGet, target, "", "")
}

// wantError asserts the one error shape, with exactly the given fields.
func wantError(t *testing.T, r response, httpStatus int, code, grpcCode, field string) {
	t.Helper()
	if r.status != httpStatus {
		t.Errorf("status = %d, want %d; body %s", r.status, httpStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Error == nil {
		t.Fatalf("body is not {\"error\":{...}}: %v: %s", err, r.body)
	}
	e := body.Error
	if e["code"] != code || e["grpc_code"] != grpcCode || e["status"] != float64(httpStatus) {
		t.Errorf("error = %v, want code %s, grpc_code %s, status %d", e, code, grpcCode, httpStatus)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("error has no message: %v", e)
	}
	if field == "" {
		if _, ok := e["field"]; ok {
			t.Errorf("error names field %v, want none", e["field"])
		}
	} else if e["field"] != field {
		t.Errorf("field = %v, want %q", e["field"], field)
	}
}

func TestServerReasonAndFieldBecomeTheErrorCode(t *testing.T) {
	f := start(t)
	wantError(t, f.get(t, "/join?id="), 400, "ID_REQUIRED", "INVALID_ARGUMENT", "id")
	wantError(t, f.get(t, "/join?id=taken"), 409, "ALREADY_JOINED", "ALREADY_EXISTS", "id")
}

func TestMessageTooLongIs413(t *testing.T) {
	f := start(t)
	wantError(t, f.get(t, "/send?id=a&message=far+too+long+a+message"), 413, "MESSAGE_TOO_LONG", "INVALID_ARGUMENT", "message")
}

func TestErrorWithoutReasonUsesGRPCCodeName(t *testing.T) {
	f := start(t)
	wantError(t, f.get(t, "/join?id=plain"), 404, "NOT_FOUND", "NOT_FOUND", "")
}

func TestInvalidUTF8IsRefusedBeforeTheServer(t *testing.T) {
	f := start(t)
	wantError(t, f.get(t, "/send?id=a&message=%FF"), 400, "INVALID_UTF8", "INVALID_ARGUMENT", "message")
	wantError(t, f.get(t, "/join?id=%C3%28"), 400, "INVALID_UTF8", "INVALID_ARGUMENT", "id")
	wantError(t, f.do(t, http.MethodPost, "/send?id=a", "application/x-www-form-urlencoded", "message=%FE"),
		400, "INVALID_UTF8", "INVALID_ARGUMENT", "message")
	wantError(t, f.do(t, http.MethodPost, "/join?id=a", "application/json", "{\"id\":\"\xff\"}"),
		400, "INVALID_UTF8", "INVALID_ARGUMENT", "")
	if calls := f.chat.recorded(); len(calls) != 0 {
		t.Errorf("server got %q, want no calls", calls)
	}
}

func TestMalformedQueryIs400(t *testing.T) {
	f := start(t)
	wantError(t, f.get(t, "/join?id=%ZZ"), 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "")
}

func TestUnparsableNumberNamesTheParameter(t *testing.T) {
	f := start(t)
	wantError(t, f.get(t, "/messages?id=a&timeout=abc"), 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "timeout")
	wantError(t, f.get(t, "/messages?id=a&maxEvents=-3"), 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "maxEvents")
	if calls := f.chat.recorded(); len(calls) != 0 {
		t.Errorf("server got %q, want no calls", calls)
	}
}

func TestUnknownRouteIs404AndWrongMethodIs405(t *testing.T) {
	f := start(t)
	wantError(t, f.get(t, "/nope"), 404, "NOT_FOUND", "NOT_FOUND", "")
	wantError(t, f.do(t, http.MethodPost, "/messages?id=a", "", ""), 405, "METHOD_NOT_ALLOWED", "UNIMPLEMENTED", "")
	wantError(t, f.do(t, http.MethodDelete, "/join?id=a", "", ""), 405, "METHOD_NOT_ALLOWED", "UNIMPLEMENTED", "")
}

func TestGetAndPostWithEmptyBodyReachTheServer(t *testing.T) {
	f := start(t)
	for _, r := range []response{
		f.get(t, "/join?id=a"),
		f.do(t, http.MethodPost, "/join?id=b", "", ""),
		f.do(t, http.MethodPost, "/send?id=a&message=hi", "application/x-www-form-urlencoded", ""),
		f.do(t, http.MethodPost, "/send", "application/x-www-form-urlencoded", "id=a&message=form"),
	} {
		if r.status != 200 {
			t.Errorf("status = %d, body %s", r.status, r.body)
		}
	}
	want := []string{"Join a", "Join b", "Send a hi", "Send a form"}
	if got := f.chat.recorded(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("server got %q, want %q", got, want)
	}
}

func TestResponsesEmitEmptyFieldsAndEventsOnlyTheirKinds(t *testing.T) {
	f := start(t)
	r := f.get(t, "/messages?id=a&timeout=1")
	if r.status != 200 || strings.TrimSpace(r.body) != `{"events":[]}` {
		t.Errorf("empty poll = %d %s, want 200 {\"events\":[]}", r.status, r.body)
	}
	r = f.get(t, "/join?id=a")
	var body struct {
		Event map[string]any `json:"event"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"kind", "sequence", "sender"} {
		if _, ok := body.Event[k]; !ok {
			t.Errorf("join event lacks %q: %s", k, r.body)
		}
	}
	for _, k := range []string{"gapFirstSequence", "text", "previousVersions", "typingExpireTime"} {
		if _, ok := body.Event[k]; ok {
			t.Errorf("join event has %q, which a join does not set: %s", k, r.body)
		}
	}
	if body.Event["kind"] != "EVENT_KIND_JOIN" {
		t.Errorf("kind = %v, want EVENT_KIND_JOIN", body.Event["kind"])
	}
}

func TestSubscribeStreamsOneFlushedLinePerMessage(t *testing.T) {
	f := start(t)
	resp, err := client.Get(f.url + "/subscribe?id=a")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if h := resp.Header.Get("Grpc-Metadata-Content-Type"); h != "" {
		t.Errorf("transport metadata leaked into the headers: Grpc-Metadata-Content-Type: %s", h)
	}
	lines := bufio.NewScanner(resp.Body)
	for i := 1; i <= 3; i++ {
		// The fake sends line i only after line i-1 was read here, so each
		// line must have been flushed on its own.
		if i > 1 {
			f.chat.release <- struct{}{}
		}
		if !lines.Scan() {
			t.Fatalf("stream ended before line %d: %v", i, lines.Err())
		}
		var line struct {
			Result struct {
				Events []struct {
					Text string `json:"text"`
				} `json:"events"`
			} `json:"result"`
		}
		if err := json.Unmarshal(lines.Bytes(), &line); err != nil {
			t.Fatalf("line %d %q: %v", i, lines.Text(), err)
		}
		if len(line.Result.Events) != 1 || line.Result.Events[0].Text != "m"+strconv.Itoa(i) {
			t.Errorf("line %d = %s", i, lines.Text())
		}
	}
	if lines.Scan() {
		t.Errorf("unexpected line after the stream ended: %s", lines.Text())
	}
}

func TestStreamErrorsUseTheErrorShape(t *testing.T) {
	f := start(t)
	// Before the first line: a plain HTTP error.
	wantError(t, f.get(t, "/subscribe?id=stranger"), 400, "NOT_JOINED", "FAILED_PRECONDITION", "id")

	// After lines were sent: a last line holding the error.
	resp, err := client.Get(f.url + "/subscribe?id=shutdown")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go func() { f.chat.release <- struct{}{}; f.chat.release <- struct{}{} }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 3 results and an error: %s", len(lines), b)
	}
	var last apierror.Body
	if err := json.Unmarshal([]byte(lines[3]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Error.Code != "UNAVAILABLE" || last.Error.Status != 503 || last.Error.Message == "" {
		t.Errorf("last line = %s, want an UNAVAILABLE error", lines[3])
	}
}

func TestClientDisconnectCancelsTheUpstreamCall(t *testing.T) {
	f := start(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/messages?id=block&timeout=60", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !contains(f.chat.recorded(), "Receive block") {
		if time.Now().After(deadline) {
			t.Fatal("the poll never reached the server")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-f.chat.receiveCancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's Receive was not cancelled after the client went away")
	}
	<-done
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestHealthzFollowsTheServersHealth(t *testing.T) {
	f := start(t)
	r := f.get(t, "/healthz")
	want := `{"status":"SERVING","servers":[{"address":"` + f.addr + `","status":"SERVING"}]}`
	if r.status != 200 || strings.TrimSpace(r.body) != want {
		t.Errorf("healthz = %d %s, want 200 %s", r.status, r.body, want)
	}
	f.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if r := f.get(t, "/healthz"); r.status != 503 || !strings.Contains(r.body, "NOT_SERVING") {
		t.Errorf("healthz = %d %s, want 503 NOT_SERVING", r.status, r.body)
	}
	f.grpc.Stop()
	if r := f.get(t, "/healthz"); r.status != 503 || !strings.Contains(r.body, "UNAVAILABLE") {
		t.Errorf("healthz with the server gone = %d %s, want 503 UNAVAILABLE", r.status, r.body)
	}
}

// An unhealthy gateway says why in its own log: the address it dialled and
// what the dial answered, once per change of state.
func TestHealthzLogsTheDialledAddressAndTheDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close() // nothing listens there now: every dial is refused
	conn, err := grpc.NewClient(target, DialOptions(0)...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var buf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	h := healthHandler(newUpstreamHealth(nil, conn), log)
	for i := 0; i < 2; i++ {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil), nil)
		if rec.Code != 503 || !strings.Contains(rec.Body.String(), "UNAVAILABLE") {
			t.Fatalf("healthz = %d %s, want 503 UNAVAILABLE", rec.Code, rec.Body)
		}
	}
	mu.Lock()
	got := buf.String()
	mu.Unlock()
	if !strings.Contains(got, "grpc_server="+target) || !strings.Contains(got, "connection refused") {
		t.Errorf("log = %q, want the address %s and the dial's answer", got, target)
	}
	if n := strings.Count(got, "upstream server not reachable"); n != 1 {
		t.Errorf("logged %d times for one unchanged failure, want 1: %q", n, got)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestOpenAPIDocumentIsServed(t *testing.T) {
	f := start(t)
	r := f.get(t, "/openapi.json")
	var doc struct {
		Swagger string         `json:"swagger"`
		Paths   map[string]any `json:"paths"`
	}
	if r.status != 200 {
		t.Fatalf("status = %d", r.status)
	}
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/join", "/send", "/leave", "/messages", "/subscribe"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("paths lack %s", p)
		}
	}
}

func TestTheBrowserPageIsServedAtTheRootAndTheAPIStaysReachable(t *testing.T) {
	f := start(t)
	page := f.get(t, "/")
	if page.status != 200 || !strings.Contains(page.body, "<html") {
		t.Fatalf("GET / = %d %.80q, want the page", page.status, page.body)
	}
	if js := f.get(t, "/static/js/app.js"); js.status != 200 {
		t.Errorf("GET /static/js/app.js = %d", js.status)
	}
	if missing := f.get(t, "/static/nope.js"); missing.status != 404 {
		t.Errorf("GET /static/nope.js = %d, want 404", missing.status)
	}
	if doc := f.get(t, "/openapi.json"); doc.status != 200 {
		t.Errorf("GET /openapi.json = %d next to the page", doc.status)
	}
}

func TestRunWritesThePortFileProbesHealthAndStopsOnCancel(t *testing.T) {
	f := start(t)
	portFile := filepath.Join(t.TempDir(), "http.port")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := Options{
		HTTPAddr:      "127.0.0.1:0",
		GRPCServer:    f.addr,
		PortFile:      portFile,
		ShutdownGrace: 300 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(portFile)
		if err == nil {
			if _, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
				t.Fatalf("port file holds %q", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no port file")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := Probe(context.Background(), opts); err != nil {
		t.Errorf("Probe with the server up = %v, want nil", err)
	}
	f.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := Probe(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("Probe with the server not serving = %v, want a 503 error", err)
	}

	// A long poll still open at shutdown is cancelled once the grace is over.
	b, _ := os.ReadFile(portFile)
	pollURL := "http://127.0.0.1:" + strings.TrimSpace(string(b)) + "/messages?id=block&timeout=60"
	go func() {
		if resp, err := client.Get(pollURL); err == nil {
			resp.Body.Close()
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); !contains(f.chat.recorded(), "Receive block"); {
		if time.Now().After(deadline) {
			t.Fatal("the poll never reached the server")
		}
		time.Sleep(10 * time.Millisecond)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	select {
	case <-f.chat.receiveCancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the open poll's upstream call was not cancelled at shutdown")
	}
}

func TestOversizedBodyIs413(t *testing.T) {
	f := start(t)
	big := strings.Repeat("x", maxBodyBytes+1)
	wantError(t, f.do(t, http.MethodPost, "/join?id=a", "text/plain", big), 413, "REQUEST_TOO_LARGE", "INVALID_ARGUMENT", "")
	if calls := f.chat.recorded(); len(calls) != 0 {
		t.Errorf("server got %q, want no calls", calls)
	}
}

// The gateway's own refusals of a request under a reproduced API's paths
// come in that API's error body, with the same statuses.
func TestRefusalsOnAReproducedAPIUseItsErrorBody(t *testing.T) {
	f := start(t)
	big := strings.Repeat("x", maxBodyBytes+1)
	for _, c := range []struct {
		method, target, body string
		status               int
		want                 string
	}{
		{"GET", "/chats/general?%zz", "", 400, `{"status":false,"error":{"code":201,"error":"Request error: Invalid request","field":""}}`},
		{"GET", "/chats/general?x=%FF", "", 400, `{"status":false,"error":{"code":201,"error":"Request error: Invalid request","field":"x"}}`},
		{"POST", "/chats", big, 413, `{"status":false,"error":{"code":201,"error":"Request error: Invalid request","field":""}}`},
		{"POST", "/chats", "{\"title\":\"\xff\"}", 400, `{"status":false,"error":{"code":201,"error":"Request error: Invalid request","field":""}}`},
		{"GET", "/chats/a%2Fb", "", 404, `{"status":false,"error":{"code":101,"error":"Room error: Room not found","field":""}}`},
		{"PATCH", "/chats/general", "", 405, `{"status":false,"error":{"code":201,"error":"Request error: Invalid request","field":""}}`},
		{"GET", "/user?%zz", "", 400, `{"error":"malformed query: invalid URL escape \"%zz\""}`},
		{"POST", "/chat", big, 413, `{"error":"request body is larger than 1 MiB"}`},
		{"GET", "/chat/user/a/b", "", 404, `{"error":"no route for /chat/user/a/b"}`},
		{"GET", "/ws?%zz", "", 400, `{"error":"malformed query: invalid URL escape \"%zz\""}`},
	} {
		r := f.do(t, c.method, c.target, "application/json", c.body)
		if r.status != c.status || strings.TrimSpace(r.body) != c.want || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d %s, want %d %s", c.method, c.target, r.status, r.body, c.status, c.want)
		}
	}
	// Parley's own paths keep Parley's body.
	wantError(t, f.get(t, "/users/a/b"), 404, "NOT_FOUND", "NOT_FOUND", "")
	if calls := f.chat.recorded(); len(calls) != 0 {
		t.Errorf("server got %q, want no calls", calls)
	}
}

// An empty path segment matches no route: the mux would bind an empty
// variable, which the server reads as the caller where a user is named.
func TestEmptyPathSegmentIs404(t *testing.T) {
	f := start(t)
	for _, target := range []string{"/v1/users/", "/v1/users//messages", "/v1/users/:typing", "/v1/rooms//members/x"} {
		wantError(t, f.do(t, http.MethodDelete, target, "", ""), 404, "NOT_FOUND", "NOT_FOUND", "")
	}
	if r := f.do(t, http.MethodDelete, "/user/", "", ""); r.status != 404 || strings.TrimSpace(r.body) != `{"error":"no route for /user/"}` {
		t.Errorf("Messaging API: %d %s", r.status, r.body)
	}
	if r := f.get(t, "/chats/"); r.status != 404 || !strings.Contains(r.body, `"code":101`) {
		t.Errorf("ChitChat: %d %s", r.status, r.body)
	}
	if calls := f.chat.recorded(); len(calls) != 0 {
		t.Errorf("server got %q, want no calls", calls)
	}
	// The page at the root is still served.
	if r := f.get(t, "/"); r.status != 200 {
		t.Errorf("GET /: %d", r.status)
	}
}
