package integration

import (
	"context"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// Per-client limits hold across the servers of a cluster: streams are
// claimed in Redis, sign-in failures are read from it (docs/security.md,
// "Limits").

// redisInt is an integer Redis at addr answers to args (0 for nil).
func redisInt(t *testing.T, addr string, args ...string) int {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port, "--no-raw"}, args...)...).Output()
	if err != nil {
		t.Fatalf("redis-cli %v: %v", args, err)
	}
	s := strings.TrimSpace(string(out))
	s = strings.TrimPrefix(s, "(integer) ")
	s = strings.Trim(s, "\"")
	if s == "(nil)" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("redis-cli %v: %q", args, out)
	}
	return n
}

// waitRedis polls Redis (bounded) until cond holds for the integer of args.
func waitRedis(t *testing.T, addr, what string, cond func(int) bool, args ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(redisInt(t, addr, args...)) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, bounded above
	}
}

func chatClient(t *testing.T, srv *clusterServer) parleyv1.ChatServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return parleyv1.NewChatServiceClient(conn)
}

// openRoomStream opens a stream of room's history and waits for its first
// write: the error is the stream's refusal, if it was refused.
func openRoomStream(t *testing.T, chat parleyv1.ChatServiceClient, token, room string) (context.CancelFunc, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(signedIn(token), 30*time.Second)
	stream, err := chat.Subscribe(ctx, &parleyv1.SubscribeRequest{Room: room, AfterSequence: proto.Uint64(0)})
	if err == nil {
		_, err = stream.Recv()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return cancel, nil
}

func TestStreamsPerUserHoldAcrossServers(t *testing.T) {
	redis := redisFor(t)
	c := startClusterWith(t, redis, []stackOption{withLimits("--streams_per_user=2")}, "a", "b")
	a, b := chatClient(t, c.servers[0]), chatClient(t, c.servers[1])
	alice := c.signUp(t, "alice")
	rm := c.createRoom(t, alice.token, "streams", "", "")
	c.post(t, alice.token, "streams", "hello")

	first, err := openRoomStream(t, a, alice.token, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if first != nil {
			first()
		}
	}()
	second, err := openRoomStream(t, b, alice.token, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer second()
	for name, chat := range map[string]parleyv1.ChatServiceClient{"a": a, "b": b} {
		_, err := openRoomStream(t, chat, alice.token, rm.ID)
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "streams open") {
			t.Fatalf("a third stream on %s: %v, want RESOURCE_EXHAUSTED (1 on a, 1 on b, at most 2)", name, err)
		}
	}
	// a's stream ends; once a has told Redis, b may open one.
	first()
	first = nil
	key := "parley:limits:slots:streams:user:" + alice.ID
	waitRedis(t, redis, "a's release reaching Redis", func(n int) bool { return n == 1 }, "HLEN", key)
	third, err := openRoomStream(t, b, alice.token, rm.ID)
	if err != nil {
		t.Fatalf("after a's stream ended: %v", err)
	}
	third()
}

func TestSignInBackOffHoldsAcrossServers(t *testing.T) {
	redis := redisFor(t)
	c := startClusterWith(t, redis, []stackOption{withLimits("--sign_in_free_failures_per_user=2", "--sign_in_backoff=1m")}, "a", "b")
	alice := c.signUp(t, "alice")
	ca, cb := clientsOf(t, c.servers[0]), clientsOf(t, c.servers[1])
	for i := 0; i < 3; i++ {
		_, err := ca.auth.SignIn(context.Background(), &parleyv1.SignInRequest{Username: "alice", Password: "not-the-password"})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("wrong password %d on a: %v", i, err)
		}
	}
	waitRedis(t, redis, "a's failures reaching Redis", func(n int) bool { return n >= 3 },
		"HGET", "parley:limits:failures:failures:user:alice", "n")
	// b has seen no failure of alice's itself.
	_, err := cb.auth.SignIn(context.Background(), &parleyv1.SignInRequest{Username: "alice", Password: alice.password})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "failed sign-ins") {
		t.Fatalf("the right password on b: %v, want RESOURCE_EXHAUSTED (back-off after 3 failures on a)", err)
	}
}

// slotsHeld is the Redis command counting the slots a key's hash holds
// across the cluster's servers (one field per server).
func slotsHeld(key string) []string {
	return []string{"EVAL", "local n = 0 for _, v in ipairs(redis.call('HVALS', KEYS[1])) do n = n + tonumber(v) end return n", "1", key}
}

// A client of the gateway's fan-out holds one of its user's stream slots
// in Redis as its own stream would (docs/fanout.md, "Limits"): beside it
// and a gRPC stream, a third stream is refused on every server, and a
// second fan-out client is refused 429.
func TestFanoutClientsHoldStreamSlotsAcrossServers(t *testing.T) {
	redis := redisFor(t)
	c := startClusterWith(t, redis, []stackOption{withLimits("--streams_per_user=2")}, "a", "b")
	a, b := chatClient(t, c.servers[0]), chatClient(t, c.servers[1])
	alice := c.signUp(t, "alice")
	rm := c.createRoom(t, alice.token, "fanned-limits", "", "")
	key := "parley:limits:slots:streams:user:" + alice.ID

	sse := c.openSSE(t, "/v1/rooms/"+rm.ID+":subscribe", alice.token)
	if code, _ := sse.waitStatus(t); code != http.StatusOK {
		t.Fatalf("the fan-out client: status %d", code)
	}
	if n := redisInt(t, redis, slotsHeld(key)...); n != 1 {
		t.Fatalf("after the fan-out client was admitted Redis counts %d of alice's streams, want 1", n)
	}
	grpcStream, err := openRoomStream(t, a, alice.token, rm.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer grpcStream()
	for name, chat := range map[string]parleyv1.ChatServiceClient{"a": a, "b": b} {
		_, err := openRoomStream(t, chat, alice.token, rm.ID)
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "streams open") {
			t.Fatalf("a third stream on %s: %v, want RESOURCE_EXHAUSTED (a fan-out client and a stream, at most 2)", name, err)
		}
	}
	refused := c.openSSE(t, "/v1/rooms/"+rm.ID+":subscribe", alice.token)
	if code, _ := refused.waitStatus(t); code != http.StatusTooManyRequests {
		t.Fatalf("a second fan-out client: status %d, want 429", code)
	}

	// The fan-out client leaves: its slot is given back, in Redis too.
	sse.cancel()
	waitRedis(t, redis, "the fan-out client's release reaching Redis", func(n int) bool { return n == 1 }, slotsHeld(key)...)
	again := c.openSSE(t, "/v1/rooms/"+rm.ID+":subscribe", alice.token)
	if code, _ := again.waitStatus(t); code != http.StatusOK {
		t.Fatalf("after the fan-out client left: status %d", code)
	}
}
