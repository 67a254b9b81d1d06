package integration

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// snapshot is what a restart must keep, as the REST API shows it.
type snapshot struct {
	rooms      []room
	pubHistory messageList
	edited     event
	members    memberList
	inbox      messageList
	lobby      []recent
	posters    []string
	users      userList
}

func takeSnapshot(t *testing.T, s *stack, alice, bob account, pub room, edited event) snapshot {
	t.Helper()
	var snap snapshot
	mustStatus(t, s.req(t, http.MethodGet, "/rooms", alice.token, nil), 200, &snap.rooms)
	snap.pubHistory = s.listMessages(t, bob.token, pub.ID, "")
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+pub.ID+"/messages/"+edited.ID, bob.token, nil), 200, &snap.edited)
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/private/members", alice.token, nil), 200, &snap.members)
	mustStatus(t, s.req(t, http.MethodGet, "/v1/direct-messages", bob.token, nil), 200, &snap.inbox)
	snap.lobby = recentMessages(t, s, "/messages")
	snap.posters = posters(t, s)
	mustStatus(t, s.req(t, http.MethodGet, "/v1/users", bob.token, nil), 200, &snap.users)
	return snap
}

func TestEverythingSurvivesARestart(t *testing.T) {
	s := startStack(t)
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")
	signedOut := s.signIn(t, "bob", bob.password).Token
	mustStatus(t, s.req(t, http.MethodPost, "/v1/auth/sign-out", signedOut, "{}"), 200, nil)

	pub := s.createRoom(t, alice.token, "public", "", "")
	priv := s.createRoom(t, alice.token, "private", "VISIBILITY_PRIVATE", "private-pw")
	mustStatus(t, s.req(t, http.MethodPost, "/v1/rooms/private/members", alice.token, map[string]string{"user": "bob"}), 200, nil)
	mustStatus(t, s.req(t, http.MethodPatch, "/v1/rooms/public", alice.token, map[string]string{"description": "kept"}), 200, nil)
	m1 := s.post(t, alice.token, pub.ID, "one")
	m2 := s.post(t, bob.token, pub.ID, "two")
	s.post(t, bob.token, pub.ID, "three")
	s.post(t, bob.token, priv.ID, "in private")
	mustStatus(t, s.req(t, http.MethodPatch, "/v1/rooms/"+pub.ID+"/messages/"+m1.ID, alice.token, map[string]string{"text": "one, edited"}), 200, nil)
	mustStatus(t, s.req(t, http.MethodPatch, "/v1/rooms/"+pub.ID+"/messages/"+m1.ID, alice.token, map[string]string{"text": "one, edited again"}), 200, nil)
	mustStatus(t, s.req(t, http.MethodDelete, "/v1/rooms/"+pub.ID+"/messages/"+m2.ID, bob.token, nil), 200, nil)
	mustStatus(t, s.req(t, http.MethodPost, "/v1/users/bob/messages", alice.token, map[string]string{"text": "dm before restart"}), 201, nil)
	postRecent(t, s, "superman", "lobby before restart")
	var pubBefore room
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+pub.ID, alice.token, nil), 200, &pubBefore)
	before := takeSnapshot(t, s, alice, bob, pub, m1)
	if len(before.edited.PreviousVersions) != 2 || !before.pubHistory.Messages[1].Deleted {
		t.Fatalf("before the restart: edited %+v, history %+v", before.edited, before.pubHistory)
	}

	s.restart(t, false)

	after := takeSnapshot(t, s, alice, bob, pub, m1)
	for _, c := range []struct {
		name          string
		before, after any
	}{
		{"rooms", before.rooms, after.rooms},
		{"public history", before.pubHistory, after.pubHistory},
		{"edited message", before.edited, after.edited},
		{"members", before.members, after.members},
		{"direct messages", before.inbox, after.inbox},
		{"lobby messages", before.lobby, after.lobby},
		{"posters", before.posters, after.posters},
		{"users", before.users, after.users},
	} {
		if !reflect.DeepEqual(c.before, c.after) {
			t.Errorf("%s changed across the restart:\nbefore %+v\nafter  %+v", c.name, c.before, c.after)
		}
	}

	// Tokens: a live one still works (the key persisted), a signed-out one
	// is still refused; passwords still check.
	mustStatus(t, s.req(t, http.MethodGet, "/v1/users/me", alice.token, nil), 200, nil)
	wantError(t, s.req(t, http.MethodGet, "/v1/users/me", signedOut, nil), 401, "TOKEN_REVOKED", "")
	s.signIn(t, "alice", alice.password)
	wantError(t, s.req(t, http.MethodPost, "/v1/auth/sign-in", "", map[string]string{"username": "alice", "password": "wrong-password"}), 401, "", "")
	s.roomToken(t, "private", "private-pw", "guest")
	wantError(t, s.req(t, http.MethodPost, "/v1/rooms/private/token", "", map[string]string{"name": "guest", "secret": "nope"}), 403, "WRONG_SECRET", "secret")
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/private/messages", bob.token, nil), 200, nil)

	// Numbering continues where it stopped.
	if next := s.post(t, bob.token, pub.ID, "after restart"); next.Sequence != pubBefore.LastSequence+1 {
		t.Errorf("first sequence after the restart %d, last before %d", next.Sequence, pubBefore.LastSequence)
	}
	var dm event
	mustStatus(t, s.req(t, http.MethodPost, "/v1/users/bob/messages", alice.token, map[string]string{"text": "dm after restart"}), 201, &dm)
	if last := before.inbox.Messages[len(before.inbox.Messages)-1]; dm.Sequence != last.Sequence+1 {
		t.Errorf("inbox sequence after the restart %d, last before %d", dm.Sequence, last.Sequence)
	}
}

type acked struct {
	id, text string
	sequence uint64
}

// Writers post through gRPC as fast as they can; the server is killed with
// SIGKILL mid-flight. Every acknowledged message must be in the history
// after a restart, and the sequence numbers must have no gap and no
// duplicate.
func TestAcknowledgedMessagesSurviveKill9(t *testing.T) {
	for _, mode := range []string{"normal", "full"} {
		t.Run("synchronous="+mode, func(t *testing.T) { stopMidFlight(t, mode, true) })
	}
}

// The same with SIGTERM: a clean shutdown under load loses nothing that was
// acknowledged, and exits 0.
func TestAcknowledgedMessagesSurviveSIGTERMUnderLoad(t *testing.T) {
	stopMidFlight(t, "normal", false)
}

func stopMidFlight(t *testing.T, synchronous string, kill bool) {
	s := startStack(t, withSynchronous(synchronous))
	owner := s.signUp(t, "writer")
	rm := s.createRoom(t, owner.token, "durable", "", "")

	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := parleyv1.NewMessageServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+owner.token)

	const writers, enough = 4, 1000
	var (
		mu    sync.Mutex
		acks  []acked
		count atomic.Int64
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				text := fmt.Sprintf("writer %d message %d", w, i)
				callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				ev, err := msgs.PostMessage(callCtx, &parleyv1.PostMessageRequest{Room: rm.ID, Text: text})
				cancel()
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				acks = append(acks, acked{ev.GetId(), text, ev.GetSequence()})
				mu.Unlock()
				count.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for count.Load() < enough {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("only %d messages acknowledged within 60s", count.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if kill {
		if err := s.server.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-s.server.done
	} else if err := s.server.stop(); err != nil {
		t.Errorf("server under load: %v", err)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	acknowledged := append([]acked(nil), acks...)
	mu.Unlock()
	t.Logf("%d messages acknowledged before the server stopped", len(acknowledged))

	s.restart(t, true) // the server is gone already

	history := s.allMessages(t, owner.token, rm.ID, 1000)
	byID := map[string]event{}
	for i, m := range history {
		if _, dup := byID[m.ID]; dup {
			t.Errorf("message %s appears twice", m.ID)
		}
		byID[m.ID] = m
		if i > 0 && m.Sequence != history[i-1].Sequence+1 {
			t.Errorf("sequence %d follows %d: a gap or a duplicate", m.Sequence, history[i-1].Sequence)
		}
	}
	sort.Slice(acknowledged, func(i, j int) bool { return acknowledged[i].sequence < acknowledged[j].sequence })
	lost := 0
	for _, a := range acknowledged {
		m, ok := byID[a.id]
		if !ok || m.Text != a.text || m.Sequence != a.sequence {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged message %+v is lost or changed after the restart: %+v", a, m)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged messages lost", lost, len(acknowledged))
	}
	if len(history) < len(acknowledged) {
		t.Errorf("history holds %d messages, %d were acknowledged", len(history), len(acknowledged))
	}
	if len(history) > 0 {
		if next := s.post(t, owner.token, rm.ID, "after the crash"); next.Sequence != history[len(history)-1].Sequence+1 {
			t.Errorf("first sequence after the crash %d, last in history %d", next.Sequence, history[len(history)-1].Sequence)
		}
	}
}
