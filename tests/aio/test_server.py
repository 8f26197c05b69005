"""aio server options: interceptors (async and blocking) and the concurrency cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

import homarpc
from homarpc import aio

from .conftest import Handlers, method, started_server

pytestmark = pytest.mark.timeout(20)

Continuation = Callable[[homarpc.HandlerCallDetails], Awaitable[Any]]


@asynccontextmanager
async def serving(
    transport: str, handlers: Handlers, **options: Any
) -> AsyncIterator[aio.Channel]:
    async with started_server(transport, handlers, **options) as (_, port):
        target = f"127.0.0.1:{port}"
        async with aio.insecure_channel(target, transport=transport) as chan:
            yield chan


class Recorder(aio.ServerInterceptor):
    """Async interceptor: notes each method, then lets the call through."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    async def intercept_service(
        self,
        continuation: Continuation,
        handler_call_details: homarpc.HandlerCallDetails,
    ) -> Any:
        self.methods.append(handler_call_details.method)
        return await continuation(handler_call_details)


class Gate(homarpc.ServerInterceptor):
    """Blocking interceptor: calls without a ``token`` are UNAUTHENTICATED."""

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        if ("token", "open") in tuple(handler_call_details.invocation_metadata):
            return continuation(handler_call_details)

        async def deny(request: bytes, context: aio.ServicerContext) -> bytes:
            await context.abort(homarpc.StatusCode.UNAUTHENTICATED, "no token")

        return homarpc.unary_unary_rpc_method_handler(deny)


@pytest.mark.asyncio
async def test_interceptors_run_in_order_async_and_blocking(
    transport: str, handlers: Handlers
) -> None:
    recorder = Recorder()
    async with serving(transport, handlers, interceptors=[recorder, Gate()]) as channel:
        echo = channel.unary_unary(method("Echo"))
        assert await echo(b"in", metadata=(("token", "open"),), timeout=5) == b"in"
        with pytest.raises(aio.AioRpcError) as caught:
            await echo(b"out", timeout=5)
    assert (caught.value.code(), caught.value.details()) == (
        homarpc.StatusCode.UNAUTHENTICATED,
        "no token",
    )
    assert recorder.methods == [method("Echo"), method("Echo")]


@pytest.mark.asyncio
async def test_calls_over_the_concurrency_cap_are_resource_exhausted(
    transport: str, handlers: Handlers
) -> None:
    async with serving(transport, handlers, maximum_concurrent_rpcs=1) as channel:
        sleeper = channel.unary_unary(method("Sleep"))(b"", timeout=10)
        while not handlers.seen_remaining:
            await asyncio.sleep(0.01)
        with pytest.raises(aio.AioRpcError) as caught:
            await channel.unary_unary(method("Echo"))(b"", timeout=5)
        sleeper.cancel()
    assert caught.value.code() == homarpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.asyncio
async def test_blocking_handlers_run_in_the_given_migration_pool(
    transport: str, handlers: Handlers
) -> None:
    from concurrent import futures

    with futures.ThreadPoolExecutor(1, thread_name_prefix="migration") as pool:
        async with serving(transport, handlers, migration_thread_pool=pool) as channel:
            reply = await channel.unary_unary(method("BlockingEcho"))(b"ab", timeout=5)
    assert reply == b"ba"
    assert handlers.blocking_threads[0].startswith("migration")


@pytest.mark.asyncio
async def test_wait_for_termination_times_out_while_serving(transport: str) -> None:
    server = aio.server(transport=transport)
    server.add_insecure_port("127.0.0.1:0")
    await server.start()
    assert await server.wait_for_termination(timeout=0.05) is True
    await server.stop(None)
    assert await server.wait_for_termination(timeout=1) is False


@pytest.mark.asyncio
async def test_stop_with_grace_lets_running_calls_finish(
    transport: str, handlers: Handlers
) -> None:
    async with started_server(transport, handlers) as (server, port):
        target = f"127.0.0.1:{port}"
        async with aio.insecure_channel(target, transport=transport) as chan:
            running = chan.unary_unary(method("SlowEcho"))(b"kept", timeout=5)
            while not handlers.seen_remaining:
                await asyncio.sleep(0.01)
            stopping = asyncio.create_task(server.stop(grace=3))
            await asyncio.sleep(0.05)
            with pytest.raises(aio.AioRpcError) as refused:
                await chan.unary_unary(method("Echo"))(b"late", timeout=5)
            assert await running == b"kept"
            await stopping
    assert refused.value.code() == homarpc.StatusCode.UNAVAILABLE
