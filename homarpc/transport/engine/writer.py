"""Emitters: every packet the engine sends is built here.

Layer: transport.engine. Imports: the stdlib only.

Control packets (GRANT, RESEND, BUSY, RPC_UNKNOWN, NEED_ACK, ACK) are queued in
``control`` and leave before any DATA; DATA packets are returned to the SRPT
sender, which decides their order. Every emitter counts what it sends in the
shared ``EngineStats``.
"""

from __future__ import annotations

from . import wire
from .events import Address, Datagram
from .messages import OutgoingMessage
from .rpc import Rpc
from .stats import EngineStats

__all__ = ["PacketWriter"]

_DATA = wire.PacketType.DATA
#: Packets carrying fewer message bytes are built as one ``bytes`` even when
#: gathering: copying a few hundred bytes is cheaper than ``sendmsg``'s iovec.
GATHER_MIN = 4096


class PacketWriter:
    """Builds packets from ``local_port`` carrying ``tag``; DATA packets as one
    ``bytes``, or with ``gather`` as ``[header, views of the message...]``."""

    __slots__ = (
        "_tag_hi",
        "_tag_lo",
        "control",
        "gather",
        "local_port",
        "stats",
        "tag",
    )

    def __init__(
        self, local_port: int, tag: int, stats: EngineStats, gather: bool = False
    ) -> None:
        self.gather = gather
        self.local_port = local_port
        self.tag = tag
        self._tag_hi, self._tag_lo = (tag >> 16) & 0xFF, tag & 0xFFFF
        self.stats = stats
        self.control: list[tuple[Datagram, Address]] = []

    def take_control(self) -> list[tuple[Datagram, Address]]:
        """The queued control packets, oldest first; the queue starts over."""
        control, self.control = self.control, []
        return control

    def write_data_packet(
        self,
        rpc: Rpc,
        msgout: OutgoingMessage,
        span: tuple[int, int],
        retransmit: int,
        ack_id: int,
    ) -> Datagram:
        """A DATA packet carrying ``msgout``'s bytes ``[start, stop)``.

        ``ack_id`` (0: none) piggy-backs the ack of a finished RPC to the same peer.
        """
        start, stop = span
        port = rpc.peer[1]
        self.stats.data_packets_sent += 1
        header = wire.DATA_HEADER.pack(
            self.local_port, port, start, self._tag_hi, self._tag_lo, _DATA,
            wire.DOFF_DATA, 0, 0, 0, 0, rpc.wire_id, msgout.length, msgout.granted,
            ack_id, port if ack_id else 0, 0, retransmit, 0, 0, start,
        )  # fmt: skip
        if self.gather and stop - start >= GATHER_MIN:
            return msgout.packet_parts(header, start, stop)
        return msgout.packet(header, start, stop)

    def write_grant_packet(self, rpc: Rpc, offset: int) -> None:
        self.stats.grants_sent += 1
        packet = wire.pack_grant(
            self.local_port, rpc.peer[1], rpc.wire_id, self.tag, offset
        )
        self.control.append((packet, rpc.peer))

    def write_resend_packet(self, rpc: Rpc, offset: int, length: int) -> None:
        self.stats.resends_sent += 1
        packet = wire.pack_resend(
            self.local_port, rpc.peer[1], rpc.wire_id, self.tag, offset, length
        )
        self.control.append((packet, rpc.peer))

    def write_busy_packet(self, rpc: Rpc) -> None:
        self.stats.busy_sent += 1
        self._write_bare(wire.PacketType.BUSY, rpc.wire_id, rpc.peer)

    def write_need_ack_packet(self, rpc: Rpc) -> None:
        self.stats.need_acks_sent += 1
        self._write_bare(wire.PacketType.NEED_ACK, rpc.wire_id, rpc.peer)

    def write_rpc_unknown_packet(
        self, peer: Address, their_id: int, uptime: float
    ) -> None:
        """Tell ``peer`` we know nothing of its RPC ``their_id`` (its own id), and
        how long we have been up (``uptime`` seconds, sent in whole microseconds,
        at most 2**32 - 1: 71 minutes)."""
        self.stats.rpc_unknown_sent += 1
        micros = min(max(0, int(uptime * 1e6)), 0xFFFFFFFF)
        packet = wire.pack_control(
            wire.PacketType.RPC_UNKNOWN, self.local_port, peer[1], their_id ^ 1,
            self.tag, micros,
        )  # fmt: skip
        self.control.append((packet, peer))

    def write_ack_packet(
        self, peer: Address, client_id: int, others: list[int]
    ) -> None:
        """Acknowledge our RPC ``client_id`` and up to five ``others`` to ``peer``."""
        self.stats.acks_sent += 1
        acks = tuple((a, peer[1]) for a in others[: wire.MAX_ACKS_PER_PACKET])
        packet = wire.pack_ack(self.local_port, peer[1], client_id, self.tag, acks)
        self.control.append((packet, peer))

    def _write_bare(
        self, ptype: wire.PacketType, sender_id: int, peer: Address
    ) -> None:
        packet = wire.pack_control(ptype, self.local_port, peer[1], sender_id, self.tag)
        self.control.append((packet, peer))
