package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// What cluster mode promises (docs/cluster.md), checked on one cluster of
// three servers, two gateways and HAProxy (ha_cluster_test.go). Each test
// uses rooms and users of its own; one that stops a part starts it again,
// and each begins by bringing back what an earlier one left stopped.
// A new test is one more entry in clusterTests.
var clusterTests = []struct {
	name string
	run  func(t *testing.T, c *haCluster)
}{
	{"APostOnOneServerReachesEveryKindOfReaderOnEveryReplica", testPostReachesEveryReader},
	{"ConcurrentPostersOnEveryServerOneGaplessOrder", testConcurrentPostersOneOrder},
	{"AServerKilledUnderLoadLosesNothingAndItsStreamsResume", testServerKilledUnderLoad},
	{"RedisKilledUnderLoadDelaysButNeverMisorders", testRedisKilledUnderLoad},
	{"PostgreSQLStoppedFailsWritesFastAndKeepsStreams", testPostgresStopped},
	{"RevocationClosesStreamsOnEveryReplicaWithinASecond", testRevocationAcrossReplicas},
	{"TheLobbySpansReplicas", testLobbyAcrossReplicas},
}

func TestCluster(t *testing.T) {
	if os.Getenv("PARLEY_TEST_CLUSTER") == "" {
		t.Skip("PARLEY_TEST_CLUSTER is not set; run through `make test-cluster`")
	}
	start := time.Now()
	c := startHACluster(t)
	c.owner = t
	t.Logf("cluster up in %v: HAProxy REST %s, gRPC %s", time.Since(start).Round(time.Millisecond), c.httpURL, c.grpcAddr)
	for _, tc := range clusterTests {
		t.Run(tc.name, func(t *testing.T) {
			c.heal(t)
			tc.run(t, c)
		})
	}
}

// poster posts text and returns the stored message.
type poster struct {
	name string
	post func(ctx context.Context, token, room, text string) (event, error)
}

// grpcPoster posts over gRPC through client (a server's or HAProxy's).
func grpcPoster(name string, client parleyv1.MessageServiceClient) poster {
	return poster{name, func(ctx context.Context, token, room, text string) (event, error) {
		ev, err := client.PostMessage(withToken(ctx, token), &parleyv1.PostMessageRequest{Room: room, Text: text})
		if err != nil {
			return event{}, err
		}
		return eventOf(ev), nil
	}}
}

// restPoster posts over REST through s (a gateway or HAProxy).
func restPoster(name string, s *stack) poster {
	return poster{name, func(ctx context.Context, token, room, text string) (event, error) {
		r, err := s.tryReq(http.MethodPost, "/v1/rooms/"+room+"/messages", token, map[string]string{"text": text})
		if err != nil {
			return event{}, err
		}
		var ev event
		if r.status != http.StatusCreated {
			return event{}, fmt.Errorf("status %v", r)
		}
		return ev, json.Unmarshal(r.body, &ev)
	}}
}

// everyKindOfReader opens a stream of room after the sequence from for each
// way in: gRPC on each server and through HAProxy, NDJSON, SSE and a
// WebSocket through each gateway and through HAProxy.
func (c *haCluster) everyKindOfReader(t *testing.T, token, room string, from uint64) []*reader {
	t.Helper()
	var rs []*reader
	for _, srv := range c.servers {
		rs = append(rs, grpcReader(t, "gRPC on "+srv.name, srv.conn, token, room, from))
	}
	rs = append(rs, grpcReader(t, "gRPC through HAProxy", c.grpcConn, token, room, from))
	for i, gw := range append(c.gateways, c.stack) {
		where := fmt.Sprintf("gateway %d", i+1)
		if gw == c.stack {
			where = "HAProxy"
		}
		rs = append(rs,
			ndjsonReader(t, "NDJSON through "+where, gw, token, room, from),
			sseReader(t, "SSE through "+where, gw, token, room, from),
			wsReader(t, "WebSocket through "+where, gw, token, room, from))
	}
	return rs
}

// 1. A message posted on server a (gRPC, directly) reaches gRPC readers on b
// and c, an SSE reader on gateway 2, a WebSocket reader on gateway 1, and
// every other kind of reader, each once and in the same order.
func testPostReachesEveryReader(t *testing.T, c *haCluster) {
	a := c.serverNamed("a")
	owner := c.signUp(t, "fanout-owner")
	rd := c.signUp(t, "fanout-reader")
	rm := c.createRoom(t, owner.token, "fanout", "", "")
	// Each reader starts at m0, so it is in place once m0 has arrived: what
	// follows comes live, from a through the bus.
	m0 := c.post(t, owner.token, rm.ID, "m0")
	readers := c.everyKindOfReader(t, rd.token, rm.ID, m0.Sequence-1)
	for _, r := range readers {
		r.waitThrough(t, 10*time.Second, m0.Sequence)
	}
	posted := []event{m0}
	for i := 1; i <= 5; i++ {
		posted = append(posted, a.postOn(t, owner.token, rm.ID, fmt.Sprintf("m%d", i)))
	}
	wantGapless(t, "posted", posted)
	last := posted[len(posted)-1].Sequence
	for _, r := range readers {
		r.waitThrough(t, 5*time.Second, last)
		wantDelivered(t, r, posted)
	}
	if d := sameMessages(c.serverNamed("c").history(t, owner.token, rm.ID), posted); d != "" {
		t.Errorf("history: %s", d)
	}
}

// 2. Posters on every server (directly, and through HAProxy over gRPC and
// REST) post to one room at once: every reader sees one order, the
// history's, numbered without gaps, and each poster's messages in the order
// it posted them.
func testConcurrentPostersOneOrder(t *testing.T, c *haCluster) {
	owner := c.signUp(t, "busy-owner")
	rd := c.signUp(t, "busy-reader")
	rm := c.createRoom(t, owner.token, "busy-cluster", "", "")
	readers := c.everyKindOfReader(t, rd.token, rm.ID, 0)

	var posters []poster
	for _, srv := range c.servers {
		for i := 1; i <= 2; i++ {
			posters = append(posters, grpcPoster(fmt.Sprintf("%s%d", srv.name, i), srv.msgs))
		}
	}
	posters = append(posters, grpcPoster("haproxy-grpc", parleyv1.NewMessageServiceClient(c.grpcConn)),
		restPoster("haproxy-rest", c.stack))
	const each = 40
	errs := make(chan error, len(posters))
	for _, p := range posters {
		go func() {
			for i := 0; i < each; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := p.post(ctx, owner.token, rm.ID, fmt.Sprintf("%s %d", p.name, i))
				cancel()
				if err != nil {
					errs <- fmt.Errorf("%s post %d: %w", p.name, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range posters {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	history := c.serverNamed("b").history(t, owner.token, rm.ID)
	if len(history) != each*len(posters) {
		t.Fatalf("history has %d messages, want %d", len(history), each*len(posters))
	}
	wantGapless(t, "history", history)
	next := map[string]int{}
	for _, m := range history {
		name, n, _ := strings.Cut(m.Text, " ")
		if n != fmt.Sprint(next[name]) {
			t.Errorf("%s's message %s came where %d was due", name, n, next[name])
		}
		next[name]++
	}
	for _, r := range readers {
		r.waitThrough(t, 10*time.Second, history[len(history)-1].Sequence)
		wantDelivered(t, r, history)
	}
}

// loadRate and loadCount: the posts of the tests under load, spread over
// the three servers: about loadRate a second, a few seconds long.
const (
	loadRate    = 1000
	loadCount   = 3000
	loadWorkers = 48
)

// 3. A server killed with SIGKILL while about 1,000 posts a second go to
// the three: every acknowledged post is in history once (a post that failed
// on the dead server is retried on another with its idempotency key),
// numbered without gaps; every live reader has all of it; the gateways'
// streams that were on the dead server carry on from another server with
// no gap and no duplicate.
func testServerKilledUnderLoad(t *testing.T, c *haCluster) {
	owner := c.signUp(t, "kill-owner")
	rd := c.signUp(t, "kill-reader")
	rm := c.createRoom(t, owner.token, "kill-under-load", "", "")
	// Which server each stream lands on: the streams each opened meanwhile
	// (a count of open streams would include streams that HAProxy keeps
	// open after their client left, until their next event).
	opened := c.streamsOpened(t)
	var direct []*reader
	for _, srv := range c.servers {
		direct = append(direct, grpcReader(t, "gRPC on "+srv.name, srv.conn, rd.token, rm.ID, 0))
	}
	var viaGateways []*reader
	for i, gw := range c.gateways {
		g := fmt.Sprintf("gateway %d", i+1)
		viaGateways = append(viaGateways,
			ndjsonReader(t, "NDJSON 1 through "+g, gw, rd.token, rm.ID, 0),
			ndjsonReader(t, "NDJSON 2 through "+g, gw, rd.token, rm.ID, 0),
			sseReader(t, "SSE through "+g, gw, rd.token, rm.ID, 0),
			wsReader(t, "WebSocket through "+g, gw, rd.token, rm.ID, 0))
	}
	// Each server has its direct reader and some of the gateways' streams;
	// the one with the most of those dies.
	onEach := opened(len(direct) + len(viaGateways))
	victim := c.servers[0]
	for _, srv := range c.servers {
		if onEach[srv.name] > onEach[victim.name] {
			victim = srv
		}
	}
	if onEach[victim.name] < 2 {
		t.Fatalf("no server has a gateway's stream: %v", onEach)
	}
	t.Logf("streams opened on each server %v; killing %s", onEach, victim.name)

	l := startLoad(t, loadSpec{name: "kill", token: owner.token, room: rm.ID, servers: c.servers,
		count: loadCount, rate: loadRate, workers: loadWorkers, retryFor: 10 * time.Second})
	l.waitAcked(t, loadCount/3)
	var survivors []*clusterServer
	for _, srv := range c.servers {
		if srv != victim {
			survivors = append(survivors, srv)
		}
	}
	resumed := c.streamsOpenedOn(t, survivors)
	c.kill(t, victim)
	results := l.wait(t)
	failed := 0
	for _, r := range results {
		if r.err != nil {
			if failed++; failed <= 5 {
				t.Errorf("%q: not acknowledged after retries: %v (last on %s)", r.text, r.err, r.server)
			}
		}
	}
	history := survivors[0].history(t, owner.token, rm.ID)
	if acked := wantAckedInHistory(t, results, history); acked != loadCount {
		t.Errorf("%d of %d posts acknowledged", acked, loadCount)
	}
	last := history[len(history)-1].Sequence
	for i, r := range direct {
		if c.servers[i] == victim {
			continue
		}
		r.waitThrough(t, 15*time.Second, last)
		wantDelivered(t, r, history)
	}
	for _, r := range viaGateways {
		r.waitThrough(t, 15*time.Second, last)
		wantDelivered(t, r, history)
	}
	// The dead server's own reader ended; up to then it had no gap either.
	for i, r := range direct {
		if c.servers[i] != victim {
			continue
		}
		if ended, _, _ := r.waitEnd(5 * time.Second); !ended {
			t.Errorf("%s: open 5s after its server was killed", r.name)
		}
		got := r.messages()
		if d := sameMessages(got, history[:min(len(got), len(history))]); d != "" {
			t.Errorf("%s: %s", r.name, d)
		}
	}
	// The dead server's gateway streams were opened again on the others
	// (and delivered everything, above).
	t.Logf("streams opened again on the others: %v", resumed(int(onEach[victim.name])-1))

	c.restartServer(t, victim)
}

// streamsOpened notes how many streams each server has opened so far, and
// returns a function that waits until n more have been opened in all and
// says how many on each.
func (c *haCluster) streamsOpened(t *testing.T) func(n int) map[string]uint64 {
	t.Helper()
	return c.streamsOpenedOn(t, c.servers)
}

// streamsOpenedOn is streamsOpened for some of the servers.
func (c *haCluster) streamsOpenedOn(t *testing.T, servers []*clusterServer) func(n int) map[string]uint64 {
	t.Helper()
	before := map[string]uint64{}
	for _, srv := range servers {
		before[srv.name] = srv.streamsTotal(t)
	}
	return func(n int) map[string]uint64 {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			opened := map[string]uint64{}
			var total uint64
			for _, srv := range servers {
				opened[srv.name] = srv.streamsTotal(t) - before[srv.name]
				total += opened[srv.name]
			}
			if total >= uint64(n) {
				return opened
			}
			if time.Now().After(deadline) {
				t.Fatalf("streams opened since %v: %v, want %d in all", before, opened, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// 4. Redis killed with SIGKILL under the same load, and started again on
// its port: no post is lost and no reader sees a gap, a duplicate or
// another order, while Redis is away or after. A message posted on one
// server while Redis is down reaches every server's readers within 2 s of
// Redis being back, and live delivery across servers works again.
func testRedisKilledUnderLoad(t *testing.T, c *haCluster) {
	a, b := c.serverNamed("a"), c.serverNamed("b")
	owner := c.signUp(t, "redis-owner")
	rd := c.signUp(t, "redis-reader")
	rm := c.createRoom(t, owner.token, "redis-under-load", "", "")
	readers := c.everyKindOfReader(t, rd.token, rm.ID, 0)

	l := startLoad(t, loadSpec{name: "redis", token: owner.token, room: rm.ID, servers: c.servers,
		count: loadCount, rate: loadRate, workers: loadWorkers})
	l.waitAcked(t, loadCount/3)
	c.redis.kill(t)
	results := l.wait(t)
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("%q on %s failed with Redis down: %v", r.text, r.server, r.err)
		}
	}
	// Only a has this one: no other server commits after it to make its
	// own readers look it up.
	whileDown := a.postOn(t, owner.token, rm.ID, "posted on a while Redis is down")
	c.redis.start(t)
	back := time.Now()
	for _, r := range readers {
		r.waitThrough(t, max(time.Until(back.Add(2*time.Second)), 0), whileDown.Sequence)
	}
	t.Logf("every reader had the message posted while Redis was down %v after Redis was back",
		time.Since(back).Round(time.Millisecond))
	// And live again: one post on b reaches everyone promptly.
	live := b.postOn(t, owner.token, rm.ID, "posted on b with Redis back")
	for _, r := range readers {
		r.waitThrough(t, 2*time.Second, live.Sequence)
	}

	history := c.serverNamed("c").history(t, owner.token, rm.ID)
	if acked := wantAckedInHistory(t, results, history); acked != loadCount {
		t.Errorf("%d of %d posts acknowledged", acked, loadCount)
	}
	if history[len(history)-1].Sequence != live.Sequence {
		t.Errorf("history ends at %d, want %d", history[len(history)-1].Sequence, live.Sequence)
	}
	for _, r := range readers {
		wantDelivered(t, r, history)
	}
}

// writeBound is how long a write may take to fail while PostgreSQL is down.
const writeBound = 2 * time.Second

// storeBackoff is the longest a server waits between two attempts to
// connect to PostgreSQL (server/store/postgres_store.cc, kMaxBackoff): each
// of its connections is back by then once PostgreSQL is. storeBackBound is
// how soon after PostgreSQL's start every server must read and write again.
const (
	storeBackoff   = time.Second
	storeBackBound = 2 * time.Second
)

// waitStoreBack waits until each server's every connection to PostgreSQL,
// started again at resumed, has had its chance to reconnect, reading room
// on each meanwhile: a read refused past storeBackBound fails the test.
func (c *haCluster) waitStoreBack(t *testing.T, resumed time.Time, token, room string) {
	t.Helper()
	for _, srv := range c.servers {
		msgs := parleyv1.NewMessageServiceClient(srv.conn)
		for {
			ctx, cancel := context.WithTimeout(withToken(context.Background(), token), 10*time.Second)
			_, err := msgs.ListMessages(ctx, &parleyv1.ListMessagesRequest{Room: room, N: 1})
			cancel()
			switch {
			case err != nil && time.Since(resumed) > storeBackBound:
				t.Fatalf("%s: reads refused %v after PostgreSQL's start: %v", srv.name, time.Since(resumed).Round(time.Millisecond), err)
			case err == nil && time.Since(resumed) > storeBackoff:
				// Every attempt to connect that failed was before resumed.
			default:
				time.Sleep(20 * time.Millisecond)
				continue
			}
			break
		}
	}
}

// 5. PostgreSQL stopped (pg_ctl stop -m fast) while posts go to every
// server: writes fail with UNAVAILABLE (gRPC) or 503 (REST) within 2 s
// each; the streams stay open. Started again, the servers take writes
// without a restart, the streams carry what is posted, and every
// acknowledged post is in history.
func testPostgresStopped(t *testing.T, c *haCluster) {
	owner := c.signUp(t, "pg-owner")
	rd := c.signUp(t, "pg-reader")
	rm := c.createRoom(t, owner.token, "pg-stopped", "", "")
	readers := c.everyKindOfReader(t, rd.token, rm.ID, 0)

	l := startLoad(t, loadSpec{name: "pg", token: owner.token, room: rm.ID, servers: c.servers,
		count: 1500, rate: 500, workers: loadWorkers})
	l.waitAcked(t, 300)
	c.pgPaused = true
	c.pg.control(t, "pause")
	stopped := time.Now()
	t.Cleanup(func() { // when the test stopped half way
		if c.pgPaused {
			c.pg.control(t, "resume")
			c.pgPaused = false
			c.waitStoreBack(t, time.Now(), owner.token, rm.ID)
		}
	})

	// Writes through every way in, with PostgreSQL down.
	for _, p := range []poster{
		grpcPoster("gRPC on a", c.serverNamed("a").msgs),
		grpcPoster("gRPC on b", c.serverNamed("b").msgs),
		grpcPoster("gRPC on c", c.serverNamed("c").msgs),
		grpcPoster("gRPC through HAProxy", parleyv1.NewMessageServiceClient(c.grpcConn)),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		_, err := p.post(ctx, owner.token, rm.ID, "with PostgreSQL down")
		took := time.Since(start)
		cancel()
		if status.Code(err) != codes.Unavailable || took > writeBound {
			t.Errorf("%s with PostgreSQL down: %v after %v, want UNAVAILABLE within %v", p.name, err, took, writeBound)
		}
	}
	for _, gw := range append(c.gateways, c.stack) {
		start := time.Now()
		r, err := gw.tryReq(http.MethodPost, "/v1/rooms/"+rm.ID+"/messages", owner.token, map[string]string{"text": "REST with PostgreSQL down"})
		took := time.Since(start)
		if err != nil {
			t.Errorf("REST post through %s: %v", gw.httpURL, err)
		} else if wantError(t, r, http.StatusServiceUnavailable, "", ""); took > writeBound {
			t.Errorf("REST post through %s: %v after %v, want 503 within %v", gw.httpURL, r, took, writeBound)
		}
	}
	start := time.Now()
	r, err := c.tryReq(http.MethodPost, "/v1/rooms", owner.token, map[string]string{"name": "born-while-pg-down"})
	if err != nil {
		t.Errorf("create room: %v", err)
	} else if wantError(t, r, http.StatusServiceUnavailable, "", ""); time.Since(start) > writeBound {
		t.Errorf("create room: %v after %v", r, time.Since(start))
	}

	results := l.wait(t)
	acked, failed := 0, 0
	for _, r := range results {
		switch {
		case r.err == nil:
			acked++
		case status.Code(r.err) != codes.Unavailable || r.took > writeBound:
			if failed++; failed <= 5 {
				t.Errorf("%q on %s: %v after %v, want UNAVAILABLE within %v", r.text, r.server, r.err, r.took, writeBound)
			}
		default:
			failed++
		}
	}
	t.Logf("with PostgreSQL stopped %v after the start: %d posts acknowledged, %d failed", stopped.Sub(l.started).Round(time.Millisecond), acked, failed)
	if failed == 0 {
		t.Errorf("every post succeeded: PostgreSQL was not down while they ran")
	}
	for _, r := range readers {
		if ended, _, how, _ := r.state(); ended {
			t.Errorf("%s ended while PostgreSQL was down: %s", r.name, how)
		}
	}

	c.pg.control(t, "resume")
	c.pgPaused = false
	resumed := time.Now()
	// Each server writes and reads again on its own, without a restart.
	var after []event
	for _, srv := range c.servers {
		for {
			ctx, cancel := context.WithTimeout(withToken(context.Background(), owner.token), 10*time.Second)
			ev, err := srv.msgs.PostMessage(ctx, &parleyv1.PostMessageRequest{Room: rm.ID, Text: "back on " + srv.name})
			cancel()
			if err == nil {
				after = append(after, eventOf(ev))
				break
			}
			if time.Since(resumed) > storeBackBound {
				t.Fatalf("%s: no write within %v of PostgreSQL's start: %v", srv.name, storeBackBound, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("every server wrote again %v after PostgreSQL's start", time.Since(resumed).Round(time.Millisecond))
	c.waitStoreBack(t, resumed, owner.token, rm.ID)
	after = append(after, c.post(t, owner.token, rm.ID, "back through HAProxy"))

	history := c.serverNamed("a").history(t, owner.token, rm.ID)
	if got := wantAckedInHistory(t, results, history); got != acked {
		t.Errorf("history holds %d acknowledged posts, want %d", got, acked)
	}
	last := history[len(history)-1].Sequence
	if want := slices.MaxFunc(after, func(x, y event) int { return int(x.Sequence) - int(y.Sequence) }).Sequence; last != want {
		t.Errorf("history ends at %d, want %d", last, want)
	}
	for _, r := range readers {
		r.waitThrough(t, 5*time.Second, last)
		wantDelivered(t, r, history)
		if ended, _, how, _ := r.state(); ended {
			t.Errorf("%s ended: %s", r.name, how)
		}
	}
}

// closeBound is how soon every replica must close the streams that a
// decision on one server ends.
const closeBound = time.Second

// 6. A decision on server a that ends streams (a member removed, a token
// signed out, a user deleted) closes the affected streams on b and c and
// through both gateways within a second, with the code a single server
// gives.
func testRevocationAcrossReplicas(t *testing.T, c *haCluster) {
	a := c.serverNamed("a")
	owner := c.signUp(t, "rev-owner")
	rooms := parleyv1.NewRoomServiceClient(a.conn)

	// openAll opens every kind of stream of room as token, except those on
	// a itself, and waits until each is in place (has the room's first
	// message, first).
	openAll := func(t *testing.T, token, room string, first event) []*reader {
		t.Helper()
		var rs []*reader
		for _, srv := range c.servers[1:] {
			rs = append(rs, grpcReader(t, "gRPC on "+srv.name, srv.conn, token, room, first.Sequence-1))
		}
		for i, gw := range c.gateways {
			g := fmt.Sprintf("gateway %d", i+1)
			rs = append(rs,
				sseReader(t, "SSE through "+g, gw, token, room, first.Sequence-1),
				ndjsonReader(t, "NDJSON through "+g, gw, token, room, first.Sequence-1),
				wsReader(t, "WebSocket through "+g, gw, token, room, first.Sequence-1))
		}
		for _, r := range rs {
			r.waitThrough(t, 10*time.Second, first.Sequence)
		}
		return rs
	}
	// wantClosed checks that every reader ended with code within closeBound
	// of decided.
	wantClosed := func(t *testing.T, rs []*reader, code string, decided time.Time) {
		t.Helper()
		for _, r := range rs {
			ended, got, at := r.waitEnd(time.Until(decided.Add(5 * time.Second)))
			_, _, how, _ := r.state()
			switch {
			case !ended:
				t.Errorf("%s: still open 5s after the decision", r.name)
			case got != code:
				t.Errorf("%s ended with %q (%s), want %s", r.name, got, how, code)
			case at.Sub(decided) > closeBound:
				t.Errorf("%s closed %v after the decision, want within %v", r.name, at.Sub(decided).Round(time.Millisecond), closeBound)
			}
		}
	}

	t.Run("MemberRemoved", func(t *testing.T) {
		bob := c.signUp(t, "rev-bob")
		rm := c.createRoom(t, owner.token, "rev-private", "VISIBILITY_PRIVATE", "rev-private-pw")
		mustStatus(t, c.req(t, http.MethodPost, "/v1/rooms/"+rm.ID+"/members", owner.token, map[string]string{"user": bob.Username}), 200, nil)
		first := c.post(t, owner.token, rm.ID, "first")
		rs := openAll(t, bob.token, rm.ID, first)
		ctx, cancel := context.WithTimeout(withToken(context.Background(), owner.token), 10*time.Second)
		_, err := rooms.RemoveMember(ctx, &parleyv1.RemoveMemberRequest{Room: rm.ID, User: bob.Username})
		cancel()
		if err != nil {
			t.Fatalf("remove bob on a: %v", err)
		}
		wantClosed(t, rs, "PERMISSION_DENIED", time.Now())
	})

	t.Run("SignedOut", func(t *testing.T) {
		carol := c.signUp(t, "rev-carol")
		rm := c.createRoom(t, owner.token, "rev-public", "", "")
		first := c.post(t, owner.token, rm.ID, "first")
		rs := openAll(t, carol.token, rm.ID, first)
		ctx, cancel := context.WithTimeout(withToken(context.Background(), carol.token), 10*time.Second)
		_, err := parleyv1.NewAuthServiceClient(a.conn).SignOut(ctx, &parleyv1.SignOutRequest{})
		cancel()
		if err != nil {
			t.Fatalf("sign out on a: %v", err)
		}
		decided := time.Now()
		// The token is refused everywhere within a second: at once on a,
		// on the others when the bus's notice arrives.
		for _, srv := range c.servers {
			for {
				ctx, cancel := context.WithTimeout(withToken(context.Background(), carol.token), 10*time.Second)
				_, err := parleyv1.NewRoomServiceClient(srv.conn).GetRoom(ctx, &parleyv1.GetRoomRequest{Room: rm.ID})
				cancel()
				if status.Code(err) == codes.Unauthenticated {
					break
				}
				if srv == a || time.Since(decided) > time.Second {
					t.Errorf("GetRoom on %s %v after the sign-out: %v, want UNAUTHENTICATED (TOKEN_REVOKED)",
						srv.name, time.Since(decided), err)
					break
				}
				time.Sleep(10 * time.Millisecond) // polling for the notice, bounded by the second
			}
		}
		wantClosed(t, rs, "UNAUTHENTICATED", decided)
	})

	t.Run("UserDeleted", func(t *testing.T) {
		dave := c.signUp(t, "rev-dave")
		rm := c.createRoom(t, owner.token, "rev-deleted", "", "")
		first := c.post(t, owner.token, rm.ID, "first")
		rs := openAll(t, dave.token, rm.ID, first)
		ctx, cancel := context.WithTimeout(withToken(context.Background(), dave.token), 10*time.Second)
		_, err := parleyv1.NewUserServiceClient(a.conn).DeleteUser(ctx, &parleyv1.DeleteUserRequest{User: "me"})
		cancel()
		if err != nil {
			t.Fatalf("delete dave on a: %v", err)
		}
		wantClosed(t, rs, "UNAUTHENTICATED", time.Now())
	})
}
