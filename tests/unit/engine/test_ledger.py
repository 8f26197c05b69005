"""PendingAcks and Tombstones on their own."""

from __future__ import annotations

from homarpc.transport.engine.ledger import PendingAcks, Tombstones
from homarpc.transport.engine.rpc import Rpc

A, B = ("10.0.0.1", 1), ("10.0.0.2", 1)


def test_pending_acks_fill_up_then_hand_back_the_full_list():
    acks = PendingAcks(capacity=2)
    assert not acks and acks.pop(A) == 0
    assert acks.add(A, 2, tick=0) is None
    assert acks.add(A, 4, tick=0) is None
    assert acks.add(A, 6, tick=0) == [2, 4]  # the caller sends 6 in the header
    assert not acks


def test_pending_acks_pop_per_peer_and_age():
    acks = PendingAcks(capacity=5)
    acks.add(A, 2, tick=1)
    acks.add(B, 8, tick=3)
    assert acks.pop(B) == 8 and acks.pop(B) == 0
    acks.add(B, 10, tick=3)
    assert acks.take_older_than(2) == [(A, [2])]
    assert acks.take_older_than(4) == [(B, [10])]
    assert not acks


def test_tombstones_expire_in_order_and_renewal_wins():
    stones = Tombstones()
    stones.add((A, 2), expiry=5)
    stones.add((A, 4), expiry=6)
    stones.add((A, 2), expiry=9)  # the same RPC finished again later
    stones.expire(6)
    assert (A, 2) in stones and (A, 4) not in stones and len(stones) == 1
    stones.expire(9)
    assert not stones


def test_rpc_repr_names_side_and_state():
    assert (
        repr(Rpc(3, 2, A, 1_000, is_client=False))
        == "<Rpc server id=3 peer=('10.0.0.1', 1) incoming>"
    )
