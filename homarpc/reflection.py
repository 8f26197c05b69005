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
path too (grpcurl and other newer clients ask ``v1`` first). No released Python
package holds the ``v1`` descriptor, so the servicer looks symbols up in the pool
and then in a private pool holding ``grpc/reflection/v1/reflection.proto``, made
from ``v1alpha``'s by renaming its package (it is never added to the default pool,
where a real ``v1`` module, once there is one, would clash with it).

One line, as ``grpc_reflection.v1alpha.reflection.enable_server_reflection``::

    homarpc.reflection.enable_reflection(["helloworld.Greeter"], server)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
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
    pools: Any = _Pools(pool or descriptor_pool.Default(), _v1_pool())
    servicer: _reflection.ReflectionServicer | _reflection.aio.ReflectionServicer
    if is_asyncio_server(server):
        servicer = _reflection.aio.ReflectionServicer(names, pool=pools)
    else:
        servicer = _reflection.ReflectionServicer(names, pool=pools)
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


class _Pools:
    """The ``Find*`` methods the reflection servicer calls, asked of each pool in
    turn: the first answer wins, KeyError when none has the name."""

    def __init__(self, *pools: descriptor_pool.DescriptorPool) -> None:
        self._pools = pools

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if not name.startswith("Find"):
            raise AttributeError(name)

        def find(*args: Any) -> Any:
            for pool in self._pools[:-1]:
                try:
                    return getattr(pool, name)(*args)
                except KeyError:
                    pass
            return getattr(self._pools[-1], name)(*args)

        return find


@cache
def _v1_pool() -> descriptor_pool.DescriptorPool:
    """A pool holding ``grpc/reflection/v1/reflection.proto`` alone."""
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = f".{proto.package}.", ".grpc.reflection.v1."
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = "grpc.reflection.v1"
    proto.options.Clear()
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.java_outer_classname = "ServerReflectionProto"
    proto.options.java_multiple_files = True
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:  # scalars have none (and must not get "")
                field.type_name = field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool
