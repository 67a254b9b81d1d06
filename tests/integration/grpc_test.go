package integration

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	parleyv1 "parley/gateway/gen/parley/v1"
)

func dial(t *testing.T, addr string) parleyv1.ChatServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return parleyv1.NewChatServiceClient(conn)
}

func TestGRPCStubsJoinSendReceiveSubscribeLeave(t *testing.T) {
	s := startStack(t)
	c := dial(t, s.grpcAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, id := range []string{"x", "y"} {
		if _, err := c.Join(ctx, &parleyv1.JoinRequest{Id: id}); err != nil {
			t.Fatalf("Join %s: %v", id, err)
		}
	}
	sub, err := c.Subscribe(ctx, &parleyv1.SubscribeRequest{Id: "x"})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := c.Send(ctx, &parleyv1.SendRequest{Id: "y", Message: "over grpc"})
	if err != nil {
		t.Fatal(err)
	}
	ev := sent.GetEvent()
	if ev.GetKind() != parleyv1.EventKind_EVENT_KIND_MESSAGE || ev.GetSequence() == 0 ||
		ev.GetId() == "" || ev.GetCreateTime() == nil || ev.GetText() != "over grpc" {
		t.Errorf("Send reply = %v", ev)
	}

	// y polls its channel: its own join event, then the message.
	var polled []*parleyv1.Event
	for deadline := time.Now().Add(10 * time.Second); !hasMessage(polled, "over grpc"); {
		if time.Now().After(deadline) {
			t.Fatalf("Receive never returned the message: %v", polled)
		}
		resp, err := c.Receive(ctx, &parleyv1.ReceiveRequest{Id: "y", Timeout: 1})
		if err != nil {
			t.Fatal(err)
		}
		polled = append(polled, resp.GetEvents()...)
	}

	// x streams: the same message, with the same sequence number.
	var streamed []*parleyv1.Event
	for !hasMessage(streamed, "over grpc") {
		resp, err := sub.Recv()
		if err != nil {
			t.Fatalf("Subscribe: %v after %v", err, streamed)
		}
		streamed = append(streamed, resp.GetEvents()...)
	}
	if got := streamed[len(streamed)-1]; got.GetSequence() != ev.GetSequence() {
		t.Errorf("streamed sequence %d, sent %d", got.GetSequence(), ev.GetSequence())
	}

	if _, err := c.Leave(ctx, &parleyv1.LeaveRequest{Id: "x"}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := sub.Recv()
		if errors.Is(err, io.EOF) {
			break // leaving ends the stream with OK
		}
		if err != nil {
			t.Fatalf("stream after Leave ended with %v, want OK", err)
		}
	}
}

func hasMessage(events []*parleyv1.Event, text string) bool {
	for _, e := range events {
		if e.GetKind() == parleyv1.EventKind_EVENT_KIND_MESSAGE && e.GetText() == text {
			return true
		}
	}
	return false
}

func TestGRPCErrorsCarryCodeReasonAndField(t *testing.T) {
	s := startStack(t)
	c := dial(t, s.grpcAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Join(ctx, &parleyv1.JoinRequest{Id: "z"}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name          string
		call          func() error
		code          codes.Code
		reason, field string
	}{
		{"join without id", func() error {
			_, err := c.Join(ctx, &parleyv1.JoinRequest{})
			return err
		}, codes.InvalidArgument, "ID_REQUIRED", "id"},
		{"join twice", func() error {
			_, err := c.Join(ctx, &parleyv1.JoinRequest{Id: "z"})
			return err
		}, codes.AlreadyExists, "ALREADY_JOINED", "id"},
		{"send before join", func() error {
			_, err := c.Send(ctx, &parleyv1.SendRequest{Id: "nobody", Message: "hi"})
			return err
		}, codes.FailedPrecondition, "NOT_JOINED", "id"},
		{"empty message", func() error {
			_, err := c.Send(ctx, &parleyv1.SendRequest{Id: "z"})
			return err
		}, codes.InvalidArgument, "MESSAGE_REQUIRED", "message"},
		{"negative timeout", func() error {
			_, err := c.Receive(ctx, &parleyv1.ReceiveRequest{Id: "z", Timeout: -1})
			return err
		}, codes.InvalidArgument, "INVALID_TIMEOUT", "timeout"},
		{"leave before join", func() error {
			_, err := c.Leave(ctx, &parleyv1.LeaveRequest{Id: "nobody"})
			return err
		}, codes.FailedPrecondition, "NOT_JOINED", "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					info = i
				}
			}
			if info == nil {
				t.Fatalf("no google.rpc.ErrorInfo in the status details: %v", st.Details())
			}
			if info.GetReason() != tc.reason || info.GetDomain() != "parley" || info.GetMetadata()["field"] != tc.field {
				t.Errorf("ErrorInfo = %v, want reason %s, domain parley, field %s", info, tc.reason, tc.field)
			}
		})
	}
}

func grpcurl(t *testing.T, args ...string) string {
	t.Helper()
	bin := binary(t, "GRPCURL_BIN")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("grpcurl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestGrpcurlWorksThroughServerReflection(t *testing.T) {
	s := startStack(t)

	list := grpcurl(t, "-plaintext", s.grpcAddr, "list")
	for _, svc := range []string{"parley.v1.ChatService", "grpc.health.v1.Health"} {
		if !strings.Contains(list, svc) {
			t.Errorf("list lacks %s:\n%s", svc, list)
		}
	}

	desc := grpcurl(t, "-plaintext", s.grpcAddr, "describe", "parley.v1.ChatService")
	for _, rpc := range []string{"rpc Join", "rpc Send", "rpc Leave", "rpc Receive", "rpc Subscribe"} {
		if !strings.Contains(desc, rpc) {
			t.Errorf("describe lacks %q:\n%s", rpc, desc)
		}
	}
	if msg := grpcurl(t, "-plaintext", s.grpcAddr, "describe", "parley.v1.Event"); !strings.Contains(msg, "create_time") {
		t.Errorf("describe parley.v1.Event:\n%s", msg)
	}

	joined := grpcurl(t, "-plaintext", "-d", `{"id":"g1"}`, s.grpcAddr, "parley.v1.ChatService/Join")
	if !strings.Contains(joined, "EVENT_KIND_JOIN") || !strings.Contains(joined, `"g1"`) {
		t.Errorf("Join through grpcurl:\n%s", joined)
	}
}

// The design promises that grpcurl works with no proto files at hand, the
// health service included: reflection must resolve grpc.health.v1.Health, not
// only list it.
func TestGrpcurlChecksHealthThroughReflection(t *testing.T) {
	s := startStack(t)
	health := grpcurl(t, "-plaintext", s.grpcAddr, "grpc.health.v1.Health/Check")
	if !strings.Contains(health, `"SERVING"`) {
		t.Errorf("health check:\n%s", health)
	}
}
