"""Reading a channel's or a server's transport from the event loop, not a thread.

Layer: rpc (homarpc.aio). Imports: stdlib, ``homarpc`` rpc-layer modules
(``_client_endpoint``, ``_server_endpoint``).

Why: every thread hand-off costs about as much as a loopback round trip on a small
machine. With the endpoints' own threads reading the transport, an aio unary call
pays two of them (server receive thread -> loop, client receive thread -> loop);
reading with ``loop.add_reader`` on the transport's ``fileno()`` pays none, and
measured about 3x lower latency (memory and udp alike, client and server on one
loop). The transports are built for it: ``fileno()`` polls readable exactly when
``recv(timeout=0)`` may return something, and the udp backend runs its protocol
timers in a helper thread when nobody is in ``recv``.

What the threads did besides reading stays covered: the client endpoint's
background thread still expires deadlines (aio calls are opened *attended*, so it
never reads for them), and ``ServerPump`` sweeps the server endpoint on a timer.

Both pumps use only the endpoints' public, non-blocking hooks: ``pump_ready()``
on each, and ``ServerEndpoint.sweep()``.
"""

from __future__ import annotations

import asyncio
from typing import Final, Generic, TypeVar

from .._client_endpoint import ClientEndpoint
from .._server_endpoint import ServerEndpoint

__all__ = ["ClientPump", "ServerPump"]

#: How often the server endpoint is swept (deadlines, orphaned frames, liveness).
_SWEEP_PERIOD: Final = 0.25

_Endpoint = TypeVar("_Endpoint", ClientEndpoint, ServerEndpoint)


class _Pump(Generic[_Endpoint]):
    """Reads an endpoint's transport from ``loop``: when its ``fileno()`` is
    readable, and (the loop's version of the udp transport's busy poll) once per
    loop iteration for ``busy_poll`` seconds after any activity.

    A reader that only waits for readiness pays the loop's wake-up from epoll for
    every message (50-100 us on this 2-vCPU VM, more than the rest of a 64 B round
    trip). While polling, the loop keeps running everything else; it only stops
    sleeping. Measured with ``rpc_bench.py --api aio --only homarpc`` (client and
    server loops in two processes), two runs each: 64 B median 296-306 -> 203-205
    us, 1 MB median 1.79-1.86 -> 1.40-1.52 ms, 8 callers unchanged (9.0-9.4k/s).
    """

    def __init__(self, endpoint: _Endpoint, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._endpoint: _Endpoint = endpoint
        self._fd = endpoint.transport.fileno()
        #: Seconds of polling after activity: the transport's own busy poll (set
        #: for RPC use by ``transport_settings``); 0 (memory, kernel) never polls.
        self._budget = float(getattr(endpoint.transport, "busy_poll", 0.0) or 0.0)
        self._poll_until = 0.0
        self._polling = False
        self._closed = False
        loop.add_reader(self._fd, self._on_readable)

    def kick(self) -> None:
        """Something was sent or received: poll for the answer a while."""
        if not self._budget or self._closed:
            return
        self._poll_until = self.loop.time() + self._budget
        if not self._polling:
            self._polling = True
            self.loop.call_soon(self._poll)

    def _on_readable(self) -> None:
        if self._endpoint.pump_ready():
            self.kick()
        else:
            self.close()

    def _poll(self) -> None:
        if self._closed:
            self._polling = False
            return
        seen = self._endpoint.pumped
        if not self._endpoint.pump_ready():
            self._polling = False
            self.close()
            return
        now = self.loop.time()
        if self._endpoint.pumped != seen:
            self._poll_until = now + self._budget
        if now < self._poll_until:
            self.loop.call_soon(self._poll)
        else:
            self._polling = False

    def close(self) -> None:
        """Stop reading (call before the transport closes; idempotent)."""
        if self._closed:
            return
        self._closed = True
        if not self.loop.is_closed():
            self.loop.remove_reader(self._fd)


class ClientPump(_Pump[ClientEndpoint]):
    """Feeds a channel's endpoint from ``loop``; ``kick()`` when a call starts."""


class ServerPump(_Pump[ServerEndpoint]):
    """Feeds a server endpoint from ``loop``, and sweeps it every quarter second."""

    def __init__(
        self, endpoint: ServerEndpoint, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(endpoint, loop)
        self._sweeper = loop.call_later(_SWEEP_PERIOD, self._sweep)

    def _sweep(self) -> None:
        try:
            self._endpoint.sweep()
        finally:
            if not self._closed:
                self._sweeper = self.loop.call_later(_SWEEP_PERIOD, self._sweep)

    def close(self) -> None:
        """Stop reading and sweeping (call before the transport closes; idempotent)."""
        if not self._closed:
            self._sweeper.cancel()
        super().close()
