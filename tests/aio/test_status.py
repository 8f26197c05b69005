"""Status codes and metadata through ``homarpc.aio``."""

from __future__ import annotations

import pytest

import homarpc
from homarpc import aio

from .conftest import method

pytestmark = pytest.mark.timeout(20)


async def _error_of(channel: aio.Channel, name: str) -> aio.AioRpcError:
    with pytest.raises(aio.AioRpcError) as caught:
        await channel.unary_unary(method(name))(b"", timeout=5)
    return caught.value


@pytest.mark.asyncio
async def test_abort_sends_code_details_and_trailing_metadata(
    channel: aio.Channel,
) -> None:
    error = await _error_of(channel, "Abort")
    assert (error.code(), error.details()) == (
        homarpc.StatusCode.NOT_FOUND,
        "nothing here",
    )
    assert error.trailing_metadata()["why-bin"] == b"\x01\x02"
    assert isinstance(error, homarpc.RpcError)


@pytest.mark.asyncio
async def test_set_code_and_details(channel: aio.Channel) -> None:
    error = await _error_of(channel, "SetCode")
    assert (error.code(), error.details()) == (
        homarpc.StatusCode.ALREADY_EXISTS,
        "twice",
    )


@pytest.mark.asyncio
async def test_handler_exception_is_unknown(channel: aio.Channel) -> None:
    error = await _error_of(channel, "Fail")
    assert error.code() == homarpc.StatusCode.UNKNOWN
    assert error.details() == "Exception calling application: boom"


@pytest.mark.asyncio
async def test_unknown_method_is_unimplemented(channel: aio.Channel) -> None:
    error = await _error_of(channel, "NoSuchMethod")
    assert (error.code(), error.details()) == (
        homarpc.StatusCode.UNIMPLEMENTED,
        "Method not found!",
    )


@pytest.mark.asyncio
async def test_failed_call_object_reports_its_status(channel: aio.Channel) -> None:
    call = channel.unary_unary(method("Abort"))(b"", timeout=5)
    with pytest.raises(aio.AioRpcError):
        await call
    assert await call.code() == homarpc.StatusCode.NOT_FOUND
    assert await call.details() == "nothing here"


@pytest.mark.asyncio
async def test_stream_failure_surfaces_while_iterating(channel: aio.Channel) -> None:
    call = channel.unary_stream(method("Count"))(b"not a number", timeout=5)
    with pytest.raises(aio.AioRpcError) as caught:
        [reply async for reply in call]
    assert caught.value.code() == homarpc.StatusCode.UNKNOWN


@pytest.mark.asyncio
async def test_abort_mid_stream_ends_the_stream_with_its_status(
    channel: aio.Channel,
) -> None:
    call = channel.unary_stream(method("CountThenAbort"))(b"", timeout=5)
    assert [await call.read(), await call.read()] == [b"first", b"second"]
    with pytest.raises(aio.AioRpcError) as caught:
        await call.read()
    assert (caught.value.code(), caught.value.details()) == (
        homarpc.StatusCode.DATA_LOSS,
        "lost the rest",
    )


@pytest.mark.asyncio
async def test_metadata_travels_both_ways(channel: aio.Channel) -> None:
    call = channel.unary_unary(method("Metadata"))(
        b"", metadata=(("client-bin", b"\x00\xfe"), ("plain", "text")), timeout=5
    )
    assert await call == b"\x00\xfe"
    initial = await call.initial_metadata()
    assert initial["initial-key"] == "initial"
    assert (await call.trailing_metadata())["trailing-bin"] == b"\xff\x00"


@pytest.mark.asyncio
async def test_metadata_accepts_an_aio_metadata_object(channel: aio.Channel) -> None:
    metadata = aio.Metadata(("client-bin", b"\x07"))
    assert (
        await channel.unary_unary(method("Metadata"))(b"", metadata=metadata, timeout=5)
        == b"\x07"
    )


@pytest.mark.asyncio
async def test_bin_key_with_text_value_is_refused_before_sending(
    channel: aio.Channel,
) -> None:
    with pytest.raises(TypeError):
        await channel.unary_unary(method("Echo"))(
            b"", metadata=(("key-bin", "text"),), timeout=5
        )


@pytest.mark.asyncio
async def test_a_failing_response_deserializer_is_internal(
    channel: aio.Channel,
) -> None:
    def refuse(data: bytes) -> bytes:
        raise ValueError("not my format")

    echo = channel.unary_unary(method("Echo"), response_deserializer=refuse)
    with pytest.raises(aio.AioRpcError) as caught:
        await echo(b"x", timeout=5)
    assert (caught.value.code(), caught.value.details()) == (
        homarpc.StatusCode.INTERNAL,
        "Exception deserializing response!",
    )


@pytest.mark.asyncio
async def test_a_failing_request_serializer_is_internal(channel: aio.Channel) -> None:
    def refuse(message: object) -> bytes:
        raise ValueError("cannot encode")

    echo = channel.unary_unary(method("Echo"), request_serializer=refuse)
    with pytest.raises(aio.AioRpcError) as caught:
        await echo(object(), timeout=5)
    assert caught.value.details() == "Exception serializing request!"


@pytest.mark.asyncio
async def test_without_a_serializer_requests_must_be_bytes(
    channel: aio.Channel,
) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await channel.unary_unary(method("Echo"))(5, timeout=5)
    assert caught.value.details() == "Exception serializing request!"
