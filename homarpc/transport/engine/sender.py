"""The sender's scheduler: which message gets the next DATA packet (SRPT).

Layer: transport.engine. Imports: the stdlib only.

Messages with something to transmit sit in a heap keyed by the bytes they have
never sent, so the shortest remaining message always goes first (Homa's SRPT).
Sending from the head only lowers its key, so the head stays the head until it
runs out of granted bytes; a heap entry whose message has nothing to send any more
is dropped lazily when it reaches the top. Pending retransmissions of a message
go before its new bytes.
"""

from __future__ import annotations

import heapq

from .events import Address, Datagram
from .ledger import PendingAcks
from .messages import OutgoingMessage
from .rpc import Rpc, RpcState
from .writer import PacketWriter

__all__ = ["SrptSender"]

_OUTGOING = RpcState.OUTGOING


class SrptSender:
    """Turns outgoing messages into DATA packets, shortest remaining first.

    Packets carry up to ``rpc.data_per_packet`` bytes each (chosen per peer).

    Args:
        writer: builds the packets.
        acks: acks to piggy-back on DATA packets to the same peer.
    """

    __slots__ = ("_acks", "_heap", "_seq", "_writer")

    def __init__(self, writer: PacketWriter, acks: PendingAcks) -> None:
        self._writer = writer
        self._acks = acks
        self._heap: list[tuple[int, int, Rpc]] = []
        self._seq = 0

    def queue(self, rpc: Rpc) -> None:
        """Consider ``rpc`` for transmission if it has something to send."""
        msgout = rpc.msgout
        if not rpc.queued and msgout is not None and msgout.is_ready:
            self._seq += 1
            heapq.heappush(self._heap, (msgout.bytes_left, self._seq, rpc))
            rpc.queued = True

    def fill(self, out: list[tuple[Datagram, Address]], limit: int) -> None:
        """Append DATA packets to ``out`` until none may go or ``len(out) == limit``."""
        heap = self._heap
        while heap and len(out) != limit:
            rpc = heap[0][2]
            msgout = rpc.msgout
            if msgout is None or not msgout.is_ready or rpc.state is not _OUTGOING:
                heapq.heappop(heap)
                rpc.queued = False
                continue
            out.append((self._next_packet(rpc, msgout), rpc.peer))
        if heap and (msgout := heap[0][2].msgout) is not None:
            # Stopped by ``limit``: refresh the head's key, it has shrunk.
            heapq.heapreplace(heap, (msgout.bytes_left, heap[0][1], heap[0][2]))

    def _next_packet(self, rpc: Rpc, msgout: OutgoingMessage) -> Datagram:
        """The next DATA packet of ``msgout``: retransmissions first, then new bytes."""
        if msgout.retransmit:
            start, end = msgout.retransmit[0]
            stop = min(end, start + rpc.data_per_packet)
            if stop >= end:
                del msgout.retransmit[0]
            else:
                msgout.retransmit[0] = (stop, end)
            retransmit = 1
            self._writer.stats.retransmitted_packets += 1
        else:
            start = msgout.sent
            stop = min(msgout.granted, start + rpc.data_per_packet)
            msgout.sent = stop
            msgout.started = True
            retransmit = 0
        ack_id = self._acks.pop(rpc.peer) if self._acks else 0
        return self._writer.write_data_packet(
            rpc, msgout, (start, stop), retransmit, ack_id
        )
