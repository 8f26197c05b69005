"""The reassembly budget: bytes held for partly received messages, in all and per peer.

Layer: transport.engine. Imports: the stdlib only.

What a message claims (its length, in every DATA packet) costs nothing; what it
holds does. A message being reassembled is charged:

* ``MESSAGE_OVERHEAD`` from its first packet on (the objects that track it), so
  that messages of one byte are not free;
* while *uncommitted*, every byte that has arrived: unscheduled bytes are the
  sender's free allowance, and whatever a sender sends unasked is held all the
  same;
* once *committed*, its whole length. The receiver commits to a message when it
  first grants it anything (Homa grants are how a receiver commits memory) or
  writes it into place (a placement is a buffer of the whole length): so a
  message granted once can always be received whole, and partly received
  messages can never fill the budget between them and wait for each other.

Limits: ``HomaConfig.max_rx_buffer`` in all and ``HomaConfig.rx_share`` per peer
(``(host, port)``), so one peer cannot take the whole budget. A first packet
that does not fit is dropped (the sender retries when asked), an uncommitted
packet that does not fit is dropped, a commitment that does not fit is not
made: the message waits for room, and one refused for ``timeout_ticks`` of
waiting is freed like a silent one (``Rpc.age``).
"""

from __future__ import annotations

from .events import Address
from .messages import COMMITTED, REFUSED, IncomingMessage

__all__ = ["MESSAGE_OVERHEAD", "RxBudget"]

#: Bytes charged per message being reassembled, on top of its data.
MESSAGE_OVERHEAD = 1024


class RxBudget:
    """Bytes charged to incoming messages (``IncomingMessage.charged``), in all
    (``held``) and per peer, against ``limit`` and ``share``."""

    __slots__ = ("_peers", "held", "limit", "share")

    def __init__(self, limit: int, share: int) -> None:
        self.limit = limit
        self.share = share
        self.held = 0
        self._peers: dict[Address, int] = {}

    def fits(self, peer: Address, nbytes: int) -> bool:
        """Whether ``nbytes`` more may be charged to ``peer``."""
        return (
            self.held + nbytes <= self.limit
            and self._peers.get(peer, 0) + nbytes <= self.share
        )

    def charge(self, msgin: IncomingMessage, nbytes: int) -> None:
        """Charge ``nbytes`` more to ``msgin`` (and its ``owner``), unchecked."""
        msgin.charged += nbytes
        self.held += nbytes
        peers = self._peers
        peers[msgin.owner] = peers.get(msgin.owner, 0) + nbytes

    def commit(self, msgin: IncomingMessage) -> bool:
        """Charge ``msgin`` its whole length if that fits; False (and marked
        ``REFUSED``) if not."""
        rest = msgin.length + MESSAGE_OVERHEAD - msgin.charged
        if rest > 0 and not self.fits(msgin.owner, rest):
            msgin.commit = REFUSED
            return False
        if rest > 0:
            self.charge(msgin, rest)
        msgin.commit = COMMITTED
        return True

    def release(self, msgin: IncomingMessage) -> None:
        """``msgin`` is complete or abandoned: give back all it was charged."""
        nbytes = msgin.charged
        msgin.charged = 0
        if not nbytes:
            return
        self.held -= nbytes
        left = self._peers[msgin.owner] - nbytes
        if left:
            self._peers[msgin.owner] = left
        else:
            del self._peers[msgin.owner]

    @property
    def peers(self) -> int:
        """Peers charged anything now."""
        return len(self._peers)
