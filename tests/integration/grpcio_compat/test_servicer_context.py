"""A servicer context behaves as grpcio's where a handler can tell: each scenario
runs against a grpcio server and a homarpc server and expects the same."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from types import ModuleType
from typing import Any

import grpc
import pytest

import homarpc

pytestmark = pytest.mark.timeout(30)

FRAMEWORKS = [pytest.param(grpc, id="grpcio"), pytest.param(homarpc, id="homarpc")]


@pytest.fixture(params=FRAMEWORKS)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[ModuleType, Any, list]]:
    mod: ModuleType = request.param
    ran: list[bytes] = []

    def remaining(req: bytes, context: Any) -> bytes:
        return repr(context.time_remaining()).encode()

    def abort_with(req: bytes, context: Any) -> bytes:
        context.abort(int(req), "aborted with a plain int")

    def record(req: bytes, context: Any) -> bytes:
        ran.append(req)
        return req

    behaviors = {"Remaining": remaining, "Abort": abort_with, "Record": record}
    generic = mod.method_handlers_generic_handler(
        "t.S",
        {n: mod.unary_unary_rpc_method_handler(b) for n, b in behaviors.items()},
    )
    server = mod.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((generic,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with mod.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield mod, channel, ran
    server.stop(None)


def test_time_remaining_without_a_deadline_is_a_huge_number(served: Any) -> None:
    _, channel, _ = served
    remaining = float(channel.unary_unary("/t.S/Remaining")(b""))
    assert remaining > 1e18  # grpcio: the end of its clock, not None


def test_abort_with_a_code_that_is_no_status_code_is_unknown(served: Any) -> None:
    mod, channel, _ = served
    with pytest.raises(mod.RpcError) as failed:
        channel.unary_unary("/t.S/Abort")(b"5", timeout=5)
    assert failed.value.code() is mod.StatusCode.UNKNOWN
    assert failed.value.details() == "aborted with a plain int"


def test_a_call_whose_deadline_passed_never_runs(served: Any) -> None:
    mod, channel, ran = served
    with pytest.raises(mod.RpcError) as failed:
        channel.unary_unary("/t.S/Record")(b"late", timeout=-1)
    assert failed.value.code() is mod.StatusCode.DEADLINE_EXCEEDED
    assert channel.unary_unary("/t.S/Record")(b"next", timeout=5) == b"next"
    time.sleep(0.1)
    assert ran == [b"next"]
