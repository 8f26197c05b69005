"""The engine's one timer: when ``handle_timer`` is due, and the tick count.

Layer: transport.engine. Imports: the stdlib only.

Protocol time is counted in ticks, one per timer run, not per elapsed ``tick``
seconds: after a long pause of the caller (GC, a busy event loop) every RPC ages by
one tick, not by the length of the pause, so pauses do not time RPCs out. While
RPCs or acks are pending the timer runs every ``tick``; when only tombstones are
left, nothing else ages, so it sleeps until the first of them expires and then
jumps the count there.
"""

from __future__ import annotations

from .ledger import Tombstones

__all__ = ["TickTimer"]


class TickTimer:
    """Deadline of the next timer run and the tick count.

    Attributes:
        ticks: timer runs so far (plus the jumps made after idle sleeps).
        deadline: when the next run is due, or ``None``.
    """

    __slots__ = ("_idle_until", "deadline", "tick", "ticks")

    def __init__(self, tick: float) -> None:
        self.tick = tick
        self.ticks = 0
        self.deadline: float | None = None
        self._idle_until: int | None = None

    @property
    def needs_arming(self) -> bool:
        """Not armed, or only asleep until a tombstone expires (new work wakes it)."""
        return self.deadline is None or self._idle_until is not None

    def arm(self, now: float, *, busy: bool, tombstones: Tombstones) -> None:
        """Set the deadline: a tick from ``now`` if ``busy``, else the next expiry."""
        if not self.needs_arming:
            return
        if busy:
            self.deadline = now + self.tick
            self._idle_until = None
        elif tombstones and self.deadline is None:
            self._idle_until = tombstones.next_expiry()
            self.deadline = now + max(1, self._idle_until - self.ticks) * self.tick

    def run_if_due(self, now: float) -> bool:
        """Count a tick if one is due (the caller then does the tick's work)."""
        if self.deadline is None or now < self.deadline:
            return False
        self.ticks += 1
        if self._idle_until is not None:
            self.ticks = max(self.ticks, self._idle_until)
            self._idle_until = None
        self.deadline = None
        return True
