package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// dialAndGet opens a connection to addr and makes one request on it,
// keeping the connection open; it returns the connection and the status.
func dialAndGet(t *testing.T, addr string) (net.Conn, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: gw\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return c, resp
}

func TestConnLimitRefusesAnAddressPastItsCapUntilOneCloses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(newConnLimitListener(ln, 2, nil)) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()

	first, resp := dialAndGet(t, addr)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first connection: %d", resp.StatusCode)
	}
	second, resp := dialAndGet(t, addr)
	defer second.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("second connection: %d", resp.StatusCode)
	}
	third, resp := dialAndGet(t, addr)
	third.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("third connection: %d %v", resp.StatusCode, resp.Header)
	}

	// Once the server has seen the first one close, its slot is free.
	first.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, resp := dialAndGet(t, addr)
		c.Close()
		if resp.StatusCode == http.StatusNoContent {
			break
		}
		if resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("after a close: %d", resp.StatusCode)
		}
	}
}

func TestConnLimitDoesNotCountTrustedProxies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxies, err := ParseTrustedProxies([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(newConnLimitListener(ln, 1, proxies)) }()
	t.Cleanup(func() { _ = srv.Close() })
	for i := 0; i < 3; i++ {
		c, resp := dialAndGet(t, ln.Addr().String())
		defer c.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("connection %d from a trusted proxy: %d", i, resp.StatusCode)
		}
	}
}
