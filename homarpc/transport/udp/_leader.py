"""``UdpLeader``: the leader/follower receive machinery of ``UdpTransport``.

Layer: transport (udp backend). Imports: stdlib, ``transport._base``,
``transport.errors``, ``transport.engine``, ``transport.udp._core``.

The thread holding the leader role (a ``recv`` caller, ``linger``, or the timer
helper) reads the socket, feeds the engine, transmits what it wants sent and runs
its timers (``_service``); the first finished message is its own, the rest are
queued for the followers. ``_transport`` has the theory of operation; the hot
path here is ``_service`` and the reads it makes (one datagram per call, some
inlined on purpose: measured, see the comments).
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time

from .._base import Address, Message
from ..engine import Landing
from ..errors import TransportClosedError
from ._core import UdpCore

__all__ = ["UdpLeader"]

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
#: ``linger`` looks again at least this often (and steps down as leader between
#: slices, so a thread that comes to ``recv`` meanwhile takes over).
_LINGER_SLICE = 0.005
_monotonic = time.monotonic


class UdpLeader(UdpCore):
    """Receiving: the leader role, one pass over the socket and the timers,
    ``linger``, and the timer helper thread (``UdpTransport`` is the class to use).
    """

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

    # -- linger: before close, until nothing sent can be asked for again ---------------

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
