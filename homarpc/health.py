"""Health checking (``grpc.health.v1.Health``: Check and Watch) on a homarpc server.

Layer: rpc add-on, above the RPC layer and below the cli; nothing in the RPC layer
imports it. Imports: grpcio-health-checking (``grpc_health.v1``), ``homarpc.aio``
(only to tell an asyncio server apart).

homarpc serves grpcio's own health servicer, unchanged: ``grpcio-health-checking``
is the maintained implementation of this protocol (by the gRPC authors, released
with grpcio, typed by typeshed), it ships the ``grpc/health/v1/health.proto``
messages, and both its blocking and its asyncio servicer run on homarpc servers as
they run on grpcio's. A copy of the proto of our own would also clash with its
``health.proto`` in protobuf's descriptor pool as soon as both were imported.

One line gives a server the service; the servicer it returns sets the status of
each service as in grpcio::

    health = homarpc.health.add_health(server)
    health.set("helloworld.Greeter", homarpc.health.SERVING)     # blocking server
    await health.set("helloworld.Greeter", homarpc.health.SERVING)  # asyncio server
    health.enter_graceful_shutdown()  # everything NOT_SERVING, before server.stop()

The overall status (service ``""``) starts as SERVING. A Check of a service never
set answers NOT_FOUND; a Watch of one streams SERVICE_UNKNOWN until it is set.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, overload

from grpc_health.v1 import health as _health
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .server import Server

if TYPE_CHECKING:
    from . import aio

__all__ = [
    "NOT_SERVING",
    "OVERALL",
    "SERVICE_NAME",
    "SERVICE_UNKNOWN",
    "SERVING",
    "UNKNOWN",
    "AsyncHealthServicer",
    "HealthServicer",
    "add_health",
    "health_pb2",
    "health_pb2_grpc",
]

#: ``grpc.health.v1.Health``, the name a client calls and reflection lists.
SERVICE_NAME: str = _health.SERVICE_NAME
#: The service name that stands for the whole server.
OVERALL = ""

# The values of ``HealthCheckResponse.ServingStatus`` (plain ints, as in grpcio).
SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING
UNKNOWN: int = health_pb2.HealthCheckResponse.UNKNOWN
#: What Watch streams for a service that was never set.
SERVICE_UNKNOWN: int = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

#: grpcio's servicer for blocking servers; ``set()`` and ``enter_graceful_shutdown()``.
HealthServicer = _health.HealthServicer
#: grpcio's servicer for asyncio servers; its ``set()`` is a coroutine.
AsyncHealthServicer = _health.aio.HealthServicer


@overload
def add_health(server: Server) -> HealthServicer: ...


@overload
def add_health(server: aio.Server) -> AsyncHealthServicer: ...


@overload
def add_health(server: object) -> HealthServicer | AsyncHealthServicer: ...


def add_health(server: Any) -> HealthServicer | AsyncHealthServicer:
    """Serve ``grpc.health.v1.Health`` on ``server`` and return its servicer.

    Args:
        server: a ``homarpc.server()``, a ``homarpc.aio.server()``, or a grpcio
            server (blocking or ``grpc.aio``); call before ``start()``.

    Returns:
        grpcio-health-checking's ``HealthServicer`` for a blocking server, its
        asyncio one for an asyncio server. The overall status (``""``) is SERVING;
        set each service's with ``set(name, SERVING)`` (awaited on asyncio).
    """
    # On a blocking homarpc server Watch is a generator that holds a handler
    # thread while it streams (its callback form is for grpcio's server alone).
    servicer: HealthServicer | AsyncHealthServicer = (
        AsyncHealthServicer() if is_asyncio_server(server) else HealthServicer()
    )
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


def is_asyncio_server(server: Any) -> bool:
    """True for a ``homarpc.aio`` or ``grpc.aio`` server (asyncio servicers)."""
    # A module not imported yet cannot have made ``server``: no import needed.
    for module_name in ("homarpc.aio", "grpc.aio"):
        module = sys.modules.get(module_name)
        if module is not None and isinstance(server, module.Server):
            return True
    return False
