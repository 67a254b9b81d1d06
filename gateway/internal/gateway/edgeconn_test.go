package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Live fan-out clients (edgeconn.go, websocket_live.go): a gateway with
// --edge_secret in front of a fake EdgeService, its clients on real
// loopback connections.

type edgeGateway struct {
	url  string
	h    *handler
	room *fakeRoomLog
	node *fakeEdgeNode
	stop context.CancelFunc // the gateway's shutdown
}

func startEdgeGateway(t *testing.T, opts Options) *edgeGateway {
	t.Helper()
	room := newFakeRoomLog()
	node := startEdgeNodes(t, room, 1)[0]
	opts.GRPCServer = node.addr
	opts.EdgeSecret = "s3cret"
	h, stop := testHandler(t, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(newConnLimitListener(jsonParseErrorsListener{ln}, 16, TrustedProxies{}))
	t.Cleanup(func() { srv.Close() })
	return &edgeGateway{url: "http://" + ln.Addr().String(), h: h, room: room, node: node, stop: stop}
}

func (g *edgeGateway) clients() int { return g.h.rt.fanout.clients() }

// sseConn opens a room's SSE stream on a raw connection whose receive
// buffer is rcvbuf bytes (0: the default), and returns it past the head.
func (g *edgeGateway) sseConn(t *testing.T, rcvbuf int) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		if rcvbuf > 0 {
			_ = c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
		}
		return nil
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET /v1/rooms/r:subscribe HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nAuthorization: Bearer t\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return conn, br
}

// nextSSE reads one SSE message (or comment) within 10 s.
func nextSSE(t *testing.T, conn net.Conn, br *bufio.Reader) sseMessage {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m sseMessage
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading SSE: %v (so far %+v)", err, m)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return m
		}
		m.parseLine(line)
	}
}

// nextSSEEvent skips comments and the retry delay.
func nextSSEEvent(t *testing.T, conn net.Conn, br *bufio.Reader) sseMessage {
	t.Helper()
	for {
		if m := nextSSE(t, conn, br); m.event != "" {
			return m
		}
	}
}

func TestLiveSSEClientGetsEventsKeepalivesThenTheShutdown(t *testing.T) {
	g := startEdgeGateway(t, Options{SSEKeepalive: 20 * time.Millisecond})
	conn, br := g.sseConn(t, 0)
	waitFor(t, "the client attached", func() bool { return g.clients() == 1 })
	g.room.post("m1")
	g.room.post("m2")
	for _, want := range []string{"m1", "m2"} {
		m := nextSSEEvent(t, conn, br)
		if m.event != "message" || !strings.Contains(m.data, `"text":"`+want+`"`) {
			t.Fatalf("got %+v, want message %s", m, want)
		}
	}
	for m := nextSSE(t, conn, br); m.comment != "keepalive"; m = nextSSE(t, conn, br) {
	}
	g.stop()
	m := nextSSEEvent(t, conn, br)
	if m.event != "error" || !strings.Contains(m.data, "SHUTTING_DOWN") {
		t.Fatalf("at shutdown got %+v, want the SHUTTING_DOWN error", m)
	}
	for {
		if _, err := br.ReadByte(); err != nil {
			break // the response ends with the connection
		}
	}
	waitFor(t, "the client gone", func() bool { return g.clients() == 0 })
}

// A client that reads nothing fills its socket, then its queue, whose
// bound becomes a gap; the other client of the room gets every event
// meanwhile, and the slow one, reading again, gets every event or a gap
// covering it, in order, up to the last.
func TestLiveSlowClientGetsAGapAndHoldsNobody(t *testing.T) {
	g := startEdgeGateway(t, Options{FanoutQueueEvents: 8})
	slow, slowBr := g.sseConn(t, 4096)
	fast, fastBr := g.sseConn(t, 0)
	waitFor(t, "both attached", func() bool { return g.clients() == 2 })
	text := strings.Repeat("x", 1000)
	// ~6 MB, more than the slow socket's buffers (tcp_wmem's 4 MB at
	// most), in steps smaller than the bound that the fast client reads
	// before the next.
	const n, step = 6000, 5
	for i := 1; i <= n; i += step {
		for j := 0; j < step; j++ {
			g.room.post(text)
		}
		for j := i; j < i+step; j++ {
			if m := nextSSEEvent(t, fast, fastBr); m.id != strconv.Itoa(j) {
				t.Fatalf("fast client: event %d has id %q (%s)", j, m.id, m.event)
			}
		}
	}
	g.room.post("last")
	if m := nextSSEEvent(t, fast, fastBr); !strings.Contains(m.data, `"text":"last"`) {
		t.Fatalf("fast client: got %+v, want the last event", m)
	}
	var last uint64
	gaps := 0
	for last < n+1 {
		m := nextSSEEvent(t, slow, slowBr)
		if m.event == "gap" {
			gaps++
			var gap struct {
				First string `json:"gapFirstSequence"`
				Last  string `json:"gapLastSequence"`
			}
			if err := json.Unmarshal([]byte(m.data), &gap); err != nil {
				t.Fatal(err)
			}
			if gap.First != strconv.FormatUint(last+1, 10) {
				t.Fatalf("gap %+v after %d", gap, last)
			}
			last, _ = strconv.ParseUint(gap.Last, 10, 64)
			continue
		}
		seq, _ := strconv.ParseUint(m.id, 10, 64)
		if seq != last+1 {
			t.Fatalf("slow client: event %d after %d", seq, last)
		}
		last = seq
	}
	if gaps == 0 {
		t.Error("no gap: the slow client's queue never met its bound")
	}
}

// wsDial opens Parley's socket on room r with gobwas's client: frames are
// then written and read raw.
func (g *edgeGateway) wsDial(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer t"}})}
	conn, br, _, err := d.Dial(context.Background(), strings.Replace(g.url, "http", "ws", 1)+"/v1/rooms/r:ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if br == nil {
		br = bufio.NewReader(conn)
	}
	return conn, br
}

func wsFrameOf(t *testing.T, conn net.Conn, br *bufio.Reader) ws.Frame {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := ws.ReadFrame(br)
	if err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	return f
}

// wsClose reads frames up to the close frame and returns its code.
func wsClose(t *testing.T, conn net.Conn, br *bufio.Reader) ws.StatusCode {
	t.Helper()
	for {
		if f := wsFrameOf(t, conn, br); f.Header.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(f.Payload)
			return code
		}
	}
}

func writeClientFrame(t *testing.T, conn net.Conn, f ws.Frame) {
	t.Helper()
	if err := ws.WriteFrame(conn, ws.MaskFrame(f)); err != nil {
		t.Fatal(err)
	}
}

func TestLiveWebSocketEventsPingsCommandsAndClose(t *testing.T) {
	g := startEdgeGateway(t, Options{})
	conn, br := g.wsDial(t)
	waitFor(t, "the client attached", func() bool { return g.clients() == 1 })
	g.room.post("m1")
	if f := wsFrameOf(t, conn, br); f.Header.OpCode != ws.OpText || !strings.Contains(string(f.Payload), `"text":"m1"`) {
		t.Fatalf("got %v %s, want m1's event frame", f.Header.OpCode, f.Payload)
	}

	writeClientFrame(t, conn, ws.NewPingFrame([]byte("p1")))
	if f := wsFrameOf(t, conn, br); f.Header.OpCode != ws.OpPong || string(f.Payload) != "p1" {
		t.Fatalf("got %v %q, want the pong of p1", f.Header.OpCode, f.Payload)
	}

	// A command in two fragments is one command: the fake server has no
	// MessageService, so it is answered with an error frame with its ref.
	writeClientFrame(t, conn, ws.NewFrame(ws.OpText, false, []byte(`{"type":"send",`)))
	writeClientFrame(t, conn, ws.NewFrame(ws.OpContinuation, true, []byte(`"ref":7,"text":"hi"}`)))
	f := wsFrameOf(t, conn, br)
	var answer struct {
		Type string          `json:"type"`
		Ref  json.RawMessage `json:"ref"`
	}
	if err := json.Unmarshal(f.Payload, &answer); err != nil || answer.Type != "error" || string(answer.Ref) != "7" {
		t.Fatalf("got %s, want the error frame of ref 7", f.Payload)
	}

	writeClientFrame(t, conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
	if code := wsClose(t, conn, br); code != ws.StatusNormalClosure {
		t.Fatalf("close %d, want 1000", code)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the connection stayed open after the close handshake")
	}
	waitFor(t, "the client gone", func() bool { return g.clients() == 0 })
	waitFor(t, "the upgrade counted as a 101", func() bool {
		resp, err := http.Get(g.url + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `{code="101",method="GET",route="/v1/rooms/{room}:ws"} 1`)
	})
}

func TestLiveWebSocketRefusesBadFrames(t *testing.T) {
	g := startEdgeGateway(t, Options{})
	for _, tc := range []struct {
		name  string
		frame []byte
		want  ws.StatusCode
	}{
		{"unmasked", ws.MustCompileFrame(ws.NewTextFrame([]byte(`{}`))), ws.StatusProtocolError},
		{"too large", ws.MustCompileFrame(ws.MaskFrame(ws.NewTextFrame(make([]byte, maxFrameBytes+1)))), ws.StatusMessageTooBig},
		{"not UTF-8", ws.MustCompileFrame(ws.MaskFrame(ws.NewTextFrame([]byte{0xff, 0xfe}))), ws.StatusInvalidFramePayloadData},
		{"continuation first", ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(ws.OpContinuation, true, []byte("x")))), ws.StatusProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, br := g.wsDial(t)
			waitFor(t, "the client attached", func() bool { return g.clients() == 1 })
			if _, err := conn.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			if code := wsClose(t, conn, br); code != tc.want {
				t.Fatalf("close %d, want %d", code, tc.want)
			}
			conn.Close()
			waitFor(t, "the client gone", func() bool { return g.clients() == 0 })
		})
	}
}

// A client that answers no ping is let go after one ping interval.
func TestLiveWebSocketWithoutPongsIsClosed(t *testing.T) {
	g := startEdgeGateway(t, Options{WSPingInterval: 30 * time.Millisecond})
	conn, br := g.wsDial(t)
	waitFor(t, "the client attached", func() bool { return g.clients() == 1 })
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	pings := 0
	for {
		f, err := ws.ReadFrame(br)
		if err != nil {
			break // closed
		}
		if f.Header.OpCode == ws.OpPing {
			pings++
		}
	}
	if pings == 0 {
		t.Error("no ping before the close")
	}
	waitFor(t, "the client gone", func() bool { return g.clients() == 0 })
}

func TestLiveWebSocketShutdownClosesWith4503(t *testing.T) {
	g := startEdgeGateway(t, Options{})
	conn, br := g.wsDial(t)
	waitFor(t, "the client attached", func() bool { return g.clients() == 1 })
	g.stop()
	f := wsFrameOf(t, conn, br)
	if f.Header.OpCode != ws.OpText || !strings.Contains(string(f.Payload), "SHUTTING_DOWN") {
		t.Fatalf("got %v %s, want the SHUTTING_DOWN error frame", f.Header.OpCode, f.Payload)
	}
	if code := wsClose(t, conn, br); code != 4503 {
		t.Fatalf("close %d, want 4503", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	writeClientFrame(t, conn, ws.NewCloseFrame(ws.NewCloseFrameBody(4503, "")))
	if err := g.h.rt.wait(ctx); err != nil {
		t.Fatalf("the live socket still counted after its close: %v", err)
	}
}
