"""In-process testing helper: a server and a channel joined by the memory transport.

Layer: rpc. Imports: rpc-layer modules, ``homarpc.transport.memory`` (no ports, no
sockets, nothing leaves the process).

Example::

    with homarpc.testing.channel_for(add_GreeterServicer_to_server, servicer) as ch:
        reply = GreeterStub(ch).SayHello(HelloRequest(name="you"))

or ``ChannelFor([(add_GreeterServicer_to_server, servicer)])`` with several services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .channel import Channel
from .server import Server, server
from .transport.memory import MemoryNetwork

__all__ = ["ChannelFor", "add_services", "channel_for"]

AddServicer = Callable[[Any, Server], object]


class ChannelFor:
    """A started server with the given servicers and a channel to it (a context
    manager; like grpclib's ``ChannelFor``).

    Args:
        services: ``(add_XServicer_to_server, servicer)`` pairs, or generic handlers.
        interceptors: server interceptors.
        options: grpcio-style options for both server and channel.
    """

    def __init__(
        self,
        services: Sequence[tuple[AddServicer, Any] | Any],
        *,
        interceptors: Sequence[Any] = (),
        options: Sequence[tuple[str, Any]] = (),
        max_workers: int = 8,
    ) -> None:
        self._network = MemoryNetwork()
        transport_options = {"network": self._network}
        self.server = server(
            interceptors=interceptors,
            options=options,
            max_workers=max_workers,
            transport="memory",
            transport_options=transport_options,
        )
        add_services(self.server, services)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = Channel(
            f"127.0.0.1:{port}", options, "memory", transport_options
        )

    def __enter__(self) -> Channel:
        return self.channel

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None).wait()


def add_services(
    server: Any, services: Sequence[tuple[AddServicer, Any] | Any]
) -> None:
    """Register ``(add_XServicer_to_server, servicer)`` pairs and generic handlers
    on ``server`` (blocking or ``homarpc.aio``)."""
    for service in services:
        if isinstance(service, tuple):
            add, servicer = service
            add(servicer, server)
        else:
            server.add_generic_rpc_handlers((service,))


@contextmanager
def channel_for(
    add_servicer: AddServicer, servicer: Any, **kwargs: Any
) -> Iterator[Channel]:
    """A channel to an in-process server running ``servicer`` (one service)."""
    harness = ChannelFor([(add_servicer, servicer)], **kwargs)
    try:
        yield harness.channel
    finally:
        harness.close()
