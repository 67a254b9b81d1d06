package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// The seed-000 lobby through HAProxy, which sends each request to either
// gateway and each gateway to any server: joins, sends and polls of one
// client land on different replicas. Every client sees every lobby event
// once, in the one order of the log, and a leave ends the client's poll
// wherever it waits.
func testLobbyAcrossReplicas(t *testing.T, c *haCluster) {
	const perClient = 10
	ids := []string{"lob-ann", "lob-bob", "lob-cat"}
	for _, id := range ids {
		mustStatus(t, c.get(t, "/join?id="+id), http.StatusOK, nil)
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perClient; i++ {
				r := c.get(t, fmt.Sprintf("/send?id=%s&message=%s-%d", id, id, i))
				if r.status != http.StatusOK {
					t.Errorf("send %s-%d: %d %s", id, i, r.status, r.body)
				}
			}
		}()
	}
	wg.Wait()

	// Each client's view: from its own join on, every event once, in
	// sequence order; all three views agree where they overlap.
	views := map[string][]event{}
	for _, id := range ids {
		all := c.receiveUntil(t, id, func(got []event) bool {
			return len(messages(got)) >= perClient*len(ids)
		})
		for i := 1; i < len(all); i++ {
			if all[i].Sequence <= all[i-1].Sequence {
				t.Fatalf("%s: sequence %d after %d", id, all[i].Sequence, all[i-1].Sequence)
			}
		}
		if all[0].Kind != "EVENT_KIND_JOIN" || all[0].Sender != id {
			t.Fatalf("%s: first event %+v, want its own join", id, all[0])
		}
		if got := len(messages(all)); got != perClient*len(ids) {
			t.Fatalf("%s: %d messages, want %d", id, got, perClient*len(ids))
		}
		views[id] = all
	}
	last := views[ids[len(ids)-1]]
	for _, id := range ids {
		seqs := func(es []event) []uint64 {
			var out []uint64
			for _, e := range es {
				out = append(out, e.Sequence)
			}
			return out
		}
		if !slices.Equal(seqs(messages(views[id])), seqs(messages(last))) {
			t.Fatalf("%s and %s saw the messages in different orders", id, ids[len(ids)-1])
		}
	}

	// ann's stream (through HAProxy's gRPC, so on any server) ends when she
	// leaves (through gateway 2): her reader is closed wherever it is.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := parleyv1.NewChatServiceClient(c.grpcConn).Subscribe(ctx, &parleyv1.SubscribeRequest{Id: "lob-ann"})
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, c.gateways[0].get(t, "/send?id=lob-bob&message=ping"), http.StatusOK, nil)
	for got := false; !got; {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("ann's stream: %v", err)
		}
		for _, e := range r.Events {
			got = got || e.Text == "ping"
		}
	}
	left := time.Now()
	mustStatus(t, c.gateways[1].get(t, "/leave?id=lob-ann"), http.StatusOK, nil)
	for {
		if _, err := stream.Recv(); err != nil {
			if err != io.EOF {
				t.Fatalf("ann's stream ended with %v, want its end at her leave", err)
			}
			break
		}
	}
	if d := time.Since(left); d > 2*time.Second {
		t.Fatalf("ann's stream ended %v after her leave", d)
	}
	if r := c.get(t, "/send?id=lob-ann&message=late"); r.status == http.StatusOK {
		t.Fatalf("a send after leaving was accepted: %s", r.body)
	}
}
