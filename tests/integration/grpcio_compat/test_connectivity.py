"""Connectivity as grpcio has it: states, ``channel_ready_future``, lazy targets.

Each scenario runs against grpcio itself and against homarpc and expects the same.
Homa has no connections: homarpc probes for a server instead (see
``homarpc/_connectivity.py``). Both frameworks get small reconnect backoffs, so a
server that comes up late is found within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from types import ModuleType
from typing import Any

import grpc
import pytest

import homarpc

pytestmark = pytest.mark.timeout(60)

FRAMEWORKS = [pytest.param(grpc, id="grpcio"), pytest.param(homarpc, id="homarpc")]
FAST_BACKOFF = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 200),
]
#: Generous: a noisy machine may be slow, and nothing here waits for it to pass.
WAIT = 10.0

State = Any  # grpc.ChannelConnectivity or homarpc.ChannelConnectivity


def _start_server(mod: ModuleType, address: str) -> tuple[Any, int]:
    generic = mod.method_handlers_generic_handler(
        "t.S", {"Echo": mod.unary_unary_rpc_method_handler(lambda r, c: r)}
    )
    server = mod.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((generic,))
    port = server.add_insecure_port(address)
    server.start()
    return server, port


@pytest.fixture
def live(request: pytest.FixtureRequest) -> Iterator[tuple[ModuleType, str]]:
    mod: ModuleType = request.param
    server, port = _start_server(mod, "127.0.0.1:0")
    yield mod, f"127.0.0.1:{port}"
    server.stop(None)


@contextlib.contextmanager
def open_channel(mod: ModuleType, target: str, options: Any = None) -> Iterator[Any]:
    """``mod.insecure_channel``, closed on exit. grpcio's connectivity-polling
    thread watches in 0.2 s steps and raises in that thread when the channel is
    closed under it (a grpcio race, unrelated to what is tested): let it stop."""
    channel = mod.insecure_channel(target, options)
    try:
        yield channel
    finally:
        if mod is grpc:
            time.sleep(0.3)
        channel.close()


def _free_port(mod: ModuleType) -> int:
    """A port nothing listens on (TCP for grpcio, UDP for homarpc)."""
    kind = socket.SOCK_STREAM if mod is grpc else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Recorder:
    """A subscriber that keeps every state and can wait for one."""

    def __init__(self) -> None:
        self.states: list[State] = []
        self._changed = threading.Condition()

    def __call__(self, state: State) -> None:
        with self._changed:
            self.states.append(state)
            self._changed.notify_all()

    def wait_for(self, name: str) -> list[str]:
        with self._changed:
            self._changed.wait_for(lambda: name in self.names(), WAIT)
            return self.names()

    def names(self) -> list[str]:
        return [state.name for state in self.states]


@pytest.mark.parametrize("live", FRAMEWORKS, indirect=True)
def test_channel_ready_future_resolves_for_a_live_server(live: Any) -> None:
    mod, target = live
    with open_channel(mod, target) as channel:
        assert mod.channel_ready_future(channel).result(timeout=WAIT) is None


@pytest.mark.parametrize("mod", FRAMEWORKS)
def test_channel_ready_future_waits_for_a_server_to_come_up(mod: ModuleType) -> None:
    port = _free_port(mod)
    with open_channel(mod, f"127.0.0.1:{port}", FAST_BACKOFF) as channel:
        ready = mod.channel_ready_future(channel)
        with pytest.raises(mod.FutureTimeoutError):
            ready.result(timeout=0.5)
        assert not ready.done()
        server, _ = _start_server(mod, f"127.0.0.1:{port}")
        try:
            assert ready.result(timeout=WAIT) is None
            assert ready.done() and not ready.cancelled()
        finally:
            server.stop(None)


@pytest.mark.parametrize("mod", FRAMEWORKS)
def test_a_cancelled_ready_future_stops_waiting(mod: ModuleType) -> None:
    with open_channel(mod, f"127.0.0.1:{_free_port(mod)}") as channel:
        ready = mod.channel_ready_future(channel)
        assert ready.cancel()
        assert ready.cancelled()
        with pytest.raises(mod.FutureCancelledError):
            ready.result(timeout=WAIT)


@pytest.mark.parametrize("live", FRAMEWORKS, indirect=True)
def test_subscribe_sees_idle_then_connecting_then_ready(live: Any) -> None:
    mod, target = live
    with open_channel(mod, target) as channel:
        seen = Recorder()
        channel.subscribe(seen, try_to_connect=True)
        states = seen.wait_for("READY")
        # grpcio reports the state it finds when it looks: a quick CONNECTING
        # may be missed, so only this much can be relied on.
        assert states[0] == "IDLE" and states[-1] == "READY"
        assert set(states[1:-1]) <= {"CONNECTING"}
        channel.unsubscribe(seen)


@pytest.mark.parametrize("live", FRAMEWORKS, indirect=True)
def test_a_channel_nobody_asks_to_connect_stays_idle(live: Any) -> None:
    mod, target = live
    with open_channel(mod, target) as channel:
        seen = Recorder()
        channel.subscribe(seen)
        assert seen.wait_for("IDLE") == ["IDLE"]
        time.sleep(0.3)
        assert seen.names() == ["IDLE"]
        channel.unsubscribe(seen)


@pytest.mark.parametrize("live", FRAMEWORKS, indirect=True)
def test_a_call_leaves_idle(live: Any) -> None:
    mod, target = live
    with open_channel(mod, target) as channel:
        seen = Recorder()
        channel.subscribe(seen)
        assert seen.wait_for("IDLE") == ["IDLE"]
        assert channel.unary_unary("/t.S/Echo")(b"x", timeout=WAIT) == b"x"
        assert seen.wait_for("READY")[-1] == "READY"
        assert "TRANSIENT_FAILURE" not in seen.names()


@pytest.mark.parametrize("mod", FRAMEWORKS)
def test_a_call_to_a_dead_port_is_a_transient_failure(mod: ModuleType) -> None:
    target = f"127.0.0.1:{_free_port(mod)}"
    with open_channel(mod, target, FAST_BACKOFF) as channel:
        seen = Recorder()
        channel.subscribe(seen)
        assert seen.wait_for("IDLE") == ["IDLE"]
        with pytest.raises(mod.RpcError) as failed:
            channel.unary_unary("/t.S/Echo")(b"", timeout=WAIT)
        assert failed.value.code() is mod.StatusCode.UNAVAILABLE
        assert seen.wait_for("TRANSIENT_FAILURE")[-1] == "TRANSIENT_FAILURE"
        assert "READY" not in seen.names()


@pytest.mark.parametrize("mod", FRAMEWORKS)
def test_subscribe_sees_transient_failure_for_a_dead_port(mod: ModuleType) -> None:
    target = f"127.0.0.1:{_free_port(mod)}"
    with open_channel(mod, target, FAST_BACKOFF) as channel:
        seen = Recorder()
        channel.subscribe(seen, try_to_connect=True)
        states = seen.wait_for("TRANSIENT_FAILURE")
        assert states[0] == "IDLE" and states[-1] == "TRANSIENT_FAILURE"
        assert set(states[1:-1]) <= {"CONNECTING"}  # (may be missed, as above)
        time.sleep(0.5)  # retrying (backoff) does not leave TRANSIENT_FAILURE
        assert "READY" not in seen.names()
        assert seen.names()[-1] == "TRANSIENT_FAILURE"


@pytest.mark.parametrize("mod", FRAMEWORKS)
@pytest.mark.parametrize(
    ("target", "named"),
    [("localhost", "127.0.0.1:443"), ("no-such-host.invalid:5000", "no-such-host")],
    ids=["no-port", "unknown-name"],
)
def test_a_target_is_resolved_late_and_its_calls_fail_unavailable(
    mod: ModuleType, target: str, named: str
) -> None:
    channel = mod.insecure_channel(target)  # no error here
    with channel, pytest.raises(mod.RpcError) as failed:
        channel.unary_unary("/t.S/Echo")(b"", timeout=WAIT)
    assert failed.value.code() is mod.StatusCode.UNAVAILABLE
    assert named in failed.value.details()


# -- asyncio ------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("live", FRAMEWORKS, indirect=True)
async def test_aio_channel_ready_returns_for_a_live_server(live: Any) -> None:
    mod, target = live
    async with mod.aio.insecure_channel(target) as channel:
        assert channel.get_state() is mod.ChannelConnectivity.IDLE
        await asyncio.wait_for(channel.channel_ready(), WAIT)
        assert channel.get_state() is mod.ChannelConnectivity.READY


@pytest.mark.asyncio
@pytest.mark.parametrize("mod", FRAMEWORKS)
async def test_aio_channel_ready_waits_for_a_server_to_come_up(
    mod: ModuleType,
) -> None:
    port = _free_port(mod)
    async with mod.aio.insecure_channel(f"127.0.0.1:{port}", FAST_BACKOFF) as channel:
        waiting = asyncio.ensure_future(channel.channel_ready())
        done, _ = await asyncio.wait([waiting], timeout=0.5)
        assert not done
        assert channel.get_state() is mod.ChannelConnectivity.TRANSIENT_FAILURE
        server, _ = _start_server(mod, f"127.0.0.1:{port}")
        try:
            await asyncio.wait_for(waiting, WAIT)
            assert channel.get_state() is mod.ChannelConnectivity.READY
        finally:
            server.stop(None)


@pytest.mark.asyncio
@pytest.mark.parametrize("mod", FRAMEWORKS)
async def test_aio_wait_for_state_change_sees_connecting(mod: ModuleType) -> None:
    target = f"127.0.0.1:{_free_port(mod)}"
    async with mod.aio.insecure_channel(target, FAST_BACKOFF) as channel:
        idle = mod.ChannelConnectivity.IDLE
        assert channel.get_state(try_to_connect=True) is idle
        await asyncio.wait_for(channel.wait_for_state_change(idle), WAIT)
        assert channel.get_state() in (
            mod.ChannelConnectivity.CONNECTING,
            mod.ChannelConnectivity.TRANSIENT_FAILURE,
        )


@pytest.mark.asyncio
@pytest.mark.parametrize("mod", FRAMEWORKS)
async def test_aio_waiting_on_a_closed_channel_is_refused_at_once(
    mod: ModuleType,
) -> None:
    channel = mod.aio.insecure_channel(f"127.0.0.1:{_free_port(mod)}")
    await channel.close()
    shutdown = mod.ChannelConnectivity.SHUTDOWN
    assert channel.get_state() is shutdown
    cpu = time.process_time()
    for waiting in (channel.wait_for_state_change(shutdown), channel.channel_ready()):
        with pytest.raises(mod.aio.UsageError, match="Channel is closed"):
            await asyncio.wait_for(waiting, WAIT)
    assert time.process_time() - cpu < 0.5  # refused, not spun on


@pytest.mark.asyncio
@pytest.mark.parametrize("mod", FRAMEWORKS)
async def test_aio_wait_for_connection_waits_for_the_server_to_answer(
    mod: ModuleType,
) -> None:
    port = _free_port(mod)
    async with mod.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        for call in (
            channel.unary_unary("/t.S/Echo")(b"", timeout=WAIT),
            channel.unary_stream("/t.S/Echo")(b"", timeout=WAIT),
        ):
            with pytest.raises(mod.aio.AioRpcError) as failed:
                await call.wait_for_connection()
            assert failed.value.code() is mod.StatusCode.UNAVAILABLE
        server, _ = _start_server(mod, f"127.0.0.1:{port}")
        try:
            call = channel.unary_unary("/t.S/Echo")(
                b"x", timeout=WAIT, wait_for_ready=True
            )
            assert await call.wait_for_connection() is None
            assert await call == b"x"
        finally:
            server.stop(None)
