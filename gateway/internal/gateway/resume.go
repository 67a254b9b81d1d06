package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// Failover of room and inbox streams. When the server behind an open
// ChatService.Subscribe dies or shuts down, the call fails with UNAVAILABLE.
// The gateway then opens the same Subscribe again, which round_robin sends
// to a server that is up, with after_sequence set to the last position of
// the log that the stream handed on, and carries on with the new call as if
// nothing had happened: the new server reads what was committed meanwhile
// from the database, then streams live. The client sees a delay, no gap and
// no duplicate. It is a gRPC stream interceptor, so the NDJSON routes of the
// generated handlers, Server-Sent Events, WebSockets and the reproduced
// APIs' sockets all get it.
//
// Only UNAVAILABLE is retried: the server's deliberate ends (PERMISSION_DENIED,
// NOT_FOUND, UNAUTHENTICATED, ABORTED, OK) end the client's stream as
// before, and so does a stream that could not open at all. A lobby
// session's stream (by `id`) lives on one server and is never resumed.

const (
	// defaultStreamResumeTimeout is how long a lost stream is retried.
	defaultStreamResumeTimeout = 10 * time.Second
	// The delay between attempts to reopen a stream: from the first, then
	// doubled up to the last.
	firstResumeDelay = 50 * time.Millisecond
	maxResumeDelay   = time.Second
	// logEndProbeTimeout bounds the Poll that learns where a live-only
	// stream starts.
	logEndProbeTimeout = 3 * time.Second
	// logEndProbeWait is that Poll's timeout, in seconds: the shortest the
	// server takes (0 would mean its default, 30 s).
	logEndProbeWait = 0.001
)

// streamResumer is the interceptor that makes Subscribe streams resumable.
type streamResumer struct {
	timeout time.Duration
	// stopping is closed when the gateway shuts down: its streams end then,
	// and none is resumed.
	stopping <-chan struct{}
	log      *slog.Logger
}

// intercept wraps every Subscribe call in a resumableStream.
func (r *streamResumer) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil || method != subscribeMethod {
		return cs, err
	}
	return &resumableStream{
		ClientStream: cs,
		resumer:      r,
		ctx:          ctx,
		reopen: func() (grpc.ClientStream, error) {
			return streamer(ctx, desc, cc, method, opts...)
		},
		chat: parleyv1.NewChatServiceClient(cc),
	}, nil
}

// resumableStream is one Subscribe call as its caller sees it: a series of
// gRPC calls, the current one embedded. Like any gRPC stream, it is sent
// to and received from by one goroutine at a time.
type resumableStream struct {
	grpc.ClientStream
	resumer *streamResumer
	ctx     context.Context // the call's, with the caller's metadata
	reopen  func() (grpc.ClientStream, error)
	chat    parleyv1.ChatServiceClient

	// request is the room or inbox request as the caller sent it; nil for
	// a lobby stream, which is not resumed.
	request *parleyv1.SubscribeRequest
	// cursor is the log position the caller has everything up to (what the
	// stream handed on, or asked to start after); cursorKnown is false
	// while there is none, and the stream cannot resume.
	cursor      uint64
	cursorKnown bool
	// opened is set by the first write: the stream was in place. A stream
	// refused at its start is not retried.
	opened bool
	// resumed is set by the first resume: from then on, stored events at or
	// before the cursor are dropped and empty writes are not handed on.
	resumed bool
	// lostAt is when the stream was lost; zero while it is fine. delay is
	// the wait before the next attempt to reopen it.
	lostAt time.Time
	delay  time.Duration
}

// SendMsg sends the request and keeps it for a resume. A live-only room or
// inbox request first asks where the log ends (learnLogEnd).
func (s *resumableStream) SendMsg(m any) error {
	if req, ok := m.(*parleyv1.SubscribeRequest); ok && s.request == nil && (req.GetRoom() != "" || req.GetDirectMessages()) {
		s.request = proto.Clone(req).(*parleyv1.SubscribeRequest)
		if req.AfterSequence != nil {
			s.cursor, s.cursorKnown = req.GetAfterSequence(), true
		} else {
			s.learnLogEnd()
		}
	}
	return s.ClientStream.SendMsg(m)
}

// learnLogEnd gives a live-only stream a cursor before it opens: a Poll
// without a cursor answers at once with where the log ends (or with the
// first event after that, if one is committed just then). The stream only
// carries events after that point, so resuming after it can repeat none;
// and whatever is committed while the stream is down comes after it, so
// the resume misses none. Without an answer (the Poll failed) the stream
// resumes only once it has handed on a stored event.
func (s *resumableStream) learnLogEnd() {
	ctx, cancel := context.WithTimeout(s.ctx, logEndProbeTimeout)
	defer cancel()
	resp, err := s.chat.Poll(ctx, &parleyv1.PollRequest{
		Room: s.request.GetRoom(), DirectMessages: s.request.GetDirectMessages(),
		Timeout: logEndProbeWait, MaxEvents: 1,
	})
	if err != nil {
		s.resumer.log.Debug("subscribe: no log position for a live-only stream; it resumes once it has an event",
			"room", s.request.GetRoom(), "err", err)
		return
	}
	s.cursor, s.cursorKnown = resp.GetNextAfterSequence(), true
}

// RecvMsg receives the next write, reopening the stream on another server
// when its own is gone.
func (s *resumableStream) RecvMsg(m any) error {
	for {
		err := s.ClientStream.RecvMsg(m)
		if err == nil {
			resp, ok := m.(*parleyv1.SubscribeResponse)
			if !ok || s.take(resp) {
				return nil
			}
			continue
		}
		if !s.resumable(err) {
			return err
		}
		if err := s.resume(err); err != nil {
			return err
		}
	}
}

// take moves the cursor past a write's events and reports whether to hand
// the write on. It drops what the caller already has (at or before the
// cursor).
func (s *resumableStream) take(resp *parleyv1.SubscribeResponse) bool {
	s.opened = true
	if !s.lostAt.IsZero() {
		s.resumer.log.Debug("subscribe: stream resumed",
			"room", s.request.GetRoom(), "direct_messages", s.request.GetDirectMessages(),
			"after_sequence", s.cursor, "lost_for", time.Since(s.lostAt).String())
	}
	s.lostAt, s.delay = time.Time{}, 0
	events := resp.GetEvents()
	// Also before any resume: a live-only stream opened on a server whose
	// live point is behind the log's end it learned (another server
	// committed the last events, and this one reads them from the store
	// once it subscribes to the log's bus channel) would hand on events
	// from before it opened.
	if s.cursorKnown {
		kept := events[:0]
		for _, e := range events {
			if !s.alreadyHanded(e) {
				kept = append(kept, e)
			}
		}
		events = kept
		resp.Events = kept
	}
	for _, e := range events {
		s.advance(e)
	}
	return len(events) > 0 || !s.resumed
}

// alreadyHanded reports whether e is at or before the cursor: a stored
// event the caller has, or a gap it was told of.
func (s *resumableStream) alreadyHanded(e *parleyv1.Event) bool {
	if e.GetKind() == parleyv1.EventKind_EVENT_KIND_GAP {
		return e.GetGapLastSequence() <= s.cursor
	}
	return hasCursor(e) && e.GetSequence() <= s.cursor
}

// advance moves the cursor past e: a stored event, or the range a gap
// event said was missed (the caller reads that from history, so a resume
// must not send it again).
func (s *resumableStream) advance(e *parleyv1.Event) {
	next := uint64(0)
	switch {
	case e.GetKind() == parleyv1.EventKind_EVENT_KIND_GAP:
		next = e.GetGapLastSequence()
	case hasCursor(e):
		next = e.GetSequence()
	default:
		return
	}
	if !s.cursorKnown || next > s.cursor {
		s.cursor, s.cursorKnown = next, true
	}
}

// resumable reports whether a stream that failed with err is to be opened
// again.
func (s *resumableStream) resumable(err error) bool {
	return s.request != nil && s.cursorKnown && s.opened && s.resumer.timeout > 0 &&
		isServerGone(err) && s.ctx.Err() == nil && !s.stopping()
}

// isServerGone reports whether a call failed because its server went away
// (died, shut down, cannot be reached), not by the server's decision about
// the call.
func isServerGone(err error) bool {
	return status.Code(err) == codes.Unavailable
}

func (s *resumableStream) stopping() bool {
	select {
	case <-s.resumer.stopping:
		return true
	default:
		return false
	}
}

// resume opens the stream again after the cursor, retrying with a growing
// delay until the resumer's timeout after the loss; it returns the last
// failure when the time is up, the caller is gone or the failure is not
// the server's absence.
func (s *resumableStream) resume(cause error) error {
	if s.lostAt.IsZero() {
		s.lostAt = time.Now()
		s.resumer.log.Debug("subscribe: stream lost; resuming on a server that is up",
			"room", s.request.GetRoom(), "direct_messages", s.request.GetDirectMessages(),
			"after_sequence", s.cursor, "err", cause)
	}
	deadline := s.lostAt.Add(s.resumer.timeout)
	for {
		if s.delay > 0 {
			wait := min(s.delay, time.Until(deadline))
			if wait <= 0 {
				return s.giveUp(cause)
			}
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-s.ctx.Done():
				timer.Stop()
				return cause
			case <-s.resumer.stopping:
				timer.Stop()
				return cause
			}
			if !time.Now().Before(deadline) {
				return s.giveUp(cause)
			}
		}
		s.delay = min(max(2*s.delay, firstResumeDelay), maxResumeDelay)
		cs, err := s.openAfterCursor()
		if err == nil {
			s.ClientStream = cs
			s.resumed = true
			return nil
		}
		if !isServerGone(err) || s.ctx.Err() != nil {
			return err
		}
		cause = err
	}
}

// openAfterCursor opens the stream again, resuming after the cursor.
func (s *resumableStream) openAfterCursor() (grpc.ClientStream, error) {
	cs, err := s.reopen()
	if err != nil {
		return nil, err
	}
	req := proto.Clone(s.request).(*parleyv1.SubscribeRequest)
	req.AfterSequence = proto.Uint64(s.cursor)
	err = cs.SendMsg(req)
	if err == nil {
		err = cs.CloseSend()
	}
	// io.EOF: the call has ended already; its first RecvMsg says how.
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return cs, nil
}

func (s *resumableStream) giveUp(cause error) error {
	s.resumer.log.Warn("subscribe: no server took the stream back; ending it",
		"room", s.request.GetRoom(), "direct_messages", s.request.GetDirectMessages(),
		"after_sequence", s.cursor, "tried_for", s.resumer.timeout.String(), "err", cause)
	return cause
}
