"""The blocking server keeps reading and sweeping whatever its handlers do.

Each server runs in its own process (``serve_target.py``); the calls come from
this one over real UDP sockets. grpcio is run through the same pool scenario.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

import homarpc

from .conftest import SERVICE, method

pytestmark = pytest.mark.timeout(60)


def _held_open(requests: queue.Queue[bytes | None]) -> Iterator[bytes]:
    while (item := requests.get()) is not None:
        yield item


def test_open_streams_never_leave_the_server_without_a_reader(
    spawn_server: Any, open_channel: Any
) -> None:
    """Streams whose handlers wait for more input take threads, never the only
    reader: after each wave of open streams a unary call is still answered. (A
    race in the hand-off between reader threads used to stop the server for good
    after 5-8 such streams.)"""
    server = spawn_server(workers=16)
    channel = open_channel(server.target)
    bidi = channel.stream_stream(method("Bidi"))
    echo = channel.unary_unary(method("Echo"))
    for wave in range(3):
        feeds: list[queue.Queue[bytes | None]] = []
        calls = []
        try:
            for i in range(14):
                feed: queue.Queue[bytes | None] = queue.Queue()
                feeds.append(feed)
                feed.put(b"%d-%d" % (wave, i))
                calls.append(bidi(_held_open(feed), timeout=20))
            assert [next(call) for call in calls] == [
                b"%d-%d" % (wave, i) for i in range(14)
            ]
            assert echo(b"still there", timeout=5) == b"still there"
        finally:
            for feed in feeds:
                feed.put(None)
        assert all(list(call) == [] for call in calls)


def _max_overlap(lines: list[str]) -> int:
    events = sorted(
        (float(line.split()[1]), 1 if line.startswith("sleep-start") else -1)
        for line in lines
        if line.startswith("sleep-")
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def _sleep_concurrently(channel: Any, calls: int, seconds: float) -> list[bytes]:
    sleep = channel.unary_stream(method("Sleep"))
    with futures.ThreadPoolExecutor(calls) as pool:
        done = pool.map(
            lambda _: list(sleep(b"%.2f" % seconds, timeout=30)), range(calls)
        )
        return [m for messages in done for m in messages]


def test_a_full_pool_queues_calls_as_grpcio_does(
    spawn_server: Any, open_channel: Any, tmp_path: Any
) -> None:
    """More blocking server-streaming calls than workers: every call completes,
    and no more handlers run at once than ``max_workers``, in homarpc as in
    grpcio (whose pool runs the same handlers in the same scenario)."""
    server = spawn_server(workers=4)
    ours = _sleep_concurrently(open_channel(server.target), 10, 0.4)
    assert ours == [b"slept"] * 10
    assert _max_overlap(server.records()) == 4

    record: list[str] = []
    theirs = _grpcio_sleep_server(record)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{theirs[1]}") as channel:
            assert _sleep_concurrently(channel, 10, 0.4) == [b"slept"] * 10
    finally:
        theirs[0].stop(None)
    assert _max_overlap(record) == 4


def _grpcio_sleep_server(record: list[str]) -> tuple[grpc.Server, int]:
    def sleep(request: bytes, context: Any) -> Iterator[bytes]:
        record.append(f"sleep-start {time.monotonic():.4f}")
        time.sleep(float(request))
        record.append(f"sleep-end {time.monotonic():.4f}")
        yield b"slept"

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Sleep": grpc.unary_stream_rpc_method_handler(sleep)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_a_call_that_expires_in_the_queue_never_runs(
    spawn_server: Any, open_channel: Any
) -> None:
    """With every worker busy, a queued call's deadline still fires (the server
    sweeps whatever its handlers do), and its handler never runs later."""
    server = spawn_server(workers=2)
    channel = open_channel(server.target)
    sleepers = threading.Thread(
        target=_sleep_concurrently, args=(channel, 4, 1.5), daemon=True
    )
    sleepers.start()
    deadline = time.monotonic() + 10
    while _started(server) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    record = channel.unary_unary(method("Record"))
    with pytest.raises(homarpc.RpcError) as failed:
        record(b"late", timeout=0.3)
    assert failed.value.code() is homarpc.StatusCode.DEADLINE_EXCEEDED
    sleepers.join(20)
    assert not sleepers.is_alive()
    assert record(b"after", timeout=5) == b"after"
    assert "run late" not in server.records()
    assert "run after" in server.records()


def _started(server: Any) -> int:
    return sum(line.startswith("sleep-start") for line in server.records())
