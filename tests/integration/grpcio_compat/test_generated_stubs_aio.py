"""Stock grpcio-generated stubs run unchanged on ``homarpc.aio`` too.

The same generated ``add_CompatServicer_to_server`` takes an ``aio.server()`` and
an ``async def`` servicer; ``CompatStub`` takes an ``aio.insecure_channel()``. The
"grpcio" run does the same on ``grpc.aio``, proving the expectations are grpcio's.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
import pytest_asyncio

from homarpc import aio as homarpc_aio

pytestmark = pytest.mark.timeout(30)


def make_async_servicer(gen: types.SimpleNamespace, aio: Any) -> Any:
    """Async methods for each kind; ``Missing`` keeps the generated blocking default."""
    note = gen.pb2.Note
    codes = grpc.StatusCode if aio is grpc.aio else homarpc_aio.StatusCode

    class Servicer(gen.pb2_grpc.CompatServicer):  # type: ignore[misc,name-defined]
        async def Unary(self, request: Any, context: Any) -> Any:
            if request.text == "abort":
                await context.abort(codes.NOT_FOUND, "no such note")
            return note(text=request.text.upper(), count=request.count + 1)

        async def ServerStream(self, request: Any, context: Any) -> AsyncIterator[Any]:
            for index in range(request.count):
                yield note(text=f"{request.text}-{index}", count=index)

        async def ClientStream(self, request_iterator: Any, context: Any) -> Any:
            notes = [n async for n in request_iterator]
            return note(text="".join(n.text for n in notes), count=len(notes))

        async def Bidi(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
            async for received in request_iterator:
                yield note(text=received.text[::-1], count=received.count)

    return Servicer()


@pytest.fixture
def aio(transport: str) -> Any:
    return grpc.aio if transport == "grpcio" else homarpc_aio


@pytest_asyncio.fixture
async def stub(
    generated: types.SimpleNamespace, transport: str, aio: Any
) -> AsyncIterator[Any]:
    extra = {} if aio is grpc.aio else {"transport": transport}
    server = aio.server(**extra)
    generated.pb2_grpc.add_CompatServicer_to_server(
        make_async_servicer(generated, aio), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}", **extra)
    try:
        yield generated.pb2_grpc.CompatStub(channel)
    finally:
        await channel.close()
        await server.stop(None)


@pytest.fixture
def note(generated: types.SimpleNamespace) -> Any:
    return generated.pb2.Note


@pytest.mark.asyncio
async def test_unary(stub: Any, note: Any) -> None:
    reply = await stub.Unary(note(text="hi", count=1), timeout=10)
    assert (reply.text, reply.count) == ("HI", 2)


@pytest.mark.asyncio
async def test_server_stream(stub: Any, note: Any) -> None:
    call = stub.ServerStream(note(text="s", count=30), timeout=10)
    assert [r.count async for r in call] == list(range(30))


@pytest.mark.asyncio
async def test_client_stream_from_an_async_iterator(stub: Any, note: Any) -> None:
    async def notes() -> AsyncIterator[Any]:
        for index in range(12):
            yield note(text=str(index % 10))

    reply = await stub.ClientStream(notes(), timeout=10)
    assert (reply.text, reply.count) == ("012345678901", 12)


@pytest.mark.asyncio
async def test_bidi_with_write_and_read(stub: Any, note: Any, aio: Any) -> None:
    call = stub.Bidi(timeout=10)
    for word in ("abc", "de"):
        await call.write(note(text=word))
        assert (await call.read()).text == word[::-1]
    await call.done_writing()
    assert await call.read() is aio.EOF


@pytest.mark.asyncio
async def test_abort_status(stub: Any, note: Any, aio: Any) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.Unary(note(text="abort"), timeout=10)
    assert caught.value.code().value == grpc.StatusCode.NOT_FOUND.value
    assert caught.value.details() == "no such note"


@pytest.mark.asyncio
async def test_generated_blocking_default_is_unimplemented(
    stub: Any, note: Any, aio: Any
) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.Missing(note(), timeout=10)
    assert caught.value.code().value == grpc.StatusCode.UNIMPLEMENTED.value
    # grpc.aio prefixes "Unexpected <class 'NotImplementedError'>: "; homarpc keeps
    # the blocking server's wording.
    assert caught.value.details().endswith("Method not implemented!")
