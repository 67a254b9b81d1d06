package integration

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// Fan-out at the edge (docs/fanout.md): the stacks' gateways run with
// --edge_secret, so every SSE and WebSocket test goes through it; this file
// checks what only fan-out promises.

const (
	followMethod    = "/parley.internal.EdgeService/Follow"
	subscribeMethod = "/parley.v1.ChatService/Subscribe"
)

// streamCounts reads, from GET /v1/stats, the server's open Subscribe
// streams and open EdgeService.Follow streams.
func (s *stack) streamCounts(t *testing.T) (subscribes, follows uint64) {
	t.Helper()
	var st struct {
		Methods []struct {
			Method   string `json:"method"`
			InFlight string `json:"inFlight"`
		} `json:"methods"`
	}
	mustOK(t, s.req(t, http.MethodGet, "/v1/stats", "", nil), &st)
	for _, m := range st.Methods {
		switch m.Method {
		case subscribeMethod:
			subscribes = num(t, m.InFlight)
		case followMethod:
			follows = num(t, m.InFlight)
		}
	}
	return subscribes, follows
}

// waitStreamCounts waits until the server has these streams open.
func (s *stack) waitStreamCounts(t *testing.T, subscribes, follows uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sub, fol := s.streamCounts(t)
		if sub == subscribes && fol == follows {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server has %d Subscribe and %d Follow streams open, want %d and %d",
				sub, fol, subscribes, follows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// N clients of one room on one gateway, over SSE and WebSocket, by two
// users and by the room's UUID and its name, cost the server one stream;
// every client gets every message; the last one to go closes it.
func TestFanoutOneUpstreamStreamPerRoom(t *testing.T) {
	s := startStack(t)
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")
	rm := s.createRoom(t, alice.token, "fanned", "", "")

	var streams []*sseStream
	for i, who := range []string{alice.token, bob.token, alice.token, bob.token, alice.token} {
		target := "/v1/rooms/" + rm.ID + ":subscribe"
		if i%2 == 1 {
			target = "/v1/rooms/" + rm.Name + ":subscribe"
		}
		st := s.openSSE(t, target, who)
		if code, _ := st.waitStatus(t); code != 200 {
			t.Fatalf("SSE client %d: status %d", i, code)
		}
		streams = append(streams, st)
	}
	ws := s.mustDialWS(t, "/v1/rooms/"+rm.ID+":ws", bearer(bob.token))
	s.waitStreamCounts(t, 0, 1)

	m := s.post(t, alice.token, rm.ID, "to everyone at once")
	for _, st := range streams {
		st.collect(t, func(evs []sseEvent) bool {
			return slices.ContainsFunc(evs, func(e sseEvent) bool { return e.ev.ID == m.ID })
		})
	}
	ws.events(t, func(evs []event) bool {
		return slices.ContainsFunc(evs, func(e event) bool { return e.ID == m.ID })
	}, nil)

	for _, st := range streams {
		st.cancel()
	}
	ws.CloseNow()
	s.waitStreamCounts(t, 0, 0)
}

// Without --edge_secret on the gateway, each client has its own stream.
func TestPerClientStreamsWithoutFanout(t *testing.T) {
	s := startStack(t, withPerClientStreams())
	alice := s.signUp(t, "alice")
	rm := s.createRoom(t, alice.token, "unfanned", "", "")
	for i := 0; i < 3; i++ {
		st := s.openSSE(t, "/v1/rooms/"+rm.ID+":subscribe", alice.token)
		if code, _ := st.waitStatus(t); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	s.waitStreamCounts(t, 3, 0)
}
