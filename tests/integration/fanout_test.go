package integration

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
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

// endingClient is an SSE or WebSocket client whose end a test waits for.
type endingClient interface {
	end(t *testing.T) string // the gRPC code of the error that ended it
}

type sseEnding struct{ st *sseStream }

func (c sseEnding) end(t *testing.T) string {
	t.Helper()
	for {
		select {
		case m, ok := <-c.st.msgs:
			if !ok {
				t.Fatal("SSE stream ended without an error event")
			}
			if m.event != "error" {
				continue
			}
			var body struct {
				Error struct {
					GRPCCode string `json:"grpc_code"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(m.data), &body); err != nil {
				t.Fatalf("error event %q: %v", m.data, err)
			}
			return body.Error.GRPCCode
		case <-time.After(10 * time.Second):
			t.Fatal("SSE stream still open 10s later")
		}
	}
}

type wsEnding struct{ c *wsConn }

func (c wsEnding) end(t *testing.T) string {
	t.Helper()
	ce := c.c.closeError(t)
	return map[websocket.StatusCode]string{4401: "UNAUTHENTICATED", 4403: "PERMISSION_DENIED", 4404: "NOT_FOUND"}[ce.Code] +
		"/" + ce.Reason
}

// The revocations of TestRoomStreamsEndWhenAccessEnds (and a sign-out), on
// clients of shared log streams: each ends, within a second, with the
// status its own stream would have; the others on the same log go on.
func TestFanoutStreamsEndWhenAccessEnds(t *testing.T) {
	for _, transport := range []string{"SSE", "WebSocket"} {
		t.Run(transport, func(t *testing.T) {
			s := startStack(t)
			owner := s.signUp(t, "owner")
			bob := s.signUp(t, "bob")
			open := func(target, token string) endingClient {
				t.Helper()
				if transport == "SSE" {
					st := s.openSSE(t, target+":subscribe", token)
					if code, _ := st.waitStatus(t); code != 200 {
						t.Fatalf("%s: status %d", target, code)
					}
					return sseEnding{st}
				}
				return wsEnding{s.mustDialWS(t, target+":ws", bearer(token))}
			}
			within := func(what string, c endingClient, want string, since time.Time) {
				t.Helper()
				got := c.end(t)
				if !strings.HasPrefix(got, want) {
					t.Errorf("%s: ended with %q, want %s", what, got, want)
				}
				if d := time.Since(since); d > time.Second {
					t.Errorf("%s: ended %v after the change, want within 1s", what, d)
				}
			}

			room := s.createRoom(t, owner.token, "closing", "VISIBILITY_PRIVATE", "closing-pw")
			mustStatus(t, s.req(t, http.MethodPost, "/v1/rooms/"+room.ID+"/members", owner.token, map[string]string{"user": "bob"}), 200, nil)
			bobs := open("/v1/rooms/"+room.ID, bob.token)
			owners := open("/v1/rooms/"+room.ID, owner.token)
			watcher := s.openSSE(t, "/v1/rooms/"+room.ID+":subscribe", owner.token)
			if code, _ := watcher.waitStatus(t); code != 200 {
				t.Fatalf("status %d", code)
			}
			at := time.Now()
			mustStatus(t, s.req(t, http.MethodDelete, "/v1/rooms/"+room.ID+"/members/bob", owner.token, nil), 200, nil)
			within("removed member", bobs, "PERMISSION_DENIED", at)
			// The owner's clients of the same shared stream go on.
			m := s.post(t, owner.token, room.ID, "still here")
			watcher.collect(t, func(evs []sseEvent) bool {
				return slices.ContainsFunc(evs, func(e sseEvent) bool { return e.ev.ID == m.ID })
			})
			at = time.Now()
			mustStatus(t, s.req(t, http.MethodDelete, "/v1/rooms/"+room.ID, owner.token, nil), 200, nil)
			within("deleted room", owners, "NOT_FOUND", at)

			// A public room turned private: the non-member's stream ends.
			turning := s.createRoom(t, owner.token, "turning", "", "")
			carol := s.signUp(t, "carol")
			carols := open("/v1/rooms/"+turning.ID, carol.token)
			at = time.Now()
			mustStatus(t, s.req(t, http.MethodPatch, "/v1/rooms/"+turning.ID, owner.token,
				map[string]string{"visibility": "VISIBILITY_PRIVATE", "password": "turning-pw"}), 200, nil)
			within("room turned private", carols, "PERMISSION_DENIED", at)

			// A sign-out ends the token's streams; a deleted user's end too.
			erin := s.signUp(t, "erin")
			public := s.createRoom(t, owner.token, "public", "", "")
			erins := open("/v1/rooms/"+public.ID, erin.token)
			erinsInbox := open("/v1/direct-messages", erin.token)
			at = time.Now()
			mustStatus(t, s.req(t, http.MethodPost, "/v1/auth/sign-out", erin.token, map[string]any{}), 200, nil)
			within("signed out (inbox)", erinsInbox, "UNAUTHENTICATED", at)
			within("signed out (room)", erins, "UNAUTHENTICATED", at)
			dave := s.signUp(t, "dave")
			daves := open("/v1/direct-messages", dave.token)
			at = time.Now()
			mustStatus(t, s.req(t, http.MethodDelete, "/v1/users/me", dave.token, nil), 200, nil)
			within("deleted user", daves, "UNAUTHENTICATED", at)
		})
	}
}

// With the Redis bus, a server shut down (SIGTERM, not killed) under the
// shared streams of its gateway's SSE and WebSocket clients: the stream
// ends UNAVAILABLE as a whole and is taken to the other server with every
// client; none sees an error, a gap or a duplicate.
func TestFanoutClientsCarryOnWhenTheirServerShutsDown(t *testing.T) {
	c := startCluster(t, redisFor(t), "a", "b")
	owner := c.signUp(t, "owner")
	reader := c.signUp(t, "reader")
	rm := c.createRoom(t, owner.token, "shutting-down", "", "")
	var posted []string
	post := func(texts ...string) {
		for _, text := range texts {
			c.post(t, owner.token, rm.ID, text)
			posted = append(posted, text)
		}
	}
	post("m1")
	room := "/v1/rooms/" + rm.ID
	clients := []*roomClient{
		sseClient(c.stack, t, "SSE", room+":subscribe?after=0", reader.token),
		sseClient(c.stack, t, "second SSE", room+":subscribe?after=0", owner.token),
		wsClient(c.stack, t, "WebSocket", room+":ws?after_sequence=0", reader.token),
	}
	// Three clients, one shared stream, on one server.
	var holder, other *clusterServer
	deadline := time.Now().Add(10 * time.Second)
	for holder == nil {
		for i, srv := range c.servers {
			if srv.openStreams(t) == 3 {
				holder, other = srv, c.servers[1-i]
			}
		}
		if holder == nil && time.Now().After(deadline) {
			t.Fatal("no server holds the three clients")
		}
		time.Sleep(20 * time.Millisecond)
	}
	post("m2")
	for _, rc := range clients {
		rc.read(t, "m2")
	}

	if err := holder.proc.stop(); err != nil {
		t.Fatalf("stopping %s: %v", holder.name, err)
	}
	c.waitDown(t, holder)
	post("m3", "m4")
	for _, rc := range clients {
		rc.read(t, "m4")
	}
	other.waitOpenStreams(t, 3)
	for _, rc := range clients {
		rc.wantExactly(t, posted)
	}
}
