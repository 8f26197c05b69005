"""``homarpc.aio``: the asyncio API, shaped like ``grpc.aio``.

Layer: rpc. Imports: the ``homarpc`` rpc layer (its call cores, channel and server)
and this package's modules; nothing from ``homarpc.transport`` but public names.

Not a second implementation: channels and servers here reuse the blocking API's
transport, framing, call cores (``homarpc._call``, ``homarpc._server_call``), targets,
failover, server admission and handler runner. What is new is the waiting: the
event loop reads the transports itself (``_driver``), the cores' ``notify`` wakes
the waiting coroutine, and ``async def`` handlers run as tasks.

Switching from grpc.aio is one line::

    from homarpc import aio   # instead of: from grpc import aio

    async with aio.insecure_channel("localhost:5051") as channel:
        reply = await Stub(channel).SayHello(request, timeout=1.0)
"""

from __future__ import annotations

from .._handlers import HandlerCallDetails
from ..status import StatusCode
from ._call import (
    Call,
    StreamStreamCall,
    StreamUnaryCall,
    UnaryStreamCall,
    UnaryUnaryCall,
)
from ._channel import (
    Channel,
    StreamStreamMultiCallable,
    StreamUnaryMultiCallable,
    UnaryStreamMultiCallable,
    UnaryUnaryMultiCallable,
    init_grpc_aio,
    insecure_channel,
    secure_channel,
    shutdown_grpc_aio,
)
from ._context import ServicerContext
from ._errors import EOF, AbortError, AioRpcError, BaseError, InternalError, UsageError
from ._interceptors import (
    ClientCallDetails,
    ClientInterceptor,
    InterceptedCall,
    StreamStreamClientInterceptor,
    StreamUnaryClientInterceptor,
    UnaryStreamClientInterceptor,
    UnaryUnaryClientInterceptor,
)
from ._metadata import Metadata
from ._server import Server, ServerInterceptor, server

#: grpc.aio's names for two of the classes above.
InterceptedUnaryUnaryCall = InterceptedCall
RpcContext = Call

__all__ = [
    "EOF",
    "AbortError",
    "AioRpcError",
    "BaseError",
    "Call",
    "Channel",
    "ClientCallDetails",
    "ClientInterceptor",
    "HandlerCallDetails",
    "InterceptedCall",
    "InterceptedUnaryUnaryCall",
    "InternalError",
    "Metadata",
    "RpcContext",
    "Server",
    "ServerInterceptor",
    "ServicerContext",
    "StatusCode",
    "StreamStreamCall",
    "StreamStreamClientInterceptor",
    "StreamStreamMultiCallable",
    "StreamUnaryCall",
    "StreamUnaryClientInterceptor",
    "StreamUnaryMultiCallable",
    "UnaryStreamCall",
    "UnaryStreamClientInterceptor",
    "UnaryStreamMultiCallable",
    "UnaryUnaryCall",
    "UnaryUnaryClientInterceptor",
    "UnaryUnaryMultiCallable",
    "UsageError",
    "init_grpc_aio",
    "insecure_channel",
    "secure_channel",
    "server",
    "shutdown_grpc_aio",
]
