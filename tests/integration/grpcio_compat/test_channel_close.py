"""Closing a channel cancels its calls in flight, as grpcio does."""

from __future__ import annotations

import time
from concurrent import futures
from types import ModuleType

import grpc
import pytest

import homarpc

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    "mod", [pytest.param(grpc, id="grpcio"), pytest.param(homarpc, id="homarpc")]
)
def test_close_cancels_calls_in_flight(mod: ModuleType) -> None:
    def slow(request: bytes, context: object) -> bytes:
        time.sleep(2)
        return request

    generic = mod.method_handlers_generic_handler(
        "t.S", {"Slow": mod.unary_unary_rpc_method_handler(slow)}
    )
    server = mod.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((generic,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        channel = mod.insecure_channel(f"127.0.0.1:{port}")
        call = channel.unary_unary("/t.S/Slow").future(b"x", timeout=10)
        time.sleep(0.3)
        channel.close()
        with pytest.raises(mod.RpcError) as ended:
            call.result(timeout=5)
    finally:
        server.stop(None)
    assert ended.value.code() is mod.StatusCode.CANCELLED
    assert ended.value.details() == "Channel closed!"
