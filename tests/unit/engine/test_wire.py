"""Byte-exact packet layouts against spec/homa-protocol.md §1.3-1.5 (big-endian)."""

from __future__ import annotations

import pytest

from homarpc.transport.engine import wire
from homarpc.transport.engine.wire import PacketType

TAG = 0xA1B2C3
SPORT, DPORT, SENDER = 0x1234, 0x5678, 0x0102030405060708


def field(packet: bytes, offset: int, size: int) -> int:
    return int.from_bytes(packet[offset : offset + size], "big")


def check_common(packet: bytes, ptype: int, doff: int, sequence: int = 0) -> None:
    assert field(packet, 0, 2) == SPORT
    assert field(packet, 2, 2) == DPORT
    assert field(packet, 4, 4) == sequence
    assert field(packet, 8, 3) == TAG  # the three unused "ack" bytes carry the tag
    assert packet[11] == ptype
    assert packet[12] == doff
    assert packet[13] == 0  # flags
    assert field(packet, 14, 2) == 0  # window
    assert field(packet, 16, 2) == 0  # checksum
    assert field(packet, 18, 2) == 0  # urgent
    assert field(packet, 20, 8) == SENDER


def test_packet_type_opcodes_match_homa_wire_h():
    assert {t.name: t.value for t in PacketType} == {
        "DATA": 0x10, "GRANT": 0x11, "RESEND": 0x12, "RPC_UNKNOWN": 0x13,
        "BUSY": 0x14, "CUTOFFS": 0x15, "FREEZE": 0x16, "NEED_ACK": 0x17, "ACK": 0x18,
    }  # fmt: skip


def test_minimum_lengths_are_the_kernel_struct_sizes():
    assert wire.MIN_LENGTH == {
        PacketType.DATA: 56, PacketType.GRANT: 33, PacketType.RESEND: 37,
        PacketType.RPC_UNKNOWN: 28, PacketType.BUSY: 28, PacketType.CUTOFFS: 62,
        PacketType.FREEZE: 28, PacketType.NEED_ACK: 28, PacketType.ACK: 80,
    }  # fmt: skip
    assert wire.COMMON.size == 28


def test_data_header_layout():
    fields = wire.DataHeader(
        message_length=0x11223344, incoming=0x55667788,
        ack_client_id=0x99AABBCCDDEEFF00, ack_server_port=0x0A0B,
        cutoff_version=0x0C0D, retransmit=1, offset=0x01020304,
    )  # fmt: skip
    packet = wire.pack_data_header(SPORT, DPORT, SENDER, TAG, fields)
    assert len(packet) == 56
    check_common(packet, 0x10, 0xE0, sequence=0x01020304)
    assert field(packet, 28, 4) == 0x11223344
    assert field(packet, 32, 4) == 0x55667788
    assert field(packet, 36, 8) == 0x99AABBCCDDEEFF00
    assert field(packet, 44, 2) == 0x0A0B
    assert field(packet, 46, 2) == 0x0C0D
    assert packet[48] == 1
    assert packet[49:52] == b"\0\0\0"
    assert field(packet, 52, 4) == 0x01020304  # seg.offset: real offset, both places
    assert wire.unpack_data_header(packet) == fields


def test_data_offset_minus_one_means_use_sequence():
    fields = wire.DataHeader(100, 100, 0, 0, 0, 0, offset=4096)
    packet = bytearray(wire.pack_data_header(SPORT, DPORT, SENDER, TAG, fields))
    packet[52:56] = b"\xff\xff\xff\xff"  # how the kernel writes unsegmented packets
    assert wire.unpack_data_header(packet).offset == 4096
    packet[4:8] = (777).to_bytes(4, "big")
    assert wire.unpack_data_header(packet).offset == 777


def test_grant_layout():
    packet = wire.pack_grant(SPORT, DPORT, SENDER, TAG, offset=0xDEADBEEF, priority=3)
    assert len(packet) == 33
    check_common(packet, 0x11, 0x50)
    assert field(packet, 28, 4) == 0xDEADBEEF
    assert packet[32] == 3
    assert wire.unpack_grant(packet) == (0xDEADBEEF, 3)


def test_resend_layout_and_resend_all_sentinel():
    packet = wire.pack_resend(SPORT, DPORT, SENDER, TAG, 0x01020304, wire.RESEND_ALL, 7)
    assert len(packet) == 37
    check_common(packet, 0x12, 0x50)
    assert field(packet, 28, 4) == 0x01020304
    assert packet[32:36] == b"\xff\xff\xff\xff"
    assert packet[36] == 7
    assert wire.unpack_resend(packet) == (0x01020304, 0xFFFFFFFF, 7)


@pytest.mark.parametrize(
    "ptype",
    [PacketType.RPC_UNKNOWN, PacketType.BUSY, PacketType.NEED_ACK, PacketType.FREEZE],
)
def test_bare_control_packets_are_the_common_header(ptype):
    packet = wire.pack_control(ptype, SPORT, DPORT, SENDER, TAG)
    assert len(packet) == 28
    check_common(packet, ptype, 0x50)
    assert wire.unpack_common(packet) == (
        SPORT, DPORT, 0, TAG, ptype, 0x50, 0, 0, 0, 0, SENDER
    )  # fmt: skip


def test_cutoffs_layout():
    cutoffs = tuple(range(0x01010101, 0x01010109))
    packet = wire.pack_cutoffs(SPORT, DPORT, SENDER, TAG, cutoffs, 0xBEEF)
    assert len(packet) == 62
    check_common(packet, 0x15, 0x50)
    for i, value in enumerate(cutoffs):
        assert field(packet, 28 + 4 * i, 4) == value
    assert field(packet, 60, 2) == 0xBEEF
    assert wire.unpack_cutoffs(packet) == (cutoffs, 0xBEEF)


def test_ack_layout_is_full_size_with_ten_byte_entries():
    acks = ((0x1111111111111112, 0x2222), (0x3333333333333334, 0x4444))
    packet = wire.pack_ack(SPORT, DPORT, SENDER, TAG, acks)
    assert len(packet) == 80
    check_common(packet, 0x18, 0x50)
    assert field(packet, 28, 2) == 2
    assert field(packet, 30, 8) == 0x1111111111111112
    assert field(packet, 38, 2) == 0x2222
    assert field(packet, 40, 8) == 0x3333333333333334
    assert field(packet, 48, 2) == 0x4444
    assert packet[50:80] == bytes(30)
    assert wire.unpack_ack(packet).acks == acks


def test_ack_refuses_more_than_five_entries_both_ways():
    with pytest.raises(ValueError, match="at most 5"):
        wire.pack_ack(SPORT, DPORT, SENDER, TAG, tuple((2 * i, 1) for i in range(6)))
    packet = bytearray(wire.pack_ack(SPORT, DPORT, SENDER, TAG))
    packet[28:30] = (6).to_bytes(2, "big")
    with pytest.raises(ValueError, match="6 entries"):
        wire.unpack_ack(packet)
