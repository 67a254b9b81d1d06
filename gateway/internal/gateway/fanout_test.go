package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"

	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	parleyedge "parley/gateway/gen/parley/edge"
	parleyv1 "parley/gateway/gen/parley/v1"
)

// A shared log with no stream behind it: the tests hand it the stream's
// responses (deliver) and read each client's queue (take).
func testLog(t *testing.T, capacity int) (*fanout, *sharedLog) {
	t.Helper()
	f := &fanout{queueCapacity: capacity, logs: map[string]*sharedLog{}, log: slog.New(slog.DiscardHandler)}
	l := newSharedLog(f, "room-1")
	l.current = &followLink{}
	f.logs[l.key] = l
	t.Cleanup(l.cancel)
	return f, l
}

func testClient(f *fanout, l *sharedLog) *fanoutClient {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextClient++
	c := &fanoutClient{id: f.nextClient, log: l, capacity: f.queueCapacity,
		decided: make(chan struct{})}
	l.mu.Lock()
	l.clients[c.id] = c
	l.mu.Unlock()
	return c
}

// take removes everything queued for c, as goLive does, and tells how its
// stream ended (nil while it runs).
func take(c *fanoutClient) ([]queueEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	entries := c.queue
	c.queue, c.queued = nil, 0
	return entries, c.end
}

func stored(seqs ...uint64) *parleyedge.FollowResponse {
	resp := &parleyedge.FollowResponse{}
	for _, s := range seqs {
		resp.Events = append(resp.Events, &parleyv1.Event{
			Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Room: "r", Sequence: s, Text: "m"})
	}
	return resp
}

func typing() *parleyedge.FollowResponse {
	return &parleyedge.FollowResponse{Events: []*parleyv1.Event{{Kind: parleyv1.EventKind_EVENT_KIND_TYPING, Room: "r"}}}
}

// What a client's handler would write: each entry materialized.
func written(entries []queueEntry) []*sharedEvent {
	out := make([]*sharedEvent, len(entries))
	for i, e := range entries {
		out[i] = e.materialize()
	}
	return out
}

func sequencesOf(events []*sharedEvent) []uint64 {
	var out []uint64
	for _, e := range events {
		out = append(out, e.event.GetSequence())
	}
	return out
}

func TestFanoutEveryClientGetsTheSameBytesInOrder(t *testing.T) {
	f, l := testLog(t, 100)
	clients := []*fanoutClient{testClient(f, l), testClient(f, l), testClient(f, l)}
	l.deliver(stored(1, 2))
	l.deliver(stored(3))
	l.deliver(stored(4, 5))

	var first []*sharedEvent
	for i, c := range clients {
		entries, end := take(c)
		if end != nil {
			t.Fatalf("client %d ended: %v", i, end)
		}
		got := written(entries)
		if seqs := sequencesOf(got); len(seqs) != 5 || seqs[0] != 1 || seqs[4] != 5 {
			t.Fatalf("client %d got %v, want 1..5", i, seqs)
		}
		if i == 0 {
			first = got
			continue
		}
		for j := range got {
			// One encoding per event, shared: the very same bytes.
			if got[j] != first[j] || &got[j].sse[0] != &first[j].sse[0] {
				t.Errorf("client %d event %d was encoded again", i, j)
			}
		}
	}
	// The shared frames are what the per-client paths would write.
	e := first[0]
	frame, _ := json.Marshal((&parleySession{socket: parleySocket{encoding: encodedEvents}}).EventFrame(e.event))
	if string(e.socket) != string(frame) {
		t.Errorf("socket frame %s, want %s", e.socket, frame)
	}
	var sse sseWriter
	sse.started = true
	sse.buf.Write(appendSSEMessage(nil, e.event, encodedEvents.marshal(e.event)))
	if got, want := string(e.sse), "id: 1\nevent: message\ndata: "+string(e.json)+"\n\n"; got != want || sse.buf.String() != want {
		t.Errorf("SSE message %q, want %q", got, want)
	}
}

func TestFanoutQueueBoundBecomesOneWideningGap(t *testing.T) {
	f, l := testLog(t, 3)
	c := testClient(f, l)
	l.deliver(stored(1, 2, 3, 4))
	l.deliver(typing()) // live-only: dropped at the bound, no gap for it
	l.deliver(stored(5, 6))
	entries, _ := take(c)
	got := written(entries)
	if len(got) != 4 {
		t.Fatalf("got %d entries, want 3 events and a gap", len(got))
	}
	if seqs := sequencesOf(got[:3]); seqs[0] != 1 || seqs[2] != 3 {
		t.Errorf("events %v, want 1 2 3", seqs)
	}
	gap := got[3].event
	if gap.GetKind() != parleyv1.EventKind_EVENT_KIND_GAP || gap.GetGapFirstSequence() != 4 || gap.GetGapLastSequence() != 6 {
		t.Errorf("gap %v, want 4..6", gap)
	}
	if c.dropped != 4 || f.overflowed.Load() != 4 {
		t.Errorf("dropped %d (gateway: %d), want 4", c.dropped, f.overflowed.Load())
	}
	// Taken, the queue has room again.
	l.deliver(stored(7))
	entries, _ = take(c)
	if seqs := sequencesOf(written(entries)); len(seqs) != 1 || seqs[0] != 7 {
		t.Errorf("after the take: %v, want 7", seqs)
	}
}

func TestFanoutSlowClientDoesNotHoldTheOthers(t *testing.T) {
	f, l := testLog(t, 10)
	slow := testClient(f, l)
	fast := testClient(f, l)
	var fastGot []uint64
	for s := uint64(1); s <= 100; s++ {
		l.deliver(stored(s)) // never waits for anyone
		entries, _ := take(fast)
		if len(entries) != 1 {
			t.Fatalf("the fast client has %d entries after event %d, want 1", len(entries), s)
		}
		fastGot = append(fastGot, sequencesOf(written(entries))...)
	}
	if len(fastGot) != 100 || fastGot[99] != 100 {
		t.Errorf("fast client got %d events, want all 100 in order", len(fastGot))
	}
	for i, s := range fastGot {
		if s != uint64(i+1) {
			t.Fatalf("fast client out of order at %d: %v", i, s)
		}
	}
	entries, _ := take(slow)
	got := written(entries)
	if len(got) != 11 || got[10].event.GetGapFirstSequence() != 11 || got[10].event.GetGapLastSequence() != 100 {
		t.Errorf("slow client got %d entries (last %v), want 10 events and the gap 11..100", len(got), got[len(got)-1].event)
	}
}

func TestFanoutCoalescesWhatQueuesDuringAWrite(t *testing.T) {
	f, l := testLog(t, 100)
	c := testClient(f, l)
	c.out = &edgeOut{c: c, writing: true} // live, a write in flight
	l.deliver(stored(1))
	l.deliver(stored(2))
	l.deliver(stored(3))
	// All three wait for the write in flight; its writer takes them at
	// once, for one write (edgeOut.drain).
	entries, _ := take(c)
	if seqs := sequencesOf(written(entries)); len(seqs) != 3 || seqs[0] != 1 || seqs[2] != 3 {
		t.Errorf("queued during the write: %v, want 1 2 3", seqs)
	}
}

func TestFanoutAdmissionThenTheServersEnd(t *testing.T) {
	f, l := testLog(t, 100)
	c := testClient(f, l)
	other := testClient(f, l)
	l.deliver(&parleyedge.FollowResponse{Position: 7})
	l.deliver(stored(8)) // before the admission: kept for the client
	l.deliver(&parleyedge.FollowResponse{Admitted: []uint64{c.id, other.id}})
	if err := c.admission(context.Background()); err != nil {
		t.Fatalf("admission: %v", err)
	}
	if c.floorPoint() != 8 {
		t.Errorf("floor %d, want 8", c.floorPoint())
	}
	l.deliver(stored(9))
	l.deliver(&parleyedge.FollowResponse{Ended: []*parleyedge.ClientEnd{{
		Client: c.id, Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied), Message: "removed"},
	}}})
	entries, end := take(c)
	if len(entries) != 0 {
		t.Errorf("an ended client still has %d entries", len(entries))
	}
	if status.Code(end) != codes.PermissionDenied {
		t.Errorf("ended with %v, want PERMISSION_DENIED", end)
	}
	// The other client goes on.
	l.deliver(stored(10))
	entries, end = take(other)
	if end != nil || len(entries) != 3 {
		t.Errorf("other client: %d entries, end %v; want 8 9 10", len(entries), end)
	}
}

func TestFanoutRefusedAdmissionEndsTheJoin(t *testing.T) {
	f, l := testLog(t, 100)
	c := testClient(f, l)
	l.deliver(&parleyedge.FollowResponse{Ended: []*parleyedge.ClientEnd{{
		Client: c.id, Status: &rpcstatus.Status{Code: int32(codes.Unauthenticated), Message: "bad token"},
	}}})
	if err := c.admission(context.Background()); status.Code(err) != codes.Unauthenticated {
		t.Errorf("admission: %v, want UNAUTHENTICATED", err)
	}
}

func TestFanoutReopenedStreamRepeatsNothing(t *testing.T) {
	f, l := testLog(t, 100)
	c := testClient(f, l)
	l.deliver(stored(4, 5))
	// Reopened after 5 on another server, which starts a little earlier.
	l.deliver(&parleyedge.FollowResponse{Position: 5})
	l.deliver(stored(4, 5, 6))
	entries, _ := take(c)
	if seqs := sequencesOf(written(entries)); len(seqs) != 3 || seqs[2] != 6 {
		t.Errorf("got %v, want 4 5 6 once each", seqs)
	}
	l.mu.Lock()
	if start := l.newLinkLocked().backlog[0].GetStart(); start.GetAfterSequence() != 6 || start.AfterSequence == nil {
		t.Errorf("a reopening starts after %v, want 6", start.AfterSequence)
	}
	l.mu.Unlock()
	// Reopened after 6 on a server that replays what was committed
	// meanwhile, with its position, in its first response.
	replay := stored(7, 8)
	replay.Position = 8
	l.deliver(replay)
	entries, _ = take(c)
	if seqs := sequencesOf(written(entries)); len(seqs) != 2 || seqs[0] != 7 || seqs[1] != 8 {
		t.Errorf("replayed history: got %v, want 7 8", seqs)
	}
}

func TestFanoutStreamEndEndsEveryClient(t *testing.T) {
	f, l := testLog(t, 100)
	a, b := testClient(f, l), testClient(f, l)
	l.endAll(status.Error(codes.NotFound, "the room was deleted"))
	for _, c := range []*fanoutClient{a, b} {
		if _, end := take(c); status.Code(end) != codes.NotFound {
			t.Errorf("client ended with %v, want NOT_FOUND", end)
		}
	}
	if f.upstreams() != 0 {
		t.Errorf("%d logs left open", f.upstreams())
	}
	clean := testClient(f, l)
	l.endAll(nil)
	if _, end := take(clean); !errors.Is(end, io.EOF) {
		t.Errorf("a clean end gave %v", end)
	}
}

func TestClientCursorSkipsWhatTheClientHas(t *testing.T) {
	k := clientCursor{at: 5, known: true}
	ev := func(s uint64) *parleyv1.Event { return &parleyv1.Event{Sequence: s} }
	if k.fresh(ev(5)) || k.fresh(ev(3)) {
		t.Error("an event at or before the cursor is fresh")
	}
	if !k.fresh(&parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_TYPING}) {
		t.Error("a live-only event is not fresh")
	}
	if !k.fresh(ev(6)) || k.at != 6 {
		t.Error("event 6 did not move the cursor")
	}
	if k.fresh(&parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_GAP, GapFirstSequence: 4, GapLastSequence: 6}) {
		t.Error("a gap the client is past is fresh")
	}
}
