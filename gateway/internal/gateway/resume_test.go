package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
)

// fakeRoomLog stands in for the database the fake nodes share: room "r"'s
// events in sequence order, and a signal to the open streams at each
// append. Unlike real servers without their bus, every node's streams see
// every append live.
type fakeRoomLog struct {
	mu      sync.Mutex
	events  []*parleyv1.Event
	changed chan struct{} // closed and replaced at every append
}

func newFakeRoomLog() *fakeRoomLog { return &fakeRoomLog{changed: make(chan struct{})} }

// post appends a message.
func (l *fakeRoomLog) post(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, &parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Room: "r",
		Sequence: uint64(len(l.events) + 1), Text: text})
	close(l.changed)
	l.changed = make(chan struct{})
}

// after returns the events after seq, the log's end, and the signal of the
// next append.
func (l *fakeRoomLog) after(seq uint64) ([]*parleyv1.Event, uint64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	end := uint64(len(l.events))
	if seq >= end {
		return nil, end, l.changed
	}
	return slices.Clone(l.events[seq:]), end, l.changed
}

// Subscribe streams room "r" as the server does: an empty first write,
// then history after after_sequence, then what is appended. Room
// "revoked" ends with PERMISSION_DENIED after its first write.
func (n *fakeNode) Subscribe(req *parleyv1.SubscribeRequest, stream grpc.ServerStreamingServer[parleyv1.SubscribeResponse]) error {
	n.mu.Lock()
	n.subscribes = append(n.subscribes, req)
	n.open++
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.open--
		n.mu.Unlock()
	}()
	switch req.GetRoom() {
	case "r":
	case "revoked":
		if err := stream.Send(&parleyv1.SubscribeResponse{}); err != nil {
			return err
		}
		return apierror.StatusError(codes.PermissionDenied, "NOT_A_MEMBER", "", "removed from the room")
	default:
		return apierror.StatusError(codes.NotFound, "ROOM_NOT_FOUND", "", "no such room")
	}
	_, cursor, _ := n.room.after(0)
	if req.AfterSequence != nil {
		cursor = req.GetAfterSequence()
	}
	if err := stream.Send(&parleyv1.SubscribeResponse{}); err != nil {
		return err
	}
	for {
		events, _, changed := n.room.after(cursor)
		if len(events) > 0 {
			if err := stream.Send(&parleyv1.SubscribeResponse{Events: events}); err != nil {
				return err
			}
			cursor = events[len(events)-1].GetSequence()
			continue
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// Poll answers where the log ends, as the server does without a cursor
// when nothing arrives within the timeout.
func (n *fakeNode) Poll(_ context.Context, req *parleyv1.PollRequest) (*parleyv1.PollResponse, error) {
	if req.AfterSequence != nil || req.GetTimeout() <= 0 || req.GetTimeout() > 0.1 {
		return nil, status.Errorf(codes.InvalidArgument, "this fake answers only the gateway's probe, not %v", req)
	}
	_, end, _ := n.room.after(0)
	return &parleyv1.PollResponse{NextAfterSequence: end}, nil
}

// streamsOpen is how many Subscribe streams the node has open.
func (n *fakeNode) streamsOpen() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.open
}

func (n *fakeNode) lastSubscribe() *parleyv1.SubscribeRequest {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.subscribes) == 0 {
		return nil
	}
	return n.subscribes[len(n.subscribes)-1]
}

func (n *fakeNode) subscribeCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.subscribes)
}

// ndjsonLine is one line of an NDJSON stream: a write or the error.
type ndjsonLine struct {
	Result *struct {
		Events []struct {
			Sequence string `json:"sequence"`
			Text     string `json:"text"`
		} `json:"events"`
	} `json:"result"`
	Error *apierror.Error `json:"error"`
}

// openNDJSON GETs a stream route and hands its lines on; the channel is
// closed when the stream ends.
func openNDJSON(t *testing.T, url string) <-chan ndjsonLine {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	lines := make(chan ndjsonLine, 100)
	go func() {
		defer close(lines)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var l ndjsonLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("line %q: %v", sc.Text(), err)
				return
			}
			lines <- l
		}
	}()
	return lines
}

// readTexts reads lines until the texts of the messages so far end with
// last, and returns those texts; it fails on an error line, an empty
// write other than the stream's first, or silence.
func readTexts(t *testing.T, lines <-chan ndjsonLine, last string) []string {
	t.Helper()
	var texts []string
	for len(texts) == 0 || texts[len(texts)-1] != last {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended after %q", texts)
			}
			if l.Error != nil || l.Result == nil {
				t.Fatalf("after %q: line %+v, want a write", texts, l)
			}
			if len(l.Result.Events) == 0 {
				t.Fatalf("after %q: an empty write", texts)
			}
			for _, e := range l.Result.Events {
				texts = append(texts, e.Text)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("after %q: no line within 10s", texts)
		}
	}
	return texts
}

// firstWrite reads the stream's first line, the empty write that says it
// is in place.
func firstWrite(t *testing.T, lines <-chan ndjsonLine) {
	t.Helper()
	select {
	case l := <-lines:
		if l.Result == nil || len(l.Result.Events) != 0 {
			t.Fatalf("first line %+v, want the empty first write", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no first write within 10s")
	}
}

// holder is the node with the one open stream.
func holder(t *testing.T, nodes []*fakeNode) *fakeNode {
	t.Helper()
	var found *fakeNode
	waitFor(t, "the stream to be open on a node", func() bool {
		for _, n := range nodes {
			if n.streamsOpen() == 1 {
				found = n
				return true
			}
		}
		return false
	})
	return found
}

func other(nodes []*fakeNode, n *fakeNode) *fakeNode {
	if nodes[0] == n {
		return nodes[1]
	}
	return nodes[0]
}

func TestAStreamWhoseServerDiesResumesOnAnotherWithNoGapOrDuplicate(t *testing.T) {
	room := newFakeRoomLog()
	room.post("m1")
	room.post("m2")
	nodes := startNodesOn(t, room, "a", "b")
	url := startNodesGateway(t, Options{StreamResumeTimeout: 5 * time.Second}, nodes...)

	lines := openNDJSON(t, url+"/v1/rooms/r:subscribe?after_sequence=0")
	firstWrite(t, lines)
	if got := readTexts(t, lines, "m2"); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("before: %q", got)
	}
	dead := holder(t, nodes)
	dead.grpc.Stop()
	room.post("m3")
	room.post("m4")
	if got := readTexts(t, lines, "m4"); !slices.Equal(got, []string{"m3", "m4"}) {
		t.Errorf("after the server died: %q, want m3 m4 once each and nothing else", got)
	}
	survivor := other(nodes, dead)
	if req := survivor.lastSubscribe(); req.GetRoom() != "r" || req.AfterSequence == nil || req.GetAfterSequence() != 2 {
		t.Errorf("the resumed Subscribe was %v, want room r after_sequence 2", req)
	}

	// It goes on live on the survivor.
	room.post("m5")
	if got := readTexts(t, lines, "m5"); !slices.Equal(got, []string{"m5"}) {
		t.Errorf("live after the resume: %q", got)
	}
}

// A live-only stream resumes after where the log ended when it opened
// (the gateway asks with a Poll before it subscribes), so what was posted
// while it was down reaches it even if nothing had before.
func TestALiveOnlyStreamResumesFromWhereTheLogEndedWhenItOpened(t *testing.T) {
	room := newFakeRoomLog()
	room.post("m1")
	nodes := startNodesOn(t, room, "a", "b")
	url := startNodesGateway(t, Options{StreamResumeTimeout: 5 * time.Second}, nodes...)

	lines := openNDJSON(t, url+"/v1/rooms/r:subscribe")
	firstWrite(t, lines)
	dead := holder(t, nodes)
	dead.grpc.Stop()
	room.post("m2")
	if got := readTexts(t, lines, "m2"); !slices.Equal(got, []string{"m2"}) {
		t.Errorf("after the server died: %q, want m2 only", got)
	}
	if req := other(nodes, dead).lastSubscribe(); req.AfterSequence == nil || req.GetAfterSequence() != 1 {
		t.Errorf("the resumed Subscribe was %v, want after_sequence 1", req)
	}
}

func TestADeliberateEndOfAStreamIsNotRetried(t *testing.T) {
	nodes := startNodes(t, "a", "b")
	url := startNodesGateway(t, Options{StreamResumeTimeout: 5 * time.Second}, nodes...)

	lines := openNDJSON(t, url+"/v1/rooms/revoked:subscribe?after=0")
	firstWrite(t, lines)
	select {
	case l := <-lines:
		if l.Error == nil || l.Error.Code != "NOT_A_MEMBER" {
			t.Errorf("line %+v, want the NOT_A_MEMBER error", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no error line within 10s")
	}
	if _, open := <-lines; open {
		t.Error("the stream went on after its error")
	}
	if n := nodes[0].subscribeCount() + nodes[1].subscribeCount(); n != 1 {
		t.Errorf("%d Subscribe calls, want 1", n)
	}
}

func TestAStreamEndsWhenNoServerTakesItBackInTime(t *testing.T) {
	nodes := startNodes(t, "a", "b")
	const timeout = 300 * time.Millisecond
	url := startNodesGateway(t, Options{StreamResumeTimeout: timeout}, nodes...)

	lines := openNDJSON(t, url+"/v1/rooms/r:subscribe?after=0")
	firstWrite(t, lines)
	lost := time.Now()
	nodes[0].grpc.Stop()
	nodes[1].grpc.Stop()
	select {
	case l := <-lines:
		if l.Error == nil || l.Error.GRPCCode != "UNAVAILABLE" {
			t.Errorf("line %+v, want an UNAVAILABLE error", l)
		}
		if waited := time.Since(lost); waited < timeout {
			t.Errorf("ended %v after the loss, before the %v of retries", waited, timeout)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end within 10s")
	}
}

// After a resume, what the new stream sends that the client already has is
// dropped: stored events at or before the cursor, and gaps it was told of.
func TestAResumedStreamDropsWhatItsClientHas(t *testing.T) {
	s := &resumableStream{resumed: true, cursor: 5, cursorKnown: true}
	msg := func(seq uint64) *parleyv1.Event {
		return &parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Sequence: seq}
	}
	gap := func(first, last uint64) *parleyv1.Event {
		return &parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_GAP, GapFirstSequence: first, GapLastSequence: last}
	}
	typing := &parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_TYPING}
	resp := &parleyv1.SubscribeResponse{Events: []*parleyv1.Event{msg(4), msg(5), gap(3, 5), msg(6), typing, gap(7, 9)}}
	if !s.take(resp) {
		t.Fatal("a write with new events was not handed on")
	}
	var got []string
	for _, e := range resp.GetEvents() {
		got = append(got, e.GetKind().String()+" "+strconv.FormatUint(e.GetSequence()+e.GetGapLastSequence(), 10))
	}
	want := []string{"EVENT_KIND_MESSAGE 6", "EVENT_KIND_TYPING 0", "EVENT_KIND_GAP 9"}
	if !slices.Equal(got, want) {
		t.Errorf("kept %q, want %q", got, want)
	}
	if s.cursor != 9 {
		t.Errorf("cursor %d, want 9 (past the gap)", s.cursor)
	}
	if s.take(&parleyv1.SubscribeResponse{Events: []*parleyv1.Event{msg(8)}}) {
		t.Error("a write of events the client has was handed on")
	}
	if s.take(&parleyv1.SubscribeResponse{}) {
		t.Error("an empty write after a resume was handed on")
	}
}

// A live-only stream on a server whose live point is behind the log's end
// (the last events were committed on another server) hands on only what
// comes after the end it learned when it opened.
func TestALiveOnlyStreamDropsWhatWasCommittedBeforeItOpened(t *testing.T) {
	s := &resumableStream{cursor: 2, cursorKnown: true}
	msg := func(seq uint64) *parleyv1.Event {
		return &parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Sequence: seq}
	}
	if !s.take(&parleyv1.SubscribeResponse{}) {
		t.Error("the first, empty write (the stream is in place) was not handed on")
	}
	resp := &parleyv1.SubscribeResponse{Events: []*parleyv1.Event{msg(2), msg(3)}}
	if !s.take(resp) || len(resp.GetEvents()) != 1 || resp.GetEvents()[0].GetSequence() != 3 {
		t.Errorf("handed on %v, want event 3 only", resp.GetEvents())
	}
}
