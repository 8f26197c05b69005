"""``UdpTransport``: the sans-IO Homa engine driven over one real UDP socket.

Layer: transport (udp backend). Imports: stdlib, ``transport._base``,
``transport.errors``, ``transport.engine``, ``transport.udp._sockets``.

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

The socket is blocking for ``sendto`` (a full send buffer makes the sender wait
rather than drop our own datagrams) and non-blocking for reads (``MSG_DONTWAIT``).
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
from typing import ClassVar

from .._base import (
    Address,
    Message,
    Payload,
    Transport,
    check_message_length,
    payload_length,
)
from ..engine import (
    REQUEST_REFUSED,
    SERVER_LOST_REQUEST,
    Datagram,
    HomaConfig,
    HomaEngine,
    Landing,
    Layout,
    RequestReceived,
    ResponseReceived,
    RpcFailed,
)
from ..engine.errors import LocalProtocolError as EngineProtocolError
from ..engine.stats import EngineStats
from ..errors import (
    HomaError,
    LocalProtocolError,
    PeerUnreachableError,
    RpcAbortedError,
    TransportClosedError,
    error_from_errno,
)
from ._sockets import SocketSizes, read_icmp_errors, resolve

__all__ = ["UdpTransport"]

#: Most datagrams one pass reads before it runs timers and returns to its caller.
_READ_BATCH = 64
#: Most datagrams read in one go before the engine runs (those already queued) ...
_GULP = 8
#: ... and most bytes (the third 64 KB datagram ends a gulp): the engine must see a
#: long message's packets soon enough to grant more before the sender runs out.
#: Eight 64 KB datagrams are a whole grant window (500 KB for one message): traces
#: showed the second GRANT leaving only after the sender had stopped, idle ~80 µs
#: per direction of a 1 MB echo; with this cap, that echo is ~4% faster.
_GULP_BYTES = 128 * 1024
#: Most data datagrams sent between two reads of the socket: a short message
#: arriving while we transmit a long one is read after at most this many.
_SEND_BATCH = 4
#: One datagram read: ``(bytes, peer, _NOT_LANDED)``, or ``(unpacked header, peer,
#: data)`` for a DATA packet whose data was read straight into its message
#: (``Landing``).
_Read = tuple[bytes | tuple[int, ...], Address, memoryview]
_NOT_LANDED = memoryview(b"")
#: Longest due timers wait for the socket to drain (see ``_service``).
_TIMER_GRACE = 0.02
#: Longest a leader sleeps in epoll without looking at the clock (also bounds how
#: late a timer can be if a wake-up is lost).
_MAX_POLL = 0.5
#: How often the helper thread looks in; it acts only if nobody else has driven
#: the socket and the timers for this long.
_HELPER_PERIOD = 0.01
#: The helper thread exits after the engine has had no timer for this long.
_HELPER_IDLE_EXIT = 2.0
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
#: ``linger`` looks again at least this often (and steps down as leader between
#: slices, so a thread that comes to ``recv`` meanwhile takes over).
_LINGER_SLICE = 0.005

_monotonic = time.monotonic


class UdpTransport(Transport):
    """A Homa message socket in user space over UDP. Open it with
    ``open_udp_transport``."""

    kind: ClassVar[str] = "udp"

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

    # -- the contract --------------------------------------------------------------

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

    def linger(self, timeout: float) -> bool:
        """Wait, at most ``timeout`` seconds, until the engine holds nothing that
        still needs this socket (``HomaEngine.in_flight``): our client RPCs have
        their responses or failed (aborted ones do not count), our responses are
        acknowledged (an ACK, or the client's next contact), and nothing waits to
        go out. While another thread is in ``recv`` (or the timer helper drives
        the socket) this only looks every ``_LINGER_SLICE``; otherwise it drives
        the socket itself, in slices, and queues what arrives for ``recv()``.
        True when nothing was left; False on timeout or once closed. Never raises.
        """
        deadline = _monotonic() + max(0.0, timeout)
        try:
            while True:
                with self._lock:
                    if self._closed:
                        return False
                    if not self._engine.in_flight():
                        return True
                    now = _monotonic()
                    if now >= deadline:
                        return False
                    lead = not self._has_leader
                    if lead:
                        self._has_leader = True
                until = min(deadline, now + _LINGER_SLICE)
                if not lead:
                    time.sleep(until - now)
                    continue
                try:
                    self._linger_slice(until)
                finally:
                    self._step_down()
        except (TransportClosedError, OSError, ValueError):
            return False

    def _linger_slice(self, until: float) -> None:
        """As leader, for ``linger``: service the socket and the timers until
        ``until`` or until nothing is left in flight, queueing every message.
        Sleeps in ``poll`` on the socket alone: the epoll set also holds the
        eventfd, which stays set while messages wait in the queue."""
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        while True:
            message = self._service()
            with self._lock:
                if message is not None:
                    self._enqueue(message)
                    continue
                now = _monotonic()
                if self._closed or now >= until or not self._engine.in_flight():
                    return
                if self._output_pending:
                    continue
                wait = self._poll_timeout(now, until)
                self._leader_wakes_at = now + wait
            for _, mask in poller.poll(wait * 1000.0):
                if mask & select.POLLERR:
                    self._read_icmp_errors()

    # -- leader ---------------------------------------------------------------------

    def _lead(self, deadline: float | None) -> Message | None:
        """Drive the socket and the timers until a message is ready or time is up.

        Like the kernel's ``poll_usecs``, the leader polls the socket without
        sleeping for ``busy_poll`` seconds, counted from the call and again from
        each datagram read: a reply that comes back within that time is read
        without a sleep and a wake-up, which cost more than the whole round trip
        when the peer runs on another CPU, and a long message whose packets and
        grants keep coming is never slept through.
        """
        spin_until = _monotonic() + self._poll_budget()
        sock_fd = self._sock.fileno()
        stats = self._engine.stats
        seen = stats.datagrams_received
        while True:
            message = self._service()
            if message is not None:
                return message
            with self._lock:
                self._raise_if_closed()
                if self._queue:  # another thread queued something meanwhile
                    return self._pop()
                now = _monotonic()
                if deadline is not None and now >= deadline:
                    return None
                if stats.datagrams_received != seen:
                    # Traffic is flowing (a long message, grants): the next datagram
                    # is likely close, so poll on from now rather than sleep.
                    seen = stats.datagrams_received
                    spin_until = now + self._poll_budget()
                spinning = now < spin_until
                if not spinning:
                    self._poll_extra = 0.0  # idle for the whole budget: back to base
                    if self._wake_set:
                        self._clear_signal()  # we are awake: the wake-up is spent
                    wait = self._poll_timeout(now, deadline)
                    self._leader_wakes_at = now + wait
            if spinning:
                os.sched_yield()  # a peer on this CPU gets to run and answer
                continue
            for fd, mask in self._epoll.poll(wait):
                if fd == sock_fd and mask & select.EPOLLERR:
                    self._read_icmp_errors()

    def _poll_budget(self) -> float:
        """Seconds to poll from now: ``busy_poll``, longer after a long message."""
        return self.busy_poll + self._poll_extra if self.busy_poll else 0.0

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

    def _poll_timeout(self, now: float, deadline: float | None) -> float:
        """Seconds the leader may sleep: until the caller's deadline, the engine's
        next timer, or ``_MAX_POLL``, whichever comes first."""
        wake = now + _MAX_POLL if deadline is None else min(deadline, now + _MAX_POLL)
        timer = self._engine.get_timer()
        if timer is not None and timer < wake:
            wake = timer
        return max(0.0, wake - now)

    def _step_down(self) -> None:
        with self._lock:
            self._has_leader = False
            self._leader_wakes_at = 0.0
            self._last_service = _monotonic()
            if self._closed:
                self._release_fds()
            elif self._followers_waiting:
                self._followers.notify()  # one follower takes over the socket

    # -- one pass over the socket and the timers --------------------------------------

    def _service(self) -> Message | None:
        """Read waiting datagrams, stopping at the first finished message, and send
        what the engine wants sent, ``_SEND_BATCH`` datagrams at a time between
        reads; run due timers once the socket is drained. Returns that message
        (any others are queued).

        Timers wait for a drained socket because under overload they would only
        add work (NEED_ACKs, RESENDs about data already queued in the socket);
        ``_TIMER_GRACE`` bounds how long they can be put off.

        Called only by the thread holding the leader role, without the lock.
        """
        engine, lock = self._engine, self._lock
        recvfrom, bufsize, is_v6 = self._sock.recvfrom, self._bufsize, self._is_v6
        drained = False
        streaming = False  # the previous read found a datagram too
        for _ in range(_READ_BATCH):
            reads: list[_Read] = []
            try:
                # ``_read``, inline: this runs on every pass of a polling leader,
                # and the call cost the 64 B transport round trip ~1 µs (A/B).
                if self._landing is None:
                    datagram, source = recvfrom(bufsize, socket.MSG_DONTWAIT)
                    source = source[:2] if is_v6 else source
                    reads.append((datagram, source, _NOT_LANDED))
                else:
                    reads.append(self._read_landing(self._landing))
            except BlockingIOError:
                drained = True
                if not self._output_pending:
                    break  # nothing came in and nothing is left to go out
            except OSError:
                if self._closed:
                    return None
                self._read_icmp_errors()
                continue
            # While datagrams keep coming (a long message), take what is already
            # queued behind this one before the engine's output side runs: one
            # pass of grant scheduling and one lock round then serve several
            # DATA packets. A lone datagram (a short message) goes in alone.
            if streaming and reads:
                self._read_queued(reads)
            with lock:
                now = _monotonic()
                for data, addr, landed in reads:
                    if isinstance(data, bytes):
                        engine.receive_datagram(data, addr, now)
                    else:
                        engine.receive_landed(data, landed, addr, now)
                self._landing = engine.landing()
                out = engine.datagrams_to_send(now, _SEND_BATCH)
                self._output_pending = len(out) >= _SEND_BATCH
                first = self._take_events()
            if out:
                self._transmit(out)
            if first is not None:
                return first
            streaming = bool(reads)
        timer = engine.get_timer()
        if timer is None:
            return None
        now = _monotonic()
        if timer > now or (not drained and now - timer < _TIMER_GRACE):
            return None
        with lock:
            now = _monotonic()
            engine.handle_timer(now)
            out = engine.datagrams_to_send(now)
            first = self._take_events()
        self._transmit(out)
        return first

    def _read_queued(self, reads: list[_Read]) -> None:
        """Add datagrams already waiting on the socket to ``reads``, up to
        ``_GULP`` datagrams or ``_GULP_BYTES`` in all (leader only)."""
        size = sum(_read_size(read) for read in reads)
        while len(reads) < _GULP and size < _GULP_BYTES:
            try:
                read = self._read()
            except OSError:  # drained, or an ICMP error the next read will take
                break
            reads.append(read)
            size += _read_size(read)

    def _read(self) -> _Read:
        """One datagram: into place if the engine expects one there (``_landing``),
        else as ``bytes``. Raises what ``recvfrom`` raises (leader only)."""
        if self._landing is not None:
            return self._read_landing(self._landing)
        data, addr = self._sock.recvfrom(self._bufsize, socket.MSG_DONTWAIT)
        return data, addr[:2] if self._is_v6 else addr, _NOT_LANDED

    def _read_landing(self, landing: Landing) -> _Read:
        """Read a datagram's header apart and its data straight into the message
        it continues (no copy after the kernel's). A datagram that turns out to
        be another is copied out of the zone at once, before the next read can
        land on it, and the rest of this batch is read the ordinary way."""
        header, zone = self._header, landing.zone
        size, _, _, addr = self._sock.recvmsg_into(
            (header, zone, self._spill), 0, socket.MSG_DONTWAIT
        )
        if self._is_v6:
            addr = addr[:2]
        fields = landing.matches(header, size, addr)
        if fields is not None:
            body = size - landing.HEADER
            if not landing.advance(body):
                self._landing = None
            return fields, addr, zone[:body]
        self._landing = None
        return _reassembled(header, zone, self._spill, size), addr, _NOT_LANDED

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

    # -- events and the queue (all under the lock) -------------------------------------

    def _take_events(self) -> Message | None:
        """The engine's first new event as a message for the caller; the rest are
        queued for other threads."""
        next_event = self._engine.next_event
        event = next_event()
        if event is None:
            return None
        first = _to_message(event)
        event = next_event()
        while event is not None:
            self._enqueue(_to_message(event))
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

    # -- helper thread: timers when nobody is in recv() -------------------------------

    def _start_helper(self) -> None:
        with self._lock:
            if self._closed or self._helper_running:
                return
            self._helper_running = True
        name = f"homarpc-udp-timers-{self._local[1]}"
        threading.Thread(target=self._run_helper, name=name, daemon=True).start()

    def _run_helper(self) -> None:
        """Every ``_HELPER_PERIOD``, stand in for a leader if nobody has driven the
        socket and timers meanwhile; exit once the engine has been idle a while."""
        idle_since = _monotonic()
        while True:
            with self._lock:
                self._helper_wake.wait(_HELPER_PERIOD)
                now = _monotonic()
                if self._engine.get_timer() is not None:
                    idle_since = now
                if self._closed or now - idle_since >= _HELPER_IDLE_EXIT:
                    self._helper_running = False
                    return
                if self._has_leader or now - self._last_service < _HELPER_PERIOD:
                    continue
                self._has_leader = True
            try:
                message = self._service()
                if message is not None:
                    with self._lock:
                        self._enqueue(message)
            except TransportClosedError:
                return  # closed under us: nothing left to drive
            finally:
                self._step_down()

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


def _read_size(read: _Read) -> int:
    data, _, landed = read
    return len(data) if isinstance(data, bytes) else Landing.HEADER + len(landed)


def _reassembled(
    header: bytearray, zone: memoryview, spill: bytearray, size: int
) -> bytes:
    """The ``size``-byte datagram ``recvmsg_into`` spread over the three buffers."""
    if size <= len(header):
        return bytes(header[:size])
    rest = size - len(header)
    if rest <= len(zone):
        return b"".join((header, zone[:rest]))
    return b"".join((header, zone, memoryview(spill)[: rest - len(zone)]))


def _request(event: RequestReceived) -> Message:
    return _received(event, 0, True)


def _response(event: ResponseReceived) -> Message:
    return _received(event, event.cookie, False)


def _received(
    event: RequestReceived | ResponseReceived, cookie: int, is_request: bool
) -> Message:
    """A complete message; one received in pieces stays in pieces (see
    ``Message.payload_parts``)."""
    payload = event.payload
    if isinstance(payload, list):
        return Message(event.rpc_id, cookie, event.peer, is_request, parts=payload)
    return Message(event.rpc_id, cookie, event.peer, is_request, payload)


def _failure(event: RpcFailed) -> Message:
    peer = f"peer {event.peer[0]}:{event.peer[1]}"
    error: HomaError
    if event.errno == SERVER_LOST_REQUEST:
        text = _UNREACHABLE_LOST if event.unreachable else _SERVER_LOST
        error = RpcAbortedError(event.errno, text.format(peer))
    elif event.errno == REQUEST_REFUSED:
        error = PeerUnreachableError(event.errno, _REFUSED.format(peer))
    else:
        error = error_from_errno(event.errno, peer)
    return Message(event.rpc_id, event.cookie, event.peer, False, b"", error)


_SERVER_LOST = (
    "the server lost an RPC whose request it may have processed (did it "
    "restart?); not resent ({})"
)
_UNREACHABLE_LOST = (
    "{} became unreachable after our request may have reached it; not resent "
    "(the server may have processed it)"
)
_REFUSED = "the server refused the request on every retry (RPC_UNKNOWN) ({})"


_CONVERTERS: dict[type, Callable[..., Message]] = {
    RequestReceived: _request,
    ResponseReceived: _response,
    RpcFailed: _failure,
}


def _to_message(event: RequestReceived | ResponseReceived | RpcFailed) -> Message:
    return _CONVERTERS[type(event)](event)
