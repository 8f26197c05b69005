"""Blocking helpers shared by the threaded channel and server.

Layer: rpc. Imports: stdlib only.

The call cores report progress through a ``notify()`` callback; ``Waiter`` turns
that into "block this thread until a condition holds or time runs out".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Waiter"]


class Waiter:
    """Wakes a blocked thread whenever ``wake()`` is called (the core's notify).

    A bare ``threading.Lock`` used as a one-slot semaphore, not an ``Event``: held
    means "no wake-up pending", and ``wake()`` releases it. ``Event.set`` and
    ``Event.wait`` run a ``Condition`` in Python (a new lock per wait, a deque of
    waiters), several microseconds a time, and a busy channel wakes a thread for
    nearly every call. The lock is made on the first real wait: most unary calls
    find their condition already true and never block, so they skip that cost.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock: threading.Lock | None = None

    def wake(self) -> None:
        lock = self._lock
        if lock is not None and lock.locked():
            # (try/except, not contextlib.suppress: this runs once per wake-up)
            try:
                lock.release()
            except RuntimeError:
                pass  # another waker released it first: one wake-up is pending

    def wait_for(self, ready: Callable[[], bool], timeout: float | None = None) -> bool:
        """Block until ``ready()`` is true (True) or ``timeout`` passes (False).

        ``ready()`` may consume what it checks for: once true it is not called again.
        """
        if ready():
            return True
        lock = self._lock
        if lock is None:
            lock = self._lock = threading.Lock()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            lock.acquire(blocking=False)  # held now: spends a stale wake-up
            if ready():
                return True
            if deadline is None:
                lock.acquire()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            lock.acquire(timeout=remaining)
