"""The Python example against the real server binary.

Needs PARLEY_SERVER_BIN (the parley_server to start) and the generated stubs
on PYTHONPATH; `make test-clients` provides both. One server serves the whole
module; every test uses ids of its own so the tests stay independent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest

import parley_example as parley
from parley.v1 import chat_pb2, resources_pb2

STARTUP_DEADLINE_S = 30.0
SHUTDOWN_DEADLINE_S = 15.0


def unique_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def wait_for_port(port_file: Path, server: subprocess.Popen, log: Path) -> int:
    """The server writes its bound port to `port_file` once it listens."""
    end = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < end:
        if server.poll() is not None:
            pytest.fail(f"server exited with {server.returncode}:\n{log.read_text()}")
        text = port_file.read_text().strip() if port_file.exists() else ""
        if text.isdigit() and int(text) > 0:
            return int(text)
        time.sleep(0.05)
    server.kill()
    pytest.fail(f"no port in {port_file} after {STARTUP_DEADLINE_S}s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server_address(tmp_path_factory: pytest.TempPathFactory):
    binary = os.environ.get("PARLEY_SERVER_BIN")
    if not binary:
        pytest.fail("PARLEY_SERVER_BIN is not set; run `make test-clients`")
    tmp = tmp_path_factory.mktemp("server")
    port_file, log = tmp / "port", tmp / "server.log"
    with log.open("wb") as log_out:
        server = subprocess.Popen(
            [binary, "--grpc_addr=127.0.0.1:0", f"--port_file={port_file}",
             f"--data_dir={tmp / 'data'}"],
            cwd=tmp,
            stdout=log_out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"127.0.0.1:{wait_for_port(port_file, server, log)}"
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=SHUTDOWN_DEADLINE_S)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            pytest.fail(f"server ignored SIGTERM for {SHUTDOWN_DEADLINE_S}s:\n{log.read_text()}")
        assert code == 0, f"server exited with {code} after SIGTERM:\n{log.read_text()}"


@pytest.fixture(scope="module")
def stub(server_address: str):
    channel, stub = parley.connect(server_address)
    with channel:
        yield stub


def rpc_code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as failure:
        call()
    return failure.value.code()


def test_two_joined_clients_receive_the_same_message_with_the_same_sequence(stub):
    alice, bob = unique_id("alice"), unique_id("bob")
    parley.join(stub, alice)
    parley.join(stub, bob)

    sent = parley.send(stub, alice, "hello, bob")

    assert sent.kind == resources_pb2.EVENT_KIND_MESSAGE
    assert sent.sequence > 0 and sent.id and sent.create_time.seconds > 0
    got_by_alice = parley.poll_until_sequence(stub, alice, sent.sequence)
    got_by_bob = parley.poll_until_sequence(stub, bob, sent.sequence)
    for got in (got_by_alice, got_by_bob):
        assert (got.kind, got.room, got.sender, got.text) == (
            resources_pb2.EVENT_KIND_MESSAGE, "lobby", alice, "hello, bob")
        assert (got.sequence, got.id) == (sent.sequence, sent.id)
    parley.leave(stub, alice)
    parley.leave(stub, bob)


def test_subscribe_yields_a_message_sent_while_the_stream_is_open(stub):
    alice, bob = unique_id("alice"), unique_id("bob")
    parley.join(stub, alice)
    parley.join(stub, bob)
    stream = parley.subscribe(stub, bob, timeout_s=10)
    try:
        events = parley.events_of(stream)
        # Once the stream has delivered something, it is attached: the next
        # message reaches it live rather than from the queue.
        first = parley.send(stub, alice, "are you there?")
        parley.next_with_sequence(events, first.sequence)

        live = parley.send(stub, alice, "live")
        got = parley.next_with_sequence(events, live.sequence)

        assert (got.kind, got.sender, got.text, got.id) == (
            resources_pb2.EVENT_KIND_MESSAGE, alice, "live", live.id)
    finally:
        stream.cancel()
    parley.leave(stub, alice)
    parley.leave(stub, bob)


def test_leave_ends_the_subscribe_stream_cleanly(stub):
    carol = unique_id("carol")
    join = parley.join(stub, carol)
    stream = parley.subscribe(stub, carol, timeout_s=10)
    events = parley.events_of(stream)
    parley.next_with_sequence(events, join.sequence)

    parley.leave(stub, carol)

    for _ in events:  # drains; raises RpcError unless the stream ends with OK
        pass
    assert stream.code() == grpc.StatusCode.OK


def test_receive_returns_nothing_after_its_timeout_instead_of_blocking(stub):
    dave = unique_id("dave")
    join = parley.join(stub, dave)
    parley.poll_until_sequence(stub, dave, join.sequence)

    started = time.monotonic()
    events = parley.receive(stub, dave, wait_s=0.5)
    waited = time.monotonic() - started

    assert events == []
    assert 0.4 <= waited < 5.0
    parley.leave(stub, dave)


def test_send_by_a_client_that_has_not_joined_fails_with_failed_precondition(stub):
    assert rpc_code(lambda: parley.send(stub, unique_id("stranger"), "hi")) == (
        grpc.StatusCode.FAILED_PRECONDITION)


def test_leave_by_a_client_that_has_not_joined_fails_with_failed_precondition(stub):
    assert rpc_code(lambda: parley.leave(stub, unique_id("stranger"))) == (
        grpc.StatusCode.FAILED_PRECONDITION)


def test_join_with_an_empty_id_fails_with_invalid_argument(stub):
    assert rpc_code(lambda: parley.join(stub, "")) == grpc.StatusCode.INVALID_ARGUMENT


def test_joining_twice_fails_with_already_exists(stub):
    erin = unique_id("erin")
    parley.join(stub, erin)
    assert rpc_code(lambda: parley.join(stub, erin)) == grpc.StatusCode.ALREADY_EXISTS
    parley.leave(stub, erin)


def test_example_program_runs_end_to_end(server_address):
    frank = unique_id("frank")
    run = subprocess.run(
        [sys.executable, str(Path(parley.__file__)), "--server", server_address, "--id", frank],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "joined", "sent", "long poll got", "stream got", "left"]
    assert f"message from {frank}: hello from {frank}" in lines[2]
    assert f"message from {frank}: streamed hello from {frank}" in lines[3]
