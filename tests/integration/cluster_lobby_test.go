package integration

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// The seed-000 lobby on three servers joined by Redis: a client joins on
// one server, sends on a second and reads on a third, and sees every event
// once, in order, as it would on one server.

func lobbyClientOf(t *testing.T, srv *clusterServer) parleyv1.ChatServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return parleyv1.NewChatServiceClient(conn)
}

// describe names each event by kind, sender and text.
func describe(events []*parleyv1.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, fmt.Sprintf("%s %s %s", e.Kind, e.Sender, e.Text))
	}
	return out
}

func TestTheLobbySpansServers(t *testing.T) {
	c := startCluster(t, redisFor(t), "a", "b", "c")
	a, b, cc := lobbyClientOf(t, c.servers[0]), lobbyClientOf(t, c.servers[1]), lobbyClientOf(t, c.servers[2])
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	receive := func(on parleyv1.ChatServiceClient, id string) []string {
		t.Helper()
		r, err := on.Receive(ctx, &parleyv1.ReceiveRequest{Id: id, Timeout: 5})
		must(err)
		return describe(r.Events)
	}
	wantEvents := func(got []string, want ...string) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("received %q, want %q", got, want)
		}
	}

	_, err := a.Join(ctx, &parleyv1.JoinRequest{Id: "ann"})
	must(err)
	_, err = b.Join(ctx, &parleyv1.JoinRequest{Id: "ann"})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second join of ann on another server: %v, want ALREADY_EXISTS", err)
	}
	_, err = b.Send(ctx, &parleyv1.SendRequest{Id: "ann", Message: "one"})
	must(err)
	wantEvents(receive(cc, "ann"), "EVENT_KIND_JOIN ann ", "EVENT_KIND_MESSAGE ann one")
	_, err = cc.Send(ctx, &parleyv1.SendRequest{Id: "ann", Message: "two"})
	must(err)
	// What c handed out is not handed out again on a.
	wantEvents(receive(a, "ann"), "EVENT_KIND_MESSAGE ann two")

	// bob streams on b; ann's leave on c reaches him, and bob's own leave,
	// made on a, ends his stream on b.
	_, err = a.Join(ctx, &parleyv1.JoinRequest{Id: "bob"})
	must(err)
	streamCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := b.Subscribe(streamCtx, &parleyv1.SubscribeRequest{Id: "bob"})
	must(err)
	next := func() []string {
		t.Helper()
		for {
			r, err := stream.Recv()
			must(err)
			if len(r.Events) > 0 {
				return describe(r.Events)
			}
		}
	}
	wantEvents(next(), "EVENT_KIND_JOIN bob ")
	_, err = cc.Leave(ctx, &parleyv1.LeaveRequest{Id: "ann"})
	must(err)
	wantEvents(next(), "EVENT_KIND_LEAVE ann ")
	_, err = a.Leave(ctx, &parleyv1.LeaveRequest{Id: "bob"})
	must(err)
	left := time.Now()
	for {
		_, err := stream.Recv()
		if err == nil {
			continue
		}
		if err != io.EOF {
			t.Fatalf("bob's stream ended with %v, want the end of a left client's stream", err)
		}
		break
	}
	if d := time.Since(left); d > time.Second {
		t.Fatalf("bob's stream on b ended %v after his leave on a", d)
	}
	_, err = b.Send(ctx, &parleyv1.SendRequest{Id: "bob", Message: "late"})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("send after leaving: %v, want FAILED_PRECONDITION", err)
	}
}
