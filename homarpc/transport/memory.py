"""An in-process fake Homa network, for fast tests of everything above the transport.

Layer: transport. Imports: stdlib, ``transport._base``, ``transport.errors``.

``MemoryNetwork`` is a registry of addresses; each ``MemoryTransport`` on it behaves
like a Homa socket with a perfect network: messages arrive whole, in send order,
instantly. Sending to an address where no server listens fails the RPC with
``PeerUnreachableError`` (as an ICMP port-unreachable does in the kernel), and closing
a server fails the RPCs it was serving, so dead-peer paths can be tested without
waiting for timeouts.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections import deque
from typing import ClassVar

from ._base import (
    Address,
    Message,
    Payload,
    Transport,
    check_message_length,
    joined,
    payload_length,
)
from .errors import (
    HomaError,
    LocalProtocolError,
    PeerUnreachableError,
    TransportClosedError,
    error_from_errno,
)

__all__ = ["MemoryNetwork", "MemoryTransport"]

_FIRST_AUTO_PORT = 32768  # like HOMA_MIN_DEFAULT_PORT


class MemoryNetwork:
    """A set of in-process endpoints that can reach each other by address."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: dict[Address, MemoryTransport] = {}
        self._ports = itertools.count(_FIRST_AUTO_PORT)

    def open(
        self, local: Address = ("127.0.0.1", 0), *, server: bool = False
    ) -> MemoryTransport:
        """Open an endpoint; port 0 picks a free one. A nonzero port implies server."""
        host, port = local
        with self._lock:
            if port == 0:
                port = next(p for p in self._ports if (host, p) not in self._endpoints)
            elif (host, port) in self._endpoints:
                raise OSError(98, f"address already in use: {host}:{port}")
            else:
                server = True
            endpoint = MemoryTransport(self, (host, port), server)
            self._endpoints[(host, port)] = endpoint
        return endpoint

    def _lookup(self, addr: Address) -> MemoryTransport | None:
        with self._lock:
            return self._endpoints.get(addr)

    def _forget(self, addr: Address) -> None:
        with self._lock:
            self._endpoints.pop(addr, None)


class MemoryTransport(Transport):
    """One endpoint of a ``MemoryNetwork``. Create it with ``MemoryNetwork.open``."""

    kind: ClassVar[str] = "memory"

    def __init__(self, network: MemoryNetwork, addr: Address, server: bool) -> None:
        self._network = network
        self._addr = addr
        self._is_server = server
        self._cond = threading.Condition()
        self._queue: deque[Message] = deque()
        self._closed = False
        self._next_id = random.randrange(2, 1 << 62, 2)
        # Client RPCs awaiting a response: id -> (server address, cookie).
        self._outgoing: dict[int, tuple[Address, int]] = {}
        # Requests delivered to the application and not yet answered.
        self._in_service: dict[tuple[Address, int], None] = {}
        self._ready_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)

    # -- contract -------------------------------------------------------------------

    @property
    def local_addr(self) -> Address:
        return self._addr

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, dest: Address, payload: Payload, cookie: int = 0) -> int:
        data = self._checked(payload)
        with self._cond:
            rpc_id = self._next_id
            self._next_id += 2
            self._outgoing[rpc_id] = (dest, cookie)
        server = self._network._lookup(dest)
        request = Message(rpc_id | 1, 0, self._addr, True, data)
        if server is None or not server._deliver_request(request):
            self._fail(rpc_id, PeerUnreachableError())
        return rpc_id

    def reply(self, dest: Address, rpc_id: int, payload: Payload) -> None:
        data = self._checked(payload)
        with self._cond:
            if (dest, rpc_id) not in self._in_service:
                if rpc_id & 1 == 0:
                    raise LocalProtocolError(
                        f"{rpc_id} is a client RPC id, not a request"
                    )
                return  # already answered or unknown: ignored, as in the kernel
            del self._in_service[(dest, rpc_id)]
        client = self._network._lookup(dest)
        if client is not None:
            client._deliver_response(rpc_id & ~1, data)

    def recv(self, timeout: float | None = None) -> Message | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue:
                self._raise_if_closed()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            message = self._queue.popleft()
            if not self._queue:
                self._clear_ready()
            return message

    def abort(self, rpc_id: int = 0, error: int = 0) -> None:
        self._raise_if_closed()
        with self._cond:
            ids = list(self._outgoing) if rpc_id == 0 else [rpc_id]
        for one in ids:
            if error:
                self._fail(one, error_from_errno(error))
            else:
                with self._cond:
                    self._outgoing.pop(one, None)

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            serving = list(self._in_service)
            self._in_service.clear()
            self._queue.clear()
            self._cond.notify_all()
        self._network._forget(self._addr)
        for client_addr, rpc_id in serving:
            client = self._network._lookup(client_addr)
            if client is not None:
                client._fail(rpc_id & ~1, PeerUnreachableError())
        os.eventfd_write(self._ready_fd, 1)  # wake selectors so they see the close
        os.close(self._ready_fd)

    def fileno(self) -> int:
        return self._ready_fd

    # -- deliveries from peers --------------------------------------------------------

    def _deliver_request(self, request: Message) -> bool:
        with self._cond:
            if self._closed or not self._is_server:
                return False
            self._in_service[(request.peer, request.id)] = None
            self._enqueue(request)
            return True

    def _deliver_response(self, rpc_id: int, data: bytes) -> None:
        with self._cond:
            pending = self._outgoing.pop(rpc_id, None)
            if pending is None or self._closed:
                return  # aborted meanwhile: the response is dropped
            dest, cookie = pending
            self._enqueue(Message(rpc_id, cookie, dest, False, data))

    def _fail(self, rpc_id: int, error: HomaError) -> None:
        with self._cond:
            pending = self._outgoing.pop(rpc_id, None)
            if pending is None or self._closed:
                return
            dest, cookie = pending
            self._enqueue(Message(rpc_id, cookie, dest, False, b"", error))

    # -- helpers ----------------------------------------------------------------------

    def _enqueue(self, message: Message) -> None:
        if not self._queue:
            os.eventfd_write(self._ready_fd, 1)
        self._queue.append(message)
        self._cond.notify()

    def _clear_ready(self) -> None:
        try:
            os.eventfd_read(self._ready_fd)
        except BlockingIOError:
            pass

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise TransportClosedError("transport is closed")

    def _checked(self, payload: Payload) -> bytes:
        self._raise_if_closed()
        check_message_length(payload_length(payload))
        return joined(payload)
