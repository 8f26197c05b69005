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

    The event behind it is made on the first real wait: most unary calls find
    their condition already true and never block, so they skip that cost.
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: threading.Event | None = None

    def wake(self) -> None:
        event = self._event
        if event is not None:
            event.set()

    def wait_for(self, ready: Callable[[], bool], timeout: float | None = None) -> bool:
        """Block until ``ready()`` is true (True) or ``timeout`` passes (False).

        ``ready()`` may consume what it checks for: once true it is not called again.
        """
        if ready():
            return True
        if self._event is None:
            self._event = threading.Event()
        event = self._event
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            event.clear()
            if ready():
                return True
            if deadline is None:
                event.wait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            event.wait(remaining)
