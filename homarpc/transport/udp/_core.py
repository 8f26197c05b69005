"""``UdpCore``: what ``UdpTransport`` holds, and everything but the receive loop.

Layer: transport (udp backend). Imports: stdlib, ``transport._base``,
``transport.errors``, ``transport.engine``, ``transport.udp._sockets``,
``transport.udp._messages``.

The state (socket, engine, lock, message queue, wake-up eventfd and epoll set),
the counters (``stats``, ``stats_snapshot``), ICMP errors from the socket's error
queue and failed sends (``unreachable_peers``), the queue of finished messages
and the eventfd that mirrors it, and transmission from the calling thread. The
leader/follower receive machinery builds on it (``_leader.UdpLeader``) and the
contract's entry points on that (``_transport.UdpTransport``); see ``_transport``
for the theory of operation.
"""

from __future__ import annotations

import errno
import os
import random
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

from .._base import (
    Address,
    Message,
    Payload,
    Transport,
    check_message_length,
    payload_length,
)
from ..engine import Datagram, HomaConfig, HomaEngine, Landing
from ..engine.stats import EngineStats
from ..errors import PeerUnreachableError, TransportClosedError
from ._messages import to_message
from ._sockets import SocketSizes, read_icmp_errors, resolve

__all__ = ["UdpCore"]

#: After sending a long message the leader polls longer than ``busy_poll``: by
#: this many seconds per byte of it, up to ``_MAX_POLL_EXTRA``. The peer turns a
#: long message around later than a short one (a Python peer needs ~0.3-0.5 ms for
#: 1 MB), and a leader that stops polling just before the answer pays a wake-up
#: (50-90 us here) and cold caches on top. So the CPU spent polling stays
#: proportional to the data moved; 64 B messages add nothing. Measured: 1 MB RPC
#: echo 1.42-1.58 -> 1.24-1.30 ms.
_POLL_PER_BYTE = 0.5e-9
_MAX_POLL_EXTRA = 0.001
#: Largest UDP payload (65,535 - 8 bytes of UDP header).
_MAX_UDP_PAYLOAD = 65_527
#: Resolved destination addresses kept (user spelling -> numeric address).
_MAX_RESOLVED = 1024
#: Unreachable peers kept until ``unreachable_peers`` drains them (more are
#: still reported to ``on_unreachable``).
_MAX_UNREACHABLE = 4096
_monotonic = time.monotonic


class UdpCore(Transport):
    """The state of one ``UdpTransport`` and the work every entry point shares
    (not instantiated alone: ``UdpTransport`` is)."""

    def __init__(
        self,
        sock: socket.socket,
        sizes: SocketSizes,
        config: HomaConfig,
        datagram_sizes: Callable[[Address], int],
        *,
        server: bool,
        busy_poll: float = 0.0,
    ) -> None:
        self._sock = sock
        self._is_v6 = sock.family == socket.AF_INET6
        self.socket_sizes = sizes
        self.config = config
        self.busy_poll = busy_poll
        self._poll_extra = 0.0  # see _POLL_PER_BYTE
        # Not capped at the kernel's 1,000,000: the embedded protocol has no limit
        # of its own (``DEFAULT_MAX_MESSAGE``; the RPC layer sends a peer more only
        # once it has said it accepts it: docs/udp-transport.md, "Sizes").
        self.max_message_length = config.max_message_length
        self._local: Address = sock.getsockname()[:2]
        self.datagram_sizes = datagram_sizes  # peer -> largest datagram we send it
        self._engine = HomaEngine(
            config, self._local[1], random.Random(), server=server,
            datagram_size=datagram_sizes, gather=True, started=_monotonic(),
        )  # fmt: skip
        # Peers choose their own datagram size (a loopback-bound client sends 64 KB
        # to a server whose own limit is the Ethernet MTU): read any UDP payload.
        self._bufsize = _MAX_UDP_PAYLOAD
        self._lock = threading.Lock()
        self._followers = threading.Condition(self._lock)
        self._followers_waiting = 0
        self._helper_wake = threading.Condition(self._lock)
        self._helper_running = False
        self._queue: deque[Message] = deque()
        self._closed = False
        self._fds_released = False
        self._has_leader = False
        self._leader_wakes_at = 0.0
        self._last_service = 0.0
        # The engine may hold datagrams beyond the last batch we took (leader only).
        self._output_pending = False
        # Where the next packet of a message received in place lands (leader only;
        # set after each engine pass), and where the rest of a datagram that is
        # longer than that spills (see ``_read_landing``).
        self._landing: Landing | None = None
        self._spill = bytearray(_MAX_UDP_PAYLOAD)
        self._header = bytearray(Landing.HEADER)
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._wake_set = False
        self._epoll = select.epoll()
        self._epoll.register(sock.fileno(), select.EPOLLIN)
        self._epoll.register(self._wake_fd, select.EPOLLIN)
        self._epoll_fd = self._epoll.fileno()  # still answers after close()
        self._resolved: dict[Address, Address] = {}
        self.icmp_errors = 0
        self.send_errors = 0
        # Peers found unreachable, not yet drained by ``unreachable_peers``.
        self._unreachable: dict[Address, None] = {}
        self.unreachable_reported = 0

    @property
    def local_addr(self) -> Address:
        return self._local

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> EngineStats:
        """The engine's counters: datagrams, retransmissions, drops by reason."""
        return self._engine.stats

    def stats_snapshot(self) -> dict[str, int]:
        """Counters and gauges by name, a consistent copy (docs/udp-transport.md,
        "Counters"): the engine's (``HomaEngine.snapshot``) plus ``icmp_errors``,
        ``send_errors``, ``unreachable_reported`` and ``queued_messages``."""
        with self._lock:
            out = self._engine.snapshot()
            out.update(
                icmp_errors=self.icmp_errors, send_errors=self.send_errors,
                unreachable_reported=self.unreachable_reported,
                queued_messages=len(self._queue),
            )  # fmt: skip
        return out

    # -- ICMP errors and failed sends -------------------------------------------------

    def _read_icmp_errors(self) -> int:
        """Feed ICMP "unreachable" errors queued on the socket to the engine, and
        report the peers (``unreachable_peers``, ``on_unreachable``); return how
        many errors there were."""
        errors = read_icmp_errors(self._sock)
        if not errors:
            return 0
        with self._lock:
            now = _monotonic()
            for error in errors:
                self.icmp_errors += 1
                self._engine.receive_icmp_error(
                    error.dest, error.errno, now, error.bounced
                )
                if len(self._unreachable) < _MAX_UNREACHABLE:
                    self._unreachable[error.dest] = None
            self.unreachable_reported += len(errors)
            out = self._after_call(now)
        self._transmit(out)
        callback = self.on_unreachable
        if callback is not None:
            for dest in dict.fromkeys(error.dest for error in errors):
                callback(dest)
        return len(errors)

    def unreachable_peers(self) -> list[Address]:
        with self._lock:
            peers, self._unreachable = list(self._unreachable), {}
        return peers

    def _on_send_error(self, data: Datagram, peer: Address, exc: OSError) -> None:
        """Tell an earlier ICMP error apart from a failure to send this datagram.

        With ``IP_RECVERR`` the kernel reports a pending ICMP error (about some
        earlier destination) on the next ``sendto`` too, which then sends nothing:
        those errors are read from the error queue, where they name the right peer,
        and the datagram goes again. An error with nothing queued is about this
        datagram (no route, too big for the path): that peer's RPCs fail now.
        """
        if self._read_icmp_errors():
            try:
                self._sock.sendmsg(
                    [data] if isinstance(data, bytes) else data, (), 0, peer
                )
                return
            except OSError as again:
                exc = again
        self.send_errors += 1
        failed = data if isinstance(data, bytes) else bytes(data[0])  # its header
        with self._lock:
            now = _monotonic()
            err = exc.errno or errno.EIO
            self._engine.receive_icmp_error(peer, err, now, failed)
            out = self._after_call(now)
        self._transmit(out)

    # -- events and the queue (all under the lock) -------------------------------------

    def _take_events(self) -> Message | None:
        """The engine's first new event as a message for the caller; the rest are
        queued for other threads."""
        next_event = self._engine.next_event
        event = next_event()
        if event is None:
            return None
        first = to_message(event)
        event = next_event()
        while event is not None:
            self._enqueue(to_message(event))
            event = next_event()
        return first

    def _enqueue(self, message: Message) -> None:
        if not self._queue:
            self._signal()  # level-triggered readiness for event loops
        self._queue.append(message)
        if self._followers_waiting:
            self._followers.notify()

    def _pop(self) -> Message:
        message = self._queue.popleft()
        if not self._queue and self._wake_set:
            self._clear_signal()
        return message

    def _after_call(self, now: float) -> list[tuple[Datagram, Address]]:
        """After an engine input from an API call: queue its events, wake a leader
        whose sleep would overrun the engine's timer; the datagrams to send."""
        out = self._engine.datagrams_to_send(now)
        message = self._take_events()
        if message is not None:
            self._enqueue(message)
        if self._has_leader:
            timer = self._engine.get_timer()
            if timer is not None and timer < self._leader_wakes_at:
                self._signal()
        return out

    def _signal(self) -> None:
        if not self._wake_set and not self._fds_released:
            self._wake_set = True
            os.eventfd_write(self._wake_fd, 1)

    def _clear_signal(self) -> None:
        self._wake_set = False
        try:
            os.eventfd_read(self._wake_fd)
        except BlockingIOError:
            pass

    # -- transmission ---------------------------------------------------------------

    def _transmit(self, datagrams: list[tuple[Datagram, Address]]) -> None:
        """Send from the calling thread; a failed send fails that peer's RPCs.

        DATA packets come as ``[header, views of the message]`` and leave with
        ``sendmsg``: the kernel copies the message bytes straight from the
        application's buffer, instead of us first copying them behind a header
        (for 1 MB, sixteen 64 KB copies that also push the interpreter out of the
        CPU caches).
        """
        sendto, sendmsg = self._sock.sendto, self._sock.sendmsg
        for data, peer in datagrams:
            try:
                if isinstance(data, bytes):
                    sendto(data, peer)
                else:
                    sendmsg(data, (), 0, peer)
            except OSError as exc:
                if self._closed:
                    raise TransportClosedError("transport is closed") from None
                self._on_send_error(data, peer, exc)

    # -- small helpers ----------------------------------------------------------------

    def _release_fds(self) -> None:
        """Under the lock, once no thread can be inside the socket or epoll."""
        if self._fds_released:
            return
        self._fds_released = True
        self._epoll.close()
        os.close(self._wake_fd)
        self._sock.close()

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise TransportClosedError("transport is closed")

    def _checked(self, payload: Payload) -> bytes | list[memoryview]:
        if self._closed:
            raise TransportClosedError("transport is closed")
        length = payload_length(payload)
        check_message_length(length, self.max_message_length)
        self._note_length(length)
        # The engine slices packets from the payload lazily, so it must not change.
        if type(payload) is bytes:
            return payload
        if isinstance(payload, list):
            return [_frozen(part) for part in payload]
        return bytes(payload)

    def _note_length(self, length: int) -> None:
        """Count an outgoing message towards ``_poll_budget`` (``_POLL_PER_BYTE``).

        A long request is answered late, and a long response is followed late by
        the client's next call. The longest recent message counts (a split
        message's short tail must not cut what its long first part earned) until
        the leader finds the socket idle for the whole budget and sleeps.
        """
        extra = min(_MAX_POLL_EXTRA, length * _POLL_PER_BYTE)
        if extra > self._poll_extra:
            self._poll_extra = extra

    def _resolve(self, dest: Address) -> Address:
        """``dest`` as the numeric address datagrams from it will carry (cached)."""
        try:
            resolved = resolve(self._sock.family, dest[0], dest[1])
        except (OSError, UnicodeError) as exc:
            raise PeerUnreachableError(
                message=f"cannot resolve {dest[0]!r} for this socket's family: {exc}"
            ) from None
        if len(self._resolved) >= _MAX_RESOLVED:
            self._resolved.clear()
        self._resolved[dest] = resolved
        return resolved


def _frozen(part: bytes | bytearray | memoryview) -> memoryview:
    """A byte view of ``part`` that cannot change: views of ``bytes`` as they
    are (no copy), anything mutable copied."""
    view = memoryview(part)
    if not (view.readonly and type(view.obj) is bytes):
        view = memoryview(view.tobytes())
    return view if view.format == "B" else view.cast("B")
