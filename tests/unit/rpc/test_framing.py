"""The sans-IO frame codec and stream helpers (homarpc._framing, homarpc._stream)."""

from __future__ import annotations

import contextlib
import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homarpc._framing import (
    GATHER_THRESHOLD,
    HEADER_SIZE,
    Flags,
    Frame,
    FrameError,
    Pieces,
    decode_frame,
    encode_frame,
    encode_frame_parts,
)
from homarpc._stream import (
    Assembler,
    FlowControlError,
    MessageTooLargeError,
    ReorderBuffer,
    message_frames,
)
from homarpc.metadata import Metadatum

LIMIT = 1_000_000


def test_a_full_frame_round_trips():
    frame = Frame(
        call_id=2**63 + 5,
        seq=7,
        flags=Flags.MESSAGE | Flags.MSG_END | Flags.EOS | Flags.POLL,
        method="/pkg.Svc/Method",
        timeout=1.5,
        metadata=(
            Metadatum("a", "1"),
            Metadatum("a", "2"),
            Metadatum("k-bin", b"\0\xff"),
        ),
        status=(5, "not here"),
        trailers=(Metadatum("t", "x"),),
        payload=b"hello",
    )
    assert decode_frame(encode_frame(frame)) == frame


def test_an_empty_ack_is_just_the_header():
    data = encode_frame(Frame(9))
    assert len(data) == HEADER_SIZE
    assert decode_frame(data) == Frame(9)


def test_present_but_empty_metadata_differs_from_absent():
    assert decode_frame(encode_frame(Frame(1, metadata=()))).metadata == ()
    assert decode_frame(encode_frame(Frame(1))).metadata is None


def test_the_header_layout_is_the_documented_one():
    data = encode_frame(Frame(0x0102030405060708, 3, Flags.POLL, payload=b"p"))
    assert data[:20] == struct.pack(">BBHIQI", 1, 0x08, 0, 3, 0x0102030405060708, 0)
    assert data[20:] == b"p"


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"", "shorter than a frame header"),
        (b"\x01" * 19, "shorter than a frame header"),
        (struct.pack(">BBHIQI", 2, 0, 0, 0, 1, 0), "unsupported frame version 2"),
        (struct.pack(">BBHIQI", 1, 0, 0, 0, 1, 10), "runs past the message end"),
        (struct.pack(">BBHIQI", 1, 0, 0, 0, 1, 3) + b"\x01\x00\x00", "truncated head"),
        (
            struct.pack(">BBHIQI", 1, 0, 0, 0, 1, 5) + b"\x01\x00\x00\x00\x09",
            "runs past the head",
        ),
        (
            struct.pack(">BBHIQI", 1, 0, 0, 0, 1, 7) + b"\x01\x00\x00\x00\x02\xff\xfe",
            "not valid UTF-8",
        ),
        (
            struct.pack(">BBHIQI", 1, 0, 0, 0, 1, 6) + b"\x02\x00\x00\x00\x01\x00",
            "timeout record",
        ),
        (
            struct.pack(">BBHIQI", 1, 0, 0, 0, 1, 7) + b"\x03\x00\x00\x00\x02\x00\x01",
            "truncated metadata",
        ),
    ],
)
def test_malformed_input_is_a_clean_frame_error(data, complaint):
    with pytest.raises(FrameError, match=complaint):
        decode_frame(data)


def test_unknown_head_tags_and_flag_bits_are_ignored():
    head = b"\x63\x00\x00\x00\x02hi"
    data = struct.pack(">BBHIQI", 1, 0x80 | 0x01, 0, 1, 4, len(head)) + head + b"x"
    assert decode_frame(data) == Frame(4, 1, Flags.MESSAGE, payload=b"x")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_frame_error(data):
    with contextlib.suppress(FrameError):  # anything else fails the test
        decode_frame(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=HEADER_SIZE, max_size=120))
def test_random_bytes_behind_a_valid_header_raise_only_frame_error(data):
    mutated = (
        b"\x01" + data[1:16] + struct.pack(">I", len(data) - HEADER_SIZE) + data[20:]
    )
    with contextlib.suppress(FrameError):  # anything else fails the test
        decode_frame(mutated)


def test_a_small_message_is_one_frame_with_everything():
    first = Frame(1, flags=Flags.POLL, method="/a/b", status=(0, ""), trailers=())
    (frame,) = message_frames(first, b"abc", 1, LIMIT, Flags.EOS)
    assert frame.seq == 1
    assert frame.flags == Flags.POLL | Flags.MESSAGE | Flags.MSG_END | Flags.EOS
    assert frame.payload == b"abc" and frame.status == (0, "")


@pytest.mark.parametrize(
    "size", [LIMIT - 100, LIMIT, 3_000_000, 3 * (LIMIT - HEADER_SIZE)]
)
def test_large_messages_split_into_frames_that_fit_and_rejoin(size):
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    first = Frame(
        1,
        flags=Flags.POLL,
        method="/a/b",
        metadata=(Metadatum("k", "v"),),
        status=(0, "done"),
        trailers=(Metadatum("t", "1"),),
    )
    frames = message_frames(first, payload, 4, LIMIT, Flags.EOS)
    encoded = [encode_frame(f) for f in frames]
    assert all(len(e) <= LIMIT for e in encoded)
    assert [f.seq for f in frames] == list(range(4, 4 + len(frames)))
    assert frames[0].method == "/a/b" and frames[0].flags & Flags.POLL
    assert not any(f.flags & Flags.POLL for f in frames[1:])
    assert frames[-1].flags & Flags.EOS and frames[-1].status == (0, "done")
    assembler = Assembler(4 * 1024 * 1024)
    results = [
        assembler.add(f.payload, bool(f.flags & Flags.MSG_END))
        for f in map(decode_frame, encoded)
        if f.flags & Flags.MESSAGE
    ]
    assert results[:-1] == [None] * (len(results) - 1)
    assert results[-1] == payload


def test_a_head_too_big_for_one_message_is_refused():
    first = Frame(1, metadata=(Metadatum("k", "v" * LIMIT),))
    with pytest.raises(ValueError, match="does not fit"):
        message_frames(first, b"x", 1, LIMIT, 0)


def test_the_assembler_enforces_the_receive_limit_with_grpcio_words():
    assembler = Assembler(10)
    assert assembler.add(b"123456", False) is None
    with pytest.raises(
        MessageTooLargeError, match=r"Received message larger than max \(12 vs\. 10\)"
    ):
        assembler.add(b"123456", True)
    assert assembler.add(b"ok", True) == b"ok"  # it starts afresh after refusing


def test_the_reorder_buffer_releases_in_order_and_drops_duplicates():
    buffer: ReorderBuffer[str] = ReorderBuffer(4)
    assert buffer.add(2, "b")
    assert list(buffer.ready()) == []
    assert buffer.add(1, "a")
    assert not buffer.add(2, "b again")
    assert list(buffer.ready()) == ["a", "b"]
    assert not buffer.add(1, "stale")


def test_the_reorder_buffer_refuses_a_peer_beyond_the_window():
    buffer: ReorderBuffer[int] = ReorderBuffer(2)
    buffer.add(3, 3)
    buffer.add(4, 4)
    with pytest.raises(FlowControlError, match="window of 2"):
        buffer.add(5, 5)


@pytest.mark.parametrize(
    "size", [0, 100, GATHER_THRESHOLD - 1, GATHER_THRESHOLD, 300_000]
)
def test_frame_parts_concatenate_to_the_encoded_frame(size):
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    frame = Frame(9, 2, Flags.MESSAGE, method="/a.B/C", timeout=1.5, payload=payload)
    parts = encode_frame_parts(frame)
    whole = encode_frame(frame)
    if size < GATHER_THRESHOLD:
        assert parts == whole
    else:  # the payload rides as its own part: not copied behind the head
        assert isinstance(parts, list) and parts[1] is payload
        assert b"".join(parts) == whole
    assert decode_frame(whole).payload == payload


def _in_pieces(data: bytes, cuts: list[int]) -> list[bytes | memoryview]:
    """``data`` cut at ``cuts``, as views of bytes (what a gathering transport gives)."""
    view = memoryview(data)
    bounds = [0, *cuts, len(data)]
    return [view[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("cuts", [[5], [60], [60, 61, 5000], [20_000, 40_000]])
def test_a_frame_in_pieces_decodes_like_the_joined_frame(cuts):
    payload = bytes(range(256)) * 200
    meta = (Metadatum("k", "v"),)
    frame = Frame(
        7, 3, Flags.MESSAGE | Flags.MSG_END, "/a.B/C", 2.0, meta, payload=payload
    )
    whole = encode_frame(frame)
    decoded = decode_frame(_in_pieces(whole, cuts))
    plain = decode_frame(whole)
    assert decoded._replace(payload=b"") == plain._replace(payload=b"")
    assert bytes(decoded.payload) == payload and len(decoded.payload) == len(payload)
    if cuts[0] >= len(whole) - len(payload):  # head within the first piece: unjoined
        assert isinstance(decoded.payload, Pieces)


def test_malformed_pieces_raise_frame_error():
    with pytest.raises(FrameError):
        decode_frame([])
    with pytest.raises(FrameError):
        decode_frame(_in_pieces(b"\x02" + bytes(40), [10]))
    with pytest.raises(FrameError):
        decode_frame(_in_pieces(bytes(8), [3]))


def test_a_split_message_in_pieces_is_joined_once_by_the_assembler():
    payload = bytes(range(256)) * 8_000  # 2 MB: three frames under a 1 MB limit
    frames = message_frames(Frame(1, flags=Flags.POLL), payload, 1, LIMIT, Flags.EOS)
    assembler = Assembler(4 * 1024 * 1024)
    results = []
    for encoded in map(encode_frame, frames):
        decoded = decode_frame(_in_pieces(encoded, [50_000, 100_000]))
        assert isinstance(decoded.payload, Pieces)
        results.append(
            assembler.add(decoded.payload, bool(decoded.flags & Flags.MSG_END))
        )
    assert results[:-1] == [None] * (len(results) - 1)
    assert results[-1] == payload and type(results[-1]) is bytes


def test_pieces_are_sent_on_as_their_concatenation():
    pieces = Pieces(_in_pieces(bytes(range(256)) * 400, [1_000, 70_000]))
    frame = Frame(2, 1, Flags.MESSAGE, payload=pieces)
    expected = encode_frame(frame._replace(payload=bytes(pieces)))
    assert encode_frame(frame) == expected
    parts = encode_frame_parts(frame)
    assert isinstance(parts, list) and b"".join(parts) == expected
