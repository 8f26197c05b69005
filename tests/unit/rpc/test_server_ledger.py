"""What a server remembers, in bounded memory (``_server_ledger``)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from homarpc._framing import Frame
from homarpc._server_ledger import HeldBytes, ParkedFrames, StartedCalls

A, B = ("10.0.0.1", 1), ("10.0.0.2", 2)


def test_each_call_id_starts_once_per_peer() -> None:
    started = StartedCalls(window=64)
    assert started.start(A, 1000) and not started.start(A, 1000)
    assert started.start(B, 1000)  # another peer's ids are its own
    assert started.started(A, 1000) and not started.started(A, 1001)
    assert started.refused == 1


@given(st.lists(st.integers(0, 500), max_size=300))
def test_ids_within_the_window_start_exactly_once(offsets: list[int]) -> None:
    """Out-of-order starts within a window of the newest are admitted once each,
    as an exact set would; nothing is admitted twice whatever the order."""
    started = StartedCalls(window=1024)
    seen: set[int] = set()
    for offset in offsets:
        call_id = 1_000_000 + offset
        assert started.start(A, call_id) == (call_id not in seen)
        seen.add(call_id)


def test_the_window_slides_and_old_ids_are_refused() -> None:
    started = StartedCalls(window=64)
    for call_id in range(1000, 1200):  # a client calling in order
        assert started.start(A, call_id)
    assert not started.start(A, 1100)  # far behind the newest: refused
    assert not started.start(A, 1199)  # started
    assert started.start(A, 1200)
    replays = list(range(1000, 1201))
    random.Random(1).shuffle(replays)
    assert not any(started.start(A, call_id) for call_id in replays)


def test_peers_are_bounded_oldest_forgotten_first() -> None:
    started = StartedCalls(window=64, max_peers=2)
    started.start(A, 1)
    started.start(B, 1)
    started.start(A, 2)  # A heard from again: B is now the oldest
    started.start(("10.0.0.3", 3), 1)
    assert len(started) == 2
    assert started.started(A, 1) and not started.started(B, 1)


def test_held_bytes_keep_a_share_per_peer_and_a_total() -> None:
    held = HeldBytes(total=100, per_peer=60)
    assert held.take(A, 60) and not held.take(A, 1)  # A's share is full
    assert held.take(B, 40) and not held.take(B, 1)  # the total is
    held.give_back(A, 60)
    assert held.take(B, 20) and held.held == 60 and held.refused == 2


def test_parked_frames_bounded_in_calls_and_bytes_and_expire() -> None:
    parked = ParkedFrames(HeldBytes(total=10_000, per_peer=1_000), 5.0, max_calls=2)
    frame = Frame(1, 2, payload=b"x" * 400)
    assert parked.park((A, 1), (0.0, 11, frame))
    assert parked.park((A, 1), (0.0, 12, frame))
    assert not parked.park((A, 1), (0.0, 13, frame))  # A's 1,000 bytes
    assert parked.park((B, 1), (1.0, 14, frame))
    assert not parked.park((B, 2), (1.0, 15, frame))  # two calls at most
    assert [p[1] for p in parked.pop((A, 1))] == [11, 12]
    assert parked.held.held == 464
    assert parked.expired(5.5) == []
    ((key, frames),) = parked.expired(6.5)
    assert key == (B, 1) and frames[0][1] == 14 and parked.held.held == 0
