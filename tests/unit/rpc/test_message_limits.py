"""What each end announces as the largest Homa message it accepts, and what a
sender makes of it (``_stream.send_limit``; ``Frame.max_message``)."""

from __future__ import annotations

import pytest

from homarpc._framing import Flags, Frame, FrameError, decode_frame, encode_frame
from homarpc._stream import advertised_limit, message_frames, send_limit
from homarpc.transport import MAX_MESSAGE_LENGTH

BIG = 4 * 1024 * 1024 + 64 * 1024


@pytest.mark.parametrize(
    ("own", "theirs", "limit"),
    [
        (BIG, None, MAX_MESSAGE_LENGTH),  # a peer that said nothing: the kernel's
        (BIG, 2_000_000, 2_000_000),
        (BIG, 8 * BIG, BIG),  # never more than our own transport takes
        (MAX_MESSAGE_LENGTH, BIG, MAX_MESSAGE_LENGTH),
        (500_000, None, 500_000),
    ],
)
def test_the_send_limit_is_the_smaller_of_ours_and_what_the_peer_said(
    own, theirs, limit
):
    assert send_limit(own, theirs) == limit


def test_only_a_limit_above_the_kernels_is_announced():
    assert advertised_limit(BIG) == BIG
    assert advertised_limit(MAX_MESSAGE_LENGTH) is None
    assert advertised_limit(100) is None


def test_max_message_travels_in_the_head_and_a_bad_record_is_refused():
    frame = Frame(3, 1, Flags.POLL, "/s.S/M", 1.0, (), max_message=BIG)
    assert decode_frame(encode_frame(frame)).max_message == BIG
    assert (
        decode_frame(encode_frame(frame._replace(max_message=None))).max_message is None
    )
    raw = bytearray(encode_frame(Frame(3, 1, 0, max_message=BIG)))
    raw[21:25] = (3).to_bytes(4, "big")  # a 3-byte value in a 9-byte head
    raw[16:20] = (5 + 3).to_bytes(4, "big")
    with pytest.raises(FrameError, match="max message record is not 4 bytes"):
        decode_frame(bytes(raw[: 20 + 8]))


def test_the_announcement_rides_on_the_first_frame_of_a_split_message_too():
    first = Frame(3, 0, 0, "/s.S/M", None, (), max_message=BIG)
    frames = message_frames(first, bytes(1_500_000), 1, MAX_MESSAGE_LENGTH, 0)
    assert len(frames) == 2
    assert all(len(encode_frame(f)) <= MAX_MESSAGE_LENGTH for f in frames)
    decoded = [decode_frame(encode_frame(f)) for f in frames]
    assert decoded[0].max_message == BIG and decoded[1].max_message is None
    (whole,) = message_frames(first, bytes(1_500_000), 1, BIG, 0)
    assert decode_frame(encode_frame(whole)).max_message == BIG


def test_small_response_heads_are_decoded_once_and_call_starts_are_not_kept():
    from homarpc import _framing

    response = Frame(9, 1, Flags.EOS, None, None, (), (0, ""), (), b"x", None, BIG)
    start = Frame(9, 1, Flags.POLL, "/s.S/M", 2.5, (), max_message=BIG)
    _framing._decoded_heads.clear()
    first, again = (decode_frame(encode_frame(response)) for _ in range(2))
    assert first == again == response._replace(payload=first.payload)
    assert len(_framing._decoded_heads) == 1
    decode_frame(encode_frame(start))
    decode_frame(encode_frame(start._replace(timeout=1.5)))
    assert len(_framing._decoded_heads) == 1  # heads with a method: never kept
    broken = bytearray(encode_frame(response))
    broken[24] = 200  # the first record now runs past the head
    with pytest.raises(FrameError):
        decode_frame(bytes(broken))
