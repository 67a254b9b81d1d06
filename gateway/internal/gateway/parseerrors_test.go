package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"parley/gateway/internal/apierror"
)

// A request Go's HTTP server refuses before any handler is answered in the
// gateway's JSON error shape, with the right status.
func TestRequestsGoCannotParseGetJSONErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{MaxHeaderBytes: 4096, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "a handler's own answer")
	})}
	go func() { _ = srv.Serve(jsonParseErrorsListener{ln}) }()
	t.Cleanup(func() { _ = srv.Close() })

	for _, c := range []struct {
		name, request string
		status        int
		code          string
	}{
		{"a NUL in a header", "GET / HTTP/1.1\r\nHost: gw\r\nX-Bad: a\x00b\r\n\r\n", 400, "MALFORMED_REQUEST"},
		{"a control character in a header", "GET / HTTP/1.1\r\nHost: gw\r\nX-Bad: a\x01b\r\n\r\n", 400, "MALFORMED_REQUEST"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400, "MALFORMED_REQUEST"},
		{"headers too large", "GET / HTTP/1.1\r\nHost: gw\r\nX-Big: " + strings.Repeat("a", 8192) + "\r\n\r\n", 431, apierror.HeadersTooLarge},
	} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(conn, c.request)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var body apierror.Body
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Errorf("%s: the body is not JSON: %v", c.name, err)
		}
		conn.Close()
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/json" ||
			body.Error.Code != c.code || body.Error.Status != c.status || body.Error.Message == "" {
			t.Errorf("%s: %d %q %+v", c.name, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}

	// A handler's own plain-text answer passes untouched.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "a handler's own answer" {
		t.Errorf("a handler's answer became %q", b)
	}
}
