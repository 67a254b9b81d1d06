package integration

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Every client's fair share through the gateway (docs/security.md,
// "Limits"): a refusal is 429 with Retry-After and the JSON error body.

func wantRetryAfter(t *testing.T, r reply, code string, atLeast int) {
	t.Helper()
	wantError(t, r, http.StatusTooManyRequests, code, "-")
	after, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || after < atLeast {
		t.Errorf("Retry-After %q, want at least %d", r.header.Get("Retry-After"), atLeast)
	}
	var e struct {
		Error struct {
			RetryAfterSeconds int `json:"retry_after_seconds"`
		} `json:"error"`
	}
	if json.Unmarshal(r.body, &e) != nil || e.Error.RetryAfterSeconds != after {
		t.Errorf("body %s, want retry_after_seconds %d", r.body, after)
	}
}

func TestSendsPastTheUserLimitAre429WithRetryAfter(t *testing.T) {
	t.Parallel()
	s := startStack(t, withLimits("--sends_per_user_per_second=0.01", "--send_burst_per_user=2"))
	alice := s.signUp(t, "alice")
	s.createRoom(t, alice.token, "general", "", "")
	s.post(t, alice.token, "general", "one")
	s.post(t, alice.token, "general", "two")
	r := s.req(t, http.MethodPost, "/v1/rooms/general/messages", alice.token, map[string]string{"text": "three"})
	wantRetryAfter(t, r, "RATE_LIMITED", 1)
}

func TestFailedSignInsBackOffThroughTheGateway(t *testing.T) {
	t.Parallel()
	s := startStack(t, withLimits("--sign_in_free_failures_per_user=1", "--sign_in_backoff=1m"))
	alice := s.signUp(t, "alice")
	wrong := map[string]string{"username": "alice", "password": "not-the-password"}
	for i := 0; i < 2; i++ {
		wantError(t, s.req(t, http.MethodPost, "/v1/auth/sign-in", "", wrong), http.StatusUnauthorized, "", "")
	}
	r := s.req(t, http.MethodPost, "/v1/auth/sign-in", "",
		map[string]string{"username": "alice", "password": alice.password})
	wantRetryAfter(t, r, "SIGN_IN_BACKOFF", 50)
}

// rawGet opens a connection and makes one keep-alive request on it.
func rawGet(t *testing.T, addr string) (net.Conn, int, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return c, resp.StatusCode, body
}

func TestTheGatewayCapsConnectionsPerAddress(t *testing.T) {
	t.Parallel()
	const max = 3
	s := startStack(t, withLimits("--max_conns_per_address=3"))
	addr := strings.TrimPrefix(s.httpURL, "http://")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	refused := false
	for i := 0; i <= max && !refused; i++ {
		c, status, body := rawGet(t, addr)
		if status == http.StatusOK {
			held = append(held, c)
			continue
		}
		c.Close()
		refused = true
		r := reply{status: status, body: body, header: http.Header{"Retry-After": {"1"}}}
		wantError(t, r, http.StatusTooManyRequests, "TOO_MANY_CONNECTIONS", "-")
	}
	if !refused {
		t.Fatalf("%d connections from one address were all served; the cap is %d", max+1, max)
	}
	// The slots come back as the connections close.
	for _, c := range held {
		c.Close()
	}
	held = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, status, _ := rawGet(t, addr)
		c.Close()
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing every connection: still %d", status)
		}
	}
}
