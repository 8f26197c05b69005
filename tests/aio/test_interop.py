"""Blocking and asyncio APIs speak the same wire: each calls the other's server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent import futures

import pytest

import homarpc
from homarpc import aio

from .conftest import SERVICE, method

pytestmark = pytest.mark.timeout(20)


@pytest.mark.asyncio
async def test_blocking_channel_calls_an_aio_server(transport: str, port: int) -> None:
    def call_blocking() -> tuple[bytes, list[bytes]]:
        target = f"127.0.0.1:{port}"
        with homarpc.insecure_channel(target, transport=transport) as channel:
            unary = channel.unary_unary(method("Echo"))(b"sync", timeout=5)
            stream = list(channel.unary_stream(method("Count"))(b"3", timeout=5))
            return unary, stream

    unary, stream = await asyncio.to_thread(call_blocking)
    assert (unary, stream) == (b"sync", [b"0", b"1", b"2"])


def _upper_all(
    requests: Iterator[bytes], context: homarpc.ServicerContext
) -> Iterator[bytes]:
    for request in requests:
        yield request.upper()


@pytest.mark.asyncio
async def test_aio_channel_calls_a_blocking_server(transport: str) -> None:
    server = homarpc.server(
        futures.ThreadPoolExecutor(max_workers=2), transport=transport
    )
    handler = homarpc.stream_stream_rpc_method_handler(_upper_all)
    server.add_generic_rpc_handlers(
        (homarpc.method_handlers_generic_handler(SERVICE, {"Upper": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        async with aio.insecure_channel(
            f"127.0.0.1:{port}", transport=transport
        ) as chan:
            call = chan.stream_stream(method("Upper"))(iter([b"a", b"b"]), timeout=5)
            assert [reply async for reply in call] == [b"A", b"B"]
    finally:
        server.stop(None)
