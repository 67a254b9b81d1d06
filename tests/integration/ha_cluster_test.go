package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// Cluster mode as `make run-cluster` runs it (docs/cluster.md): its own
// PostgreSQL and Redis, three servers on them, two gateways each given all
// three, and HAProxy in front, spreading REST calls over the gateways and
// gRPC calls (a stream is one call) over the servers, all on free loopback
// ports. The tests of ha_cluster_scenarios_test.go share one such cluster
// (make test-cluster; PARLEY_TEST_CLUSTER=1).

// haCluster is the whole cluster. Its embedded cluster holds the servers;
// the cluster's stack is HAProxy's REST frontend, so c.signUp, c.post and
// the other REST helpers go through HAProxy to either gateway.
//
// The addresses, for tests that talk to one part: c.servers[i].addr (gRPC,
// host:port) and c.servers[i].conn; c.gateways[i].httpURL (REST, with every
// stack helper on c.gateways[i]); c.httpURL (HAProxy, REST) and c.grpcAddr
// with c.grpcConn (HAProxy, gRPC).
type haCluster struct {
	*cluster
	pg       *pgServer
	redis    *redisServer
	gateways []*stack
	haproxy  *proc
	grpcAddr string           // HAProxy's gRPC frontend, host:port
	grpcConn *grpc.ClientConn // to grpcAddr
	// pgPaused: PostgreSQL was stopped (test-postgres.sh pause) and not yet
	// started again.
	pgPaused bool
}

// haproxyCheckInterval is HAProxy's health check interval here: a dead
// server is out after two failed checks.
const haproxyCheckInterval = "300ms"

func startHACluster(t *testing.T) *haCluster {
	t.Helper()
	binary(t, "PARLEY_SERVER_BIN")
	gatewayBin := binary(t, "PARLEY_GATEWAY_BIN")
	haproxyBin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy is not installed (scripts/deps.sh cluster)")
	}
	c := &haCluster{pg: postgresFor(t), redis: startRedis(t)}
	c.cluster = newCluster(t, c.pg, c.redis.addr, "a", "b", "c")
	c.noCoverage = true

	var gatewayAddrs []string
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("gateway-%d", i)
		portFile := filepath.Join(c.dir, name+".port")
		gw := &stack{dir: c.dir, noCoverage: true}
		gw.gateway = startProc(t, c.dir, name, gatewayBin,
			"--grpc_server="+strings.Join(c.serverAddrs(), ","), "--http_addr=127.0.0.1:0",
			"--port_file="+portFile, "--log_level=debug", "--max_conns_per_address=0", "--edge_secret="+testEdgeSecret)
		port := gw.gateway.waitPortFile(t, portFile)
		gw.httpURL = fmt.Sprintf("http://127.0.0.1:%d", port)
		gatewayAddrs = append(gatewayAddrs, fmt.Sprintf("127.0.0.1:%d", port))
		c.gateways = append(c.gateways, gw)
	}
	for _, gw := range c.gateways {
		c.waitAllServing(t, gw)
	}

	restAddr := freeAddr(t)
	c.grpcAddr = freeAddr(t)
	cfgPath := filepath.Join(c.dir, "haproxy.cfg")
	script, _ := filepath.Abs("../../scripts/haproxy-cluster.sh")
	gen := exec.Command(script, restAddr, c.grpcAddr, strings.Join(gatewayAddrs, ","), strings.Join(c.serverAddrs(), ","))
	gen.Env = append(os.Environ(), "HAPROXY_CHECK_INTER="+haproxyCheckInterval, "HAPROXY_USER=")
	cfg, err := gen.Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxyBin, "-c", "-q", "-f", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("haproxy refuses %s: %v: %s", cfgPath, err, out)
	}
	c.haproxy = startProc(t, c.dir, "haproxy", haproxyBin, "-db", "-f", cfgPath)
	c.haproxy.termIsClean = true
	waitListening(t, c.haproxy, restAddr)
	waitListening(t, c.haproxy, c.grpcAddr)
	c.httpURL = "http://" + restAddr
	c.grpcConn, err = grpc.NewClient(c.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(fastReconnect))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.grpcConn.Close() })

	// Both tiers behind HAProxy take calls.
	for _, srv := range c.servers {
		c.waitProxyReaches(t, srv)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, gw := range c.gateways {
		for before := gw.requestsServed(t); gw.requestsServed(t) == before; {
			if time.Now().After(deadline) {
				t.Fatalf("no REST call through HAProxy reached %s within 10s", gw.httpURL)
			}
			if r, err := c.try(http.MethodGet, "/v1/lobby/recent-messages?n=1"); err != nil || r.status != http.StatusOK {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	return c
}

// requestsServed is how many requests the gateway gw has logged.
func (gw *stack) requestsServed(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(gw.gateway.logPath)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), `"msg":"http request"`)
}

// waitProxyReaches waits until a gRPC call through HAProxy lands on srv:
// HAProxy has it in its backend (again).
func (c *haCluster) waitProxyReaches(t *testing.T, srv *clusterServer) {
	t.Helper()
	chat := parleyv1.NewChatServiceClient(c.grpcConn)
	deadline := time.Now().Add(15 * time.Second)
	for before := srv.callsOf(t, recentMessagesMethod); srv.callsOf(t, recentMessagesMethod) == before; {
		if time.Now().After(deadline) {
			t.Fatalf("no gRPC call through HAProxy reached %s within 15s", srv.name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := chat.ListRecentMessages(ctx, &parleyv1.ListRecentMessagesRequest{N: 1})
		cancel()
		if err != nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// serverNamed is the server called name ("a", "b" or "c").
func (c *haCluster) serverNamed(name string) *clusterServer {
	for _, srv := range c.servers {
		if srv.name == name {
			return srv
		}
	}
	panic("no server " + name)
}

// heal brings back whatever an earlier test stopped and left stopped (it
// failed half way): PostgreSQL, Redis, a server; then waits until each
// gateway and HAProxy use every server.
func (c *haCluster) heal(t *testing.T) {
	t.Helper()
	if c.pgPaused {
		c.pg.control(t, "resume")
		c.pgPaused = false
	}
	select {
	case <-c.redis.proc.done:
		c.redis.start(t)
	default:
	}
	for _, srv := range c.servers {
		select {
		case <-srv.proc.done:
			c.restartServer(t, srv)
		default:
		}
	}
}

// restartServer starts srv again on its address and waits until both
// gateways and HAProxy send it calls.
func (c *haCluster) restartServer(t *testing.T, srv *clusterServer) {
	t.Helper()
	c.startServer(t, srv)
	waitReady(t, srv.conn)
	for _, gw := range c.gateways {
		waitServingVia(t, gw, srv)
	}
	c.waitProxyReaches(t, srv)
}

// waitReady waits until conn is connected: a connection to a server that
// was down redials it after a backoff, and fails calls meanwhile.
func waitReady(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("connection to %s not ready within %v (%v)", conn.Target(), startTimeout, s)
		}
	}
}

// withToken is ctx with the user token as the call's authorization.
func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func u64(v uint64) *uint64 { return &v }

// codeName is a gRPC code as the gateway's errors name it
// (PERMISSION_DENIED, not Go's PermissionDenied).
func codeName(c codes.Code) string {
	switch c {
	case codes.OK:
		return "OK"
	case codes.Canceled:
		return "CANCELLED"
	}
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// eventOf is e in the tests' JSON shape (the fields the cluster tests use).
func eventOf(e *parleyv1.Event) event {
	return event{Kind: e.GetKind().String(), Room: e.GetRoom(), RoomID: e.GetRoomId(), Sequence: e.GetSequence(),
		ID: e.GetId(), Sender: e.GetSender(), Text: e.GetText(),
		GapFirstSequence: e.GetGapFirstSequence(), GapLastSequence: e.GetGapLastSequence()}
}

// ---- Readers ----

// reader is one client's stream of a room, read in the background: the
// message events it delivered, in order, and how it ended.
type reader struct {
	name string

	mu      sync.Mutex
	msgs    []event
	gaps    []event // EVENT_KIND_GAP: the reader fell behind and missed messages
	ended   bool
	endCode string // the gRPC code name of the error that ended it; "" for none
	endErr  string // how it ended, for messages
	endAt   time.Time
	changed chan struct{} // a token after each change
	cancel  context.CancelFunc
}

func newReader(name string) *reader {
	return &reader{name: name, changed: make(chan struct{}, 1)}
}

func (r *reader) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *reader) add(evs []event) {
	r.mu.Lock()
	for _, e := range evs {
		switch e.Kind {
		case "EVENT_KIND_MESSAGE":
			r.msgs = append(r.msgs, e)
		case "EVENT_KIND_GAP":
			r.gaps = append(r.gaps, e)
		}
	}
	r.mu.Unlock()
	r.notify()
}

func (r *reader) end(code, how string) {
	r.mu.Lock()
	if !r.ended {
		r.ended, r.endCode, r.endErr, r.endAt = true, code, how, time.Now()
	}
	r.mu.Unlock()
	r.notify()
}

// messages is what the reader has delivered so far.
func (r *reader) messages() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.msgs...)
}

// state is whether the stream ended, and how.
func (r *reader) state() (ended bool, code, how string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended, r.endCode, r.endErr, r.endAt
}

// waitFor waits up to within until cond holds for the messages delivered;
// the stream ending first, or a gap marker, fails the test.
func (r *reader) waitFor(t *testing.T, within time.Duration, what string, cond func([]event) bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok, ended, how, gaps := cond(r.msgs), r.ended, r.endErr, len(r.gaps)
		n := len(r.msgs)
		r.mu.Unlock()
		switch {
		case gaps > 0:
			t.Fatalf("%s: a gap marker (the server's queue for it overflowed): %+v", r.name, r.gaps)
		case ok:
			return
		case ended:
			t.Fatalf("%s: stream ended (%s) after %d messages, before %s", r.name, how, n, what)
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("%s: not %s within %v (%d messages)", r.name, what, within, n)
		}
	}
}

// waitThrough waits until the reader has delivered the message with
// sequence seq or a later one.
func (r *reader) waitThrough(t *testing.T, within time.Duration, seq uint64) {
	t.Helper()
	r.waitFor(t, within, fmt.Sprintf("through sequence %d", seq), func(ms []event) bool {
		return len(ms) > 0 && ms[len(ms)-1].Sequence >= seq
	})
}

// waitEnd waits up to within for the stream to end, and says whether it
// did, with the gRPC code it ended with and when.
func (r *reader) waitEnd(within time.Duration) (ended bool, code string, at time.Time) {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		if ended, code, _, at := r.state(); ended {
			return true, code, at
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			return false, "", time.Time{}
		}
	}
}

// grpcReader subscribes to room over conn (a server, or HAProxy) from after
// the sequence after, and returns once the subscription is in place (its
// first write arrived).
func grpcReader(t *testing.T, name string, conn *grpc.ClientConn, token, room string, after uint64) *reader {
	t.Helper()
	r := newReader(name)
	ctx, cancel := context.WithCancel(withToken(context.Background(), token))
	r.cancel = cancel
	t.Cleanup(cancel)
	st, err := parleyv1.NewChatServiceClient(conn).Subscribe(ctx,
		&parleyv1.SubscribeRequest{Room: room, AfterSequence: u64(after)})
	if err != nil {
		t.Fatalf("%s: subscribe: %v", name, err)
	}
	first, err := st.Recv()
	if err != nil {
		t.Fatalf("%s: first write: %v", name, err)
	}
	receive := func(resp *parleyv1.SubscribeResponse) {
		var evs []event
		for _, e := range resp.GetEvents() {
			evs = append(evs, eventOf(e))
		}
		r.add(evs)
	}
	receive(first)
	go func() {
		for {
			resp, err := st.Recv()
			if err != nil {
				code := ""
				if err != io.EOF {
					code = codeName(status.Code(err))
				}
				r.end(code, err.Error())
				return
			}
			receive(resp)
		}
	}()
	return r
}

// ndjsonReader streams room through the gateway (or HAProxy) s as NDJSON
// from after the sequence after; it returns once the stream is in place.
func ndjsonReader(t *testing.T, name string, s *stack, token, room string, after uint64) *reader {
	t.Helper()
	r := newReader(name)
	st := s.openStream(t, fmt.Sprintf("/v1/rooms/%s:subscribe?after_sequence=%d", room, after), token)
	r.cancel = st.cancel
	if code := st.waitStatus(t); code != http.StatusOK {
		t.Fatalf("%s: status %d", name, code)
	}
	go func() {
		for l := range st.lines {
			switch {
			case l.Result != nil:
				r.add(l.Result.Events)
			case l.Error != nil:
				var body struct {
					GRPCCode string `json:"grpc_code"`
				}
				_ = json.Unmarshal(*l.Error, &body)
				r.end(body.GRPCCode, "error line "+l.raw)
				return
			}
		}
		if err := st.readErr(); err != nil {
			r.end("", err.Error())
		} else {
			r.end("", "the response ended")
		}
	}()
	return r
}

// sseReader streams room through s as Server-Sent Events from after the
// sequence after; it returns once the response's headers arrived.
func sseReader(t *testing.T, name string, s *stack, token, room string, after uint64) *reader {
	t.Helper()
	r := newReader(name)
	st := s.openSSE(t, fmt.Sprintf("/v1/rooms/%s:subscribe?after=%d", room, after), token)
	r.cancel = st.cancel
	if code, _ := st.waitStatus(t); code != http.StatusOK {
		t.Fatalf("%s: status %d", name, code)
	}
	go func() {
		for m := range st.msgs {
			if m.event == "error" {
				var body apiError
				_ = json.Unmarshal([]byte(m.data), &body)
				r.end(body.Error.GRPCCode, "event: error "+m.data)
				return
			}
			var e event
			if err := json.Unmarshal([]byte(m.data), &e); err != nil {
				r.end("", fmt.Sprintf("SSE data %q: %v", m.data, err))
				return
			}
			if e.Kind == "EVENT_KIND_MESSAGE" && (!m.hasID || m.id != itoa(e.Sequence)) {
				r.end("", fmt.Sprintf("message %+v without its sequence as id", m))
				return
			}
			r.add([]event{e})
		}
		r.end("", "the response ended")
	}()
	return r
}

// wsReader streams room through s over a WebSocket from after the sequence
// after.
func wsReader(t *testing.T, name string, s *stack, token, room string, after uint64) *reader {
	t.Helper()
	r := newReader(name)
	conn := s.mustDialWS(t, fmt.Sprintf("/v1/rooms/%s:ws?after_sequence=%d", room, after), bearer(token))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	t.Cleanup(cancel)
	go func() {
		var lastErr string
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				code := ""
				var ce websocket.CloseError
				if errors.As(err, &ce) && ce.Code >= 4000 {
					// 4000 + the HTTP status; the error frame before it
					// names the gRPC code.
					code = lastErr
				}
				r.end(code, err.Error())
				return
			}
			var f wsFrame
			if err := json.Unmarshal(b, &f); err != nil {
				r.end("", fmt.Sprintf("frame %s: %v", b, err))
				return
			}
			switch {
			case f.Type == "event" && f.Event != nil:
				r.add([]event{*f.Event})
			case f.Type == "error" && f.Error != nil:
				lastErr = f.Error.GRPCCode
			}
		}
	}()
	return r
}

// ---- History ----

// history is room's whole history read from srv over gRPC, oldest first.
func (srv *clusterServer) history(t *testing.T, token, room string) []event {
	t.Helper()
	msgs := parleyv1.NewMessageServiceClient(srv.conn)
	var all []event
	var before *uint64
	for {
		ctx, cancel := context.WithTimeout(withToken(context.Background(), token), 10*time.Second)
		page, err := msgs.ListMessages(ctx, &parleyv1.ListMessagesRequest{Room: room, N: 1000, Before: before})
		cancel()
		if err != nil {
			t.Fatalf("history of %s from %s: %v", room, srv.name, err)
		}
		var evs []event
		for _, e := range page.GetMessages() {
			evs = append(evs, eventOf(e))
		}
		all = append(evs, all...)
		if len(evs) == 0 || !page.GetHasOlder() {
			return all
		}
		before = u64(evs[0].Sequence)
	}
}

// wantGapless checks that the messages are numbered one after the other
// with no repeated text.
func wantGapless(t *testing.T, what string, evs []event) {
	t.Helper()
	seen := map[string]uint64{}
	for i, e := range evs {
		if i > 0 && e.Sequence != evs[i-1].Sequence+1 {
			t.Errorf("%s: sequence %d follows %d", what, e.Sequence, evs[i-1].Sequence)
			return
		}
		if s, dup := seen[e.Text]; dup {
			t.Errorf("%s: %q twice, as %d and %d", what, e.Text, s, e.Sequence)
			return
		}
		seen[e.Text] = e.Sequence
	}
}

// sameMessages reports the first difference between what a reader
// delivered and what it should have, by sequence and text; "" when equal.
func sameMessages(got, want []event) string {
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			return fmt.Sprintf("%d messages, then nothing; want %d more from sequence %d", len(got), len(want)-i, want[i].Sequence)
		case i >= len(want):
			return fmt.Sprintf("%d extra messages from sequence %d (%q) on", len(got)-i, got[i].Sequence, got[i].Text)
		case got[i].Sequence != want[i].Sequence || got[i].Text != want[i].Text:
			prev := "the start"
			if i > 0 {
				prev = fmt.Sprintf("sequence %d", got[i-1].Sequence)
			}
			return fmt.Sprintf("message %d (after %s) is %d %q, want %d %q",
				i, prev, got[i].Sequence, got[i].Text, want[i].Sequence, want[i].Text)
		}
	}
	return ""
}

// wantDelivered checks that r delivered exactly want: every message once,
// in order.
func wantDelivered(t *testing.T, r *reader, want []event) {
	t.Helper()
	if d := sameMessages(r.messages(), want); d != "" {
		t.Errorf("%s: %s", r.name, d)
	}
}

// ---- Load ----

// load is a run of posts to one room, paced to a rate and spread over
// servers in turn.
type load struct {
	spec    loadSpec
	results []postResult // by message index
	acked   atomic.Int64
	started time.Time
	elapsed time.Duration
	done    chan struct{}
	tick    chan struct{} // a token after each ack
}

type loadSpec struct {
	name     string // prefix of the texts and idempotency keys
	token    string
	room     string
	servers  []*clusterServer
	count    int           // messages to post
	rate     int           // per second
	workers  int           // calls in flight at most
	retryFor time.Duration // retry a post that failed UNAVAILABLE on the next server, with its key, for this long; 0: no retry
}

// postResult is how the post of one message ended: its sequence number
// once acknowledged, else the error of its last attempt.
type postResult struct {
	text     string
	sequence uint64
	err      error
	took     time.Duration // the last attempt
	start    time.Time     // of the last attempt
	server   string        // that took the last attempt
}

func startLoad(t *testing.T, spec loadSpec) *load {
	t.Helper()
	l := &load{spec: spec, results: make([]postResult, spec.count), started: time.Now(),
		done: make(chan struct{}), tick: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		<-l.done
	})
	next := make(chan int)
	go func() {
		defer close(next)
		for i := 0; i < spec.count; i++ {
			due := l.started.Add(time.Duration(i) * time.Second / time.Duration(spec.rate))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d): // pacing to the rate, not synchronization
				case <-ctx.Done():
					return
				}
			}
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < spec.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				l.results[i] = l.post(ctx, i)
				if l.results[i].err == nil {
					l.acked.Add(1)
					select {
					case l.tick <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		l.elapsed = time.Since(l.started)
		close(l.done)
	}()
	return l
}

func (l *load) post(ctx context.Context, i int) postResult {
	text := fmt.Sprintf("%s %d", l.spec.name, i)
	req := &parleyv1.PostMessageRequest{Room: l.spec.room, Text: text, IdempotencyKey: fmt.Sprintf("%s-%d", l.spec.name, i)}
	giveUp := time.Now().Add(l.spec.retryFor)
	for attempt := 0; ; attempt++ {
		srv := l.spec.servers[(i+attempt)%len(l.spec.servers)]
		callCtx, cancel := context.WithTimeout(withToken(ctx, l.spec.token), 10*time.Second)
		start := time.Now()
		ev, err := srv.msgs.PostMessage(callCtx, req)
		cancel()
		r := postResult{text: text, err: err, took: time.Since(start), start: start, server: srv.name}
		if err == nil {
			r.sequence = ev.GetSequence()
			if ev.GetText() != text {
				r.err = fmt.Errorf("acknowledged %q as %q", text, ev.GetText())
			}
			return r
		}
		if status.Code(err) != codes.Unavailable || time.Now().After(giveUp) || ctx.Err() != nil {
			return r
		}
	}
}

// waitAcked waits until n posts were acknowledged.
func (l *load) waitAcked(t *testing.T, n int) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for l.acked.Load() < int64(n) {
		select {
		case <-l.tick:
		case <-l.done:
			if l.acked.Load() < int64(n) {
				t.Fatalf("%s: ended with %d posts acknowledged, want %d", l.spec.name, l.acked.Load(), n)
			}
		case <-deadline.C:
			t.Fatalf("%s: %d posts acknowledged after 30s, want %d", l.spec.name, l.acked.Load(), n)
		}
	}
}

// wait waits for the last post to end and returns every post's result.
func (l *load) wait(t *testing.T) []postResult {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: posts still running after 60s", l.spec.name)
	}
	t.Logf("%s: %d of %d posts acknowledged in %v (%.0f/s)", l.spec.name, l.acked.Load(), l.spec.count,
		l.elapsed.Round(time.Millisecond), float64(l.acked.Load())/l.elapsed.Seconds())
	return l.results
}

// wantAckedInHistory checks that every acknowledged post is in history
// with the sequence number it was acknowledged with, and that history is
// gapless; it returns how many were acknowledged.
func wantAckedInHistory(t *testing.T, results []postResult, history []event) int {
	t.Helper()
	wantGapless(t, "history", history)
	bySeq := map[uint64]event{}
	for _, e := range history {
		bySeq[e.Sequence] = e
	}
	acked := 0
	for _, r := range results {
		if r.err != nil {
			continue
		}
		acked++
		if e, ok := bySeq[r.sequence]; !ok || e.Text != r.text {
			t.Errorf("%q was acknowledged as %d; history has %+v there", r.text, r.sequence, e)
		}
	}
	return acked
}
