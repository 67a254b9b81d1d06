package gateway

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"parley/gateway/internal/apierror"
)

// A live fan-out client (docs/fanout.md, "Live clients"): once its
// history is written, an SSE or WebSocket client of a shared log has no
// goroutine of its own that waits for events. Its handler has returned
// and its connection is hijacked; the log's stream writes each event
// straight to the client's socket, without blocking, when nothing of the
// client's is queued or being written. What the socket does not take at
// once, and whatever arrives meanwhile, waits in the client's bounded
// queue; a writer goroutine, living only while there is something to
// write, puts all of it in one write (writeAll). A goroutine blocked in a
// read notices the client going away. An idle client thus holds its
// connection, its queue, a reader's stack and a timer.

// edgeOut is a live client's connection and its writing state. Its state
// is guarded by its client's mu.
type edgeOut struct {
	c *fanoutClient
	// conn is the connection as accepted: closing it gives the address's
	// slot back (connlimit.go).
	conn net.Conn
	// w is the innermost connection, which writes.
	w net.Conn
	// raw is w's file descriptor, for non-blocking first attempts; nil when
	// w has none (then every write goes through the writer goroutine).
	raw syscall.RawConn
	// frame is an event's bytes on this client's transport.
	frame func(*sharedEvent) []byte
	// endBytes are the last bytes of a stream that ends with err.
	endBytes func(err error) []byte
	// afterEnd runs once the end is written: SSE closes the connection,
	// a WebSocket waits for the client's close frame.
	afterEnd func()
	// onClose runs once, after the connection is closed.
	onClose func()

	// Guarded by c.mu.
	writing bool   // a write is in flight: direct or the writer goroutine's
	rest    []byte // what a direct write left unwritten
	cursor  clientCursor
	closed  bool

	// A direct write's bytes, progress and error, and the function that
	// makes it, made once: a closure per write would be garbage per
	// delivery. Used by the holder of writing only.
	direct    []byte
	directN   int
	directErr error
	writeToFD func(fd uintptr) bool

	closeOnce sync.Once
}

// edgeEnd is an end of the gateway's own (it is shutting down), with the
// error body to send.
type edgeEnd struct{ e apierror.Error }

func (e edgeEnd) Error() string { return e.e.Message }

// endError is the error body of a stream that ended with err.
func endError(err error) apierror.Error {
	var own edgeEnd
	if errors.As(err, &own) {
		return own.e
	}
	return apierror.FromError(err)
}

// innermost unwraps the gateway's connection wrappers down to the
// accepted connection.
func innermost(conn net.Conn) net.Conn {
	for {
		u, ok := conn.(interface{ Unwrap() net.Conn })
		if !ok {
			return conn
		}
		conn = u.Unwrap()
	}
}

func newEdgeOut(c *fanoutClient, conn net.Conn) *edgeOut {
	o := &edgeOut{c: c, conn: conn, w: innermost(conn)}
	if sc, ok := o.w.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			o.raw = raw
		}
	}
	o.writeToFD = o.writeFD
	return o
}

// live makes c's stream written by o from now on, from cursor: whatever
// queued while the handler wrote the history goes out first.
func (c *fanoutClient) live(o *edgeOut, cursor clientCursor) {
	c.mu.Lock()
	o.cursor = cursor
	c.out = o
	start := len(c.queue) > 0 || c.end != nil
	if start {
		o.writing = true
	}
	c.mu.Unlock()
	if start {
		go o.drain()
	}
}

// send queues raw bytes (a keepalive, a control frame, a command's
// answer) behind what is queued, or writes them now when nothing is.
func (c *fanoutClient) send(b []byte) {
	c.mu.Lock()
	o := c.out
	if c.end != nil || o == nil || o.closed {
		c.mu.Unlock()
		return
	}
	if o.writing || len(c.queue) > 0 {
		c.queue = append(c.queue, queueEntry{raw: b})
		c.mu.Unlock()
		return
	}
	o.writing = true
	c.mu.Unlock()
	o.writeDirect(b)
}

// writeDirect writes b now, without blocking, as the holder of writing;
// what the socket did not take, and what queued meanwhile, goes to the
// writer goroutine.
func (o *edgeOut) writeDirect(b []byte) {
	n, err := o.tryWrite(b)
	if err != nil {
		o.close()
		return
	}
	c := o.c
	c.mu.Lock()
	if n < len(b) {
		o.rest = b[n:]
	}
	if o.rest == nil && len(c.queue) == 0 && c.end == nil {
		o.writing = false
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	go o.drain()
}

// tryWrite writes what the socket takes of b now; with no descriptor,
// nothing.
func (o *edgeOut) tryWrite(b []byte) (int, error) {
	if o.raw == nil {
		return 0, nil
	}
	o.direct, o.directN, o.directErr = b, 0, nil
	err := o.raw.Write(o.writeToFD)
	n := o.directN
	if err == nil {
		err = o.directErr
	}
	o.direct, o.directErr = nil, nil
	return n, err
}

// writeFD writes what fd takes of o.direct now; it never waits (the rest
// waits for the writer goroutine).
func (o *edgeOut) writeFD(fd uintptr) bool {
	b := o.direct
	for o.directN < len(b) {
		m, e := syscall.Write(int(fd), b[o.directN:])
		if m > 0 {
			o.directN += m
		}
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
			return true
		case e != nil:
			o.directErr = e
			return true
		case m <= 0:
			return true
		}
	}
	return true
}

// drain is the writer goroutine: it holds writing and writes everything
// queued, each round in one write, until nothing is; then, if the stream
// ended, its end.
func (o *edgeOut) drain() {
	c := o.c
	var bufs [][]byte
	for {
		c.mu.Lock()
		rest, entries, end := o.rest, c.queue, c.end
		o.rest, c.queue, c.queued = nil, nil, 0
		if rest == nil && len(entries) == 0 {
			if end == nil || o.closed {
				o.writing = false
				c.mu.Unlock()
				return
			}
			o.closed = true // nothing is written after the end
			c.mu.Unlock()
			o.writeEnd(end)
			return
		}
		c.mu.Unlock()
		bufs = bufs[:0]
		if rest != nil {
			bufs = append(bufs, rest)
		}
		for _, entry := range entries {
			if entry.raw != nil {
				bufs = append(bufs, entry.raw)
				continue
			}
			if e := entry.materialize(); o.cursor.fresh(e.event) {
				bufs = append(bufs, o.frame(e))
			}
		}
		if err := writeAll(o.w, bufs); err != nil {
			o.close()
			return
		}
	}
}

// writeEnd writes the stream's last bytes, bounded in time, then hands
// over to afterEnd.
func (o *edgeOut) writeEnd(end error) {
	if b := o.endBytes(end); len(b) > 0 {
		_ = o.w.SetWriteDeadline(time.Now().Add(endWriteTimeout))
		if _, err := o.w.Write(b); err != nil {
			o.close()
			return
		}
	}
	o.afterEnd()
}

// endWriteTimeout bounds the write of a stream's last bytes and the wait
// for a WebSocket client's close frame after them.
const endWriteTimeout = 5 * time.Second

// close closes the connection, once, and lets the client go.
func (o *edgeOut) close() {
	o.closeOnce.Do(func() {
		o.c.mu.Lock()
		o.closed = true
		o.c.mu.Unlock()
		_ = o.conn.Close()
		o.onClose()
	})
}

// every runs f every d until stop is called; f's own work decides
// whether it goes on (the timer is re-armed after f returns).
func every(d time.Duration, f func() bool) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		t       *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(d, func() {
		if !f() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(d)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// goLive registers o, for the gateway's shutdown to end it, and makes its
// client live.
func (g *realtime) goLive(o *edgeOut, cursor clientCursor) {
	g.liveMu.Lock()
	g.live[o] = struct{}{}
	g.liveMu.Unlock()
	o.c.live(o, cursor)
	select {
	case <-g.stopping:
		o.c.finish(edgeEnd{shuttingDown()})
	default:
	}
}

func (g *realtime) unregisterLive(o *edgeOut) {
	g.liveMu.Lock()
	defer g.liveMu.Unlock()
	delete(g.live, o)
}

// endLive ends every live client's stream once the gateway stops: each
// gets the shutting-down error, as a handler's stream would.
func (g *realtime) endLive() {
	<-g.stopping
	g.liveMu.Lock()
	live := make([]*edgeOut, 0, len(g.live))
	for o := range g.live {
		live = append(live, o)
	}
	g.liveMu.Unlock()
	for _, o := range live {
		o.c.finish(edgeEnd{shuttingDown()})
	}
}

// joined holds the buffers writeAll joins several writes into.
var joined = sync.Pool{New: func() any { return new([]byte) }}

// writeAll writes bufs in one write. They are joined in a pooled buffer
// rather than handed to writev, whose iovec array the connection would
// keep for its life.
func writeAll(w net.Conn, bufs [][]byte) error {
	if len(bufs) == 1 {
		_, err := w.Write(bufs[0])
		return err
	}
	p := joined.Get().(*[]byte)
	b := (*p)[:0]
	for _, buf := range bufs {
		b = append(b, buf...)
	}
	_, err := w.Write(b)
	if cap(b) <= maxPooledJoin {
		*p = b
		joined.Put(p)
	}
	return err
}

// maxPooledJoin is the largest joined buffer kept for reuse.
const maxPooledJoin = 64 << 10
