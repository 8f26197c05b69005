"""A call that has started never runs again: not when its start arrives again in a
new Homa RPC, not after a restart. Servers run in their own processes."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import homarpc
from homarpc._framing import Flags

from .conftest import method
from .raw import RawClient

pytestmark = pytest.mark.timeout(60)


def test_the_same_start_in_a_new_rpc_runs_once(spawn_server: Any) -> None:
    server = spawn_server()
    client = RawClient(server.port)
    try:
        client.start(77, "Record", b"once")
        (first,) = client.answers(1)
        assert first.status == (0, "") and first.payload == b"once"
        client.start(77, "Record", b"once")  # the same frame in another Homa RPC
        (second,) = client.answers(1)
    finally:
        client.close()
    assert second.flags & Flags.EOS
    assert second.status is not None
    assert second.status[0] == homarpc.StatusCode.ABORTED.value[0]
    assert "used before" in second.status[1]
    assert server.records() == ["run once"]


def test_ids_far_behind_the_newest_are_refused_and_new_ones_run(
    spawn_server: Any,
) -> None:
    """Per client, ids at or below the remembered floor are refused; a client
    whose ids grow is served as usual (thousands of calls, bounded memory)."""
    server = spawn_server()
    client = RawClient(server.port)
    try:
        for call_id in (10_000, 20_000):
            client.start(call_id, "Record", b"%d" % call_id)
            assert client.answers(1)[0].status == (0, "")
        client.start(10_001, "Record", b"old")  # more than 4096 behind the newest
        (old,) = client.answers(1)
    finally:
        client.close()
    assert old.status is not None
    assert old.status[0] == homarpc.StatusCode.ABORTED.value[0]
    assert server.records() == ["run 10000", "run 20000"]


def test_a_restarted_server_never_runs_a_request_the_old_one_took(
    spawn_server: Any, open_channel: Any
) -> None:
    """The first server takes the request and dies before answering; a new one
    comes up on the same port. The caller gets UNAVAILABLE saying so; the new
    server never runs the request (grpcio: UNAVAILABLE, nothing re-sent)."""
    first = spawn_server()
    channel = open_channel(first.target)
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(
                channel.unary_unary(method("RecordSlowly"))(b"x", timeout=20)
            )
        except homarpc.RpcError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    deadline = time.monotonic() + 10
    while first.records() != ["run x"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first.records() == ["run x"]
    restarted = first.restart()
    caller.join(25)
    (error,) = outcome
    assert isinstance(error, homarpc.RpcError)
    assert error.code() is homarpc.StatusCode.UNAVAILABLE
    assert "may have processed" in error.details()
    time.sleep(0.5)
    assert restarted.read_text() == ""
