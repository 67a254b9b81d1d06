// Package integration runs the real parley_server and parley-gateway binaries
// on free ports and talks to them over REST, gRPC and grpcurl.
//
// The binaries come from the environment (make test-gateway sets them):
// PARLEY_SERVER_BIN, PARLEY_GATEWAY_BIN and GRPCURL_BIN. Without them the
// tests are skipped.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds how long a binary may take to listen.
	startTimeout = 20 * time.Second
	// stopTimeout bounds how long a binary may take to exit after SIGTERM.
	stopTimeout = 10 * time.Second
)

// client bounds every REST call so that a hang fails the test.
var client = &http.Client{Timeout: 15 * time.Second}

func binary(t *testing.T, env string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		t.Skipf("%s is not set; run through `make test-gateway`", env)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s=%s: %v", env, path, err)
	}
	return path
}

// proc is a started binary whose output goes to a log file, shown in the test
// log when the test fails.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // its exit status, once done is closed
	// termIsClean: the program ends on SIGTERM by dying of it (HAProxy's
	// hard stop), which counts as a clean exit.
	termIsClean bool
}

func startProc(t *testing.T, dir, name, bin string, args ...string) *proc {
	t.Helper()
	return startProcFor(t, t, dir, name, bin, args...)
}

// startProcFor is startProc for a process that outlives the test t that
// starts it (a subtest): it is stopped when owner, a test that contains t,
// ends.
func startProcFor(t, owner *testing.T, dir, name, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir // a relative default data directory lands in the test's temp dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	owner.Cleanup(func() {
		if err := p.stop(); err != nil {
			owner.Errorf("%s: %v", name, err)
		}
		if owner.Failed() {
			b, _ := os.ReadFile(logPath)
			owner.Logf("--- %s %s\n%s--- end of %s log", name, strings.Join(args, " "), b, name)
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit; it kills after stopTimeout.
func (p *proc) stop() error {
	select {
	case <-p.done:
		return nil // already gone; a test that cares checks p.err itself
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		var exit *exec.ExitError
		if p.termIsClean && errors.As(p.err, &exit) {
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				return nil
			}
		}
		if p.err != nil {
			return fmt.Errorf("exit after SIGTERM: %w", p.err)
		}
		return nil
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("did not exit within %v of SIGTERM; killed", stopTimeout)
	}
}

// waitPortFile polls for the port a binary writes once it listens.
func (p *proc) waitPortFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		if b, err := os.ReadFile(path); err == nil {
			if port, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && port > 0 {
				return port
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before writing %s: %v", p.name, path, p.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s wrote no port to %s within %v", p.name, path, startTimeout)
		}
	}
}

// stack is one server and one gateway in front of it, private to a test.
// The server keeps its data in its own temp data directory, which a restart
// reuses.
type stack struct {
	server   *proc
	gateway  *proc
	grpcAddr string // host:port of the server
	httpURL  string // http://host:port of the gateway

	dir     string // the test's temp dir: logs, port files
	dataDir string // the server's --data_dir
	// The server's --postgres_dsn, kept across restarts; empty on SQLite.
	postgresDSN string
	opts        stackOptions
	starts      int // servers started so far, to name their logs

	mu     sync.Mutex
	bodies []string // every REST response body, for checks over all of them
	// noCoverage keeps the stack's requests out of the route coverage
	// (coverage_test.go).
	noCoverage bool
}

// stackOptions are the server flags a test may choose.
type stackOptions struct {
	admins        []string      // --admin_users
	tokenLifetime time.Duration // --token_lifetime, when not 0
	synchronous   string        // --sqlite_synchronous, when not empty
	// limits, when not nil, are the server's per-client limit flags, and
	// the gateway's --max_conns_per_address; nil lifts every limit
	// (unlimitedFlags), since all of a test's clients share 127.0.0.1.
	limits []string
	// runDefaults: as `make run` starts them, the default limits, and the
	// server and gateway trusting the loopback proxies in front.
	runDefaults bool
	// The PostgreSQL server whose database the server uses (--store=postgres);
	// nil: SQLite in the data directory, unless PARLEY_TEST_STORE=postgres.
	postgres *pgServer
	// perClientStreams starts the gateway without --edge_secret: every SSE
	// and WebSocket client has a Subscribe stream of its own. By default
	// server and gateway share testEdgeSecret and those clients go through
	// the gateway's fan-out (docs/fanout.md).
	perClientStreams bool
}

// testEdgeSecret is the --edge_secret of the stacks' servers and gateways.
const testEdgeSecret = "integration-test-edge-secret"

// withPerClientStreams starts the gateway without fan-out.
func withPerClientStreams() stackOption {
	return func(o *stackOptions) { o.perClientStreams = true }
}

type stackOption func(*stackOptions)

// withAdmins lists usernames in --admin_users.
func withAdmins(names ...string) stackOption {
	return func(o *stackOptions) { o.admins = append(o.admins, names...) }
}

func withTokenLifetime(d time.Duration) stackOption {
	return func(o *stackOptions) { o.tokenLifetime = d }
}

// withLimits starts the stack with these limit flags (server flags, or
// --max_conns_per_address for the gateway) and the defaults of the others.
func withLimits(flags ...string) stackOption {
	return func(o *stackOptions) { o.limits = append([]string{}, flags...) }
}

// withRunDefaults starts the stack as `make run` does (scripts/run.sh):
// every limit at its default, loopback trusted as the proxy in front.
func withRunDefaults() stackOption {
	return func(o *stackOptions) { o.runDefaults = true }
}

// unlimitedFlags lift every per-client limit of the server: the functional
// tests make many calls from one address and a few users, as no real
// client does; limits_test.go checks the limits themselves.
var unlimitedFlags = []string{
	"--sends_per_user_per_second=0", "--sends_per_room_per_second=0",
	"--sign_ins_per_address_per_minute=0", "--sign_in_free_failures_per_user=-1",
	"--sign_in_free_failures_per_address=-1", "--streams_per_user=0", "--streams_per_address=0",
	"--lobby_max_sessions=0", "--lobby_sessions_per_address=0",
}

func withSynchronous(mode string) stackOption {
	return func(o *stackOptions) { o.synchronous = mode }
}

func startStack(t *testing.T, options ...stackOption) *stack {
	t.Helper()
	binary(t, "PARLEY_SERVER_BIN")
	binary(t, "PARLEY_GATEWAY_BIN")
	s := &stack{dir: t.TempDir()}
	s.dataDir = filepath.Join(s.dir, "data")
	s.opts.postgres = sharedPostgres
	for _, o := range options {
		o(&s.opts)
	}
	if s.opts.postgres != nil {
		s.postgresDSN = s.opts.postgres.newDatabase(t)
	}
	s.startServer(t)
	s.startGateway(t)
	return s
}

// serverFlags are the flags of every server: its own data directory, and
// the cheapest argon2id parameters so that sign-ups are fast.
func (s *stack) serverFlags(portFile string) []string {
	flags := []string{
		"--grpc_addr=127.0.0.1:0", "--port_file=" + portFile, "--data_dir=" + s.dataDir,
		"--receive_default_timeout=30s", "--receive_max_timeout=60s",
		"--max_message_bytes=4096", "--channel_capacity=1024", "--session_idle_timeout=5m",
		"--password_hash_ops=1", "--password_hash_mem_kib=8", "--edge_secret=" + testEdgeSecret,
	}
	if s.opts.runDefaults {
		flags = append(flags, "--trusted_proxies=127.0.0.1")
	} else if s.opts.limits == nil {
		flags = append(flags, unlimitedFlags...)
	} else {
		for _, f := range s.opts.limits {
			if !strings.HasPrefix(f, "--max_conns_per_address=") {
				flags = append(flags, f)
			}
		}
	}
	if len(s.opts.admins) > 0 {
		flags = append(flags, "--admin_users="+strings.Join(s.opts.admins, ","))
	}
	if s.opts.tokenLifetime != 0 {
		flags = append(flags, "--token_lifetime="+s.opts.tokenLifetime.String())
	}
	if s.opts.synchronous != "" {
		flags = append(flags, "--sqlite_synchronous="+s.opts.synchronous)
	}
	if s.postgresDSN != "" {
		flags = append(flags, "--store=postgres", "--postgres_dsn="+s.postgresDSN)
	}
	return flags
}

func (s *stack) startServer(t *testing.T) {
	t.Helper()
	s.starts++
	name := "server"
	if s.starts > 1 {
		name = fmt.Sprintf("server-%d", s.starts)
	}
	portFile := filepath.Join(s.dir, name+".port")
	s.server = startProc(t, s.dir, name, binary(t, "PARLEY_SERVER_BIN"), s.serverFlags(portFile)...)
	s.grpcAddr = fmt.Sprintf("127.0.0.1:%d", s.server.waitPortFile(t, portFile))
}

// gatewayFlags are the gateway's: its --max_conns_per_address is the one in
// the stack's limits, else none (0). The tests' client stands in for a
// reverse proxy (seed003_test.go), so loopback is a trusted proxy, except
// with a connection cap, which does not count trusted proxies.
func (s *stack) gatewayFlags(portFile string) []string {
	flags := []string{"--grpc_server=" + s.grpcAddr, "--http_addr=127.0.0.1:0", "--port_file=" + portFile,
		"--log_level=debug"}
	if !s.opts.perClientStreams {
		flags = append(flags, "--edge_secret="+testEdgeSecret)
	}
	if s.opts.runDefaults {
		return append(flags, "--trusted_proxies=127.0.0.1")
	}
	for _, f := range s.opts.limits {
		if strings.HasPrefix(f, "--max_conns_per_address=") {
			return append(flags, f)
		}
	}
	return append(flags, "--max_conns_per_address=0", "--trusted_proxies=127.0.0.1")
}

func (s *stack) startGateway(t *testing.T) {
	t.Helper()
	name := "gateway"
	if s.starts > 1 {
		name = fmt.Sprintf("gateway-%d", s.starts)
	}
	portFile := filepath.Join(s.dir, name+".port")
	s.gateway = startProc(t, s.dir, name, binary(t, "PARLEY_GATEWAY_BIN"), s.gatewayFlags(portFile)...)
	s.httpURL = fmt.Sprintf("http://127.0.0.1:%d", s.gateway.waitPortFile(t, portFile))

	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get(s.httpURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway /healthz not 200 within %v (last: %v)", startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restart stops the server, with SIGTERM (which must end in a clean exit)
// or with SIGKILL, and starts a new server on the same data directory and a
// new gateway in front of it.
func (s *stack) restart(t *testing.T, kill bool) {
	t.Helper()
	if kill {
		select {
		case <-s.server.done: // already gone
		default:
			if err := s.server.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-s.server.done
		}
	} else if err := s.server.stop(); err != nil {
		t.Fatalf("server: %v", err)
	}
	if err := s.gateway.stop(); err != nil {
		t.Errorf("gateway: %v", err)
	}
	s.startServer(t)
	s.startGateway(t)
}

// reply is one REST response.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body)) }

// call sends method target (path and raw query) with an empty body.
func (s *stack) call(t *testing.T, method, target string) reply {
	t.Helper()
	r, err := s.try(method, target)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// try is call for goroutines other than the test's.
func (s *stack) try(method, target string) (reply, error) {
	return s.tryReq(method, target, "", nil)
}

func (s *stack) get(t *testing.T, target string) reply {
	t.Helper()
	return s.call(t, http.MethodGet, target)
}

// req sends method target with body, which is nil (no body), a string (sent
// as it is) or a value sent as JSON, and, when token is not empty, the
// header Authorization: Bearer token. header holds more header name, value
// pairs.
func (s *stack) req(t *testing.T, method, target, token string, body any, header ...string) reply {
	t.Helper()
	r, err := s.tryReq(method, target, token, body, header...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tryReq is req for goroutines other than the test's.
func (s *stack) tryReq(method, target, token string, body any, header ...string) (reply, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.httpURL+target, rd)
	if err != nil {
		return reply{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: reading body: %w", method, target, err)
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	if !s.noCoverage {
		recordHit(method, target, resp.StatusCode)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// responseBodies is every REST response body so far.
func (s *stack) responseBodies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

// mustStatus asserts the status and decodes the body into v.
func mustStatus(t *testing.T, r reply, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %v, want %d", r, status)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("decoding %s: %v", r.body, err)
		}
	}
}

// mustOK asserts a 200 and decodes the body into v.
func mustOK(t *testing.T, r reply, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("got %v, want 200", r)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("decoding %s: %v", r.body, err)
		}
	}
}

// event is parley.v1.Event as protojson writes it: camelCase names, 64-bit
// integers as strings.
type event struct {
	Kind                 string           `json:"kind"`
	Room                 string           `json:"room"`
	Sequence             uint64           `json:"sequence,string"`
	ID                   string           `json:"id"`
	Sender               string           `json:"sender"`
	Text                 string           `json:"text"`
	CreateTime           string           `json:"createTime"`
	GapFirstSequence     uint64           `json:"gapFirstSequence,string"`
	GapLastSequence      uint64           `json:"gapLastSequence,string"`
	RoomID               string           `json:"roomId"`
	SenderID             string           `json:"senderId"`
	RecipientID          string           `json:"recipientId"`
	TargetID             string           `json:"targetId"`
	TargetSequence       uint64           `json:"targetSequence,string"`
	UpdateTime           *string          `json:"updateTime"`
	Deleted              bool             `json:"deleted"`
	PreviousVersions     []messageVersion `json:"previousVersions"`
	PurgeThroughSequence uint64           `json:"purgeThroughSequence,string"`
	Color                string           `json:"color"`
	Recipient            string           `json:"recipient"`
}

type messageVersion struct {
	Text       string `json:"text"`
	CreateTime string `json:"createTime"`
}

type eventReply struct {
	Event event `json:"event"`
}

type eventsReply struct {
	Events []event `json:"events"`
}

// apiError is the gateway's error body.
type apiError struct {
	Error struct {
		Code     string  `json:"code"`
		Status   int     `json:"status"`
		GRPCCode string  `json:"grpc_code"`
		Message  string  `json:"message"`
		Field    *string `json:"field"`
	} `json:"error"`
}

// wantError asserts an error reply: the HTTP status, the code when code is
// not empty, and the field ("-" for none, "" for not checked).
func wantError(t *testing.T, r reply, status int, code, field string) {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" {
		t.Errorf("got %v, want a JSON error body with status %d", r, status)
		return
	}
	if r.status != status || e.Error.Status != status {
		t.Errorf("got %v, want status %d", r, status)
	}
	if code != "" && e.Error.Code != code {
		t.Errorf("got %v, want code %s", r, code)
	}
	if e.Error.GRPCCode == "" || e.Error.Message == "" {
		t.Errorf("got %v, want grpc_code and message set", r)
	}
	switch {
	case field == "-" && e.Error.Field != nil:
		t.Errorf("got %v, want no field", r)
	case field != "" && field != "-" && (e.Error.Field == nil || !sameField(*e.Error.Field, field)):
		t.Errorf("got %v, want field %q", r, field)
	}
}

// sameField compares field names whether written in proto style
// (display_name) or JSON style (displayName).
func sameField(a, b string) bool {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	return norm(a) == norm(b)
}

// drain polls id until nothing is queued, and returns what it took.
func (s *stack) drain(t *testing.T, id string) []event {
	t.Helper()
	var all []event
	for {
		var got eventsReply
		mustOK(t, s.get(t, "/messages?id="+id+"&timeout=0.2"), &got)
		if len(got.Events) == 0 {
			return all
		}
		all = append(all, got.Events...)
	}
}

// receiveUntil polls id until the events taken so far satisfy done, within
// a deadline, and returns them.
func (s *stack) receiveUntil(t *testing.T, id string, done func([]event) bool) []event {
	t.Helper()
	var all []event
	deadline := time.Now().Add(10 * time.Second)
	for !done(all) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: events %+v still incomplete after 10s", id, all)
		}
		var got eventsReply
		mustOK(t, s.get(t, "/messages?id="+id+"&timeout=1"), &got)
		all = append(all, got.Events...)
	}
	return all
}

func messages(events []event) []event {
	var out []event
	for _, e := range events {
		if e.Kind == "EVENT_KIND_MESSAGE" {
			out = append(out, e)
		}
	}
	return out
}

func countKind(kind string, n int) func([]event) bool {
	return func(events []event) bool {
		c := 0
		for _, e := range events {
			if e.Kind == kind {
				c++
			}
		}
		return c >= n
	}
}

// streamLine is one NDJSON line of /subscribe: a result or an error.
type streamLine struct {
	Result *eventsReply     `json:"result"`
	Error  *json.RawMessage `json:"error"`
	raw    string
}

// stream is an open /subscribe response, read line by line in the
// background.
type stream struct {
	status chan int        // the HTTP status, once the headers arrived
	lines  chan streamLine // closed when the stream ends
	mu     sync.Mutex
	err    error // why reading stopped, if not a clean end
	cancel context.CancelFunc
}

func (s *stack) subscribe(t *testing.T, id string) *stream {
	t.Helper()
	return s.openStream(t, "/subscribe?id="+id, "")
}

// openStream GETs target, a stream route, with token if not empty, and
// reads its NDJSON lines in the background.
func (s *stack) openStream(t *testing.T, target, token string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := &stream{status: make(chan int, 1), lines: make(chan streamLine, 1024), cancel: cancel}
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.httpURL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	go func() {
		defer close(st.lines)
		// No client timeout: the stream is open-ended; the tests bound their
		// waits on lines instead.
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			st.setErr(err)
			return
		}
		defer resp.Body.Close()
		recordHit(http.MethodGet, target, resp.StatusCode)
		st.status <- resp.StatusCode
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var l streamLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				st.setErr(fmt.Errorf("line %q: %w", sc.Text(), err))
				return
			}
			l.raw = sc.Text()
			st.lines <- l
		}
		if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
			st.setErr(err)
		}
	}()
	return st
}

func (st *stream) setErr(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.err = err
}

func (st *stream) readErr() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

// next returns the next line, or ok=false when the stream ended.
func (st *stream) next(t *testing.T, timeout time.Duration) (streamLine, bool) {
	t.Helper()
	select {
	case l, ok := <-st.lines:
		return l, ok
	case <-time.After(timeout):
		t.Fatalf("no stream line within %v", timeout)
		return streamLine{}, false
	}
}

// waitStatus returns the stream's HTTP status once its headers arrived.
func (st *stream) waitStatus(t *testing.T) int {
	t.Helper()
	select {
	case code := <-st.status:
		return code
	case <-time.After(10 * time.Second):
		t.Fatalf("no stream status within 10s (%v)", st.readErr())
		return 0
	}
}

// collect reads result lines until the events read so far satisfy done, and
// returns them; an error line or the end of the stream fails the test.
func (st *stream) collect(t *testing.T, done func([]event) bool) []event {
	t.Helper()
	var all []event
	for !done(all) {
		l, ok := st.next(t, 10*time.Second)
		if !ok {
			t.Fatalf("stream ended after %+v: %v", all, st.readErr())
		}
		if l.Result == nil {
			t.Fatalf("stream line %s, want a result", l.raw)
		}
		all = append(all, l.Result.Events...)
	}
	return all
}
