"""Deadlines and cancellation through ``homarpc.aio``, seen from both ends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import homarpc
from homarpc import aio

from .conftest import Handlers, method, started_server

pytestmark = pytest.mark.timeout(20)


@pytest.mark.asyncio
async def test_expired_deadline_is_deadline_exceeded_and_cancels_the_handler(
    channel: aio.Channel, handlers: Handlers
) -> None:
    started = time.monotonic()
    with pytest.raises(aio.AioRpcError) as caught:
        await channel.unary_unary(method("Sleep"))(b"", timeout=0.3)
    assert caught.value.code() == homarpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3
    await asyncio.wait_for(handlers.cancelled.wait(), 5)


@pytest.mark.asyncio
async def test_deadline_reaches_the_handler(
    channel: aio.Channel, handlers: Handlers
) -> None:
    call = channel.unary_unary(method("Sleep"))(b"", timeout=4)
    while not handlers.seen_remaining:
        await asyncio.sleep(0.01)
    call.cancel()
    remaining = handlers.seen_remaining[0]
    assert remaining is not None
    assert 0 < remaining <= 4


@pytest.mark.asyncio
async def test_cancel_ends_the_call_on_both_sides(
    channel: aio.Channel, handlers: Handlers
) -> None:
    call = channel.unary_unary(method("Sleep"))(b"", timeout=10)
    while not handlers.seen_remaining:
        await asyncio.sleep(0.01)
    assert call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert call.cancelled()
    assert await call.code() == homarpc.StatusCode.CANCELLED
    await asyncio.wait_for(handlers.cancelled.wait(), 5)


@pytest.mark.asyncio
async def test_cancelling_the_awaiting_task_cancels_the_rpc(
    channel: aio.Channel, handlers: Handlers
) -> None:
    async def call_and_wait() -> Any:
        return await channel.unary_unary(method("Sleep"))(b"", timeout=10)

    task = asyncio.create_task(call_and_wait())
    while not handlers.seen_remaining:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(handlers.cancelled.wait(), 5)


@pytest.mark.asyncio
async def test_cancel_a_stream_midway_stops_the_server_handler(
    channel: aio.Channel, handlers: Handlers
) -> None:
    call = channel.unary_stream(method("Count"))(b"100000000", timeout=10)
    assert await call.read() == b"0"
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call.read()
    assert await call.code() == homarpc.StatusCode.CANCELLED
    await asyncio.wait_for(handlers.stream_ended.wait(), 2)


@pytest.mark.asyncio
async def test_done_callback_runs_when_the_call_ends(channel: aio.Channel) -> None:
    ended = asyncio.Event()
    call = channel.unary_unary(method("Echo"))(b"x", timeout=5)
    call.add_done_callback(lambda _call: ended.set())
    await call
    await asyncio.wait_for(ended.wait(), 5)


@pytest.mark.asyncio
async def test_time_remaining_counts_down(channel: aio.Channel) -> None:
    call = channel.unary_unary(method("Sleep"))(b"", timeout=4)
    remaining = call.time_remaining()
    assert remaining is not None
    assert 0 < remaining <= 4
    call.cancel()


@pytest.mark.asyncio
async def test_server_stop_with_grace_none_fails_inflight_calls(
    transport: str, handlers: Handlers
) -> None:
    async with started_server(transport, handlers) as (server, port):
        target = f"127.0.0.1:{port}"
        async with aio.insecure_channel(target, transport=transport) as chan:
            call = chan.unary_unary(method("Sleep"))(b"", timeout=10)
            while not handlers.seen_remaining:
                await asyncio.sleep(0.01)
            await server.stop(None)
            with pytest.raises(aio.AioRpcError) as caught:
                await call
        assert await server.wait_for_termination(timeout=1) is False
    assert caught.value.code() in (
        homarpc.StatusCode.UNAVAILABLE,
        homarpc.StatusCode.CANCELLED,
    )


@pytest.mark.asyncio
async def test_closing_the_channel_cancels_its_calls(
    port: int, transport: str, handlers: Handlers
) -> None:
    chan = aio.insecure_channel(f"127.0.0.1:{port}", transport=transport)
    call = chan.unary_unary(method("Sleep"))(b"", timeout=10)
    while not handlers.seen_remaining:
        await asyncio.sleep(0.01)
    await chan.close()
    with pytest.raises(aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == homarpc.StatusCode.CANCELLED  # as grpc.aio
    assert chan.get_state() is homarpc.ChannelConnectivity.SHUTDOWN
    await asyncio.wait_for(handlers.cancelled.wait(), 5)
