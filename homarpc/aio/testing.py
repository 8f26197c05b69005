"""In-process testing for asyncio servicers: ``homarpc.testing``'s aio twin.

Layer: rpc (homarpc.aio). Imports: ``homarpc.aio`` siblings, ``homarpc.testing``
and ``homarpc.transport.memory`` (no ports, no sockets, nothing leaves the process).

Example::

    async with homarpc.aio.testing.channel_for(add_GreeterServicer_to_server,
                                               servicer) as channel:
        reply = await GreeterAsyncStub(channel).SayHello(HelloRequest(name="you"))

or ``ChannelFor([(add_GreeterServicer_to_server, servicer), ...])`` for several
services. Each harness has a memory network of its own, so tests never meet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..testing import add_services
from ..transport.memory import MemoryNetwork
from ._channel import Channel, insecure_channel
from ._server import Server, server

__all__ = ["ChannelFor", "channel_for"]

AddServicer = Callable[[Any, Server], object]


class ChannelFor:
    """``async with ChannelFor(services) as channel``: a started aio server with the
    given servicers and an aio channel to it (like grpclib's ``ChannelFor``).

    Args:
        services: ``(add_XServicer_to_server, servicer)`` pairs, or generic handlers.
        interceptors: server interceptors (async or blocking).
        options: grpcio-style options for both server and channel.
    """

    def __init__(
        self,
        services: Sequence[tuple[AddServicer, Any] | Any],
        *,
        interceptors: Sequence[Any] = (),
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        self._services = list(services)
        self._interceptors = interceptors
        self._options = options
        self._transport_options = {"network": MemoryNetwork()}
        self.server: Server | None = None
        self.channel: Channel | None = None

    async def __aenter__(self) -> Channel:
        self.server = server(
            interceptors=self._interceptors,
            options=self._options,
            transport="memory",
            transport_options=self._transport_options,
        )
        add_services(self.server, self._services)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        self.channel = insecure_channel(
            f"127.0.0.1:{port}",
            self._options,
            transport="memory",
            transport_options=self._transport_options,
        )
        return self.channel

    async def __aexit__(self, *exc_info: object) -> None:
        if self.channel is not None:
            await self.channel.close()
        if self.server is not None:
            await self.server.stop(None)


def channel_for(add_servicer: AddServicer, servicer: Any, **kwargs: Any) -> ChannelFor:
    """``async with channel_for(add_XServicer_to_server, servicer) as channel``."""
    return ChannelFor([(add_servicer, servicer)], **kwargs)
