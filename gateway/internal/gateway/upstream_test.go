package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	parleyv1 "parley/gateway/gen/parley/v1"
)

func TestGRPCServerTakesAnAddressAListOrADNSName(t *testing.T) {
	for _, c := range []struct {
		spec, target, lookup string
		addresses            []string
	}{
		{"127.0.0.1:50051", "127.0.0.1:50051", "", []string{"127.0.0.1:50051"}},
		{" a:1, b:2 ,,a:1 ", "parley-servers:///a:1,b:2", "", []string{"a:1", "b:2"}},
		{"[::1]:7,127.0.0.1:8", "parley-servers:///[::1]:7,127.0.0.1:8", "", []string{"[::1]:7", "127.0.0.1:8"}},
		{"dns:///parley-server:50051", "dns:///parley-server:50051", "parley-server:50051", nil},
		{"dns://8.8.8.8/parley-server:50051", "dns://8.8.8.8/parley-server:50051", "parley-server:50051", nil},
		{"unix:///run/parley.sock", "unix:///run/parley.sock", "", nil},
	} {
		u, err := parseUpstream(c.spec)
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		lookup := ""
		if u.lookupHost != "" {
			lookup = net.JoinHostPort(u.lookupHost, u.lookupPort)
		}
		if u.target != c.target || lookup != c.lookup || !reflect.DeepEqual(u.addresses, c.addresses) {
			t.Errorf("%q: target %q, lookup %q, addresses %q; want %q, %q, %q",
				c.spec, u.target, lookup, u.addresses, c.target, c.lookup, c.addresses)
		}
		if (len(c.addresses) > 1) != (u.servers != nil) {
			t.Errorf("%q: manual resolver %v, want one only for a list", c.spec, u.servers)
		}
	}
	for _, spec := range []string{"", " , ", "parley-server", ":50051", "a:1,b", "dns:///parley-server",
		"dns:///a:1,dns:///b:2", "a:1,dns:///b:2"} {
		if _, err := parseUpstream(spec); err == nil {
			t.Errorf("%q: accepted", spec)
		}
	}
}

// fakeNode is one of several fake servers behind one gateway: its Join
// answers with the node's name as the sender, so a test sees which server
// took a call; its Subscribe and Poll read room "r" of the log the nodes
// share (resume_test.go).
type fakeNode struct {
	parleyv1.UnimplementedChatServiceServer
	name   string
	addr   string
	grpc   *grpc.Server
	health *health.Server
	room   *fakeRoomLog

	mu         sync.Mutex
	subscribes []*parleyv1.SubscribeRequest // every Subscribe, in order
	open       int                          // Subscribe streams open now
}

func (n *fakeNode) Join(context.Context, *parleyv1.JoinRequest) (*parleyv1.JoinResponse, error) {
	return &parleyv1.JoinResponse{Event: &parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_JOIN, Sender: n.name}}, nil
}

// startNodes starts fake servers with the given names on free ports.
func startNodes(t *testing.T, names ...string) []*fakeNode {
	t.Helper()
	return startNodesOn(t, newFakeRoomLog(), names...)
}

// startNodesOn starts fake servers sharing room.
func startNodesOn(t *testing.T, room *fakeRoomLog, names ...string) []*fakeNode {
	t.Helper()
	var nodes []*fakeNode
	for _, name := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n := &fakeNode{name: name, addr: ln.Addr().String(), grpc: grpc.NewServer(), health: health.NewServer(), room: room}
		parleyv1.RegisterChatServiceServer(n.grpc, n)
		healthpb.RegisterHealthServer(n.grpc, n.health)
		go n.grpc.Serve(ln)
		t.Cleanup(n.grpc.Stop)
		nodes = append(nodes, n)
	}
	return nodes
}

// startNodesGateway serves the gateway's handler in front of nodes, as Run
// dials them from --grpc_server.
func startNodesGateway(t *testing.T, opts Options, nodes ...*fakeNode) string {
	t.Helper()
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.addr)
	}
	opts.GRPCServer = strings.Join(addrs, ",")
	h, _ := testHandler(t, opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// testUpstream dials opts.GRPCServer as Run does; stop is the gateway's
// shutdown (also at the test's end).
type testUpstream struct {
	conn     *grpc.ClientConn
	health   *upstreamHealth
	log      *slog.Logger
	stopping context.Context
	stop     context.CancelFunc
}

func dialTestUpstream(t *testing.T, opts Options) testUpstream {
	t.Helper()
	if opts.MaxRecvMsgBytes == 0 {
		opts.MaxRecvMsgBytes = defaultMaxRecvMsgBytes
	}
	u := testUpstream{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	u.stopping, u.stop = context.WithCancel(context.Background())
	t.Cleanup(u.stop)
	var err error
	u.conn, u.health, err = dialUpstream(opts, u.log, u.stopping.Done())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.conn.Close(); u.health.Close() })
	return u
}

// testHandler is the gateway's handler in front of opts.GRPCServer, and
// its shutdown.
func testHandler(t *testing.T, opts Options) (*handler, context.CancelFunc) {
	t.Helper()
	u := dialTestUpstream(t, opts)
	cfg := opts.handlerConfig()
	cfg.servers = u.health
	h, err := newHandler(u.stopping, u.conn, u.log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, u.stop
}

// joinedOn makes a call and returns the name of the node that took it.
func joinedOn(t *testing.T, url string) string {
	t.Helper()
	resp, err := client.Get(url + "/join?id=x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Event struct {
			Sender string `json:"sender"`
		} `json:"event"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("join: %d %v", resp.StatusCode, err)
	}
	return body.Event.Sender
}

type healthReply struct {
	code int
	healthBody
}

func getHealth(t *testing.T, url string) healthReply {
	t.Helper()
	resp, err := client.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := healthReply{code: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&r.healthBody); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r healthReply) statusOf(addr string) string {
	for _, s := range r.Servers {
		if s.Address == addr {
			return s.Status
		}
	}
	return "absent"
}

// waitFor polls cond until it holds, or fails the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCallsAreSpreadOverTheServersThatAreUp(t *testing.T) {
	nodes := startNodes(t, "a", "b")
	url := startNodesGateway(t, Options{}, nodes...)

	// Once both are connected (each has taken a call), round_robin takes
	// them in turn.
	seen := map[string]bool{}
	waitFor(t, "calls on a and on b", func() bool {
		seen[joinedOn(t, url)] = true
		return seen["a"] && seen["b"]
	})
	served := map[string]int{}
	for i := 0; i < 10; i++ {
		served[joinedOn(t, url)]++
	}
	if served["a"] != 5 || served["b"] != 5 {
		t.Errorf("10 calls went %v, want 5 to each", served)
	}

	// b goes away: once the gateway sees it (its /healthz says so), every
	// call goes to a.
	nodes[1].grpc.Stop()
	waitFor(t, "healthz to see b gone", func() bool {
		return getHealth(t, url).statusOf(nodes[1].addr) == "UNKNOWN"
	})
	for i := 0; i < 10; i++ {
		if name := joinedOn(t, url); name != "a" {
			t.Fatalf("call %d went to %s with b down", i, name)
		}
	}
}

func TestHealthzIsServingWhileOneServerServesAndNamesTheOthers(t *testing.T) {
	nodes := startNodes(t, "a", "b")
	url := startNodesGateway(t, Options{}, nodes...)
	a, b := nodes[0], nodes[1]

	r := getHealth(t, url)
	want := []serverHealthBody{{Address: a.addr, Status: "SERVING"}, {Address: b.addr, Status: "SERVING"}}
	if r.code != 200 || r.Status != "SERVING" || r.Error != nil || !reflect.DeepEqual(r.Servers, want) {
		t.Errorf("both up: %+v, want 200 SERVING with %+v", r, want)
	}

	b.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if r := getHealth(t, url); r.code != 200 || r.Status != "SERVING" || r.statusOf(b.addr) != "NOT_SERVING" {
		t.Errorf("b not serving: %+v, want 200 with b NOT_SERVING", r)
	}

	b.grpc.Stop()
	r = getHealth(t, url)
	if r.code != 200 || r.Status != "SERVING" || r.statusOf(b.addr) != "UNKNOWN" ||
		r.Servers[1].Error == nil || r.Servers[1].Error.GRPCCode != "UNAVAILABLE" {
		t.Errorf("b gone: %+v, want 200 with b UNKNOWN and its error", r)
	}

	a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	r = getHealth(t, url)
	if r.code != 503 || r.Status != "UNKNOWN" || r.Error == nil || r.Error.Code != reasonNoServerServing ||
		r.statusOf(a.addr) != "NOT_SERVING" {
		t.Errorf("none serving: %+v, want 503 UNKNOWN %s", r, reasonNoServerServing)
	}
}

// A dns target is checked address by address, as the name resolves at the
// time of the check.
func TestHealthzChecksEveryAddressOfADNSName(t *testing.T) {
	ips, err := net.DefaultResolver.LookupHost(context.Background(), "localhost")
	if err != nil || !contains(ips, "127.0.0.1") {
		t.Skipf("localhost does not resolve to 127.0.0.1 here: %v %v", ips, err)
	}
	node := startNodes(t, "a")[0]
	_, port, _ := net.SplitHostPort(node.addr)
	u, err := parseUpstream("dns:///localhost:" + port)
	if err != nil {
		t.Fatal(err)
	}
	targets := newUpstreamHealth(u, nil)
	defer targets.Close()
	rec := httptest.NewRecorder()
	healthHandler(targets, slog.New(slog.NewTextHandler(io.Discard, nil)))(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil), nil)
	var body healthBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	r := healthReply{code: rec.Code, healthBody: body}
	if r.code != 200 || r.statusOf(node.addr) != "SERVING" || len(r.Servers) != len(ips) {
		t.Errorf("healthz = %+v, want 200 with %s SERVING among %d addresses", r, node.addr, len(ips))
	}
}
