"""Server reflection (``grpc.reflection.v1`` and ``v1alpha``) on a homarpc server.

Layer: rpc add-on, above the RPC layer and below the cli; nothing in the RPC layer
imports it. Imports: grpcio-reflection (``grpc_reflection.v1alpha``), grpcio's
handler helpers, ``homarpc.health`` (to tell an asyncio server apart).

homarpc serves grpcio's own reflection servicer: ``grpcio-reflection`` is the
maintained implementation (by the gRPC authors, released with grpcio, typed by
typeshed) and ships the ``reflection.proto`` messages; its blocking and asyncio
servicers run on homarpc servers unchanged. It answers from protobuf's default
descriptor pool, where every imported ``_pb2`` module has put its file.

grpcio-reflection implements ``v1alpha`` only. ``grpc.reflection.v1`` is the same
protocol under a new package name: its messages are field for field those of
``v1alpha``, so the same servicer, with the same codecs, answers on the ``v1``
path too (grpcurl and other newer clients ask ``v1`` first). Its own descriptor is
not in the pool (no released package has a ``reflection/v1`` module for Python),
so clients list ``grpc.reflection.v1.ServerReflection`` but cannot describe it.

One line, as ``grpc_reflection.v1alpha.reflection.enable_server_reflection``::

    homarpc.reflection.enable_reflection(["helloworld.Greeter"], server)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection as _reflection
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from .health import is_asyncio_server

__all__ = ["V1ALPHA_SERVICE_NAME", "V1_SERVICE_NAME", "enable_reflection"]

#: ``grpc.reflection.v1alpha.ServerReflection``.
V1ALPHA_SERVICE_NAME: str = _reflection.SERVICE_NAME
#: ``grpc.reflection.v1.ServerReflection``, served with the v1alpha messages.
V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"


def enable_reflection(
    service_names: Iterable[str],
    server: Any,
    pool: descriptor_pool.DescriptorPool | None = None,
) -> None:
    """Serve reflection, ``v1`` and ``v1alpha``, on ``server``.

    Args:
        service_names: the fully qualified names to list (e.g.
            ``helloworld.Greeter``); both reflection services are added to them.
        server: a ``homarpc.server()``, a ``homarpc.aio.server()``, or a grpcio
            server; call before ``start()``.
        pool: where descriptors are looked up (default: protobuf's default pool,
            which holds every imported ``_pb2`` module).
    """
    names = sorted({*service_names, V1ALPHA_SERVICE_NAME, V1_SERVICE_NAME})
    servicer: _reflection.ReflectionServicer | _reflection.aio.ReflectionServicer
    if is_asyncio_server(server):
        servicer = _reflection.aio.ReflectionServicer(names, pool=pool)
    else:
        servicer = _reflection.ReflectionServicer(names, pool=pool)
    add_servicer: Any = reflection_pb2_grpc.add_ServerReflectionServicer_to_server
    add_servicer(servicer, server)
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    handler = grpc.method_handlers_generic_handler(
        V1_SERVICE_NAME, {"ServerReflectionInfo": method}
    )
    server.add_generic_rpc_handlers((handler,))
