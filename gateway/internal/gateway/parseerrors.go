package gateway

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strconv"

	"parley/gateway/internal/apierror"

	"google.golang.org/grpc/codes"
)

// Go's HTTP server answers a request it cannot parse (a NUL or another
// control character in a header, headers too large, a malformed request
// line) itself, before any handler, in plain text. jsonParseErrorsListener
// rewrites those answers into the gateway's JSON error shape, so every
// refusal a client meets reads the same. It recognizes them by the exact
// header block net/http writes for them, which no handler of the gateway
// writes (its errors are JSON); anything else passes untouched.
type jsonParseErrorsListener struct{ net.Listener }

func (l jsonParseErrorsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonParseErrorsConn{Conn: c}, nil
}

type jsonParseErrorsConn struct{ net.Conn }

// goErrorHeaders follows the status line of net/http's own error answers.
const goErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *jsonParseErrorsConn) Write(p []byte) (int, error) {
	if rewritten, ok := jsonParseError(p); ok {
		if _, err := c.Conn.Write(rewritten); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// Unwrap gives http.ResponseController and TLS detection the real
// connection.
func (c *jsonParseErrorsConn) Unwrap() net.Conn { return c.Conn }

// jsonParseError is p rewritten as JSON when p is one of net/http's own
// plain-text error answers.
func jsonParseError(p []byte) ([]byte, bool) {
	if !bytes.HasPrefix(p, []byte("HTTP/1.1 ")) || len(p) < 12 {
		return nil, false
	}
	i := bytes.Index(p, []byte(goErrorHeaders))
	if i < 0 || bytes.IndexByte(p[:i], '\n') >= 0 {
		return nil, false
	}
	code, err := strconv.Atoi(string(p[9:12]))
	if err != nil || code < 400 || code > 599 {
		return nil, false
	}
	reason := "MALFORMED_REQUEST"
	grpc := codes.InvalidArgument
	switch code {
	case http.StatusRequestHeaderFieldsTooLarge:
		reason = apierror.HeadersTooLarge
	case http.StatusNotImplemented:
		reason, grpc = "UNSUPPORTED_TRANSFER_ENCODING", codes.Unimplemented
	}
	e := apierror.New(code, grpc, reason, "", string(p[i+len(goErrorHeaders):]))
	body, err := json.Marshal(apierror.Body{Error: e})
	if err != nil {
		return nil, false
	}
	body = append(body, '\n')
	var out bytes.Buffer
	out.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n")
	out.WriteString("Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n")
	out.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	out.Write(body)
	return out.Bytes(), true
}
