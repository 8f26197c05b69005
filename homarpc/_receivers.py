"""The threads that read a blocking server's transport: one receives, one watches.

Layer: rpc. Imports: stdlib and public ``homarpc.transport`` names. No asyncio
(``homarpc.aio`` reads its transport from the event loop instead).

Theory of operation: exactly one thread, the *receiver*, sits in ``transport.recv``.
It handles every message itself (``handle``), which may run the call's handler right
there: no thread hand-off on the way to the handler or back. A second thread, the
*watcher*, sleeps beside it and looks in now and then; when it finds the receiver
busy with one message for ``_STUCK`` seconds or more (a slow handler), it takes over
the receiver role and starts a new watcher. The old receiver, once its message is
handled, becomes the watcher if there is none, else it exits. A thread about to
block for a long time (a streaming handler) gives the role away at once with
``hand_off()``. The receiver also calls ``sweep(now)`` every ``_TICK`` seconds.

Why not several threads waiting in ``recv`` (the transport's leader/follower): then
every request moves the transport's leader role to another thread, whose busy poll
competes for the GIL with the thread running the handler. Measured on this 2-CPU
machine, raw udp echo: 50-65 us per round trip with one thread receiving, 156 us
with two.

The watcher looks every ``_WATCH`` seconds while it finds the receiver busy with
the same message as at its last look, and backs off to ``_MAX_WATCH`` while it finds
it idle or busy with ever new messages (keeping up), so an idle or busy server wakes
it ~100 times a second (a busy one used to wake it ~1,000 times, each wake-up taking
the GIL from the receiver); a call that arrives while the receiver is stuck waits at
most ``_MAX_WATCH + _STUCK`` before another thread reads it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ._ratelimit import RateLimitedLog
from .transport import Message, Transport, TransportClosedError

__all__ = ["Receivers"]

log = logging.getLogger("homarpc.server")
#: A peer may be able to reach a bug again and again: a few lines a minute.
_bug_log = RateLimitedLog(log, per_seconds=60.0, burst=5)

#: Longest the receiver blocks in one ``recv`` (it sweeps between calls).
_TICK = 0.25
#: A receiver busy with one message this long is taken to be stuck.
_STUCK = 0.001
#: The watcher looks this often while the receiver is busy ...
_WATCH = 0.001
#: ... and backs off, doubling, to this while it is idle.
_MAX_WATCH = 0.01


class Receivers:
    """A receiver thread and a watcher thread for one server transport."""

    def __init__(
        self,
        transport: Transport,
        handle: Callable[[Message], None],
        sweep: Callable[[float], None],
        name: str = "homarpc-server",
    ) -> None:
        self._transport = transport
        self._handle = handle
        self._sweep = sweep
        self._name = name
        self._lock = threading.Lock()
        self._watching = threading.Condition(self._lock)
        self._receiver: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        #: (receiver, when it started on its current message), or None while it
        #: waits in ``recv``. One tuple, so the watcher reads both at once.
        self._busy: tuple[threading.Thread, float] | None = None
        self._threads: set[threading.Thread] = set()
        #: Threads started but not yet in a role: each will take a free one.
        self._pending = 0
        self._next_sweep = 0.0
        self._closed = False

    def start(self) -> None:
        with self._lock:
            self._spawn()  # becomes the receiver, and sees that a watcher is spawned

    def close(self, timeout: float = 2.0) -> None:
        """Stop the threads (the caller closes the transport, which wakes the
        receiver) and wait up to ``timeout`` for them."""
        with self._lock:
            self._closed = True
            self._watching.notify_all()
            threads = list(self._threads)
        give_up = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=max(0.0, give_up - time.monotonic()))

    def hand_off(self) -> None:
        """Called by a thread about to block for long: if it is the receiver, the
        watcher takes over now instead of after ``_STUCK``."""
        with self._lock:
            if self._receiver is threading.current_thread():
                self._receiver = None
                self._watching.notify()
                self._ensure_watcher()

    # -- the threads ------------------------------------------------------------

    def _spawn(self) -> None:
        """Start a thread (under the lock); it takes whichever role is free."""
        thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._threads.add(thread)
        self._pending += 1
        thread.start()

    def _ensure_watcher(self) -> None:
        """Keep the invariant every role change relies on (under the lock): while
        the receiver role is held or free, a watcher exists or a thread on its
        way will take a role. Without it, a receiver that hands off while the
        only other thread has just become receiver itself leaves nobody reading:
        the server would stop for good (issue: five streams wedged a server)."""
        if self._watcher is None and self._pending == 0 and not self._closed:
            self._spawn()

    def _run(self) -> None:
        me = threading.current_thread()
        try:
            fresh = True
            while self._take_role(me, fresh):
                fresh = False
                self._receive(me)
        except TransportClosedError:
            pass
        finally:
            with self._lock:
                self._threads.discard(me)
                if self._receiver is me:
                    self._receiver = None
                if self._watcher is me:
                    self._watcher = None

    def _take_role(self, me: threading.Thread, fresh: bool) -> bool:
        """Become the receiver (True), or the watcher until the receiver is free
        or stuck; False when this thread should exit."""
        with self._lock:
            if fresh:
                self._pending -= 1
            if self._closed:
                return False
            if self._receiver is None:
                self._receiver = me
                self._ensure_watcher()
                return True
            if self._watcher is not None or self._pending > 0:
                return False  # one watcher is enough
            self._watcher = me
            taking_over = self._watch(me)
            self._watcher = None
            if not taking_over:
                return False
            self._receiver = me
            self._ensure_watcher()
            return True

    def _watch(self, me: threading.Thread) -> bool:
        """Sleep (under the lock) until the receiver role is free or its holder
        is stuck (True), or the receivers close (False)."""
        period = _WATCH
        last_seen = None
        while not self._closed:
            if self._receiver is None:
                return True
            busy = self._busy
            if busy is None or busy[0] is not self._receiver or busy is not last_seen:
                # Idle, or busy with another message than at the last look (it
                # keeps up): look less often. A busy server would otherwise wake
                # this thread every _WATCH, taking the GIL from the receiver.
                period = min(period * 2, _MAX_WATCH)
            elif time.monotonic() - busy[1] >= _STUCK:
                self._busy = None
                return True
            else:
                period = _WATCH
            last_seen = busy
            self._watching.wait(period)
        return False

    def _receive(self, me: threading.Thread) -> None:
        """Receive and handle messages while this thread is the receiver."""
        recv = self._transport.recv
        while self._receiver is me:
            message = recv(timeout=_TICK)
            now = time.monotonic()
            if message is not None:
                self._busy = busy = (me, now)
                try:
                    self._handle(message)
                except Exception:  # a bug must not kill the receiver
                    _bug_log.log(
                        "handle", logging.ERROR,
                        "homarpc: error handling a message from %s", message.peer,
                        exc_info=True,
                    )  # fmt: skip
                with self._lock:
                    if self._busy is busy:  # (a new receiver may have set its own)
                        self._busy = None
                now = time.monotonic()
            if now >= self._next_sweep:
                self._next_sweep = now + _TICK
                self._sweep(now)
