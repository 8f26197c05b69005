"""Each call kind through ``homarpc.aio``: awaitable, async-iterable, read/write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import homarpc
from homarpc import aio
from homarpc.transport import open_transport
from tests.conformance.backends import HOMA_SERVER_PORTS, released_port

from .conftest import Handlers, method

pytestmark = pytest.mark.timeout(20)


@pytest.mark.asyncio
async def test_unary_call_is_awaitable(channel: aio.Channel) -> None:
    echo = channel.unary_unary(method("Echo"))
    assert await echo(b"hello", timeout=5) == b"hello"


@pytest.mark.asyncio
async def test_unary_call_object_reports_status_after_the_reply(
    channel: aio.Channel,
) -> None:
    call = channel.unary_unary(method("Echo"))(b"x", timeout=5)
    assert await call == b"x"
    assert call.done()
    assert await call.code() == homarpc.StatusCode.OK
    assert await call.details() == ""


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024])
async def test_unary_echoes_empty_small_and_multi_message_payloads(
    channel: aio.Channel, size: int
) -> None:
    payload = bytes(i % 251 for i in range(size))
    assert await channel.unary_unary(method("Echo"))(payload, timeout=15) == payload


@pytest.mark.asyncio
async def test_blocking_handler_runs_on_an_aio_server(channel: aio.Channel) -> None:
    assert (
        await channel.unary_unary(method("BlockingEcho"))(b"abc", timeout=5) == b"cba"
    )


@pytest.mark.asyncio
async def test_many_concurrent_calls_share_one_channel(channel: aio.Channel) -> None:
    echo = channel.unary_unary(method("Echo"))
    payloads = [str(i).encode() * (i + 1) for i in range(100)]
    replies = await asyncio.gather(*(echo(p, timeout=10) for p in payloads))
    assert replies == payloads


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["Count", "CountByWrite"])
async def test_unary_stream_is_async_iterable(channel: aio.Channel, name: str) -> None:
    call = channel.unary_stream(method(name))(b"25", timeout=10)
    replies = [reply async for reply in call]
    assert replies == [str(i).encode() for i in range(25)]
    assert await call.code() == homarpc.StatusCode.OK


@pytest.mark.asyncio
async def test_unary_stream_read_returns_eof_at_the_end(channel: aio.Channel) -> None:
    call = channel.unary_stream(method("Count"))(b"3", timeout=10)
    assert [await call.read() for _ in range(4)] == [b"0", b"1", b"2", aio.EOF]


@pytest.mark.asyncio
async def test_stream_unary_takes_an_async_iterator(channel: aio.Channel) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(10):
            yield str(index).encode()

    reply = await channel.stream_unary(method("Join"))(chunks(), timeout=10)
    assert reply == b"0123456789"


@pytest.mark.asyncio
async def test_stream_unary_takes_a_plain_iterator(channel: aio.Channel) -> None:
    reply = await channel.stream_unary(method("Join"))(iter([b"a", b"b"]), timeout=10)
    assert reply == b"ab"


@pytest.mark.asyncio
async def test_stream_unary_write_then_done_writing(channel: aio.Channel) -> None:
    call = channel.stream_unary(method("JoinByRead"))(timeout=10)
    for chunk in (b"x", b"", b"z"):
        await call.write(chunk)
    await call.done_writing()
    assert await call == b"x||z"


@pytest.mark.asyncio
async def test_stream_stream_ping_pong_with_write_and_read(
    channel: aio.Channel,
) -> None:
    call = channel.stream_stream(method("Upper"))(timeout=10)
    for word in (b"one", b"two", b"three"):
        await call.write(word)
        assert await call.read() == word.upper()
    await call.done_writing()
    assert await call.read() is aio.EOF
    assert await call.code() == homarpc.StatusCode.OK


@pytest.mark.asyncio
async def test_stream_stream_with_iterators_both_ways(channel: aio.Channel) -> None:
    async def words() -> AsyncIterator[bytes]:
        for index in range(50):
            yield f"w{index}".encode()

    call = channel.stream_stream(method("Upper"))(words(), timeout=10)
    assert [r async for r in call] == [f"W{i}".encode() for i in range(50)]


@pytest.mark.asyncio
async def test_write_after_done_writing_is_a_usage_error(channel: aio.Channel) -> None:
    call = channel.stream_stream(method("Upper"))(timeout=10)
    await call.done_writing()
    with pytest.raises(aio.UsageError):
        await call.write(b"late")
    assert await call.read() is aio.EOF


def _dead_port(transport: str) -> int:
    """A local port where nothing listens now, that a server of ``transport`` could
    bind later (the kernel module binds only 1..32767: ports a UDP socket borrows,
    32768 and up, may be live Homa client sockets there)."""
    ports = HOMA_SERVER_PORTS if transport == "kernel" else None
    return released_port(
        lambda local, server: open_transport(transport, local, server=server),
        ports=ports,
    )


@pytest.mark.asyncio
async def test_unary_calls_fail_over_to_a_live_server(
    port: int, transport: str
) -> None:
    target = f"127.0.0.1:{_dead_port(transport)},127.0.0.1:{port}"
    async with aio.insecure_channel(target, transport=transport) as channel:
        echo = channel.unary_unary(method("Echo"))
        replies = [await echo(str(i).encode(), timeout=5) for i in range(4)]
    assert replies == [b"0", b"1", b"2", b"3"]


@pytest.mark.asyncio
async def test_wait_for_ready_waits_for_a_server_that_comes_up(
    transport: str, handlers: Handlers
) -> None:
    port = _dead_port(transport)
    async with aio.insecure_channel(f"127.0.0.1:{port}", transport=transport) as chan:
        echo = chan.unary_unary(method("Echo"))
        with pytest.raises(aio.AioRpcError) as fail_fast:
            await echo(b"now", timeout=5)
        call = echo(b"later", timeout=5, wait_for_ready=True)
        await asyncio.sleep(0.2)
        server = aio.server(transport=transport)
        server.add_generic_rpc_handlers((handlers.generic_handler(),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        try:
            assert await call == b"later"
        finally:
            await server.stop(None)
    assert fail_fast.value.code() == homarpc.StatusCode.UNAVAILABLE


@pytest.mark.asyncio
async def test_many_concurrent_streams_share_one_channel(channel: aio.Channel) -> None:
    async def count(n: int) -> list[bytes]:
        call = channel.unary_stream(method("Count"))(str(n).encode(), timeout=10)
        return [reply async for reply in call]

    results = await asyncio.gather(*(count(n) for n in range(20)))
    assert results == [[str(i).encode() for i in range(n)] for n in range(20)]


@pytest.mark.asyncio
async def test_bidi_carries_multi_message_payloads_both_ways(
    channel: aio.Channel,
) -> None:
    big = [bytes([65 + i]) * (1_500_000 + i) for i in range(3)]
    call = channel.stream_stream(method("Upper"))(iter(big), timeout=15)
    replies = [reply async for reply in call]
    assert replies == [chunk.upper() for chunk in big]
