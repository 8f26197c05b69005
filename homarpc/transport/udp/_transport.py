"""``UdpTransport``: the sans-IO Homa engine driven over one real UDP socket.

Layer: transport (udp backend). Imports: stdlib, ``transport._base``,
``transport.errors``, ``transport.engine``, ``transport.udp._leader``.

The class is built in layers, one module each, none importing a later one:
``_core.UdpCore`` (state, counters, ICMP errors, the message queue,
transmission), ``_leader.UdpLeader`` (the receive loop described below,
``linger``, the timer helper; the ``_`` constants named below live there) and
``UdpTransport`` here (the contract's entry points); ``_messages`` turns engine
events into ``Message``s.

Theory of operation
-------------------
One lock guards the engine and the queue of finished messages. There is no I/O
thread on the fast path; every thread that calls in does the I/O its call needs:

* ``send``/``reply``/``abort`` run the engine under the lock and then transmit the
  datagrams it wants sent *from the calling thread* (no hand-off, no wake-up).
* ``recv`` is leader/follower. The first thread to find the queue empty becomes the
  *leader*: it reads datagrams with ``MSG_DONTWAIT``, feeds them to the engine,
  transmits what the engine wants sent (grants, acks, data; ``_SEND_BATCH`` data
  datagrams between two reads), runs due timers once the socket is drained, and
  returns the first finished message itself. With nothing to read it busy-polls
  for ``busy_poll`` seconds, yielding the CPU between polls, then sleeps on an
  epoll set (the socket plus a wake-up eventfd) no longer than the engine's next
  timer. Further messages go to the queue, where *followers* (waiting on a
  condition) take them; when the leader leaves, one follower takes over. So a
  message reaches the application from the very thread that read it.
* ``fileno()`` is the epoll set itself: it polls readable when a datagram or an ICMP
  error waits on the socket, or when the queue is non-empty (the eventfd is kept set
  exactly while it is), which is what an asyncio loop needs. Such a caller polls with
  ``recv(timeout=0)`` and also calls it by ``next_deadline()``.
* Timers still run when no thread is in ``recv`` (a client that only sends, a loop
  that stopped polling): a helper thread, started lazily by the first ``send`` or
  ``reply``, wakes every ``_HELPER_PERIOD`` and, if nobody has driven the socket
  and the timers meanwhile, does one pass in their place. It exits once the engine
  has had no timer for ``_HELPER_IDLE_EXIT`` seconds and is restarted on demand.
* ``linger`` (before ``close``) waits until the engine holds nothing that still
  needs the socket; it takes the leader role in short slices when nobody else
  holds it, and queues what arrives (docs/udp-transport.md, "Closing").

The socket is blocking for ``sendto`` (a full send buffer makes the sender wait
rather than drop our own datagrams) and non-blocking for reads (``MSG_DONTWAIT``).
"""

from __future__ import annotations

import time
from typing import ClassVar

from .._base import Address, Message, Payload
from ..engine import Layout
from ..engine.errors import LocalProtocolError as EngineProtocolError
from ..errors import LocalProtocolError
from ._leader import UdpLeader

__all__ = ["UdpTransport"]

_monotonic = time.monotonic


class UdpTransport(UdpLeader):
    """A Homa message socket in user space over UDP. Open it with
    ``open_udp_transport``."""

    kind: ClassVar[str] = "udp"

    def send(self, dest: Address, payload: Payload, cookie: int = 0) -> int:
        data = self._checked(payload)
        peer = self._resolved.get(dest) or self._resolve(dest)
        with self._lock:
            self._raise_if_closed()
            now = _monotonic()
            rpc_id = self._engine.send_request(peer, data, cookie, now)
            out = self._after_call(now)
        self._transmit(out)
        if not self._helper_running:
            self._start_helper()
        return rpc_id

    def reply(self, dest: Address, rpc_id: int, payload: Payload) -> None:
        data = self._checked(payload)
        if rpc_id & 1 == 0:
            raise LocalProtocolError(f"{rpc_id} is a client RPC id, not a request")
        with self._lock:
            self._raise_if_closed()
            now = _monotonic()
            try:
                self._engine.send_response(rpc_id, data, now)
            except EngineProtocolError:
                return  # answered already: ignored, like a reply to a vanished RPC
            out = self._after_call(now)
        self._transmit(out)
        if not self._helper_running:
            self._start_helper()

    def abort(self, rpc_id: int = 0, error: int = 0) -> None:
        with self._lock:
            self._raise_if_closed()
            now = _monotonic()
            self._engine.abort(rpc_id, error, now)
            out = self._after_call(now)
        self._transmit(out)

    def recv(self, timeout: float | None = None) -> Message | None:
        deadline = None if timeout is None else _monotonic() + timeout
        with self._lock:
            while True:
                self._raise_if_closed()
                if self._queue:
                    return self._pop()
                if not self._has_leader:
                    break
                remaining = None if deadline is None else deadline - _monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._followers_waiting += 1
                try:
                    self._followers.wait(remaining)
                finally:
                    self._followers_waiting -= 1
            self._has_leader = True
        try:
            return self._lead(deadline)
        finally:
            self._step_down()

    def fileno(self) -> int:
        return self._epoll_fd

    def set_layout(self, layout: Layout | None) -> bool:
        with self._lock:
            self._engine.layout = layout
        return True

    def next_deadline(self) -> float | None:
        with self._lock:
            if self._closed:
                return None
            if self._output_pending:  # datagrams wait to go out: come back at once
                return _monotonic()
            return self._engine.get_timer()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            self._followers.notify_all()
            self._helper_wake.notify_all()
            self._signal()  # wakes a leader in epoll, and event loops polling fileno()
            if not self._has_leader:
                self._release_fds()
