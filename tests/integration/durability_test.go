package integration

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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
		t.Run("synchronous="+mode, func(t *testing.T) { stopMidFlight(t, true, withSynchronous(mode)) })
	}
}

// The same on PostgreSQL: what the server acknowledged was committed there.
func TestAcknowledgedMessagesSurviveKill9OnPostgres(t *testing.T) {
	stopMidFlight(t, true, withPostgres(postgresFor(t)))
}

// The same with SIGTERM: a clean shutdown under load loses nothing that was
// acknowledged, and exits 0.
func TestAcknowledgedMessagesSurviveSIGTERMUnderLoad(t *testing.T) {
	stopMidFlight(t, false)
}

func stopMidFlight(t *testing.T, kill bool, options ...stackOption) {
	s := startStack(t, options...)
	owner := s.signUp(t, "writer")
	rm := s.createRoom(t, owner.token, "durable", "", "")
	load := startPostLoad(t, s, owner.token, rm.ID, 4)
	load.waitAcks(t, 1000, 60*time.Second)
	if kill {
		if err := s.server.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-s.server.done
	} else if err := s.server.stop(); err != nil {
		t.Errorf("server under load: %v", err)
	}
	acknowledged := load.stop()
	t.Logf("%d messages acknowledged before the server stopped", len(acknowledged))

	s.restart(t, true) // the server is gone already
	checkAcknowledged(t, s, owner.token, rm.ID, acknowledged)
}

// The database goes away under load and comes back: while it is down every
// send fails promptly with UNAVAILABLE (REST 503), never a 500 or a hang;
// afterwards sends succeed again on the same server, and nothing that was
// acknowledged is lost.
func TestSendsFailCleanlyWhileTheDatabaseIsDownAndRecover(t *testing.T) {
	pg := postgresFor(t)
	s := startStack(t, withPostgres(pg))
	owner := s.signUp(t, "writer")
	rm := s.createRoom(t, owner.token, "outage", "", "")
	load := startPostLoad(t, s, owner.token, rm.ID, 4)
	load.waitAcks(t, 300, 60*time.Second)

	pg.control(t, "pause")
	// A send while the database is down: UNAVAILABLE within the connect
	// timeout, over gRPC and over REST.
	start := time.Now()
	_, err := load.post("while the database is down")
	if code := status.Code(err); code != codes.Unavailable {
		t.Errorf("send while the database is down: %v, want UNAVAILABLE", err)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("the failing send took %v", took)
	}
	r := s.req(t, http.MethodPost, "/v1/rooms/"+rm.ID+"/messages", owner.token, map[string]string{"text": "rest while down"})
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), `"code"`) {
		t.Errorf("REST send while the database is down = %s, want 503 with the error body", r)
	}
	before := load.acks()
	pg.control(t, "resume")
	load.waitAcks(t, before+300, 60*time.Second)
	acknowledged := load.stop()
	for code, n := range load.errorCodes() {
		if code != codes.Unavailable {
			t.Errorf("%d sends failed with %v; only UNAVAILABLE is expected during the outage", n, code)
		}
	}
	t.Logf("%d acknowledged, failures by code %v", len(acknowledged), load.errorCodes())
	checkAcknowledged(t, s, owner.token, rm.ID, acknowledged)
}

// postLoad is a few writers posting to one room through gRPC as fast as
// they can, each recording what was acknowledged and how the rest failed.
type postLoad struct {
	msgs  parleyv1.MessageServiceClient
	ctx   context.Context
	room  string
	conn  *grpc.ClientConn
	count atomic.Int64
	wg    sync.WaitGroup
	quit  chan struct{}

	mu     sync.Mutex
	acked  []acked
	failed map[codes.Code]int
}

func startPostLoad(t *testing.T, s *stack, token, room string, writers int) *postLoad {
	t.Helper()
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	l := &postLoad{
		msgs:   parleyv1.NewMessageServiceClient(conn),
		ctx:    metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token),
		room:   room,
		conn:   conn,
		quit:   make(chan struct{}),
		failed: map[codes.Code]int{},
	}
	for w := 0; w < writers; w++ {
		l.wg.Add(1)
		go l.write(w)
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *postLoad) post(text string) (*parleyv1.Event, error) {
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	return l.msgs.PostMessage(ctx, &parleyv1.PostMessageRequest{Room: l.room, Text: text})
}

// write posts until stopped. A failure is counted and retried, unless the
// server is gone (the connection refused): then the writer ends.
func (l *postLoad) write(w int) {
	defer l.wg.Done()
	for i := 0; ; i++ {
		select {
		case <-l.quit:
			return
		default:
		}
		text := fmt.Sprintf("writer %d message %d", w, i)
		ev, err := l.post(text)
		if err != nil {
			l.mu.Lock()
			l.failed[status.Code(err)]++
			l.mu.Unlock()
			if strings.Contains(err.Error(), "connection refused") || status.Code(err) == codes.Canceled {
				return // the server is gone
			}
			select {
			case <-l.quit:
				return
			case <-time.After(10 * time.Millisecond): // not a spin while the store is down
			}
			continue
		}
		l.mu.Lock()
		l.acked = append(l.acked, acked{ev.GetId(), text, ev.GetSequence()})
		l.mu.Unlock()
		l.count.Add(1)
	}
}

func (l *postLoad) acks() int { return int(l.count.Load()) }

// waitAcks waits until n sends in all were acknowledged.
func (l *postLoad) waitAcks(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for l.acks() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages acknowledged within %v (failures %v)", l.acks(), n, timeout, l.errorCodes())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends the writers and returns what was acknowledged. Idempotent.
func (l *postLoad) stop() []acked {
	l.mu.Lock()
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	l.mu.Unlock()
	l.wg.Wait()
	l.conn.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]acked(nil), l.acked...)
}

func (l *postLoad) errorCodes() map[codes.Code]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[codes.Code]int{}
	for c, n := range l.failed {
		out[c] = n
	}
	return out
}

// checkAcknowledged asserts that every acknowledged message is in the room's
// history unchanged, that the sequence numbers have no gap and no duplicate,
// and that the next send continues the numbering.
func checkAcknowledged(t *testing.T, s *stack, token, room string, acknowledged []acked) {
	t.Helper()
	history := s.allMessages(t, token, room, 1000)
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
				t.Errorf("acknowledged message %+v is lost or changed: %+v", a, m)
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
		if next := s.post(t, token, room, "afterwards"); next.Sequence != history[len(history)-1].Sequence+1 {
			t.Errorf("first sequence afterwards %d, last in history %d", next.Sequence, history[len(history)-1].Sequence)
		}
	}
}
