"""Long gRPC messages received into the bytes handed out (``_placement.py``)."""

from __future__ import annotations

import random

import pytest

from homarpc._framing import (
    Flags,
    Frame,
    FrameError,
    decode_frame,
    encode_frame,
    peek_head,
)
from homarpc._placement import MIN_PLACED, PlacedMessage, make_layout
from homarpc._stream import Assembler, message_frames
from homarpc.transport import Placement, writable_bytes

LIMIT = 4 * 1024 * 1024


def test_writable_bytes_is_bytes_written_through_its_view():
    data, view = writable_bytes(6)
    view[:] = b"homarpc"[:6]
    assert type(data) is bytes and data == b"homarp"


def _frames(payload: bytes, max_length: int = 1_000_000) -> list[bytes]:
    first = Frame(7, 0, 0, "/pkg.Svc/Method", 1.0, ())
    return [encode_frame(f) for f in message_frames(first, payload, 1, max_length, 0)]


def _receive(message: bytes, layout) -> list:
    """What the transport delivers: the layout sees the first packet (64 KB)."""
    placement = layout(memoryview(message)[:65_000], len(message))
    if placement is None:
        return [message]
    placement.view[:] = memoryview(message)[placement.skip :]
    return [message[: placement.skip], placement]


def test_a_one_frame_message_arrives_as_the_very_bytes_it_was_written_into():
    payload = random.Random(1).randbytes(500_000)
    (message,) = _frames(payload)
    parts = _receive(message, make_layout(LIMIT))
    placed = parts[-1]
    assert isinstance(placed, PlacedMessage)
    frame = decode_frame(parts)
    assert frame.payload is placed  # no pieces, no copy
    result = Assembler(LIMIT).add(frame.payload, True)
    assert result == payload and result is placed.data


def test_a_split_message_is_completed_behind_its_placed_first_frame():
    payload = random.Random(2).randbytes(1_000_000)
    lead, tail = _frames(payload)
    assert decode_frame(lead).message_length == len(payload)
    assembler = Assembler(LIMIT)
    first = decode_frame(_receive(lead, make_layout(LIMIT)))
    assert isinstance(first.payload, PlacedMessage)
    assert assembler.add(first.payload, False) is None and assembler.is_partial
    result = assembler.add(decode_frame(tail).payload, True)
    assert result == payload and result is first.payload.data


def test_a_sender_announcing_more_than_it_sends_gets_only_what_it_sent():
    payload = random.Random(3).randbytes(1_000_000)
    lead, tail = _frames(payload)
    lying = decode_frame(lead)._replace(message_length=len(payload) + 5_000)
    lead_frame = decode_frame(_receive(encode_frame(lying), make_layout(LIMIT)))
    assembler = Assembler(LIMIT)
    assembler.add(lead_frame.payload, False)
    assert assembler.add(decode_frame(tail).payload, True) == payload  # no junk


def test_a_sender_announcing_less_than_it_sends_is_joined_instead():
    payload = random.Random(4).randbytes(1_000_000)
    lead, tail = _frames(payload)
    short = decode_frame(lead)._replace(message_length=len(payload) - 1)
    lead_frame = decode_frame(_receive(encode_frame(short), make_layout(LIMIT)))
    assert isinstance(lead_frame.payload, PlacedMessage)
    assembler = Assembler(LIMIT)
    assembler.add(lead_frame.payload, False)
    assert assembler.add(decode_frame(tail).payload, True) == payload


def test_layout_declines_what_it_should_not_place():
    layout = make_layout(LIMIT)
    small = _frames(bytes(MIN_PLACED - 1))[0]
    assert layout(memoryview(small), len(small)) is None
    lead = _frames(bytes(1_000_000))[0]
    assert make_layout(500_000)(memoryview(lead)[:65_000], len(lead)) is None
    no_length = encode_frame(decode_frame(lead)._replace(message_length=None))
    assert layout(memoryview(no_length)[:65_000], len(no_length)) is None
    huge = encode_frame(decode_frame(lead)._replace(message_length=10**8))
    assert make_layout(-1)(memoryview(huge)[:65_000], len(huge)) is None
    assert layout(memoryview(b"\x02" + bytes(40)), 100_000) is None  # not a frame


def test_peek_head_reads_flags_payload_offset_and_length():
    lead = _frames(bytes(1_000_000))[0]
    flags, offset, length = peek_head(memoryview(lead)[:1000])
    assert flags & Flags.MESSAGE and not flags & Flags.MSG_END
    assert length == 1_000_000
    assert decode_frame(lead).payload.obj is lead  # a view
    assert len(lead) - offset == len(decode_frame(lead).payload)
    assert peek_head(memoryview(lead)[:10]) is None


def test_frames_with_a_placement_elsewhere_are_joined_correctly():
    payload = random.Random(5).randbytes(200_000)
    (message,) = _frames(payload)
    view = memoryview(bytearray(message[100:]))
    parts = [message[:100], Placement(100, view)]  # head ends before the split
    assert bytes(decode_frame(parts).payload) == payload


def test_peek_head_declines_heads_that_do_not_parse():
    lead = bytearray(_frames(bytes(1_000_000))[0][:1000])
    head_len = int.from_bytes(lead[16:20], "big")
    # A record running past the head, then a MESSAGE_LENGTH of the wrong size.
    bad_run = bytearray(lead)
    bad_run[21:25] = (head_len + 1).to_bytes(4, "big")
    assert peek_head(memoryview(bad_run)) is None
    odd = encode_frame(Frame(7, 1, Flags.MESSAGE))[:20]
    record = bytes([6]) + (4).to_bytes(4, "big") + bytes(4)
    odd = odd[:16] + len(record).to_bytes(4, "big") + record
    assert peek_head(memoryview(odd)) is None
    with pytest.raises(FrameError, match="message length record is not 8 bytes"):
        decode_frame(odd)
