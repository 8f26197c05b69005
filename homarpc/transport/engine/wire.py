"""Homa packet formats: the kernel's headers, byte for byte, big-endian.

Layer: transport.engine. Imports: the stdlib only.

Reading and writing packets lives here and nowhere else (h11's split of reading,
writing and legality). Layouts follow ``homa_wire.h`` as described in
``spec/homa-protocol.md`` §1.3-1.5; sizes include the 28-byte common header:
DATA 56 (+ payload), GRANT 33, RESEND 37, RPC_UNKNOWN/BUSY/NEED_ACK/FREEZE 28,
CUTOFFS 62, ACK 80.

UDP-mode conventions (§6.2): ``sport``/``dport`` are the UDP ports as the sender
knows them (a receiver does not check them: a NAT rewrites the UDP ports only); ``flags``,
``window``, ``checksum`` and ``urgent`` are zero; ``doff`` is 0xE0 for DATA and 0x50
for control packets; a DATA packet's offset is written both in ``sequence`` and in
``seg.offset``, and on receive ``seg.offset == 0xFFFFFFFF`` means "use ``sequence``".
The three unused ``ack`` bytes at offset 8 carry a tag (``HomaConfig.wire_tag``) so
stray datagrams from other UDP software are rejected; kernel Homa leaves them zero.

The hot path uses the precompiled ``struct.Struct`` objects directly; the
``pack_*``/``unpack_*`` functions are the readable codec the tests and the control
path use.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

__all__ = [
    "ACK_BODY",
    "ACK_ENTRY",
    "COMMON",
    "CUTOFFS_BODY",
    "DATA_BODY",
    "DATA_HEADER",
    "DATA_HEADER_LENGTH",
    "GRANT_BODY",
    "MAX_ACKS_PER_PACKET",
    "MIN_LENGTH",
    "OFFSET_IN_SEQUENCE",
    "RESEND_ALL",
    "RESEND_BODY",
    "AckPacket",
    "CommonHeader",
    "CutoffsPacket",
    "DataHeader",
    "GrantPacket",
    "PacketType",
    "Readable",
    "ResendPacket",
    "data_offset",
    "pack_ack",
    "pack_control",
    "pack_cutoffs",
    "pack_data_header",
    "pack_grant",
    "pack_resend",
    "unpack_ack",
    "unpack_common",
    "unpack_cutoffs",
    "unpack_data_header",
    "unpack_grant",
    "unpack_resend",
]


#: What the decoders accept: any bytes-like object (it is not kept).
Readable = bytes | bytearray | memoryview


class PacketType(enum.IntEnum):
    """Opcodes of ``enum homa_packet_type`` (the ``type`` byte at offset 11)."""

    DATA = 0x10
    GRANT = 0x11
    RESEND = 0x12
    RPC_UNKNOWN = 0x13
    BUSY = 0x14
    CUTOFFS = 0x15
    FREEZE = 0x16
    NEED_ACK = 0x17
    ACK = 0x18


#: sport, dport, sequence, tag (3 "ack" bytes as one 24-bit value split 8+16),
#: type, doff, flags, window, checksum, urgent, sender_id.
COMMON = struct.Struct("!HHIBHBBBHHHQ")
#: message_length, incoming, ack.client_id, ack.server_port, cutoff_version,
#: retransmit, pad (3 bytes as 8+16), seg.offset.
DATA_BODY = struct.Struct("!IIQHHBBHI")
DATA_HEADER = struct.Struct("!HHIBHBBBHHHQIIQHHBBHI")
GRANT_BODY = struct.Struct("!IB")  # offset, priority
RESEND_BODY = struct.Struct("!IIB")  # offset, length, priority
CUTOFFS_BODY = struct.Struct("!8IH")  # unsched_cutoffs[8], cutoff_version
ACK_BODY = struct.Struct("!H")  # num_acks
ACK_ENTRY = struct.Struct("!QH")  # client_id, server_port

DATA_HEADER_LENGTH = DATA_HEADER.size
MAX_ACKS_PER_PACKET = 5
#: RESEND ``length`` meaning "nothing received: resend all you have sent".
RESEND_ALL = 0xFFFFFFFF
#: ``seg.offset`` meaning "the offset is in ``common.sequence``".
OFFSET_IN_SEQUENCE = 0xFFFFFFFF

DOFF_DATA = 0xE0
DOFF_CONTROL = 0x50

#: Full struct size per type; shorter packets are dropped (the kernel checks sizeof).
MIN_LENGTH: dict[int, int] = {
    PacketType.DATA: DATA_HEADER.size,
    PacketType.GRANT: COMMON.size + GRANT_BODY.size,
    PacketType.RESEND: COMMON.size + RESEND_BODY.size,
    PacketType.RPC_UNKNOWN: COMMON.size,
    PacketType.BUSY: COMMON.size,
    PacketType.CUTOFFS: COMMON.size + CUTOFFS_BODY.size,
    PacketType.FREEZE: COMMON.size,
    PacketType.NEED_ACK: COMMON.size,
    PacketType.ACK: COMMON.size + ACK_BODY.size + MAX_ACKS_PER_PACKET * ACK_ENTRY.size,
}


class CommonHeader(NamedTuple):
    """The 28-byte header every packet starts with."""

    sport: int
    dport: int
    sequence: int
    tag: int
    type: int
    doff: int
    flags: int
    window: int
    checksum: int
    urgent: int
    sender_id: int


class DataHeader(NamedTuple):
    """The DATA-specific fields (bytes 28..55); ``offset`` already resolved."""

    message_length: int
    incoming: int
    ack_client_id: int
    ack_server_port: int
    cutoff_version: int
    retransmit: int
    offset: int


class GrantPacket(NamedTuple):
    offset: int
    priority: int


class ResendPacket(NamedTuple):
    offset: int
    length: int
    priority: int


class CutoffsPacket(NamedTuple):
    unsched_cutoffs: tuple[int, ...]
    cutoff_version: int


class AckPacket(NamedTuple):
    """Acknowledged (client_id, server_port) pairs from the body (not the header)."""

    acks: tuple[tuple[int, int], ...]


def _split_tag(tag: int) -> tuple[int, int]:
    return (tag >> 16) & 0xFF, tag & 0xFFFF


def unpack_common(data: Readable) -> CommonHeader:
    """Decode the common header; the tag's two parts are joined into one 24-bit int."""
    f = COMMON.unpack_from(data)
    return CommonHeader(f[0], f[1], f[2], (f[3] << 16) | f[4], *f[5:])


def pack_control(
    ptype: PacketType,
    sport: int,
    dport: int,
    sender_id: int,
    tag: int,
    sequence: int = 0,
) -> bytes:
    """Encode a common header for a control packet (also the whole of BUSY & co).

    ``sequence`` is 0 except in RPC_UNKNOWN, where it carries the sender's uptime
    in microseconds (UDP mode; see ``HomaEngine``; kernel Homa sends 0).
    """
    hi, lo = _split_tag(tag)
    return COMMON.pack(
        sport, dport, sequence, hi, lo, ptype, DOFF_CONTROL, 0, 0, 0, 0, sender_id
    )


def pack_data_header(
    sport: int,
    dport: int,
    sender_id: int,
    tag: int,
    fields: DataHeader,
) -> bytes:
    """Encode a 56-byte DATA header (offset in both ``sequence`` and ``seg.offset``)."""
    hi, lo = _split_tag(tag)
    return DATA_HEADER.pack(
        sport, dport, fields.offset, hi, lo, PacketType.DATA, DOFF_DATA, 0, 0, 0, 0,
        sender_id, fields.message_length, fields.incoming, fields.ack_client_id,
        fields.ack_server_port, fields.cutoff_version, fields.retransmit, 0, 0,
        fields.offset,
    )  # fmt: skip


def data_offset(sequence: int, seg_offset: int) -> int:
    """The offset of a DATA packet's first byte, honouring the 0xFFFFFFFF rule."""
    return sequence if seg_offset == OFFSET_IN_SEQUENCE else seg_offset


def unpack_data_header(data: Readable) -> DataHeader:
    """Decode the DATA fields of a packet at least 56 bytes long."""
    sequence = COMMON.unpack_from(data)[2]
    length, incoming, ack_id, ack_port, cutoff, retransmit, _, _, seg = (
        DATA_BODY.unpack_from(data, COMMON.size)
    )
    return DataHeader(
        length,
        incoming,
        ack_id,
        ack_port,
        cutoff,
        retransmit,
        data_offset(sequence, seg),
    )


def pack_grant(
    sport: int, dport: int, sender_id: int, tag: int, offset: int, priority: int = 0
) -> bytes:
    """Encode a 33-byte GRANT: the sender may now send all bytes below ``offset``."""
    head = pack_control(PacketType.GRANT, sport, dport, sender_id, tag)
    return head + GRANT_BODY.pack(offset, priority)


def unpack_grant(data: Readable) -> GrantPacket:
    return GrantPacket(*GRANT_BODY.unpack_from(data, COMMON.size))


def pack_resend(
    sport: int,
    dport: int,
    sender_id: int,
    tag: int,
    offset: int,
    length: int,
    priority: int = 7,
) -> bytes:
    """Encode a 37-byte RESEND for ``[offset, offset + length)`` (or ``RESEND_ALL``)."""
    head = pack_control(PacketType.RESEND, sport, dport, sender_id, tag)
    return head + RESEND_BODY.pack(offset, length, priority)


def unpack_resend(data: Readable) -> ResendPacket:
    return ResendPacket(*RESEND_BODY.unpack_from(data, COMMON.size))


def pack_cutoffs(
    sport: int,
    dport: int,
    sender_id: int,
    tag: int,
    cutoffs: tuple[int, ...],
    version: int,
) -> bytes:
    """Encode a 62-byte CUTOFFS packet (eight u32 cutoffs then a u16 version)."""
    head = pack_control(PacketType.CUTOFFS, sport, dport, sender_id, tag)
    return head + CUTOFFS_BODY.pack(*cutoffs, version)


def unpack_cutoffs(data: Readable) -> CutoffsPacket:
    fields = CUTOFFS_BODY.unpack_from(data, COMMON.size)
    return CutoffsPacket(tuple(fields[:8]), fields[8])


def pack_ack(
    sport: int,
    dport: int,
    sender_id: int,
    tag: int,
    acks: tuple[tuple[int, int], ...] = (),
) -> bytes:
    """Encode an 80-byte ACK: the header's RPC plus up to five (client_id, port) pairs.

    Raises:
        ValueError: more than ``MAX_ACKS_PER_PACKET`` pairs.
    """
    if len(acks) > MAX_ACKS_PER_PACKET:
        raise ValueError(f"an ACK carries at most {MAX_ACKS_PER_PACKET} acks")
    body = bytearray(ACK_BODY.size + MAX_ACKS_PER_PACKET * ACK_ENTRY.size)
    ACK_BODY.pack_into(body, 0, len(acks))
    for i, (client_id, server_port) in enumerate(acks):
        ACK_ENTRY.pack_into(
            body, ACK_BODY.size + i * ACK_ENTRY.size, client_id, server_port
        )
    return pack_control(PacketType.ACK, sport, dport, sender_id, tag) + bytes(body)


def unpack_ack(data: Readable) -> AckPacket:
    """Decode an ACK's body entries.

    Raises:
        ValueError: ``num_acks`` is larger than the five entries the packet holds.
    """
    (count,) = ACK_BODY.unpack_from(data, COMMON.size)
    if count > MAX_ACKS_PER_PACKET:
        raise ValueError(f"ACK claims {count} entries")
    base = COMMON.size + ACK_BODY.size
    return AckPacket(
        tuple(
            ACK_ENTRY.unpack_from(data, base + i * ACK_ENTRY.size) for i in range(count)
        )
    )
