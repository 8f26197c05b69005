"""The grant scheduler: its one-message shortcut decides as the general path does."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homarpc.transport.engine.grants import GrantScheduler
from homarpc.transport.engine.messages import IncomingMessage
from homarpc.transport.engine.rpc import Rpc

PEER = ("127.0.0.1", 7_000)


def _incoming(length: int, granted: int, received: int, packet: int) -> Rpc:
    rpc = Rpc(2, 2, PEER, packet, is_client=True)
    msgin = rpc.msgin = IncomingMessage(length, granted, seq=1)
    if received:
        msgin.add(0, memoryview(bytes(received)), max_gaps=8)
    return rpc


def _finished() -> Rpc:
    """A message granted to its end: the general path skips it."""
    rpc = Rpc(4, 4, PEER, 1_000, is_client=True)
    rpc.msgin = IncomingMessage(10, 10, seq=0)
    return rpc


@settings(max_examples=300, deadline=None)
@given(
    length=st.integers(1, 2_000_000),
    granted_part=st.floats(0, 1),
    received_part=st.floats(0, 1),
    packet=st.sampled_from([1_400, 50_000, 64_944]),
    max_incoming=st.sampled_from([20_000, 200_000, 1_000_000]),
)
def test_one_message_is_granted_as_the_general_path_would(
    length, granted_part, received_part, packet, max_incoming
):
    granted = int(length * granted_part)
    received = int(granted * received_part)
    alone = _incoming(length, granted, received, packet)
    general = _incoming(length, granted, received, packet)
    fast = GrantScheduler(max_incoming, overcommit=4)
    fast.add(alone)
    slow = GrantScheduler(max_incoming, overcommit=4)
    slow.add(general)
    slow.add(_finished())  # a second message forces the general path
    # The finished message holds nothing outstanding, so the budgets agree.
    fast_grants, slow_grants = fast.schedule(), slow.schedule()
    assert [r.id for r in fast_grants] == [r.id for r in slow_grants if r is general]
    assert alone.msgin.granted == general.msgin.granted


def test_a_long_message_is_granted_in_quarter_window_steps():
    scheduler = GrantScheduler(1_000_000, overcommit=4)
    rpc = _incoming(1_000_000, 50_000, 50_000, 65_000)
    scheduler.add(rpc)
    assert scheduler.schedule() == [rpc]
    assert rpc.msgin.granted == 550_000  # received + window (1 MB / 2)
    offset = 50_000
    grants = 0
    while offset < 1_000_000:
        step = min(65_000, 1_000_000 - offset)
        rpc.msgin.add(offset, memoryview(bytes(step)), max_gaps=8)
        offset += step
        grants += len(scheduler.schedule())
    assert rpc.msgin.granted == 1_000_000
    assert grants <= 4  # steps of a quarter window at least, not one per packet


@pytest.mark.parametrize("seed", range(5))
def test_two_messages_still_share_the_budget(seed):
    rng = random.Random(seed)
    scheduler = GrantScheduler(200_000, overcommit=4)
    rpcs = [
        _incoming(rng.randrange(300_000, 900_000), 10_000, 10_000, 1_400)
        for _ in range(2)
    ]
    for rpc in rpcs:
        scheduler.add(rpc)
    scheduler.schedule()
    outstanding = sum(rpc.msgin.outstanding for rpc in rpcs)
    assert outstanding <= 200_000
