"""homarpc: gRPC-style RPC for Python on the Homa transport.

Layers, top to bottom (each imports only those below it):

* ``homarpc.cli``: the ``homarpc`` command line (serve, call, bench, doctor, protoc).
* ``homarpc.codegen``: the protoc plugin; imports no transport.
* ``homarpc`` (this package) and ``homarpc.aio``: the RPC layer (channels, servers,
  calls, status codes, metadata, deadlines, interceptors, framing).
* ``homarpc.transport``: the Homa message socket (udp, kernel, memory backends).

The public names follow grpcio's, so ``import homarpc as grpc`` mostly just works.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._client_calls import ResponseStream, UnaryOutcome
from ._connectivity import channel_ready_future
from ._handlers import (
    GenericRpcHandler,
    HandlerCallDetails,
    RpcMethodHandler,
    method_handlers_generic_handler,
    stream_stream_rpc_method_handler,
    stream_unary_rpc_method_handler,
    unary_stream_rpc_method_handler,
    unary_unary_rpc_method_handler,
)
from ._interfaces import (
    Call,
    ChannelConnectivity,
    Compression,
    Future,
    RpcContext,
    ServicerContext,
)
from .channel import (
    Channel,
    StreamStreamMultiCallable,
    StreamUnaryMultiCallable,
    UnaryStreamMultiCallable,
    UnaryUnaryMultiCallable,
    insecure_channel,
)
from .interceptors import (
    ClientCallDetails,
    ServerInterceptor,
    StreamStreamClientInterceptor,
    StreamUnaryClientInterceptor,
    UnaryStreamClientInterceptor,
    UnaryUnaryClientInterceptor,
    intercept_channel,
)
from .metadata import Metadata, Metadatum
from .server import Server, server
from .status import (
    FutureCancelledError,
    FutureTimeoutError,
    RpcError,
    Status,
    StatusCode,
)

__version__ = "0.1.0"

__all__ = [
    "Call",
    "Channel",
    "ChannelConnectivity",
    "ClientCallDetails",
    "Compression",
    "Future",
    "FutureCancelledError",
    "FutureTimeoutError",
    "GenericRpcHandler",
    "HandlerCallDetails",
    "Metadata",
    "Metadatum",
    "ResponseStream",
    "RpcContext",
    "RpcError",
    "RpcMethodHandler",
    "Server",
    "ServerInterceptor",
    "ServicerContext",
    "Status",
    "StatusCode",
    "StreamStreamClientInterceptor",
    "StreamStreamMultiCallable",
    "StreamUnaryClientInterceptor",
    "StreamUnaryMultiCallable",
    "UnaryOutcome",
    "UnaryStreamClientInterceptor",
    "UnaryStreamMultiCallable",
    "UnaryUnaryClientInterceptor",
    "UnaryUnaryMultiCallable",
    "__version__",
    "channel_ready_future",
    "insecure_channel",
    "intercept_channel",
    "method_handlers_generic_handler",
    "server",
    "stream_stream_rpc_method_handler",
    "stream_unary_rpc_method_handler",
    "unary_stream_rpc_method_handler",
    "unary_unary_rpc_method_handler",
]


if TYPE_CHECKING:
    from . import aio as aio


def __getattr__(name: str) -> object:
    # grpcio users write ``grpc.aio`` after a plain ``import grpc``. Import the asyncio
    # API on that first use, so ``import homarpc`` itself stays free of asyncio.
    if name == "aio":
        return importlib.import_module(".aio", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
