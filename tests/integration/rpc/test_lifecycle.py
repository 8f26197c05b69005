"""Deadlines, cancellation from each side, dead servers, flow control, limits, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import homarpc
from homarpc import StatusCode

from .conftest import Rig, method

TIMEOUT = 10.0
ROOT = Path(__file__).resolve().parents[3]


def _wait_until(condition, limit: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def test_the_deadline_reaches_the_server(rig: Rig):
    service, channel = rig.pair()
    channel.unary_unary(method("Echo"))(
        b"", timeout=5.0, metadata=[("x-do", "sleep:0")]
    )
    assert service.remaining is not None
    assert 3.0 < service.remaining <= 5.0


def test_no_deadline_means_all_the_time_in_the_world(memory_rig: Rig):
    """As grpcio: the seconds to the end of a signed 64-bit clock, not None."""
    service, channel = memory_rig.pair()
    channel.unary_unary(method("Echo"))(b"", metadata=[("x-do", "sleep:0")])
    assert service.remaining is not None and service.remaining > 1e18


def test_an_expired_deadline_is_deadline_exceeded_on_both_sides(rig: Rig):
    service, channel = rig.pair()
    started = time.monotonic()
    with pytest.raises(homarpc.RpcError) as caught:
        channel.unary_unary(method("Echo"))(
            b"", timeout=0.2, metadata=[("x-do", "sleep:5")]
        )
    elapsed = time.monotonic() - started
    assert (caught.value.code(), caught.value.details()) == (
        StatusCode.DEADLINE_EXCEEDED,
        "Deadline Exceeded",
    )
    assert 0.15 < elapsed < 1.5
    assert service.cancel_seen.wait(TIMEOUT)  # the handler saw is_active() go false
    assert service.ended.wait(TIMEOUT)


def test_a_streaming_deadline_ends_the_stream(memory_rig: Rig):
    service, channel = memory_rig.pair()
    stream = channel.unary_stream(method("Forever"))(b"", timeout=0.3)
    with pytest.raises(homarpc.RpcError) as caught:
        for _ in stream:
            pass
    assert caught.value.code() is StatusCode.DEADLINE_EXCEEDED
    assert service.cancel_seen.wait(TIMEOUT)


def test_client_cancel_is_cancelled_on_both_sides(rig: Rig):
    service, channel = rig.pair()
    stream = channel.unary_stream(method("Forever"))(b"", timeout=TIMEOUT)
    assert next(stream) == b"tick"
    assert stream.cancel()
    with pytest.raises(homarpc.RpcError) as caught:
        for _ in stream:
            pass
    assert (caught.value.code(), caught.value.details()) == (
        StatusCode.CANCELLED,
        "Locally cancelled by application!",
    )
    assert service.ended.wait(TIMEOUT)
    assert service.cancel_seen.wait(TIMEOUT)
    assert not stream.is_active()


def test_a_cancelled_future_raises_future_cancelled(memory_rig: Rig):
    _, channel = memory_rig.pair()
    future = channel.unary_unary(method("Echo")).future(
        b"", timeout=TIMEOUT, metadata=[("x-do", "sleep:5")]
    )
    assert future.cancel()
    assert future.cancelled() and future.done()
    with pytest.raises(homarpc.FutureCancelledError):
        future.result()
    assert future.code() is StatusCode.CANCELLED


def test_server_cancel_is_cancelled_on_the_client(rig: Rig):
    _, channel = rig.pair()
    with pytest.raises(homarpc.RpcError) as caught:
        channel.unary_unary(method("Echo"))(
            b"", timeout=TIMEOUT, metadata=[("x-do", "cancel")]
        )
    assert caught.value.code() is StatusCode.CANCELLED


def test_a_response_over_the_receive_limit_is_resource_exhausted(rig: Rig):
    _, channel = rig.pair()
    with pytest.raises(homarpc.RpcError) as caught:
        list(channel.unary_stream(method("Count"))(b"1:5242880", timeout=TIMEOUT))
    assert caught.value.code() is StatusCode.RESOURCE_EXHAUSTED
    assert "Received message larger than max (" in caught.value.details()
    assert "vs. 4194304)" in caught.value.details()


def test_a_request_over_the_servers_limit_is_resource_exhausted(memory_rig: Rig):
    options = [("grpc.max_receive_message_length", 1000)]
    _, channel = memory_rig.pair(server_kwargs={"options": options})
    echo = channel.unary_unary(method("Echo"))
    assert echo(b"x" * 1000, timeout=TIMEOUT) == b"x" * 1000
    with pytest.raises(homarpc.RpcError) as caught:
        echo(b"x" * 1001, timeout=TIMEOUT)
    assert caught.value.code() is StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.details() == "Received message larger than max (1001 vs. 1000)"


def test_a_slow_reader_holds_back_a_fast_server_stream(rig: Rig):
    service, channel = rig.pair()
    stream = channel.unary_stream(method("Count"))(b"1000:16", timeout=TIMEOUT)
    assert next(stream) is not None
    time.sleep(0.3)  # the handler runs ahead only as far as the window lets it
    assert 1 < service.yielded <= 2 * 8 + 2
    assert len(list(stream)) == 999
    assert service.yielded == 1000


def test_a_server_that_stops_reading_holds_back_the_client(rig: Rig):
    service, channel = rig.pair()
    taken = []

    def requests():
        for index in range(1000):
            taken.append(index)
            yield b"r"

    future = channel.stream_unary(method("Hoard")).future(requests(), timeout=0.5)
    with pytest.raises(homarpc.RpcError) as caught:
        future.result()
    assert caught.value.code() is StatusCode.DEADLINE_EXCEEDED
    assert service.consumed == 1
    assert len(taken) <= 8 + 3  # the window, plus what was in hand when it filled


def test_stop_refuses_new_calls_and_lets_running_ones_finish(memory_rig: Rig):
    service = memory_rig.pair()[0]
    server, port = memory_rig.server(service)
    channel = memory_rig.channel(port)
    slow = channel.unary_unary(method("Echo")).future(
        b"done", timeout=TIMEOUT, metadata=[("x-do", "sleep:0.3")]
    )
    assert _wait_until(lambda: service.remaining is not None)
    stopped = server.stop(grace=5)
    with pytest.raises(homarpc.RpcError) as caught:
        channel.unary_unary(method("Echo"))(b"", timeout=TIMEOUT)
    assert caught.value.code() is StatusCode.UNAVAILABLE
    assert slow.result(TIMEOUT) == b"done"
    assert stopped.wait(TIMEOUT)
    assert server.wait_for_termination(0) is False


def test_stop_without_grace_ends_running_calls(memory_rig: Rig):
    service = memory_rig.pair()[0]
    server, port = memory_rig.server(service)
    stream = memory_rig.channel(port).unary_stream(method("Forever"))(
        b"", timeout=TIMEOUT
    )
    assert next(stream) == b"tick"
    assert server.stop(None).wait(TIMEOUT)
    with pytest.raises(homarpc.RpcError) as caught:
        list(stream)
    assert caught.value.code() is StatusCode.UNAVAILABLE


def test_a_vanished_server_is_unavailable_mid_stream(memory_rig: Rig):
    service = memory_rig.pair()[0]
    server, port = memory_rig.server(service)
    stream = memory_rig.channel(port).unary_stream(method("Forever"))(
        b"", timeout=TIMEOUT
    )
    assert next(stream) == b"tick"
    server._endpoints[0].transport.close()  # gone without a word, like a crash
    with pytest.raises(homarpc.RpcError) as caught:
        list(stream)
    assert caught.value.code() is StatusCode.UNAVAILABLE


_SERVER_SCRIPT = """
import sys, time
import homarpc
from tests.integration.rpc.service import TestService
server = homarpc.server(max_workers=4, transport="udp")
server.add_generic_rpc_handlers((TestService().generic_handler(),))
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
server.wait_for_termination(60)
"""


def test_a_killed_server_process_is_unavailable_within_the_deadline():
    from .conftest import skip_reason

    reason = skip_reason("udp")
    if reason is not None:
        pytest.skip(reason)
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER_SCRIPT],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        with homarpc.insecure_channel(f"127.0.0.1:{port}", transport="udp") as channel:
            stream = channel.unary_stream(method("Forever"))(b"", timeout=8.0)
            assert next(stream) == b"tick"
            started = time.monotonic()
            process.send_signal(signal.SIGKILL)
            with pytest.raises(homarpc.RpcError) as caught:
                for _ in stream:
                    pass
            assert caught.value.code() is StatusCode.UNAVAILABLE
            assert time.monotonic() - started < 8.0
    finally:
        process.kill()
        process.wait(TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()


def test_callbacks_run_when_a_call_ends(memory_rig: Rig):
    _, channel = memory_rig.pair()
    stream = channel.unary_stream(method("Count"))(b"3:4", timeout=TIMEOUT)
    ended = threading.Event()
    assert stream.add_callback(ended.set)
    assert len(list(stream)) == 3
    assert ended.wait(TIMEOUT)
    assert not stream.add_callback(ended.set)  # already over
    assert stream.code() is StatusCode.OK


@pytest.fixture
def fast_liveness(monkeypatch: pytest.MonkeyPatch) -> None:
    from homarpc import _client_endpoint, _server_endpoint

    monkeypatch.setattr(_client_endpoint, "KEEPALIVE_INTERVAL", 0.1)
    monkeypatch.setattr(_server_endpoint, "LIVENESS_TIMEOUT", 0.6)


def test_a_quiet_but_live_client_keeps_its_call(memory_rig: Rig, fast_liveness: None):
    service, channel = memory_rig.pair()
    assert (
        channel.unary_unary(method("Echo"))(
            b"patient", metadata=[("x-do", "sleep:1.2")]
        )
        == b"patient"
    )
    assert not service.cancel_seen.is_set()


def test_a_vanished_client_is_noticed_by_the_server(
    memory_rig: Rig, fast_liveness: None
):
    service, channel = memory_rig.pair()
    stream = channel.unary_stream(method("Forever"))(b"")  # no deadline
    assert next(stream) == b"tick"
    channel._endpoint.transport.close()  # gone without a word, like a crash
    assert service.cancel_seen.wait(TIMEOUT)
    assert service.ended.wait(TIMEOUT)
