"""Fixtures for ``homarpc.aio``: an async test server speaking raw bytes.

Every test runs over the memory transport, over the embedded UDP Homa (real
datagrams on 127.0.0.1) and, marked ``kernel``, over the Homa kernel module where
it is loaded. The handlers mix async functions, async generators and a
plain blocking function, as aio servers see in practice.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio

import homarpc
from homarpc import aio

from .transports import KINDS, usable

SERVICE = "test.Aio"


class Handlers:
    """The test service's behaviours, plus what the server saw (for assertions)."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.seen_remaining: list[float | None] = []
        self.blocking_threads: list[str] = []
        self.stream_ended = asyncio.Event()

    async def echo(self, request: bytes, context: aio.ServicerContext) -> bytes:
        return request

    def blocking_echo(self, request: bytes, context: Any) -> bytes:
        self.blocking_threads.append(threading.current_thread().name)
        return request[::-1]

    async def abort(self, request: bytes, context: aio.ServicerContext) -> bytes:
        await context.abort(
            homarpc.StatusCode.NOT_FOUND, "nothing here", (("why-bin", b"\x01\x02"),)
        )
        raise AssertionError("abort() must not return")

    async def set_code(self, request: bytes, context: aio.ServicerContext) -> bytes:
        context.set_code(homarpc.StatusCode.ALREADY_EXISTS)
        context.set_details("twice")
        return b""

    async def fail(self, request: bytes, context: aio.ServicerContext) -> bytes:
        raise ValueError("boom")

    async def metadata(self, request: bytes, context: aio.ServicerContext) -> bytes:
        received = dict(context.invocation_metadata() or ())
        await context.send_initial_metadata((("initial-key", "initial"),))
        context.set_trailing_metadata((("trailing-bin", b"\xff\x00"),))
        value = received.get("client-bin", b"")
        assert isinstance(value, bytes)
        return value

    async def sleep(self, request: bytes, context: aio.ServicerContext) -> bytes:
        self.seen_remaining.append(context.time_remaining())
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return b"woke"

    async def slow_echo(self, request: bytes, context: aio.ServicerContext) -> bytes:
        self.seen_remaining.append(context.time_remaining())
        await asyncio.sleep(0.3)
        return request

    async def count(
        self, request: bytes, context: aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        try:
            for index in range(int(request)):
                yield str(index).encode()
        finally:
            self.stream_ended.set()

    async def count_by_write(
        self, request: bytes, context: aio.ServicerContext
    ) -> None:
        for index in range(int(request)):
            await context.write(str(index).encode())

    async def count_then_abort(
        self, request: bytes, context: aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        yield b"first"
        yield b"second"
        await context.abort(homarpc.StatusCode.DATA_LOSS, "lost the rest")

    async def join(
        self, requests: AsyncIterator[bytes], context: aio.ServicerContext
    ) -> bytes:
        return b"".join([chunk async for chunk in requests])

    async def join_by_read(self, requests: Any, context: aio.ServicerContext) -> bytes:
        parts = []
        while (chunk := await context.read()) is not aio.EOF:
            parts.append(chunk)
        return b"|".join(parts)

    async def upper(
        self, requests: AsyncIterator[bytes], context: aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async for chunk in requests:
            yield chunk.upper()

    def generic_handler(self) -> homarpc.GenericRpcHandler:
        unary = homarpc.unary_unary_rpc_method_handler
        methods = {
            "Echo": unary(self.echo),
            "BlockingEcho": unary(self.blocking_echo),
            "Abort": unary(self.abort),
            "SetCode": unary(self.set_code),
            "Fail": unary(self.fail),
            "Metadata": unary(self.metadata),
            "Sleep": unary(self.sleep),
            "SlowEcho": unary(self.slow_echo),
            "Count": homarpc.unary_stream_rpc_method_handler(self.count),
            "CountByWrite": homarpc.unary_stream_rpc_method_handler(
                self.count_by_write
            ),
            "CountThenAbort": homarpc.unary_stream_rpc_method_handler(
                self.count_then_abort
            ),
            "Join": homarpc.stream_unary_rpc_method_handler(self.join),
            "JoinByRead": homarpc.stream_unary_rpc_method_handler(self.join_by_read),
            "Upper": homarpc.stream_stream_rpc_method_handler(self.upper),
        }
        return homarpc.method_handlers_generic_handler(SERVICE, methods)


@pytest.fixture(params=KINDS)
def transport(request: pytest.FixtureRequest) -> str:
    """Every test runs over each backend; the kernel one only where Homa is loaded."""
    return usable(str(request.param))


@pytest.fixture
def handlers() -> Handlers:
    return Handlers()


@asynccontextmanager
async def started_server(
    transport: str, handlers: Handlers, **options: Any
) -> AsyncIterator[tuple[aio.Server, int]]:
    """An aio server with the test service, started; stopped on the way out."""
    server = aio.server(transport=transport, **options)
    server.add_generic_rpc_handlers((handlers.generic_handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield server, port
    finally:
        await server.stop(None)


@pytest_asyncio.fixture
async def port(transport: str, handlers: Handlers) -> AsyncIterator[int]:
    async with started_server(transport, handlers) as (_, bound):
        yield bound


@pytest_asyncio.fixture
async def channel(port: int, transport: str) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(f"127.0.0.1:{port}", transport=transport) as opened:
        yield opened


def method(name: str) -> str:
    return f"/{SERVICE}/{name}"
