"""Stock grpcio-generated stubs run unchanged on a homarpc server and channel.

``add_CompatServicer_to_server`` (which calls ``grpc.*_rpc_method_handler``,
``grpc.method_handlers_generic_handler``, ``add_generic_rpc_handlers`` and
``add_registered_method_handlers``) is given a ``homarpc.server()``, and
``CompatStub`` (which calls ``channel.unary_unary(..., _registered_method=True)`` and
friends) is given a ``homarpc.insecure_channel()``. Every call kind, status path,
metadata direction and deadline is then exercised through them.
"""

from __future__ import annotations

import time
import types
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest

pytestmark = pytest.mark.timeout(30)

BIG = 3 * 1024 * 1024  # larger than one Homa message: split and rejoined


class CompatBehaviour:
    """The servicer's methods, mixed over the generated ``CompatServicer`` by
    ``make_servicer``; ``Missing`` is left to the generated default.

    ``rpc`` is the framework whose ``StatusCode`` the servicer uses (as a user who
    wrote ``import homarpc as grpc`` would).
    """

    def __init__(self, note: Any, rpc: Any) -> None:
        self.note = note
        self.rpc = rpc

    def Unary(self, request: Any, context: Any) -> Any:
        special = getattr(self, f"_unary_{request.text}", None)
        if special is not None:
            return special(request, context)
        return self.note(
            text=request.text.upper(), blob=request.blob, count=request.count + 1
        )

    def _unary_abort(self, request: Any, context: Any) -> Any:
        context.abort(self.rpc.StatusCode.NOT_FOUND, "no such note")

    def _unary_grpc_abort(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "grpcio's own enum")

    def _unary_set_code(self, request: Any, context: Any) -> Any:
        context.set_code(self.rpc.StatusCode.FAILED_PRECONDITION)
        context.set_details("not yet")
        return self.note()

    def _unary_raise(self, request: Any, context: Any) -> Any:
        raise ValueError("boom")

    def _unary_metadata(self, request: Any, context: Any) -> Any:
        received = dict(context.invocation_metadata())
        context.send_initial_metadata((("initial-key", "initial value"),))
        context.set_trailing_metadata(
            (("trailing-key", "trailing value"), ("trailing-bin", b"\x00\xff\x01"))
        )
        return self.note(text=received["client-key"], blob=received["client-bin"])

    def _unary_deadline(self, request: Any, context: Any) -> Any:
        remaining = context.time_remaining()
        # grpcio says "no deadline" with a huge number, the spec allows None.
        unbounded = remaining is None or remaining > 1e6
        return self.note(count=-1 if unbounded else int(remaining * 1000))

    def _unary_sleep(self, request: Any, context: Any) -> Any:
        give_up = time.monotonic() + 5
        while context.is_active() and time.monotonic() < give_up:
            time.sleep(0.01)
        return self.note()

    def ServerStream(self, request: Any, context: Any) -> Iterator[Any]:
        for index in range(request.count):
            yield self.note(text=f"{request.text}-{index}", count=index)

    def ClientStream(self, request_iterator: Any, context: Any) -> Any:
        notes = list(request_iterator)
        return self.note(
            text="".join(n.text for n in notes),
            blob=b"".join(n.blob for n in notes),
            count=len(notes),
        )

    def Bidi(self, request_iterator: Any, context: Any) -> Iterator[Any]:
        for received in request_iterator:
            yield self.note(text=received.text[::-1], count=received.count)


def make_servicer(gen: types.SimpleNamespace, rpc: Any) -> Any:
    """A servicer that *is* a generated ``CompatServicer`` (subclass of it)."""
    servicer_class = type(
        "Servicer", (CompatBehaviour, gen.pb2_grpc.CompatServicer), {}
    )
    return servicer_class(gen.pb2.Note, rpc)


@pytest.fixture
def port(generated: types.SimpleNamespace, transport: str, rpc: Any) -> Iterator[int]:
    """A started ``homarpc.server`` carrying the servicer, via the generated adder."""
    pool = futures.ThreadPoolExecutor(max_workers=4)
    extra = {} if rpc is grpc else {"transport": transport}
    server = rpc.server(pool, **extra)
    generated.pb2_grpc.add_CompatServicer_to_server(
        make_servicer(generated, rpc), server
    )
    bound = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield bound
    finally:
        server.stop(None)


@pytest.fixture
def channel(port: int, transport: str, rpc: Any) -> Iterator[Any]:
    target = f"127.0.0.1:{port}"
    if rpc is grpc:
        opened = grpc.insecure_channel(target)
    else:
        opened = rpc.insecure_channel(target, transport=transport)
    with opened:
        yield opened


@pytest.fixture
def stub(generated: types.SimpleNamespace, channel: Any) -> Any:
    return generated.pb2_grpc.CompatStub(channel)


@pytest.fixture
def note(generated: types.SimpleNamespace) -> Any:
    return generated.pb2.Note


# -- the four call kinds -----------------------------------------------------------


def test_unary_returns_the_servicers_reply(stub: Any, note: Any, rpc: Any) -> None:
    reply = stub.Unary(note(text="hello", blob=b"\x00" * 64, count=41))
    assert (reply.text, reply.blob, reply.count) == ("HELLO", b"\x00" * 64, 42)


def test_unary_with_call_and_future(stub: Any, note: Any, rpc: Any) -> None:
    reply, call = stub.Unary.with_call(note(text="a"))
    assert reply.text == "A"
    assert call.code() == rpc.StatusCode.OK
    future = stub.Unary.future(note(text="b"))
    assert future.result(timeout=10).text == "B"
    assert future.done()


def test_unary_carries_a_message_larger_than_one_homa_message(
    stub: Any, note: Any, rpc: Any
) -> None:
    blob = bytes(range(256)) * (BIG // 256)
    reply = stub.Unary(note(text="big", blob=blob), timeout=20)
    assert reply.blob == blob


def test_server_stream_yields_every_message_in_order(
    stub: Any, note: Any, rpc: Any
) -> None:
    replies = list(stub.ServerStream(note(text="n", count=50), timeout=10))
    assert [r.text for r in replies] == [f"n-{i}" for i in range(50)]


def test_server_stream_of_nothing_ends_cleanly(stub: Any, note: Any, rpc: Any) -> None:
    assert list(stub.ServerStream(note(count=0), timeout=10)) == []


def test_client_stream_consumes_the_whole_iterator(
    stub: Any, note: Any, rpc: Any
) -> None:
    requests = (note(text=str(i % 10), blob=bytes([i])) for i in range(30))
    reply = stub.ClientStream(requests, timeout=10)
    assert reply.count == 30
    assert reply.text == "0123456789" * 3
    assert reply.blob == bytes(range(30))


def test_bidi_answers_each_message(stub: Any, note: Any, rpc: Any) -> None:
    requests = [note(text=f"abc{i}", count=i) for i in range(20)]
    replies = list(stub.Bidi(iter(requests), timeout=10))
    assert [(r.text, r.count) for r in replies] == [
        (f"abc{i}"[::-1], i) for i in range(20)
    ]


# -- status codes ------------------------------------------------------------------


def _failure(rpc: Any, call: Any, *args: Any, **kwargs: Any) -> Any:
    """The ``rpc.RpcError`` that ``call(*args, **kwargs)`` raises."""
    with pytest.raises(rpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_abort_reaches_the_client_with_code_and_details(
    stub: Any, note: Any, rpc: Any
) -> None:
    error = _failure(rpc, stub.Unary, note(text="abort"), timeout=10)
    assert (error.code(), error.details()) == (rpc.StatusCode.NOT_FOUND, "no such note")


def test_context_accepts_grpcios_own_status_enum(
    stub: Any, note: Any, rpc: Any
) -> None:
    error = _failure(rpc, stub.Unary, note(text="grpc_abort"), timeout=10)
    assert error.code() == rpc.StatusCode.PERMISSION_DENIED
    assert error.code().value == grpc.StatusCode.PERMISSION_DENIED.value


def test_set_code_and_details_without_raising(stub: Any, note: Any, rpc: Any) -> None:
    error = _failure(rpc, stub.Unary, note(text="set_code"), timeout=10)
    assert (error.code(), error.details()) == (
        rpc.StatusCode.FAILED_PRECONDITION,
        "not yet",
    )


def test_handler_exception_becomes_unknown(stub: Any, note: Any, rpc: Any) -> None:
    error = _failure(rpc, stub.Unary, note(text="raise"), timeout=10)
    assert error.code() == rpc.StatusCode.UNKNOWN
    assert error.details() == "Exception calling application: boom"


def test_generated_default_method_is_unimplemented(
    stub: Any, note: Any, rpc: Any
) -> None:
    error = _failure(rpc, stub.Missing, note(), timeout=10)
    assert (error.code(), error.details()) == (
        rpc.StatusCode.UNIMPLEMENTED,
        "Method not implemented!",
    )


def test_unknown_method_is_unimplemented(channel: Any, rpc: Any) -> None:
    unknown = channel.unary_unary("/compat.Compat/Nope")
    error = _failure(rpc, unknown, b"", timeout=10)
    assert (error.code(), error.details()) == (
        rpc.StatusCode.UNIMPLEMENTED,
        "Method not found!",
    )


def test_unknown_service_is_unimplemented(channel: Any, rpc: Any) -> None:
    error = _failure(rpc, channel.unary_unary("/nowhere.Nothing/Nope"), b"", timeout=10)
    assert error.code() == rpc.StatusCode.UNIMPLEMENTED


# -- metadata and deadlines ----------------------------------------------------------


def test_metadata_travels_both_ways(stub: Any, note: Any, rpc: Any) -> None:
    metadata = (("client-key", "client value"), ("client-bin", b"\xff\x00"))
    reply, call = stub.Unary.with_call(
        note(text="metadata"), metadata=metadata, timeout=10
    )
    assert (reply.text, reply.blob) == ("client value", b"\xff\x00")
    assert ("initial-key", "initial value") in tuple(call.initial_metadata())
    trailing = dict(call.trailing_metadata())
    assert trailing["trailing-key"] == "trailing value"
    assert trailing["trailing-bin"] == b"\x00\xff\x01"


def test_deadline_reaches_the_server(stub: Any, note: Any, rpc: Any) -> None:
    reply = stub.Unary(note(text="deadline"), timeout=5)
    assert 0 < reply.count <= 5100  # grpcio itself reports up to ~10 ms over


def test_no_deadline_means_unbounded_time_remaining(
    stub: Any, note: Any, rpc: Any
) -> None:
    assert stub.Unary(note(text="deadline")).count == -1


def test_expired_deadline_is_deadline_exceeded(stub: Any, note: Any, rpc: Any) -> None:
    started = time.monotonic()
    error = _failure(rpc, stub.Unary, note(text="sleep"), timeout=0.3)
    assert error.code() == rpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 3
