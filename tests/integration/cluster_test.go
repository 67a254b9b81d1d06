package integration

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// Cluster mode, the gateway's side: servers sharing one PostgreSQL database
// behind one gateway given all their addresses. Calls go round robin to the
// servers that are up, and a stream whose server dies carries on from
// another one, with no gap and no duplicate. Joined by the Redis bus, every
// server streams every server's commits. Without it (--bus=inprocess) a
// server streams live only what is committed on itself, and replays
// history from the database up to the end of the log it knows (the
// database's when it first opened the log, plus its own commits since);
// the test without the bus posts accordingly.

// clusterServer is one server of a cluster: its own data directory and
// address, kept across restarts.
type clusterServer struct {
	name    string
	proc    *proc
	addr    string // 127.0.0.1:port
	dataDir string
	starts  int
	conn    *grpc.ClientConn // to addr, for any service's client
	stats   parleyv1.StatsServiceClient
	msgs    parleyv1.MessageServiceClient
}

// cluster is PostgreSQL, servers on one database of it that share a token
// key, and one gateway given every server's address. Its stack is the
// gateway, for the REST helpers; stack.server is not used.
type cluster struct {
	*stack
	servers []*clusterServer
	keyFile string
	// redisAddr is the Redis of the servers' --bus=redis; empty: no bus.
	redisAddr string
	// owner, when set, is the test whose end stops the servers that
	// subtests start again; else the test starting one.
	owner *testing.T
}

// startCluster starts PostgreSQL, servers named by names on one database,
// and a gateway in front of them all. With redisAddr set, the servers are
// joined by the Redis bus there.
func startCluster(t *testing.T, redisAddr string, names ...string) *cluster {
	t.Helper()
	return startClusterWith(t, redisAddr, nil, names...)
}

// startClusterWith is startCluster with the servers' options.
func startClusterWith(t *testing.T, redisAddr string, options []stackOption, names ...string) *cluster {
	t.Helper()
	binary(t, "PARLEY_GATEWAY_BIN")
	c := newClusterWith(t, postgresFor(t), redisAddr, options, names...)
	portFile := filepath.Join(c.dir, "gateway.port")
	c.gateway = startProc(t, c.dir, "gateway", binary(t, "PARLEY_GATEWAY_BIN"),
		"--grpc_server="+strings.Join(c.serverAddrs(), ","), "--http_addr=127.0.0.1:0", "--port_file="+portFile,
		"--log_level=debug", "--stream_resume_timeout=20s", "--max_conns_per_address=0", "--edge_secret="+testEdgeSecret)
	c.httpURL = fmt.Sprintf("http://127.0.0.1:%d", c.gateway.waitPortFile(t, portFile))
	c.waitAllServing(t, c.stack)
	return c
}

// newCluster starts servers named by names on a new database of pg,
// sharing one token key, and joined by the Redis bus at redisAddr when it is
// not empty. Its stack has no gateway yet: the caller starts what fronts
// the servers.
func newCluster(t *testing.T, pg *pgServer, redisAddr string, names ...string) *cluster {
	t.Helper()
	return newClusterWith(t, pg, redisAddr, nil, names...)
}

// newClusterWith is newCluster with the servers' options.
func newClusterWith(t *testing.T, pg *pgServer, redisAddr string, options []stackOption, names ...string) *cluster {
	t.Helper()
	binary(t, "PARLEY_SERVER_BIN")
	c := &cluster{stack: &stack{dir: t.TempDir()}, redisAddr: redisAddr}
	for _, o := range options {
		o(&c.stack.opts)
	}
	c.postgresDSN = pg.newDatabase(t)
	// Servers that share a database share the key that signs tokens.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	c.keyFile = filepath.Join(c.dir, "token.key")
	if err := os.WriteFile(c.keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		srv := &clusterServer{name: name, dataDir: filepath.Join(c.dir, "data-"+name)}
		c.servers = append(c.servers, srv)
		c.startServer(t, srv)
		// A server killed and started again is dialled again within a
		// second, not after gRPC's default backoff of up to two minutes.
		conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(fastReconnect))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		srv.conn = conn
		srv.stats, srv.msgs = parleyv1.NewStatsServiceClient(conn), parleyv1.NewMessageServiceClient(conn)
	}
	return c
}

// fastReconnect redials a lost server within a second.
var fastReconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// serverAddrs is every server's host:port, in order.
func (c *cluster) serverAddrs() []string {
	var addrs []string
	for _, srv := range c.servers {
		addrs = append(addrs, srv.addr)
	}
	return addrs
}

// waitAllServing waits until gw's /healthz has every server serving.
func (c *cluster) waitAllServing(t *testing.T, gw *stack) {
	t.Helper()
	waitGatewayHealth(t, gw, "every server serving", func(h clusterHealth) bool {
		for _, srv := range c.servers {
			if h.statusOf(srv.addr) != "SERVING" {
				return false
			}
		}
		return true
	})
}

// startServer starts srv: on a free port the first time, then on the same
// one, which the gateway was given.
func (c *cluster) startServer(t *testing.T, srv *clusterServer) {
	t.Helper()
	srv.starts++
	name := "server-" + srv.name
	if srv.starts > 1 {
		name = fmt.Sprintf("server-%s-%d", srv.name, srv.starts)
	}
	portFile := filepath.Join(c.dir, name+".port")
	addr := "127.0.0.1:0"
	if srv.addr != "" {
		addr = srv.addr
	}
	var flags []string
	for _, f := range c.serverFlags(portFile) {
		switch {
		case strings.HasPrefix(f, "--grpc_addr="):
			f = "--grpc_addr=" + addr
		case strings.HasPrefix(f, "--data_dir="):
			f = "--data_dir=" + srv.dataDir
		}
		flags = append(flags, f)
	}
	flags = append(flags, "--token_key_file="+c.keyFile)
	if c.redisAddr != "" {
		flags = append(flags, "--bus=redis", "--redis_addr="+c.redisAddr)
	}
	owner := c.owner
	if owner == nil {
		owner = t
	}
	srv.proc = startProcFor(t, owner, c.dir, name, binary(t, "PARLEY_SERVER_BIN"), flags...)
	srv.addr = fmt.Sprintf("127.0.0.1:%d", srv.proc.waitPortFile(t, portFile))
}

// kill ends srv with SIGKILL: no goodbye to its clients.
func (c *cluster) kill(t *testing.T, srv *clusterServer) {
	t.Helper()
	if err := srv.proc.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-srv.proc.done
}

// clusterHealth is the gateway's /healthz.
type clusterHealth struct {
	code    int
	Status  string `json:"status"`
	Servers []struct {
		Address string `json:"address"`
		Status  string `json:"status"`
	} `json:"servers"`
}

func (h clusterHealth) statusOf(addr string) string {
	for _, s := range h.Servers {
		if s.Address == addr {
			return s.Status
		}
	}
	return "absent"
}

// waitHealth polls the gateway's /healthz until cond holds.
func (c *cluster) waitHealth(t *testing.T, what string, cond func(clusterHealth) bool) clusterHealth {
	t.Helper()
	return waitGatewayHealth(t, c.stack, what, cond)
}

// waitGatewayHealth polls the /healthz of gw, a gateway, until cond holds.
func waitGatewayHealth(t *testing.T, gw *stack, what string, cond func(clusterHealth) bool) clusterHealth {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		var h clusterHealth
		resp, err := client.Get(gw.httpURL + "/healthz")
		if err == nil {
			h.code = resp.StatusCode
			err = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
		}
		if err == nil && cond(h) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway %s /healthz: %s: not within %v (last: %+v, %v)", gw.httpURL, what, startTimeout, h, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDown waits until the gateway's /healthz answers 200 with srv not
// serving: the gateway has seen it go.
func (c *cluster) waitDown(t *testing.T, srv *clusterServer) {
	t.Helper()
	c.waitHealth(t, srv.name+" down, the gateway serving", func(h clusterHealth) bool {
		return h.code == http.StatusOK && h.statusOf(srv.addr) == "UNKNOWN"
	})
}

// waitServing waits until the gateway's /healthz has srv serving and the
// gateway's calls reach it again: its connection dials a server that was
// down about once a second, and while no server is connected calls fail.
func (c *cluster) waitServing(t *testing.T, srv *clusterServer) {
	t.Helper()
	waitServingVia(t, c.stack, srv)
}

// waitServingVia is waitServing for gw, one gateway of the cluster.
func waitServingVia(t *testing.T, gw *stack, srv *clusterServer) {
	t.Helper()
	waitGatewayHealth(t, gw, srv.name+" serving", func(h clusterHealth) bool { return h.statusOf(srv.addr) == "SERVING" })
	deadline := time.Now().Add(10 * time.Second)
	for before := srv.callsOf(t, recentMessagesMethod); srv.callsOf(t, recentMessagesMethod) == before; {
		if time.Now().After(deadline) {
			t.Fatalf("no call through the gateway %s reached %s within 10s of its /healthz serving", gw.httpURL, srv.name)
		}
		if r, err := gw.try(http.MethodGet, "/v1/lobby/recent-messages?n=1"); err != nil || r.status != http.StatusOK {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// callsOf is how many calls of method srv has finished.
func (srv *clusterServer) callsOf(t *testing.T, method string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Waiting for the connection: srv may have just been started again.
	st, err := srv.stats.GetStats(ctx, &parleyv1.GetStatsRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("%s GetStats: %v", srv.name, err)
	}
	for _, m := range st.GetMethods() {
		if m.GetMethod() == method {
			return m.GetRequestsTotal()
		}
	}
	return 0
}

// openStreams is how many Subscribe streams srv has open.
func (srv *clusterServer) openStreams(t *testing.T) uint64 {
	t.Helper()
	return srv.chatStats(t).GetOpenStreams()
}

// streamsTotal is how many Subscribe streams srv has opened since it started.
func (srv *clusterServer) streamsTotal(t *testing.T) uint64 {
	t.Helper()
	return srv.chatStats(t).GetStreamsTotal()
}

func (srv *clusterServer) chatStats(t *testing.T) *parleyv1.ChatStats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Waiting for the connection: srv may have just been started again.
	st, err := srv.stats.GetStats(ctx, &parleyv1.GetStatsRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("%s GetStats: %v", srv.name, err)
	}
	return st.GetChat()
}

// waitOpenStreams waits until srv has n streams open.
func (srv *clusterServer) waitOpenStreams(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for got := srv.openStreams(t); got != n; got = srv.openStreams(t) {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d streams open, want %d", srv.name, got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postOn posts to a room on srv itself, over gRPC, not through the gateway,
// and returns the message.
func (srv *clusterServer) postOn(t *testing.T, token, room, text string) event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	ev, err := srv.msgs.PostMessage(ctx, &parleyv1.PostMessageRequest{Room: room, Text: text})
	if err != nil {
		t.Fatalf("post %q on %s: %v", text, srv.name, err)
	}
	return eventOf(ev)
}

const (
	getRoomMethod        = "/parley.v1.RoomService/GetRoom"
	recentMessagesMethod = "/parley.v1.ChatService/ListRecentMessages"
)

func TestTheGatewaySpreadsCallsOverItsServersAndSkipsAKilledOne(t *testing.T) {
	c := startCluster(t, "", "a", "b")
	a, b := c.servers[0], c.servers[1]
	owner := c.signUp(t, "owner")
	rm := c.createRoom(t, owner.token, "spread", "", "")

	// Both servers take calls.
	getRoom := func() {
		t.Helper()
		mustOK(t, c.req(t, http.MethodGet, "/v1/rooms/"+rm.ID, owner.token, nil), nil)
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.callsOf(t, getRoomMethod) == 0 || b.callsOf(t, getRoomMethod) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("GetRoom calls: a %d, b %d; want both servers to take some",
				a.callsOf(t, getRoomMethod), b.callsOf(t, getRoomMethod))
		}
		getRoom()
	}

	// b dies. Once the gateway has seen it go, every call succeeds, on a.
	c.kill(t, b)
	c.waitDown(t, b)
	before := a.callsOf(t, getRoomMethod)
	for i := 0; i < 20; i++ {
		getRoom()
		c.post(t, owner.token, rm.ID, fmt.Sprintf("with b down %d", i))
	}
	if got := a.callsOf(t, getRoomMethod) - before; got != 20 {
		t.Errorf("a took %d of the 20 GetRoom calls made with b down", got)
	}
	if got := c.allMessages(t, owner.token, rm.ID, 100); len(got) != 20 {
		t.Errorf("%d messages stored, want the 20 posted", len(got))
	}

	// With every server down the gateway is unhealthy; a server back is
	// used again.
	c.kill(t, a)
	c.waitHealth(t, "503 with no server", func(h clusterHealth) bool { return h.code == http.StatusServiceUnavailable })
	wantError(t, c.req(t, http.MethodGet, "/v1/rooms/"+rm.ID, owner.token, nil), http.StatusServiceUnavailable, "", "")
	c.startServer(t, b)
	c.waitServing(t, b)
	getRoom()
}

// roomClient is one client's stream of a room: every message it received,
// in order.
type roomClient struct {
	name     string
	messages []event
	// read reads until a message with text has arrived, appending to
	// messages.
	read func(t *testing.T, text string)
}

func lastText(evs []event) string {
	if len(evs) == 0 {
		return ""
	}
	return evs[len(evs)-1].Text
}

func ndjsonClient(s *stack, t *testing.T, name, target, token string) *roomClient {
	t.Helper()
	st := s.openStream(t, target, token)
	if code := st.waitStatus(t); code != http.StatusOK {
		t.Fatalf("%s: status %d", name, code)
	}
	rc := &roomClient{name: name}
	rc.read = func(t *testing.T, text string) {
		t.Helper()
		if lastText(rc.messages) == text {
			return
		}
		st.collect(t, func(evs []event) bool {
			if ms := messages(evs); len(ms) > 0 && ms[len(ms)-1].Text == text {
				rc.messages = append(rc.messages, ms...)
				return true
			}
			return false
		})
	}
	return rc
}

func sseClient(s *stack, t *testing.T, name, target, token string) *roomClient {
	t.Helper()
	st := s.openSSE(t, target, token)
	if code, _ := st.waitStatus(t); code != http.StatusOK {
		t.Fatalf("%s: status %d", name, code)
	}
	rc := &roomClient{name: name}
	rc.read = func(t *testing.T, text string) {
		t.Helper()
		if lastText(rc.messages) == text {
			return
		}
		st.collect(t, func(evs []sseEvent) bool {
			ms := sseMessages(evs)
			if len(ms) == 0 || ms[len(ms)-1].Text != text {
				return false
			}
			for _, e := range evs {
				if e.ev.Kind == "EVENT_KIND_MESSAGE" && (!e.hasID || e.id != itoa(e.ev.Sequence)) {
					t.Errorf("%s: message %+v without its sequence as id", name, e.sseMsg)
				}
			}
			rc.messages = append(rc.messages, ms...)
			return true
		})
	}
	return rc
}

func wsClient(s *stack, t *testing.T, name, target, token string) *roomClient {
	t.Helper()
	conn := s.mustDialWS(t, target, bearer(token))
	rc := &roomClient{name: name}
	rc.read = func(t *testing.T, text string) {
		t.Helper()
		if lastText(rc.messages) == text {
			return
		}
		ms := messages(conn.events(t, func(evs []event) bool {
			ms := messages(evs)
			return len(ms) > 0 && ms[len(ms)-1].Text == text
		}, nil))
		rc.messages = append(rc.messages, ms...)
	}
	return rc
}

// wantExactly checks that the client received the messages with the texts
// in want, each once, in sequence order.
func (rc *roomClient) wantExactly(t *testing.T, want []string) {
	t.Helper()
	if got := texts(rc.messages); !slices.Equal(got, want) {
		t.Errorf("%s received %q, want %q once each", rc.name, got, want)
	}
	for i := 1; i < len(rc.messages); i++ {
		if rc.messages[i].Sequence <= rc.messages[i-1].Sequence {
			t.Errorf("%s: sequence %d after %d", rc.name, rc.messages[i].Sequence, rc.messages[i-1].Sequence)
		}
	}
}

// Without a bus: an SSE, an NDJSON and a WebSocket client on a room, and a
// live-only NDJSON client, all on server a; a is killed and they carry on
// from b; then b is killed and they carry on from a, restarted. Each
// receives every message once, in order, whichever server it was posted
// on.
func TestRoomStreamsCarryOnFromAnotherServerWhenTheirsIsKilled(t *testing.T) {
	c := startCluster(t, "", "a", "b")
	a, b := c.servers[0], c.servers[1]
	owner := c.signUp(t, "owner")
	reader := c.signUp(t, "reader")
	rm := c.createRoom(t, owner.token, "failover", "", "")
	var posted []string
	postVia := func(via func(text string), texts ...string) {
		for _, text := range texts {
			via(text)
			posted = append(posted, text)
		}
	}
	viaGateway := func(text string) { c.post(t, owner.token, rm.ID, text) }

	// The streams open with b down, so all of them run on a. What they
	// read first is posted there too: without a bus, a server that has a
	// room's log loaded knows only its own commits to it, and replays
	// history up to what it knows (a server restarted, as each is below
	// before it takes the streams over, reads where the log ends from the
	// database).
	c.kill(t, b)
	c.waitDown(t, b)
	postVia(viaGateway, "m1", "m2")
	room := "/v1/rooms/" + rm.ID
	clients := []*roomClient{
		sseClient(c.stack, t, "SSE", room+":subscribe?after=0", reader.token),
		ndjsonClient(c.stack, t, "NDJSON", room+":subscribe?after_sequence=0", reader.token),
		wsClient(c.stack, t, "WebSocket", room+":ws?after_sequence=0", reader.token),
	}
	liveOnly := ndjsonClient(c.stack, t, "live-only NDJSON", room+":subscribe", reader.token)
	a.waitOpenStreams(t, 4)
	for _, rc := range clients {
		rc.read(t, "m2")
	}
	c.startServer(t, b)
	c.waitServing(t, b)

	// Posted on a, delivered live by a before it dies.
	postVia(func(text string) { a.postOn(t, owner.token, rm.ID, text) }, "m3", "m4")
	for _, rc := range append(clients, liveOnly) {
		rc.read(t, "m4")
	}
	c.kill(t, a)
	c.waitDown(t, a)
	// Posted on b (the only server up): the streams resume there.
	postVia(viaGateway, "m5", "m6")
	for _, rc := range append(clients, liveOnly) {
		rc.read(t, "m6")
	}
	b.waitOpenStreams(t, 4)

	// And back: a restarted, b killed.
	c.startServer(t, a)
	c.waitServing(t, a)
	c.kill(t, b)
	c.waitDown(t, b)
	postVia(viaGateway, "m7", "m8")
	for _, rc := range append(clients, liveOnly) {
		rc.read(t, "m8")
	}
	a.waitOpenStreams(t, 4)

	for _, rc := range clients {
		rc.wantExactly(t, posted)
	}
	liveOnly.wantExactly(t, posted[2:])
}

// redisFor starts a redis-server of the test's own on loopback, without
// persistence, stopped when the test ends, and returns its address.
func redisFor(t *testing.T) string {
	t.Helper()
	return startRedis(t).addr
}

// redisServer is a redis-server of a test's own: the bus needs no
// persistence. kill and restart keep its address.
type redisServer struct {
	addr   string
	dir    string
	proc   *proc
	starts int
	owner  *testing.T // whose end stops it, also when a subtest restarts it
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	r := &redisServer{addr: freeAddr(t), dir: t.TempDir(), owner: t}
	r.start(t)
	return r
}

// freeAddr is a 127.0.0.1:port free a moment ago, for a process that cannot
// be started on port 0 (HAProxy, Redis restarted on the same port).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (r *redisServer) start(t *testing.T) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed (scripts/deps.sh test)")
	}
	r.starts++
	name := "redis"
	if r.starts > 1 {
		name = fmt.Sprintf("redis-%d", r.starts)
	}
	_, port, _ := net.SplitHostPort(r.addr)
	r.proc = startProcFor(t, r.owner, r.dir, name, bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir)
	waitListening(t, r.proc, r.addr)
}

// kill ends Redis with SIGKILL.
func (r *redisServer) kill(t *testing.T) {
	t.Helper()
	if err := r.proc.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-r.proc.done
}

// waitListening waits until addr accepts connections, failing if p exits
// first.
func waitListening(t *testing.T, p *proc, addr string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v", p.name, p.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s within %v", p.name, addr, startTimeout)
		}
	}
}

// With the Redis bus: the streams open wherever round robin puts them and
// the messages are posted through the gateway, so on either server; each
// server is killed in turn. Every client receives every message once, in
// order.
func TestRoomStreamsCarryOnAcrossServersJoinedByTheBus(t *testing.T) {
	c := startCluster(t, redisFor(t), "a", "b")
	a, b := c.servers[0], c.servers[1]
	owner := c.signUp(t, "owner")
	reader := c.signUp(t, "reader")
	rm := c.createRoom(t, owner.token, "bus-failover", "", "")
	var posted []string
	post := func(texts ...string) {
		for _, text := range texts {
			c.post(t, owner.token, rm.ID, text)
			posted = append(posted, text)
		}
	}
	post("m1", "m2")

	room := "/v1/rooms/" + rm.ID
	clients := []*roomClient{
		sseClient(c.stack, t, "SSE", room+":subscribe?after=0", reader.token),
		ndjsonClient(c.stack, t, "NDJSON", room+":subscribe?after_sequence=0", reader.token),
		wsClient(c.stack, t, "WebSocket", room+":ws?after_sequence=0", reader.token),
	}
	liveOnly := ndjsonClient(c.stack, t, "live-only NDJSON", room+":subscribe", reader.token)
	all := append(clients, liveOnly)
	post("m3", "m4", "m5", "m6")
	for _, rc := range all {
		rc.read(t, "m6")
	}

	// a dies: its streams resume on b, which has them all.
	c.kill(t, a)
	c.waitDown(t, a)
	post("m7", "m8")
	for _, rc := range all {
		rc.read(t, "m8")
	}
	b.waitOpenStreams(t, 4)

	// a back, b dies: every stream resumes on a.
	c.startServer(t, a)
	c.waitServing(t, a)
	post("m9", "m10")
	for _, rc := range all {
		rc.read(t, "m10")
	}
	c.kill(t, b)
	c.waitDown(t, b)
	post("m11", "m12")
	for _, rc := range all {
		rc.read(t, "m12")
	}
	a.waitOpenStreams(t, 4)

	for _, rc := range clients {
		rc.wantExactly(t, posted)
	}
	liveOnly.wantExactly(t, posted[2:])
}
