"""Client interceptors on ``homarpc.aio`` channels (grpc.aio's four kinds)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio

import homarpc
from homarpc import aio

from .conftest import Handlers, method

pytestmark = pytest.mark.timeout(20)


class AddToken(aio.UnaryUnaryClientInterceptor):
    """Adds ``client-bin`` metadata, and notes when it ran (outer/inner order)."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def intercept_unary_unary(
        self,
        continuation: Any,
        client_call_details: aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        self.log.append(self.name)
        metadata = (*(client_call_details.metadata or ()), ("client-bin", b"\x2a"))
        return await continuation(
            client_call_details._replace(metadata=metadata), request
        )


class Cache(aio.UnaryUnaryClientInterceptor):
    """Answers ``b"cached"`` itself, without calling the server."""

    async def intercept_unary_unary(
        self,
        continuation: Any,
        client_call_details: aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        if request == b"cached":
            return b"from the cache"
        return await continuation(client_call_details, request)


class Refuse(aio.UnaryUnaryClientInterceptor):
    """Fails every call before it starts."""

    async def intercept_unary_unary(
        self,
        continuation: Any,
        client_call_details: aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        raise aio.AioRpcError(homarpc.StatusCode.PERMISSION_DENIED, details="refused")


class Counting(aio.UnaryStreamClientInterceptor, aio.StreamStreamClientInterceptor):
    """Counts calls of the two streaming-response kinds and passes them through."""

    def __init__(self) -> None:
        self.calls = 0

    async def intercept_unary_stream(
        self,
        continuation: Any,
        client_call_details: aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        self.calls += 1
        return await continuation(client_call_details, request)

    async def intercept_stream_stream(
        self,
        continuation: Any,
        client_call_details: aio.ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        self.calls += 1
        return await continuation(client_call_details, request_iterator)


@pytest_asyncio.fixture
async def target(port: int) -> str:
    return f"127.0.0.1:{port}"


@pytest.mark.asyncio
async def test_unary_interceptors_rewrite_details_first_one_outermost(
    target: str, transport: str
) -> None:
    log: list[str] = []
    interceptors = [AddToken("outer", log), AddToken("inner", log)]
    async with aio.insecure_channel(
        target, interceptors=interceptors, transport=transport
    ) as channel:
        call = channel.unary_unary(method("Metadata"))(b"", timeout=5)
        assert await call == b"\x2a"
        assert await call.code() == homarpc.StatusCode.OK
        assert (await call.initial_metadata())["initial-key"] == "initial"
    assert log == ["outer", "inner"]


@pytest.mark.asyncio
async def test_an_interceptor_may_answer_without_calling(
    target: str, transport: str
) -> None:
    async with aio.insecure_channel(
        target, interceptors=[Cache()], transport=transport
    ) as channel:
        echo = channel.unary_unary(method("Echo"))
        assert await echo(b"cached", timeout=5) == b"from the cache"
        assert await echo(b"live", timeout=5) == b"live"


@pytest.mark.asyncio
async def test_failures_pass_through_the_interceptors(
    target: str, transport: str
) -> None:
    async with aio.insecure_channel(
        target, interceptors=[Cache()], transport=transport
    ) as channel:
        with pytest.raises(aio.AioRpcError) as caught:
            await channel.unary_unary(method("Abort"))(b"", timeout=5)
    assert caught.value.code() == homarpc.StatusCode.NOT_FOUND


@pytest.mark.asyncio
async def test_streaming_interceptors_wrap_iteration_and_read_write(
    target: str, transport: str
) -> None:
    counting = Counting()
    async with aio.insecure_channel(
        target, interceptors=[counting, Cache()], transport=transport
    ) as channel:
        streamed = channel.unary_stream(method("Count"))(b"3", timeout=5)
        assert [r async for r in streamed] == [b"0", b"1", b"2"]
        bidi = channel.stream_stream(method("Upper"))(timeout=5)
        await bidi.write(b"abc")
        assert await bidi.read() == b"ABC"
        await bidi.done_writing()
        assert await bidi.read() is aio.EOF
        assert await bidi.code() == homarpc.StatusCode.OK
    assert counting.calls == 2


@pytest.mark.asyncio
async def test_cancelling_an_intercepted_call(
    target: str, transport: str, handlers: Handlers
) -> None:
    async with aio.insecure_channel(
        target, interceptors=[Cache()], transport=transport
    ) as channel:
        call = channel.unary_unary(method("Sleep"))(b"", timeout=10)
        while not handlers.seen_remaining:
            await asyncio.sleep(0.01)
        assert call.cancel()
        assert call.cancelled()
        with pytest.raises(asyncio.CancelledError):
            await call
    await asyncio.wait_for(handlers.cancelled.wait(), 5)


@pytest.mark.asyncio
async def test_an_interceptor_that_raises_fails_the_call(
    target: str, transport: str
) -> None:
    async with aio.insecure_channel(
        target, interceptors=[Refuse()], transport=transport
    ) as channel:
        call = channel.unary_unary(method("Echo"))(b"x", timeout=5)
        with pytest.raises(aio.AioRpcError) as caught:
            await call
        assert call.done()
        assert not call.cancelled()
        assert not call.cancel()
    assert caught.value.details() == "refused"


@pytest.mark.asyncio
async def test_intercepted_calls_count_down_and_call_back(
    target: str, transport: str
) -> None:
    ended = asyncio.Event()
    async with aio.insecure_channel(
        target, interceptors=[Cache()], transport=transport
    ) as channel:
        call = channel.unary_unary(method("Echo"))(b"x", timeout=5)
        remaining = call.time_remaining()
        assert remaining is not None
        assert 0 < remaining <= 5
        call.add_done_callback(lambda _call: ended.set())
        assert await call == b"x"
        await asyncio.wait_for(ended.wait(), 5)
