"""Handler objects as grpcio users write them run on homarpc servers as on grpcio's:
a user's own ``RpcMethodHandler`` subclass, and handlers that a server interceptor
builds with grpcio's factories (as opentelemetry-instrumentation-grpc does)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from types import ModuleType
from typing import Any

import grpc
import pytest

import homarpc

pytestmark = pytest.mark.timeout(30)

FRAMEWORKS = [pytest.param(grpc, id="grpcio"), pytest.param(homarpc, id="homarpc")]


def _served(mod: ModuleType, generic: Any, interceptors: Any = ()) -> Iterator[str]:
    server = mod.server(
        futures.ThreadPoolExecutor(max_workers=2), interceptors=interceptors
    )
    server.add_generic_rpc_handlers((generic,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def _call(mod: ModuleType, target: str, path: str) -> bytes:
    with mod.insecure_channel(target) as channel:
        return bytes(channel.unary_unary(path)(b"x", timeout=10))


def _subclass_generic(mod: ModuleType) -> Any:
    class Echo(mod.RpcMethodHandler):  # type: ignore[name-defined,misc]
        def __init__(self, behavior: Callable[..., Any]) -> None:
            self.request_streaming = False
            self.response_streaming = False
            self.request_deserializer = None
            self.response_serializer = None
            self.unary_unary = behavior
            self.unary_stream = None
            self.stream_unary = None
            self.stream_stream = None

    class Generic(mod.GenericRpcHandler):  # type: ignore[name-defined,misc]
        def service(self, details: Any) -> Any:
            if details.method == "/t.S/Echo":
                return Echo(lambda request, context: request + b"!")
            return None

    return Generic()


@pytest.mark.parametrize("mod", FRAMEWORKS)
def test_a_users_rpc_method_handler_subclass_serves(mod: ModuleType) -> None:
    for target in _served(mod, _subclass_generic(mod)):
        assert _call(mod, target, "/t.S/Echo") == b"x!"
    assert issubclass(type(homarpc.unary_unary_rpc_method_handler(print)),
                      homarpc.RpcMethodHandler)  # fmt: skip


@pytest.mark.parametrize("mod", FRAMEWORKS)
def test_an_interceptor_may_return_handlers_built_by_grpcio(mod: ModuleType) -> None:
    class Wrapping(mod.ServerInterceptor):  # type: ignore[name-defined,misc]
        def intercept_service(self, continuation: Any, details: Any) -> Any:
            found = continuation(details)
            inner = found.unary_unary

            def wrapped(request: bytes, context: Any) -> bytes:
                return b"<" + inner(request, context) + b">"

            return grpc.unary_unary_rpc_method_handler(  # grpcio's, always
                wrapped, found.request_deserializer, found.response_serializer
            )

    generic = mod.method_handlers_generic_handler(
        "t.S", {"Echo": mod.unary_unary_rpc_method_handler(lambda r, c: r)}
    )
    for target in _served(mod, generic, [Wrapping()]):
        assert _call(mod, target, "/t.S/Echo") == b"<x>"
