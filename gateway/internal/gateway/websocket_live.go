package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
)

// A live client of a shared log on Parley's own WebSocket (edgeconn.go):
// the upgrade, its frames and its reader, with gobwas/ws's frame codec.
// Every event's frame is encoded once (sharedEvent.wsFrame) and written
// as is to every client of the log.

// textFrame is p as one unmasked text frame, as a server sends it.
func textFrame(p []byte) []byte { return ws.MustCompileFrame(ws.NewTextFrame(p)) }

func closeFrame(code ws.StatusCode, reason string) []byte {
	return ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason)))
}

var pingFrame = ws.MustCompileFrame(ws.NewPingFrame(nil))

// closeEnd ends a live socket with a close frame alone: the client broke
// the protocol.
type closeEnd struct {
	code   ws.StatusCode
	reason string
}

func (e closeEnd) Error() string { return e.reason }

// serveLive upgrades the socket of client c of a shared log, writes its
// history after its resume point from this handler, then makes it live. It
// reports whether it took the client over (its connection's end lets the
// client go); false when the upgrade failed, which was answered.
func (s *socket) serveLive(w http.ResponseWriter, r *http.Request, c *fanoutClient, req *parleyv1.SubscribeRequest, subprotocol string) bool {
	g := s.g
	u := ws.HTTPUpgrader{}
	if subprotocol != "" {
		u.Protocol = func(p string) bool { return p == subprotocol }
	}
	conn, brw, _, err := u.Upgrade(r, w)
	if err != nil {
		g.log.Debug("websocket: upgrade failed", "path", r.URL.Path, "err", err)
		noteStatus(w, http.StatusBadRequest)
		return false
	}
	noteStatus(w, http.StatusSwitchingProtocols)
	_ = conn.SetDeadline(time.Time{})
	var rd io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 { // frames sent right after the request
		b, _ := brw.Reader.Peek(n)
		rd = io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)
	}

	// The socket's calls outlive the handler now. They need only the
	// request's metadata: the request and its context are let go.
	liveCtx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	md, _ := metadata.FromOutgoingContext(s.callCtx)
	s.callCtx = metadata.NewOutgoingContext(liveCtx, md.Copy())
	s.r = nil
	s.mu.Unlock()
	release := keepStream(r)
	o := newEdgeOut(c, conn)
	o.frame = func(e *sharedEvent) []byte { return e.wsFrame }
	o.endBytes = func(end error) []byte {
		var ce closeEnd
		switch {
		case errors.As(end, &ce):
			return closeFrame(ce.code, ce.reason)
		case isCleanEnd(end):
			return closeFrame(ws.StatusNormalClosure, "")
		}
		e := endError(end)
		f, _ := json.Marshal(s.session.ErrorFrame(e))
		return append(textFrame(f), closeFrame(ws.StatusCode(closeCode(e)), closeReason(e.Code))...)
	}
	var peerClosed, awaitingPong atomic.Bool
	o.afterEnd = func() {
		// The client answers the close frame with its own: the reader
		// waits that long for it.
		_ = o.w.SetReadDeadline(time.Now().Add(endWriteTimeout))
		if peerClosed.Load() {
			o.close()
		}
	}
	stopPings := func() {}
	o.onClose = func() {
		cancel()
		stopPings()
		g.unregisterLive(o)
		g.fanout.leave(c)
		release()
		g.sockets.Done()
	}
	s.edge = c

	var cursor clientCursor
	if req.AfterSequence != nil {
		cursor = clientCursor{at: req.GetAfterSequence(), known: true}
		at, err := g.fanout.history(s.CallContext(), req, c, cursor.at, func(events []*parleyv1.Event) error {
			var buf []byte
			for _, e := range events {
				if f := s.session.EventFrame(e); f != nil {
					b, err := json.Marshal(f)
					if err != nil {
						return err
					}
					buf = append(buf, textFrame(b)...)
				}
			}
			_, err := conn.Write(buf)
			return err
		})
		if err != nil {
			if r.Context().Err() == nil {
				_ = conn.SetWriteDeadline(time.Now().Add(endWriteTimeout))
				_, _ = conn.Write(o.endBytes(err))
			}
			o.close()
			return true
		}
		cursor.at = max(cursor.at, at)
	}
	// A ping every interval; one still without its pong at the next tick
	// ends the socket.
	stopPings = every(g.cfg.wsPingInterval, func() bool {
		if awaitingPong.Swap(true) {
			g.log.Debug("websocket: no pong; closing", "route", s.route)
			o.close()
			return false
		}
		c.send(pingFrame)
		return true
	})
	go s.readLive(liveCtx, rd, c, o, &awaitingPong, &peerClosed)
	g.goLive(o, cursor)
	return true
}

// readLive reads a live socket's frames: it answers pings, notes pongs,
// runs the commands (one at a time, as the handler's reader does) and
// answers a close frame; the connection's end lets the client go.
func (s *socket) readLive(ctx context.Context, r io.Reader, c *fanoutClient, o *edgeOut, awaitingPong, peerClosed *atomic.Bool) {
	defer o.close()
	hdr := make([]byte, 2, ws.MaxHeaderSize-2)
	var (
		msg   []byte
		msgOp ws.OpCode
	)
	fail := func(code ws.StatusCode, reason string) {
		c.finish(closeEnd{code: code, reason: reason})
		_, _ = io.Copy(io.Discard, r) // until afterEnd's deadline, or the client closes
	}
	for {
		h, err := ws.ReadHeaderBuffer(r, hdr)
		if err != nil {
			return
		}
		switch {
		case h.Rsv != 0 || !h.Masked || h.OpCode.IsReserved():
			fail(ws.StatusProtocolError, "bad frame")
			return
		case h.OpCode.IsControl() && (!h.Fin || h.Length > ws.MaxControlFramePayloadSize):
			fail(ws.StatusProtocolError, "bad control frame")
			return
		case h.OpCode == ws.OpContinuation && msgOp == 0,
			h.OpCode.IsData() && h.OpCode != ws.OpContinuation && msgOp != 0:
			fail(ws.StatusProtocolError, "bad fragmentation")
			return
		case !h.OpCode.IsControl() && int64(len(msg))+h.Length > maxFrameBytes:
			fail(ws.StatusMessageTooBig, "frame too large")
			return
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(r, payload); err != nil {
			return
		}
		ws.Cipher(payload, h.Mask, 0)
		switch h.OpCode {
		case ws.OpClose:
			peerClosed.Store(true)
			if c.finish(io.EOF) {
				// Ours answers it; afterEnd closes.
				_, _ = io.Copy(io.Discard, r)
			}
			return // else it answered ours
		case ws.OpPing:
			c.send(ws.MustCompileFrame(ws.NewPongFrame(payload)))
			continue
		case ws.OpPong:
			awaitingPong.Store(false)
			continue
		case ws.OpContinuation:
		default:
			msgOp = h.OpCode
		}
		msg = append(msg, payload...)
		if !h.Fin {
			continue
		}
		op, data := msgOp, msg
		msg, msgOp = nil, 0
		switch {
		case op == ws.OpBinary:
			e := apierror.New(http.StatusBadRequest, codes.InvalidArgument, reasonBinaryFrame, "",
				"frames are JSON text, not binary")
			_ = s.Write(ctx, s.session.ErrorFrame(e))
		case !utf8.Valid(data):
			fail(ws.StatusInvalidFramePayloadData, "text is not UTF-8")
			return
		default:
			s.session.Command(ctx, data)
		}
	}
}
