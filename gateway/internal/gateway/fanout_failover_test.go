package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	parleyedge "parley/gateway/gen/parley/edge"
	parleyv1 "parley/gateway/gen/parley/v1"
)

// fakeEdgeNode serves EdgeService over a fakeRoomLog shared with the other
// nodes (the database): Resolve names log "r", Follow streams it from the
// start's position and admits every attachment.
type fakeEdgeNode struct {
	parleyedge.UnimplementedEdgeServiceServer
	addr string
	grpc *grpc.Server
	room *fakeRoomLog

	mu       sync.Mutex
	starts   []*parleyedge.FollowStart
	attaches int
	open     int
}

func (n *fakeEdgeNode) Resolve(ctx context.Context, _ *parleyedge.ResolveRequest) (*parleyedge.ResolveResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if got := md.Get(edgeSecretMetadata); len(got) != 1 || got[0] != "s3cret" {
		return nil, status.Error(codes.PermissionDenied, "no secret")
	}
	return &parleyedge.ResolveResponse{Log: "r", UserId: "u1"}, nil
}

func (n *fakeEdgeNode) Follow(stream grpc.BidiStreamingServer[parleyedge.FollowRequest, parleyedge.FollowResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	n.mu.Lock()
	n.starts = append(n.starts, start)
	n.open++
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.open--
		n.mu.Unlock()
	}()
	var sendMu sync.Mutex
	send := func(r *parleyedge.FollowResponse) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(r)
	}
	_, end, _ := n.room.after(0)
	cursor := end
	if start.AfterSequence != nil {
		cursor = start.GetAfterSequence()
	}
	history, end, _ := n.room.after(cursor)
	if err := send(&parleyedge.FollowResponse{Position: max(end, cursor), Events: history}); err != nil {
		return err
	}
	cursor = max(end, cursor)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				return
			}
			if a := req.GetAttach(); a != nil {
				n.mu.Lock()
				n.attaches++
				n.mu.Unlock()
				if send(&parleyedge.FollowResponse{Admitted: []uint64{a.GetClient()}}) != nil {
					return
				}
			}
		}
	}()
	for {
		events, _, changed := n.room.after(cursor)
		if len(events) > 0 {
			if err := send(&parleyedge.FollowResponse{Events: events}); err != nil {
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

func (n *fakeEdgeNode) follows() (open int, starts []*parleyedge.FollowStart, attaches int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.open, append([]*parleyedge.FollowStart(nil), n.starts...), n.attaches
}

func startEdgeNodes(t *testing.T, room *fakeRoomLog, count int) []*fakeEdgeNode {
	t.Helper()
	var nodes []*fakeEdgeNode
	for i := 0; i < count; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n := &fakeEdgeNode{addr: ln.Addr().String(), grpc: grpc.NewServer(), room: room}
		parleyedge.RegisterEdgeServiceServer(n.grpc, n)
		go n.grpc.Serve(ln)
		t.Cleanup(n.grpc.Stop)
		nodes = append(nodes, n)
	}
	return nodes
}

// readClient takes from c until it has the events with these texts, and
// fails on anything else, an end, or silence.
func readClient(t *testing.T, c *fanoutClient, texts ...string) {
	t.Helper()
	var got []string
	waitFor(t, fmt.Sprintf("events %q", texts), func() bool {
		entries, end := take(c)
		for _, e := range entries {
			got = append(got, e.materialize().event.GetText())
		}
		if end != nil {
			t.Fatalf("client ended with %v after %q", end, got)
		}
		return len(got) >= len(texts)
	})
	if strings.Join(got, ",") != strings.Join(texts, ",") {
		t.Errorf("got %q, want %q once each, in order", got, texts)
	}
}

// The shared stream of a log whose server dies is opened again on another
// server after the last sequence it forwarded, every client attached again:
// the clients see no gap and no duplicate.
func TestFanoutLogStreamResumesOnAnotherServer(t *testing.T) {
	room := newFakeRoomLog()
	room.post("m0")
	nodes := startEdgeNodes(t, room, 2)
	opts := Options{GRPCServer: nodes[0].addr + "," + nodes[1].addr, StreamResumeTimeout: 5 * time.Second}
	u := dialTestUpstream(t, opts)
	f := &fanout{edge: parleyedge.NewEdgeServiceClient(u.conn), secret: "s3cret", queueCapacity: 100,
		resumeTimeout: opts.StreamResumeTimeout, stopping: u.stopping.Done(), log: u.log, logs: map[string]*sharedLog{}}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var clients []*fanoutClient
	for i := 0; i < 3; i++ {
		c, err := f.join(ctx, ctx, &parleyv1.SubscribeRequest{Room: "r"}, "Bearer t")
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		defer f.leave(c)
		clients = append(clients, c)
	}
	if f.upstreams() != 1 {
		t.Fatalf("%d shared streams, want 1", f.upstreams())
	}
	var holder, other *fakeEdgeNode
	waitFor(t, "one Follow open", func() bool {
		a, _, _ := nodes[0].follows()
		b, _, _ := nodes[1].follows()
		holder, other = nodes[0], nodes[1]
		if b == 1 {
			holder, other = nodes[1], nodes[0]
		}
		return a+b == 1
	})
	room.post("m1")
	for _, c := range clients {
		readClient(t, c, "m1")
	}

	holder.grpc.Stop()
	room.post("m2")
	room.post("m3")
	for _, c := range clients {
		readClient(t, c, "m2", "m3")
	}
	// The node counts attachments as it reads them, apart from the events
	// it streams: the clients may have read m3 before it read all three.
	waitFor(t, "every client attached again", func() bool {
		_, _, attaches := other.follows()
		return attaches >= 3
	})
	_, starts, attaches := other.follows()
	if len(starts) != 1 || starts[0].AfterSequence == nil || starts[0].GetAfterSequence() != 2 {
		t.Errorf("the reopened Follow started %v, want after_sequence 2 (m1's)", starts)
	}
	if attaches != 3 {
		t.Errorf("%d clients attached again, want 3", attaches)
	}
}

// A gateway given --edge_secret in front of servers that serve no fan-out
// gives each client a stream of its own.
func TestFanoutFallsBackToOwnStreamsWhenTheServersServeNone(t *testing.T) {
	nodes := startNodes(t, "a")
	url := startNodesGateway(t, Options{EdgeSecret: "s3cret"}, nodes...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/rooms/r:subscribe", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	waitFor(t, "the client's own Subscribe", func() bool { return nodes[0].streamsOpen() == 1 })
}
