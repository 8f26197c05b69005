"""The client endpoint: one transport shared by a channel's calls, and who reads it.

Layer: rpc. Imports: stdlib, public ``homarpc.transport`` names, rpc-layer modules.
No asyncio.

Theory of operation: responses must be read off the transport and handed to their
``ClientCallCore`` (found by the completion cookie). A thread hand-off costs more
than a whole loopback round trip, so the thread that is *waiting* for a call reads
the transport itself (it "pumps") and usually receives its own response directly.
At most one thread pumps at a time; other waiters sleep on their ``Waiter`` and are
woken by the pump when their call progresses, or when the pump leaves so one of
them can take over. A background thread pumps only while no caller does (futures
with callbacks, streams nobody is reading, ``homarpc.aio``), watching the
transport's ``fileno()`` so it never sits inside ``recv`` when a caller wants it.
It also expires deadlines.

Interface (stable; used by ``channel.py``, ``_client_calls.py`` and ``homarpc.aio``)::

    endpoint = ClientEndpoint(transport, max_receive_message_length=4 MiB)
    core = endpoint.open_call(dest, method, metadata, timeout, request=...,
                              response_streaming=..., notify=...); core.start()
    endpoint.wait_for(ready, waiter, timeout) -> bool   # block, pumping if free
    endpoint.pump_ready() -> bool   # never blocks: read what is waiting, if free
    endpoint.close()
"""

from __future__ import annotations

import itertools
import logging
import select
import threading
import time
from collections.abc import Callable

from ._call import ClientCallCore, MetadataEntries, Notify
from ._framing import Flags, Frame
from ._placement import install_layout
from ._stream import DEFAULT_WINDOW, advertised_limit, send_limit
from ._sync import Waiter
from .status import StatusCode
from .transport import Address, Message, Transport, TransportClosedError

__all__ = ["ClientEndpoint"]

log = logging.getLogger("homarpc.client")

#: Longest the background thread sleeps between deadline checks.
_TICK = 0.25
#: A call that has sent nothing for this long sends an empty frame, so the server
#: can tell a quiet client from a dead one (``_server_endpoint.LIVENESS_TIMEOUT``).
KEEPALIVE_INTERVAL = 10.0
#: Longest a pumping caller blocks in one ``recv`` (it re-checks its call after).
_PUMP_SLICE = 0.05
#: Servers whose announced message limit is remembered, at most.
_MAX_PEERS = 4096


#: Longest ``close()`` waits for the answers to the CANCELs it sent.
_CLOSE_LINGER = 0.5


class ClientEndpoint:
    """A client transport shared by all calls of a channel (see module docstring)."""

    def __init__(
        self,
        transport: Transport,
        *,
        max_receive_message_length: int = 4 * 1024 * 1024,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self.transport = transport
        self.max_receive_message_length = max_receive_message_length
        self.max_message_length = transport.max_message_length
        #: Largest Homa message each server announced it accepts (``limit_for``).
        self._announced: dict[Address, int] = {}
        self._advertised = advertised_limit(self.max_message_length)
        self.window = window
        # Long responses are received straight into the bytes handed out.
        install_layout(transport, max_receive_message_length)
        #: Responses dropped because they did not parse.
        self.malformed = 0
        #: Messages ``pump_ready`` has dispatched (a loop reader's sign of activity).
        self.pumped = 0
        self._calls: dict[int, ClientCallCore] = {}
        # Call ids only grow per socket, which lets a server remember which calls
        # started in a few bytes a client (``_server_ledger.StartedCalls``). They
        # start from the clock in microseconds, so a new socket that happens to
        # get an old one's port starts above every id the old one used.
        self._ids = itertools.count(time.time_ns() // 1000)
        self._lock = threading.Lock()
        self._unattended: set[int] = set()  # live calls nobody promised to wait for
        self._next_keepalive = 0.0
        #: When ``_expire_deadlines`` must next look: the earliest deadline of a
        #: live call, the next keepalive round, or ``_TICK`` from the last look.
        #: (Read without the lock: a stale value only makes a pump look once too
        #: early or one slice late.) Deadlines are found by scanning the live
        #: calls, not kept in a heap: most calls end long before their deadline,
        #: and a heap would keep every finished call of the last timeout.
        self._next_due = 0.0
        self._closed = False
        # Who reads the transport: at most one pump; waiters on standby. The
        # condition's lock is taken directly where nobody waits or is notified
        # (``with lock`` is a C call; ``with condition`` two Python ones).
        self._pump_lock = threading.Lock()
        self._pump_cond = threading.Condition(self._pump_lock)
        self._pumping = False
        self._pump_owner = 0  # thread id of the pump, 0 when none
        self._standby: set[Waiter] = set()
        self._thread = threading.Thread(
            target=self._run, name="homarpc-client", daemon=True
        )
        self._thread.start()

    # -- calls --------------------------------------------------------------------

    def open_call(
        self,
        dest: Address,
        method: str,
        metadata: MetadataEntries,
        timeout: float | None,
        *,
        request: bytes | None,
        response_streaming: bool,
        notify: Notify,
        attended: bool = False,
    ) -> ClientCallCore:
        """Create a call; it is sent when the caller calls ``core.start()``.

        ``attended=True`` promises that a thread will block in ``wait_for`` until
        the call ends (a blocking unary call): it then reads the transport itself,
        and the background thread need not wake up for this call at all.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            call_id = next(self._ids)
            head = Frame(
                call_id, 0, Flags.POLL, method, timeout, metadata or None, None, None,
                b"", None, self._advertised,
            )  # fmt: skip
            core = ClientCallCore(
                self, call_id, dest, deadline, response_streaming, notify, head, request
            )
            if self._closed:
                core.code, core.details = StatusCode.UNAVAILABLE, "Channel closed!"
                return core
            self._calls[call_id] = core
            if deadline is not None and deadline < self._next_due:
                self._next_due = deadline
            if not attended:
                self._unattended.add(call_id)
        if not attended:
            with self._pump_cond:
                self._pump_cond.notify_all()  # the background thread has work
        return core

    def limit_for(self, dest: Address) -> int:
        """The largest Homa message to send ``dest``: one its responses announced
        (``Frame.max_message``), else the kernel's, which every backend takes."""
        return send_limit(self.max_message_length, self._announced.get(dest))

    def learn_limit(self, dest: Address, announced: int | None) -> None:
        """``dest`` said it accepts Homa messages of up to ``announced`` bytes
        (None: it said nothing, or we lost track of it: the default again)."""
        if self._announced.get(dest) == announced:
            return  # the usual case: every call's first response says the same
        if announced is None:
            del self._announced[dest]
            return
        if len(self._announced) >= _MAX_PEERS and dest not in self._announced:
            self._announced.clear()  # (a bound, not a cache policy: rare)
        self._announced[dest] = announced

    def forget(self, call_id: int) -> None:
        with self._lock:
            self._calls.pop(call_id, None)
            self._unattended.discard(call_id)

    def close(self) -> None:
        """Cancel every live call (CANCELLED "Channel closed!", as grpcio) and
        close the transport."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            calls = list(self._calls.values())
        for core in calls:
            core.cancel(StatusCode.CANCELLED, "Channel closed!")
        if calls:
            # The CANCELs just sent must reach the servers (their handlers stop):
            # Homa retransmits from this socket, so it stays open until they are
            # answered (a kernel module loses the first packet on loopback).
            self.transport.linger(_CLOSE_LINGER)
        self.transport.close()
        with self._pump_cond:
            self._pump_cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=2.0)

    # -- waiting, and pumping while waiting -----------------------------------------

    def wait_for(
        self, ready: Callable[[], bool], waiter: Waiter, timeout: float | None = None
    ) -> bool:
        """Block until ``ready()`` (True) or ``timeout`` (False), reading the
        transport for everyone while no other thread does.

        ``ready()`` may consume what it checks for (a read): once it has returned
        True it is not called again.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._pump_owner == threading.get_ident():
            # Called from inside the pump (a done-callback making a blocking call):
            # keep pumping here, or nobody would.
            return ready() or self._pump(ready, deadline)
        satisfied = False

        def ready_or_pump_free() -> bool:
            nonlocal satisfied
            satisfied = ready()
            return satisfied or not self._pumping

        while not ready():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if self._claim_pump():
                try:
                    if self._pump(ready, deadline):
                        return True
                finally:
                    self._release_pump()
                continue
            with self._pump_lock:
                self._standby.add(waiter)
            try:
                waiter.wait_for(ready_or_pump_free, remaining)
            finally:
                self._leave_standby(waiter)
            if satisfied:
                return True
        return True

    def _leave_standby(self, waiter: Waiter) -> None:
        """Leave the standby set; if the pump is free, wake someone to take it (we
        may have been the successor ``_release_pump`` chose)."""
        with self._pump_lock:
            self._standby.discard(waiter)
            successor = None if self._pumping else next(iter(self._standby), None)
        if successor is not None:
            successor.wake()

    def _claim_pump(self) -> bool:
        with self._pump_lock:
            if self._pumping or self._closed:
                return False
            self._pumping = True
            self._pump_owner = threading.get_ident()
            return True

    def _release_pump(self) -> None:
        with self._pump_lock:
            self._pumping = False
            self._pump_owner = 0
            successor = next(iter(self._standby), None) if self._standby else None
            if self._unattended:
                self._pump_cond.notify_all()  # the background thread takes over
        if successor is not None:
            successor.wake()

    def _pump(self, ready: Callable[[], bool], deadline: float | None) -> bool:
        """Read and dispatch messages until ``ready()`` (True) or ``deadline``."""
        recv = self.transport.recv
        while not ready():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            wait = min(_PUMP_SLICE, max(0.0, self._next_due - now))
            if deadline is not None:
                wait = min(wait, deadline - now)
            try:
                message = recv(timeout=wait)
            except TransportClosedError:
                return False
            if message is not None:
                self._dispatch(message)
            if time.monotonic() >= self._next_due:
                self._expire_deadlines()
        return True

    # -- the background thread ------------------------------------------------------

    def _run(self) -> None:
        poller = select.poll()
        try:
            poller.register(self.transport.fileno(), select.POLLIN)
        except (OSError, ValueError):
            return  # closed before we started
        while not self._closed:
            self._expire_deadlines()
            with self._pump_cond:
                if self._pumping or not self._unattended:
                    # A caller reads for everyone, or every live call has a thread
                    # waiting for it that will: stay out of the way.
                    self._pump_cond.wait(self._sleep_time(time.monotonic()))
                    continue
            try:
                poller.poll(self._sleep_time(time.monotonic()) * 1000)
            except (OSError, ValueError):
                return
            self.pump_ready()

    def pump_ready(self) -> bool:
        """Dispatch the messages waiting on the transport, if no one else is reading
        it (they dispatch for us then); never blocks. For a reader driven by the
        transport's ``fileno()``, e.g. an event loop (``homarpc.aio``).

        Returns False once the transport is found closed (stop watching it), else
        True.
        """
        if not self._claim_pump():
            return True  # another reader holds the transport; it drains for us
        try:
            self._drain()
        finally:
            self._release_pump()
        return not self.transport.closed

    def _drain(self) -> None:
        """Dispatch whatever is waiting, without blocking."""
        for _ in range(64):
            try:
                message = self.transport.recv(timeout=0)
            except TransportClosedError:
                return
            if message is None:
                return
            self.pumped += 1
            self._dispatch(message)

    def _dispatch(self, message: Message) -> None:
        with self._lock:
            core = self._calls.get(message.cookie >> 2)
        if core is None:
            message.release()  # a late answer for a finished call
            return
        try:
            core.on_response(message)
        except Exception:  # a bug must not kill the channel's receiver
            log.exception(
                "homarpc: error handling a response for call %d", core.call_id
            )

    def _sleep_time(self, now: float) -> float:
        return min(_TICK, max(0.0, self._next_due - now))

    def _expire_deadlines(self) -> None:
        """Expire due deadlines; now and then, show the servers we are alive."""
        now = time.monotonic()
        expired: list[ClientCallCore] = []
        quiet: list[ClientCallCore] = []
        next_due = now + _TICK
        with self._lock:
            for core in self._calls.values():
                deadline = core.deadline
                if deadline is None:
                    continue
                if deadline <= now:
                    expired.append(core)
                elif deadline < next_due:
                    next_due = deadline
            if now >= self._next_keepalive:
                self._next_keepalive = now + KEEPALIVE_INTERVAL / 2
                quiet = [
                    c
                    for c in self._calls.values()
                    if now - c.last_sent >= KEEPALIVE_INTERVAL
                ]
            self._next_due = min(next_due, self._next_keepalive)
        for core in expired:
            core.expire()
        for core in quiet:
            core.keepalive()
