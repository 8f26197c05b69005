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
    """Wakes a blocked thread whenever ``wake()`` is called (the core's notify)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def wake(self) -> None:
        self._event.set()

    def wait_for(self, ready: Callable[[], bool], timeout: float | None = None) -> bool:
        """Block until ``ready()`` is true (True) or ``timeout`` passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._event.clear()
            if ready():
                return True
            if deadline is None:
                self._event.wait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._event.wait(remaining)
