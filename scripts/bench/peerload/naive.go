package main

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// naive is the naive fan-out server's gRPC API (scripts/bench/naive): the
// same messages as Parley's, methods of its own service, no users.
type naive struct {
	cfg      *config
	channels grpcChannels
	rooms    []string
}

const naiveService = "/parley.bench.NaiveFanout/"

func (n *naive) setup(context.Context) error {
	var err error
	n.channels, err = dialChannels(n.cfg.grpcTarget, n.cfg.grpcChannels)
	n.rooms = make([]string, n.cfg.rooms())
	for i := range n.rooms {
		n.rooms[i] = fmt.Sprintf("%s-r%d", n.cfg.prefix, i)
	}
	return err
}

func (n *naive) subscribe(ctx context.Context, i, room int, rec *recorder, fail func(error)) error {
	desc := &grpc.StreamDesc{StreamName: "Subscribe", ServerStreams: true}
	stream, err := n.channels.pick(i).NewStream(ctx, desc, naiveService+"Subscribe")
	if err != nil {
		return err
	}
	if err := stream.SendMsg(&parleyv1.SubscribeRequest{Room: n.rooms[room]}); err != nil {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	return startGRPCReader(ctx, stream.RecvMsg, rec, fail)
}

func (n *naive) publish(ctx context.Context, k, room int, text string) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.publishTimeout)
	defer cancel()
	return n.channels.pick(k).Invoke(ctx, naiveService+"PostMessage",
		&parleyv1.PostMessageRequest{Room: n.rooms[room], Text: text}, &parleyv1.Event{})
}

func (n *naive) close() {
	if n.channels != nil {
		n.channels.close()
	}
}
