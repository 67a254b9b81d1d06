"""Parley from Python, through stubs generated from proto/parley/v1/chat.proto.

Joins the lobby as --id, sends a message, reads it back once by long poll
(Receive) and once from a server stream (Subscribe), and leaves.

The stubs are generated, not committed; `make test-clients` builds them into
build/python-gen. By hand, from the repository root:

    python -m venv build/venv && build/venv/bin/pip install -r clients/python/requirements.txt
    build/venv/bin/python -m grpc_tools.protoc -I proto \\
        --python_out=build/python-gen --grpc_python_out=build/python-gen \\
        proto/parley/v1/chat.proto
    PYTHONPATH=build/python-gen build/venv/bin/python clients/python/parley_example.py \\
        --server 127.0.0.1:50051 --id alice

The functions below are small on purpose: each is one RPC, so they double as
a reference for calling Parley from any gRPC language.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator

import grpc

from parley.v1 import chat_pb2, chat_pb2_grpc, resources_pb2

# Every unary call gets a deadline: a client that waits forever on a server
# that is gone is the bug this service exists to avoid.
RPC_TIMEOUT_S = 10.0


def connect(server: str) -> tuple[grpc.Channel, chat_pb2_grpc.ChatServiceStub]:
    """Opens a plaintext channel to `server` (host:port) and waits until it is up."""
    channel = grpc.insecure_channel(server)
    grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
    return channel, chat_pb2_grpc.ChatServiceStub(channel)


def join(stub: chat_pb2_grpc.ChatServiceStub, client_id: str) -> resources_pb2.Event:
    """Joins the lobby; returns the join event as it was broadcast."""
    reply = stub.Join(chat_pb2.JoinRequest(id=client_id), timeout=RPC_TIMEOUT_S)
    return reply.event


def send(stub: chat_pb2_grpc.ChatServiceStub, client_id: str, text: str) -> resources_pb2.Event:
    """Sends `text` to the lobby; returns the committed message event."""
    reply = stub.Send(chat_pb2.SendRequest(id=client_id, message=text), timeout=RPC_TIMEOUT_S)
    return reply.event


def receive(
    stub: chat_pb2_grpc.ChatServiceStub, client_id: str, wait_s: float = 5.0
) -> list[resources_pb2.Event]:
    """Long-polls the client's channel: what is queued, or [] after `wait_s`."""
    reply = stub.Receive(
        chat_pb2.ReceiveRequest(id=client_id, timeout=wait_s),
        # The server answers by `wait_s`; the margin covers the network.
        timeout=wait_s + RPC_TIMEOUT_S,
    )
    return list(reply.events)


def subscribe(
    stub: chat_pb2_grpc.ChatServiceStub, client_id: str, timeout_s: float | None = None
) -> grpc.Call:
    """Opens the client's event stream. The returned call is an iterator of
    SubscribeResponse batches; cancel() it to stop reading early."""
    return stub.Subscribe(chat_pb2.SubscribeRequest(id=client_id), timeout=timeout_s)


def events_of(batches: Iterator[chat_pb2.SubscribeResponse]) -> Iterator[resources_pb2.Event]:
    """Flattens a Subscribe stream's batches into single events, in order."""
    for batch in batches:
        yield from batch.events


def leave(stub: chat_pb2_grpc.ChatServiceStub, client_id: str) -> resources_pb2.Event:
    """Leaves the lobby; returns the leave event the others received."""
    reply = stub.Leave(chat_pb2.LeaveRequest(id=client_id), timeout=RPC_TIMEOUT_S)
    return reply.event


class MissingEventError(Exception):
    """An expected event did not arrive in time or before its stream ended."""


def poll_until_sequence(
    stub: chat_pb2_grpc.ChatServiceStub, client_id: str, sequence: int, deadline_s: float = 10.0
) -> resources_pb2.Event:
    """Long-polls until the event numbered `sequence` arrives; earlier events
    (joins of others, older messages) are skipped."""
    end = time.monotonic() + deadline_s
    while (left := end - time.monotonic()) > 0:
        for event in receive(stub, client_id, wait_s=min(left, 5.0)):
            if event.sequence == sequence:
                return event
    raise MissingEventError(f"{client_id}: event #{sequence} not received within {deadline_s}s")


def next_with_sequence(events: Iterator[resources_pb2.Event], sequence: int) -> resources_pb2.Event:
    """Reads a stream's events until the one numbered `sequence`."""
    for event in events:
        if event.sequence == sequence:
            return event
    raise MissingEventError(f"the stream ended before event #{sequence}")


def describe(event: resources_pb2.Event) -> str:
    """One line for a human: `#7 message from alice: hello`."""
    kind = resources_pb2.EventKind.Name(event.kind).removeprefix("EVENT_KIND_").lower()
    text = f": {event.text}" if event.text else ""
    return f"#{event.sequence} {kind} from {event.sender}{text}"


def run(server: str, client_id: str) -> None:
    """The demo: join, send, read back by long poll and by stream, leave."""
    channel, stub = connect(server)
    with channel:
        print("joined:", describe(join(stub, client_id)))
        try:
            sent = send(stub, client_id, f"hello from {client_id}")
            print("sent:", describe(sent))
            print("long poll got:", describe(poll_until_sequence(stub, client_id, sent.sequence)))

            # The channel keeps filling while nobody reads it, so a message
            # sent before the stream is open is still delivered on it.
            stream = subscribe(stub, client_id, timeout_s=RPC_TIMEOUT_S)
            sent = send(stub, client_id, f"streamed hello from {client_id}")
            try:
                print("stream got:", describe(next_with_sequence(events_of(stream), sent.sequence)))
            finally:
                stream.cancel()
        finally:
            print("left:", describe(leave(stub, client_id)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051", help="gRPC address, host:port")
    parser.add_argument("--id", required=True, help="the client id to join the lobby as")
    args = parser.parse_args(argv)
    try:
        run(args.server, args.id)
    except grpc.RpcError as err:
        print(f"parley: {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    except grpc.FutureTimeoutError:
        print(f"parley: no server answered at {args.server}", file=sys.stderr)
        return 1
    except MissingEventError as err:
        print(f"parley: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
