"""Rate-limited logging for lines a remote peer can cause.

Layer: rpc. Imports: stdlib only.

A peer that sends bad frames, bad metadata or silly limits can make a server log a
line (or a traceback) per datagram; unthrottled, that fills disks and hides
everything else. ``RateLimitedLog`` lets ``burst`` lines per key through in each
window of ``per_seconds``; it counts the rest, and reports the count in one line
once the window has passed: when the next line for any key is offered, or when the
owner calls ``flush`` (e.g. from a periodic sweep, so a summary is not held back
when traffic stops).

Keys are whatever identifies "the same kind of line" (``"bad-metadata"``, or a
``(reason, peer host)`` tuple); at most ``max_keys`` are remembered, so a peer that
varies the key still cannot make this grow (the oldest window is closed, and its
summary logged, to make room).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["RateLimitedLog"]


class _Window:
    """One key's current window: when it began, lines let through, lines held back."""

    __slots__ = ("level", "passed", "start", "suppressed")

    def __init__(self, start: float, level: int) -> None:
        self.start = start
        self.level = level
        self.passed = 0
        self.suppressed = 0


#: A summary line to log once the lock is released: (level, key, count, seconds).
_Summary = tuple[int, Hashable, int, float]


class RateLimitedLog:
    """At most ``burst`` lines per key per ``per_seconds`` reach ``logger``.

    Thread-safe. Decisions are made under one lock; logging happens outside it (a
    slow handler does not serialise the callers). ``clock`` is injectable so tests
    need no sleeps.
    """

    def __init__(
        self,
        logger: logging.Logger,
        per_seconds: float = 10.0,
        burst: int = 5,
        *,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_seconds <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("per_seconds must be > 0, burst and max_keys >= 1")
        self.logger = logger
        self.per_seconds = per_seconds
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # Oldest window first: windows are (re)opened at the end, and all last as
        # long, so the expired ones are always at the front.
        self._windows: OrderedDict[Hashable, _Window] = OrderedDict()

    def log(
        self,
        key: Hashable,
        level: int,
        msg: str,
        *args: object,
        exc_info: bool | BaseException | None = None,
    ) -> bool:
        """Log ``msg % args`` at ``level`` unless ``key`` has used its burst in this
        window. Returns whether the line was logged."""
        if not self.logger.isEnabledFor(level):
            return False  # nothing would be written: keep no books either
        with self._lock:
            now = self._clock()
            summaries = self._expire(now)
            allowed = self._admit(key, level, now, summaries)
        self._report(summaries)
        if allowed:
            self.logger.log(level, msg, *args, exc_info=exc_info)
        return allowed

    def flush(self) -> None:
        """Log the summaries of every window that has passed (call it periodically)."""
        with self._lock:
            summaries = self._expire(self._clock())
        self._report(summaries)

    def _admit(
        self, key: Hashable, level: int, now: float, summaries: list[_Summary]
    ) -> bool:
        """Count one line for ``key``; whether it may be logged. Lock held."""
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self._max_keys:
                evicted, oldest = self._windows.popitem(last=False)
                self._close(evicted, oldest, now, summaries)
            window = self._windows[key] = _Window(now, level)
        if window.passed < self.burst:
            window.passed += 1
            return True
        window.suppressed += 1
        window.level = max(window.level, level)
        return False

    def _expire(self, now: float) -> list[_Summary]:
        """Close the windows that have passed, oldest first. Lock held."""
        summaries: list[_Summary] = []
        windows = self._windows
        while windows:
            key, window = next(iter(windows.items()))
            if now - window.start < self.per_seconds:
                break  # the rest began later still
            del windows[key]
            self._close(key, window, now, summaries)
        return summaries

    @staticmethod
    def _close(
        key: Hashable, window: _Window, now: float, summaries: list[_Summary]
    ) -> None:
        if window.suppressed:
            summaries.append((window.level, key, window.suppressed, now - window.start))

    def _report(self, summaries: list[_Summary]) -> None:
        for level, key, count, seconds in summaries:
            self.logger.log(
                level,
                "%d more log line(s) like the above (%r) suppressed in %.0f s",
                count,
                key,
                seconds,
            )
