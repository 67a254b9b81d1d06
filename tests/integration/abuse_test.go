package integration

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	parleyv1 "parley/gateway/gen/parley/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The abuse suite (make test-abuse; PARLEY_TEST_ABUSE=1): the probes of
// issue 19 replayed against the real binaries on loopback, set up as
// `make run` runs them (HAProxy in front, the default limits), with
// bounded counts and times. Each asserts the status codes, and for the
// floods a control client's latency (docs/security.md, "Abuse suite").

func abuseOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("PARLEY_TEST_ABUSE") == "" {
		t.Skip("PARLEY_TEST_ABUSE is not set; run through `make test-abuse`")
	}
}

// runStack is a stack as `make run` starts it: the default limits, the
// server trusting its gateway and front, HAProxy in front.
func runStack(t *testing.T) (*stack, *front) {
	t.Helper()
	s := startStack(t, withRunDefaults())
	return s, startFront(t, s)
}

// latencyFloor is the p99 below which a control client's figures are
// scheduler noise, not a slowdown: on a two-core machine the attacker,
// HAProxy, the gateway and the server share the cores with it.
const latencyFloor = 10 * time.Millisecond

// controlHolds fails t unless the control client's p99 during an attack is
// at most twice its p99 before it (or the floor), with no failed call.
func controlHolds(t *testing.T, c *controlClient, attack func()) {
	t.Helper()
	time.Sleep(time.Second) // baseline calls (the control client paces itself)
	_, before, n, failed := c.take()
	if n == 0 || failed > 0 {
		t.Fatalf("baseline: %d calls, %d failed", n, failed)
	}
	attack()
	p50, during, n, failed := c.take()
	t.Logf("control p99 %v before, %v during (p50 %v, %d calls, %d failed)", before, during, p50, n, failed)
	limit := 2 * max(before, latencyFloor)
	if failed > 0 || n == 0 || during > limit {
		t.Errorf("control client during the attack: p99 %v over %d calls, %d failed; want p99 <= %v, none failed",
			during, n, failed, limit)
	}
}

// Row 1: HTTP/2 rapid reset on the published gRPC port.
func TestAbuseRapidReset(t *testing.T) {
	abuseOnly(t)
	s, f := runStack(t)
	control := startControl(t, f.grpcAddr, 5*time.Millisecond)
	defer control.close()
	pid := s.server.cmd.Process.Pid
	base := rssOf(t, pid)
	var res rapidResetResult
	controlHolds(t, control, func() {
		res = rapidReset(f.grpcAddr, "/grpc.health.v1.Health/Check", 4, 5*time.Second, 45000)
	})
	rss := rssOf(t, pid)
	t.Logf("%d streams opened and reset; server rss %d -> %d MB", res.opened, base>>20, rss>>20)
	if res.opened < 100000 {
		t.Errorf("the attack opened only %d streams", res.opened)
	}
	if rss-base > 128<<20 {
		t.Errorf("server rss grew %d MB under the attack; want at most 128", (rss-base)>>20)
	}
}

// Row 2: concurrent sign-ins with wrong passwords.
func TestAbuseWrongPasswordFlood(t *testing.T) {
	abuseOnly(t)
	s, f := runStack(t)
	s.signUp(t, "victim")
	control := startControl(t, f.grpcAddr, 5*time.Millisecond)
	defer control.close()
	conn := attackerConn(t, f.grpcAddr, attackerAddr)
	var codesSeen sync.Map
	// 32 at once, 1,000 a second for 5 s: long enough for the control
	// client's p99 to mean something.
	pace := time.NewTicker(time.Second / 1000)
	defer pace.Stop()
	var attempts atomic.Int64
	controlHolds(t, control, func() {
		var wg sync.WaitGroup
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := attempts.Add(1); j <= 5000; j = attempts.Add(1) {
					<-pace.C
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := parleyv1.NewAuthServiceClient(conn).SignIn(ctx,
						&parleyv1.SignInRequest{Username: "victim", Password: fmt.Sprintf("guess-%d", j)})
					cancel()
					if refusedByALimit(err) {
						err = status.Error(codes.ResourceExhausted, "")
					}
					codesSeen.Store(status.Code(err), true)
				}
			}()
		}
		wg.Wait()
	})
	var seen []codes.Code
	codesSeen.Range(func(k, _ any) bool { seen = append(seen, k.(codes.Code)); return true })
	t.Logf("codes: %v", seen)
	for _, c := range seen {
		if c != codes.Unauthenticated && c != codes.ResourceExhausted {
			t.Errorf("a wrong password was answered %v", c)
		}
	}
	if _, ok := codesSeen.Load(codes.ResourceExhausted); !ok {
		t.Error("5,000 wrong passwords from one address were never refused RESOURCE_EXHAUSTED")
	}
	// The victim may still sign in from elsewhere once the wait is over;
	// the attacker's address alone is held.
}

// Row 3: four 256 MiB requests at once, no token.
func TestAbuseHugeRequests(t *testing.T) {
	abuseOnly(t)
	s, f := runStack(t)
	pid := s.server.cmd.Process.Pid
	base := rssOf(t, pid)
	errs := hugeRequests(t, f.grpcAddr, 4, 256<<20)
	rss := rssOf(t, pid)
	t.Logf("server rss %d -> %d MB", base>>20, rss>>20)
	for i, err := range errs {
		// The server resets each stream RESOURCE_EXHAUSTED; through HAProxy
		// the client reads the reset as REFUSED_STREAM (UNAVAILABLE).
		if c := status.Code(err); c != codes.ResourceExhausted && c != codes.Unavailable {
			t.Errorf("request %d: %v, want RESOURCE_EXHAUSTED or UNAVAILABLE", i, err)
		}
	}
	// --grpc_memory_quota_bytes (256 MiB) bounds it, with some slack.
	if rss-base > 320<<20 {
		t.Errorf("server rss grew %d MB; want at most 320", (rss-base)>>20)
	}
}

// Row 4: 10,000 anonymous lobby joins.
func TestAbuseJoinFlood(t *testing.T) {
	abuseOnly(t)
	s, f := runStack(t)
	control := startControl(t, f.grpcAddr, 5*time.Millisecond)
	defer control.close()
	attacker := &http.Client{Transport: &http.Transport{
		DialContext:     (&net.Dialer{LocalAddr: attackerAddr}).DialContext,
		MaxConnsPerHost: 8, MaxIdleConnsPerHost: 8,
	}}
	// 2,000 joins a second: 10,000 in 5 s.
	pace := time.NewTicker(time.Second / 2000)
	defer pace.Stop()
	pid := s.server.cmd.Process.Pid
	base := rssOf(t, pid)
	var joined, refused, other atomic.Int64
	controlHolds(t, control, func() {
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1); i <= 10000; i = next.Add(1) {
					<-pace.C
					resp, err := attacker.Get(fmt.Sprintf("http://%s/join?id=flood-%d", f.restAddr, i))
					if err != nil {
						other.Add(1)
						continue
					}
					resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusOK:
						joined.Add(1)
					case http.StatusTooManyRequests:
						refused.Add(1)
					default:
						other.Add(1)
					}
				}
			}()
		}
		wg.Wait()
	})
	rss := rssOf(t, pid)
	t.Logf("joins: %d joined, %d refused, %d other; server rss %d -> %d MB",
		joined.Load(), refused.Load(), other.Load(), base>>20, rss>>20)
	if joined.Load() != 100 || other.Load() != 0 {
		t.Errorf("%d joined and %d neither joined nor refused; want 100 (--lobby_sessions_per_address) and 0",
			joined.Load(), other.Load())
	}
	if rss-base > 64<<20 {
		t.Errorf("server rss grew %d MB; want at most 64", (rss-base)>>20)
	}
	// Another address still joins.
	s.httpURL = "http://" + f.restAddr
	mustOK(t, s.get(t, "/join?id=bystander"), nil)
}

// Row 5: a 16 KB bearer token; forwarded headers over 8 KiB.
func TestAbuseOversizedHeaders(t *testing.T) {
	abuseOnly(t)
	s, f := runStack(t)
	s.httpURL = "http://" + f.restAddr
	for _, c := range []struct {
		name   string
		token  string
		header []string
	}{
		{"a 16 KB token", strings.Repeat("a", 16<<10), nil},
		{"a 9 KB forwarded address list", "", []string{"X-Forwarded-For", strings.Repeat("192.0.2.1, ", 9<<10/11)}},
		{"a 9 KB idempotency key", "", []string{"Idempotency-Key", strings.Repeat("k", 9<<10)}},
	} {
		r := s.req(t, http.MethodGet, "/v1/users/me", c.token, nil, c.header...)
		if r.status < 400 || r.status >= 500 {
			t.Errorf("%s: %v, want a 4xx", c.name, r)
			continue
		}
		wantError(t, r, r.status, "", "")
	}
}

// Row 6: Authorization and Grpc-Metadata-Authorization naming two users.
func TestAbuseTwoAuthorizations(t *testing.T) {
	abuseOnly(t)
	s, f := runStack(t)
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")
	s.httpURL = "http://" + f.restAddr
	for i := 0; i < 30; i++ {
		r := s.req(t, http.MethodGet, "/v1/users/me", alice.token, nil, "Grpc-Metadata-Authorization", "Bearer "+bob.token)
		if r.status == http.StatusOK && strings.Contains(string(r.body), `"bob"`) {
			t.Fatalf("request %d ran as bob: %v", i, r)
		}
	}
}

// Row 7: X-Forwarded-Host from a client, through the front (which the
// gateway trusts) and straight to the gateway (which does not trust it).
func TestAbuseForwardedHost(t *testing.T) {
	abuseOnly(t)
	s, f := runStack(t)
	alice := s.signUp(t, "alice")
	rm := s.createRoom(t, alice.token, "general", "", "")
	c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: attackerAddr}).DialContext}}
	for _, via := range []struct{ name, addr string }{{"the front", f.restAddr}, {"the gateway", strings.TrimPrefix(s.httpURL, "http://")}} {
		for _, forged := range [][2]string{
			{"X-Forwarded-Host", "evil.example"},
			{"Forwarded", "host=evil.example;proto=https"},
		} {
			req, _ := http.NewRequest(http.MethodPost, "http://"+via.addr+"/v1/rooms",
				strings.NewReader(fmt.Sprintf(`{"name":"forged-%d"}`, time.Now().UnixNano())))
			req.Header.Set("Authorization", "Bearer "+alice.token)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(forged[0], forged[1])
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusCreated || strings.Contains(loc, "evil.example") {
				t.Errorf("via %s with %s: created %d with Location %q", via.name, forged[0], resp.StatusCode, loc)
			}
			// A page on evil.example may not open a socket by naming
			// itself the host.
			ws, _ := http.NewRequest(http.MethodGet, "http://"+via.addr+"/v1/rooms/"+rm.ID+":ws", nil)
			ws.Header.Set("Authorization", "Bearer "+alice.token)
			ws.Header.Set("Connection", "Upgrade")
			ws.Header.Set("Upgrade", "websocket")
			ws.Header.Set("Sec-WebSocket-Version", "13")
			ws.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			ws.Header.Set("Origin", "https://evil.example")
			ws.Header.Set(forged[0], forged[1])
			resp, err = c.Do(ws)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("via %s with %s: a socket from https://evil.example got %d, want 403", via.name, forged[0], resp.StatusCode)
			}
		}
	}
}

// Row 8: one user posting from 8 threads; one user opening streams.
func TestAbuseOneUserFloods(t *testing.T) {
	abuseOnly(t)
	s, f := runStack(t)
	mallory := s.signUp(t, "mallory")
	s.createRoom(t, mallory.token, "general", "", "")
	conn := attackerConn(t, f.grpcAddr, attackerAddr)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+mallory.token)
	var accepted, limited atomic.Int64
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				_, err := parleyv1.NewMessageServiceClient(conn).PostMessage(ctx,
					&parleyv1.PostMessageRequest{Room: "general", Text: "spam"})
				switch {
				case err == nil:
					accepted.Add(1)
				case refusedByALimit(err):
					limited.Add(1)
				default:
					t.Errorf("a post: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// 60 at once, then 20 a second: 120 in 3 s, and a little slack.
	t.Logf("posts: %d accepted, %d refused", accepted.Load(), limited.Load())
	if accepted.Load() > 130 || limited.Load() == 0 {
		t.Errorf("%d posts accepted and %d refused in 3 s; want at most 130 accepted", accepted.Load(), limited.Load())
	}

	var open []context.CancelFunc
	defer func() {
		for _, cancel := range open {
			cancel()
		}
	}()
	// Streams from an address of their own: the posts used up the first
	// one's share at the proxy in front.
	// The proxy takes 100 streams per connection (PARLEY_FRONT_STREAMS_PER_CONN):
	// a new connection every 50.
	refused := 0
	for i := 0; i < 110 && refused == 0; i++ {
		if i%50 == 0 {
			conn = attackerConn(t, f.grpcAddr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)})
		}
		sctx, cancel := context.WithCancel(ctx)
		open = append(open, cancel)
		stream, err := parleyv1.NewChatServiceClient(conn).Subscribe(sctx, &parleyv1.SubscribeRequest{Room: "general"})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) == codes.ResourceExhausted {
			refused = i
		} else if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	if refused != 100 {
		t.Errorf("stream refused at %d, want the 101st (--streams_per_user=100)", refused+1)
	}
}

// Row 9: a malformed protobuf; a token issued in the future.
func TestAbuseMalformedInput(t *testing.T) {
	abuseOnly(t)
	s, f := runStack(t)
	conn := attackerConn(t, f.grpcAddr, attackerAddr)
	var out parleyv1.SignInResponse
	err := conn.Invoke(context.Background(), "/parley.v1.AuthService/SignIn", rawBytes{0xff, 0xff, 0xff}, &out,
		grpc.ForceCodec(rawCodec{}))
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("malformed protobuf: %v, want INVALID_ARGUMENT", err)
	}

	// A NUL in a header, through the front: the gateway's JSON 400.
	raw, err := net.Dial("tcp", f.restAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = raw.Write([]byte("GET /healthz HTTP/1.1\r\nHost: parley\r\nX-Bad: a\x00b\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	wantError(t, reply{status: resp.StatusCode, header: resp.Header, body: body}, http.StatusBadRequest, "MALFORMED_REQUEST", "")

	alice := s.signUp(t, "alice")
	key, err := os.ReadFile(filepath.Join(s.dataDir, "token.key"))
	if err != nil {
		t.Fatal(err)
	}
	future := resign(t, alice.token, key, func(claims map[string]any) {
		claims["iat"] = time.Now().Add(time.Hour).Unix()
		claims["exp"] = time.Now().Add(2 * time.Hour).Unix()
	})
	s.httpURL = "http://" + f.restAddr
	wantError(t, s.req(t, http.MethodGet, "/v1/users/me", future, nil), http.StatusUnauthorized, "", "")
}

// refusedByALimit: RESOURCE_EXHAUSTED from the server, or the proxy in
// front's HTTP 429, which gRPC clients read as UNAVAILABLE.
func refusedByALimit(err error) bool {
	st := status.Convert(err)
	return st.Code() == codes.ResourceExhausted ||
		(st.Code() == codes.Unavailable && strings.Contains(st.Message(), "429"))
}

// attackerConn is a gRPC connection from address from.
func attackerConn(t *testing.T, addr string, from *net.TCPAddr) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, target string) (net.Conn, error) {
			return (&net.Dialer{LocalAddr: from}).DialContext(ctx, "tcp", target)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rawBytes is a request sent as it is, whatever it holds (rawCodec).
type rawBytes []byte

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)   { return v.(rawBytes), nil }
func (rawCodec) Unmarshal(_ []byte, _ any) error { return nil }
func (rawCodec) Name() string                    { return "proto" }

// resign is token with its claims changed by edit, signed again with key
// (HS256), as only a holder of the server's key could.
func resign(t *testing.T, token string, key []byte, edit func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	edit(claims)
	payload, _ = json.Marshal(claims)
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
