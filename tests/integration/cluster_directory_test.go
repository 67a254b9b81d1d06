package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// Each server caches users, rooms and memberships. A change made through
// one server reaches the others over the bus: the changes below are made
// on server a, after server b has cached what they change, and b must
// refuse accordingly within a second. (A sign-out on one server: TestCluster,
// RevocationClosesStreamsOnEveryReplicaWithinASecond/SignedOut.)

// replicaClients are the gRPC clients of one server.
type replicaClients struct {
	auth     parleyv1.AuthServiceClient
	users    parleyv1.UserServiceClient
	rooms    parleyv1.RoomServiceClient
	messages parleyv1.MessageServiceClient
}

func clientsOf(t *testing.T, srv *clusterServer) replicaClients {
	t.Helper()
	conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return replicaClients{
		auth:     parleyv1.NewAuthServiceClient(conn),
		users:    parleyv1.NewUserServiceClient(conn),
		rooms:    parleyv1.NewRoomServiceClient(conn),
		messages: parleyv1.NewMessageServiceClient(conn),
	}
}

func signedIn(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// refusedAfter checks that call succeeds (so b caches what it reads), runs
// change (on the other server), then calls call until it fails with want,
// which must happen within a second.
func refusedAfter(t *testing.T, what string, change func() error, want codes.Code, call func() error) {
	t.Helper()
	if err := call(); err != nil {
		t.Fatalf("%s: before the change: %v", what, err)
	}
	if err := change(); err != nil {
		t.Fatalf("%s: the change: %v", what, err)
	}
	start := time.Now()
	for {
		err := call()
		if status.Code(err) == want {
			t.Logf("%s: refused %v after the change", what, time.Since(start))
			return
		}
		if err != nil {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
		if time.Since(start) > time.Second {
			t.Fatalf("%s: still allowed a second after the change on the other server", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, bounded above
	}
}

func TestDirectoryChangesOnOneServerHoldOnTheOthers(t *testing.T) {
	c := startCluster(t, redisFor(t), "a", "b")
	a, b := clientsOf(t, c.servers[0]), clientsOf(t, c.servers[1])
	owner := c.signUp(t, "owner")

	rm := c.createRoom(t, owner.token, "open-then-closed", "", "")
	outsider := c.signUp(t, "outsider")
	refusedAfter(t, "history of a room made private",
		func() error {
			_, err := a.rooms.UpdateRoom(signedIn(owner.token), &parleyv1.UpdateRoomRequest{
				Room: rm.ID, Visibility: parleyv1.Visibility_VISIBILITY_PRIVATE.Enum(),
				Password: proto.String("door-code"),
			})
			return err
		},
		codes.PermissionDenied,
		func() error {
			_, err := b.messages.ListMessages(signedIn(outsider.token), &parleyv1.ListMessagesRequest{Room: rm.ID})
			return err
		})

	changer := c.signUp(t, "changer")
	refusedAfter(t, "a token from before a password change",
		func() error {
			_, err := a.users.UpdateUser(signedIn(changer.token), &parleyv1.UpdateUserRequest{
				User: "me", Password: proto.String("a-new-long-password"),
			})
			return err
		},
		codes.Unauthenticated,
		func() error {
			_, err := b.users.GetUser(signedIn(changer.token), &parleyv1.GetUserRequest{User: "me"})
			return err
		})
}

// A client that retries a send on another server while the first is still
// in flight gets one message: the same one from both servers.
func TestOneIdempotencyKeyStoresOneMessageAcrossServers(t *testing.T) {
	c := startCluster(t, "", "a", "b")
	a, b := clientsOf(t, c.servers[0]), clientsOf(t, c.servers[1])
	owner := c.signUp(t, "owner")
	rm := c.createRoom(t, owner.token, "retries", "", "")
	const keys = 40
	for i := 0; i < keys; i++ {
		req := &parleyv1.PostMessageRequest{Room: rm.ID, Text: fmt.Sprintf("m%d", i),
			IdempotencyKey: fmt.Sprintf("key-%d", i)}
		ids := make([]string, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for j, on := range []replicaClients{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ev, err := on.messages.PostMessage(signedIn(owner.token), req)
				errs[j] = err
				if err == nil {
					ids[j] = ev.Id
				}
			}()
		}
		wg.Wait()
		for j, err := range errs {
			// In flight on the other server: the client may be told to retry.
			if status.Code(err) == codes.Unavailable {
				ev, err := []replicaClients{a, b}[j].messages.PostMessage(signedIn(owner.token), req)
				if err != nil {
					t.Fatalf("retry of %s: %v", req.IdempotencyKey, err)
				}
				ids[j] = ev.Id
			} else if err != nil {
				t.Fatalf("send of %s: %v", req.IdempotencyKey, err)
			}
		}
		if ids[0] != ids[1] {
			t.Fatalf("%s: the servers answered different messages %s and %s", req.IdempotencyKey, ids[0], ids[1])
		}
	}
	page := c.listMessages(t, owner.token, rm.ID, "n=1000")
	if len(page.Messages) != keys {
		t.Fatalf("%d messages stored for %d keys", len(page.Messages), keys)
	}
}
