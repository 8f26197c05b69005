"""The receiver's grant scheduler: which incoming messages may send more, and how much.

Layer: transport.engine. Imports: the stdlib only.

Policy (``spec/homa-protocol.md`` §2.1, simplified for user space):

* rank grantable messages by bytes not yet received, ties to the older message;
* at most ``overcommit`` messages are active, one per peer before any peer gets two;
* each active message may have ``window = max_incoming / (active + 1)`` bytes granted
  but not received; the sum over *all* incoming messages (unscheduled bytes
  included) never exceeds ``max_incoming`` through a grant;
* every ``FIFO_PERIOD``-th decision the oldest message joins the active set, so a
  stream of short messages cannot starve a long one;
* grants grow in steps of at least a quarter window or one of the sender's
  packets (``rpc.data_per_packet``, the size we use towards that peer, standing
  in for the one it uses), whichever is larger, but never more than the window,
  unless they reach the end. Kernel Homa grants per packet; here every GRANT
  costs both ends a datagram and a pass through Python, and a 1 MB message needs
  3-4 grants instead of ~20 (on loopback: 1 MB echo ~5% faster);
* the first grant to a message commits the reassembly budget to its whole length
  (``budget.py``); a message that does not fit gets no grant and waits.
"""

from __future__ import annotations

from .budget import RxBudget
from .messages import COMMITTED
from .rpc import Rpc

__all__ = ["GrantScheduler"]

FIFO_PERIOD = 20


class GrantScheduler:
    """Keeps the incomplete incoming messages and hands out grants."""

    __slots__ = ("_decisions", "_rpcs", "budget", "max_incoming", "overcommit")

    def __init__(
        self, max_incoming: int, overcommit: int, budget: RxBudget | None = None
    ) -> None:
        self.max_incoming = max_incoming
        self.overcommit = overcommit
        #: Charged for each message granted (None: unlimited, for tests).
        self.budget = budget
        self._rpcs: dict[Rpc, None] = {}  # insertion-ordered set
        self._decisions = 0

    def add(self, rpc: Rpc) -> None:
        """Track ``rpc``'s incoming message (it must have ``msgin``)."""
        self._rpcs[rpc] = None

    def remove(self, rpc: Rpc) -> None:
        self._rpcs.pop(rpc, None)

    def held(self) -> tuple[int, int]:
        """(messages being reassembled, bytes of them received so far)."""
        rpcs = [rpc for rpc in self._rpcs if rpc.msgin is not None]
        return len(rpcs), sum(rpc.msgin.received for rpc in rpcs if rpc.msgin)

    def outstanding(self) -> int:
        """Bytes granted (or sent unscheduled) to us but not yet received."""
        return sum(rpc.msgin.outstanding for rpc in self._rpcs if rpc.msgin is not None)

    def schedule(self) -> list[Rpc]:
        """Raise ``msgin.granted`` where the policy allows; return the RPCs to GRANT."""
        if len(self._rpcs) == 1:
            return self._schedule_one(next(iter(self._rpcs)))
        grantable = [
            rpc
            for rpc in self._rpcs
            if rpc.msgin is not None and rpc.msgin.granted < rpc.msgin.length
        ]
        if not grantable:
            return []
        grantable.sort(key=_rank)
        active = self._pick_active(grantable)
        window = self.max_incoming // (len(active) + 1)
        total = self.outstanding()
        granted: list[Rpc] = []
        for rpc in active:
            room = self.max_incoming - total
            if room <= 0:
                break
            increase = self._increase(rpc, window, room)
            if increase:
                assert rpc.msgin is not None
                rpc.msgin.granted += increase
                total += increase
                granted.append(rpc)
        return granted

    def _schedule_one(self, rpc: Rpc) -> list[Rpc]:
        """``schedule()`` when one message is coming in (a long message on its
        own, the usual case): the same decision without ranking and sets. It
        runs after every batch of DATA packets."""
        msgin = rpc.msgin
        if msgin is None or msgin.granted >= msgin.length:
            return []
        self._decisions += 1  # keeps the FIFO cadence of the general path
        room = self.max_incoming - msgin.outstanding
        if room <= 0:
            return []
        increase = self._increase(rpc, self.max_incoming // 2, room)
        if not increase:
            return []
        msgin.granted += increase
        return [rpc]

    def _increase(self, rpc: Rpc, window: int, room: int) -> int:
        msgin = rpc.msgin
        assert msgin is not None
        target = min(msgin.length, msgin.received + window, msgin.granted + room)
        increase = target - msgin.granted
        if increase <= 0:
            return 0
        step = min(max(rpc.data_per_packet, window // 4), window)
        if target < msgin.length and increase < step:
            return 0  # wait until a worthwhile step can be granted
        budget = self.budget
        if msgin.commit != COMMITTED and budget and not budget.commit(msgin):
            return 0  # no room for the whole message: it waits
        return increase

    def _pick_active(self, ranked: list[Rpc]) -> list[Rpc]:
        """Up to ``overcommit`` of ``ranked``: one per peer first, then the rest."""
        self._decisions += 1
        chosen: dict[Rpc, None] = {}
        peers: set[tuple[str, int]] = set()
        for rpc in ranked:
            if rpc.peer not in peers:
                peers.add(rpc.peer)
                chosen[rpc] = None
                if len(chosen) == self.overcommit:
                    break
        for rpc in ranked:
            if len(chosen) >= self.overcommit:
                break
            chosen.setdefault(rpc, None)
        if self._decisions % FIFO_PERIOD == 0:
            oldest = min(ranked, key=_age)
            if oldest not in chosen:
                if len(chosen) >= self.overcommit:
                    chosen.popitem()
                chosen[oldest] = None
        return sorted(chosen, key=_rank)


def _rank(rpc: Rpc) -> tuple[int, int]:
    msgin = rpc.msgin
    assert msgin is not None
    return msgin.length - msgin.received, msgin.seq


def _age(rpc: Rpc) -> int:
    assert rpc.msgin is not None
    return rpc.msgin.seq
