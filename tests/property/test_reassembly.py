"""IncomingMessage puts any mix of pieces back together, exactly once per byte."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from homarpc.transport.engine.messages import IncomingMessage


@st.composite
def pieces(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]]]:
    """A message and ranges covering all of it, overlapping, repeated, shuffled."""
    length = draw(st.integers(1, 800))
    message = random.Random(draw(st.integers(0, 2**32))).randbytes(length)
    cuts = (
        sorted(draw(st.sets(st.integers(1, length - 1), max_size=20)))
        if length > 1
        else []
    )
    bounds = [0, *cuts, length]
    ranges = [(a, b) for a, b in itertools.pairwise(bounds)]
    extra = draw(
        st.lists(
            st.tuples(st.integers(0, length - 1), st.integers(1, 200)), max_size=10
        )
    )
    ranges += [(a, min(length, a + n)) for a, n in extra]
    return message, draw(st.permutations(ranges))


@settings(max_examples=300, deadline=None)
@given(pieces())
def test_any_order_overlap_or_duplicate_reassembles_exactly(case):
    message, ranges = case
    msgin = IncomingMessage(len(message), len(message), 0)
    view = memoryview(message)
    added = sum(max(0, msgin.add(a, view[a:b], max_gaps=1_000)) for a, b in ranges)
    assert added == len(message) == msgin.received
    assert msgin.is_complete and not msgin.gaps and msgin.missing_ranges() == []
    assert msgin.assemble() == message
    kept = sorted((start, len(piece)) for start, piece in msgin.pieces)
    assert sum(n for _, n in kept) == len(message)  # every byte kept exactly once


@settings(max_examples=200, deadline=None)
@given(pieces(), st.integers(0, 30))
def test_missing_ranges_are_exactly_the_holes(case, keep):
    message, ranges = case
    msgin = IncomingMessage(len(message), len(message), 0)
    got = bytearray(len(message))
    for a, b in ranges[:keep]:
        msgin.add(a, memoryview(message)[a:b], max_gaps=1_000)
        got[a:b] = b"\1" * (b - a)
    holes = [i for i in range(len(message)) if not got[i]]
    covered = [i for a, b in msgin.missing_ranges() for i in range(a, b)]
    assert covered == holes
    assert msgin.received == len(message) - len(holes)


def test_gap_limit_refuses_new_holes_but_still_fills_old_ones():
    msgin = IncomingMessage(100, 100, 0)
    assert msgin.add(10, memoryview(b"x" * 10), max_gaps=1) == 10
    assert msgin.add(30, memoryview(b"y" * 10), max_gaps=1) == -1
    assert msgin.add(0, memoryview(b"z" * 10), max_gaps=1) == 10
    assert msgin.gaps == []


def test_a_few_new_bytes_do_not_pin_a_whole_datagram():
    """Overlapping packets that each bring one new byte keep copies of that byte,
    not views of their whole datagram (a bad peer cannot pin ~64 KB per byte)."""
    datagram = bytes(range(256)) * 200  # 51,200 bytes
    msgin = IncomingMessage(len(datagram) + 10, len(datagram) + 10, 0)
    msgin.add(0, memoryview(datagram)[: len(datagram) - 1], max_gaps=8)
    msgin.add(1, memoryview(datagram)[1:], max_gaps=8)  # one new byte at the end
    last_start, last_piece = msgin.pieces[-1]
    assert last_start == len(datagram) - 1
    assert type(last_piece) is bytes and last_piece == datagram[-1:]
    first_piece = msgin.pieces[0][1]
    assert isinstance(first_piece, memoryview) and first_piece.obj is datagram
