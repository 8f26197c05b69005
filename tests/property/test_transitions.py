"""Every (side, state, input) pair of the RPC state table, checked (h2 style)."""

from __future__ import annotations

import itertools

import pytest

from homarpc.transport.engine import LocalProtocolError
from homarpc.transport.engine.rpc import TRANSITIONS, Rpc, RpcInput, RpcState

ALL = list(itertools.product([True, False], RpcState, RpcInput))


@pytest.mark.parametrize(("is_client", "state", "event"), ALL)
def test_every_pair_follows_the_table_or_is_refused(is_client, state, event):
    rpc = Rpc(10, 10, ("127.0.0.1", 1), 1_000, is_client=is_client)
    rpc.state = state
    expected = TRANSITIONS.get((is_client, state, event))
    if expected is None:
        with pytest.raises(LocalProtocolError, match=event.value):
            rpc.process(event)
        assert rpc.state is state  # a refused input leaves the RPC alone
    else:
        assert rpc.process(event) is expected is rpc.state


def test_dead_is_terminal_and_every_live_state_can_die():
    for is_client, state in itertools.product([True, False], RpcState):
        moves = {e for (c, s, e) in TRANSITIONS if c == is_client and s == state}
        if state is RpcState.DEAD:
            assert not moves
        elif (is_client, state) != (True, RpcState.IN_SERVICE):
            assert RpcInput.ABORT in moves, (is_client, state)


def test_new_rpcs_start_where_the_kernel_starts_them():
    assert Rpc(2, 2, ("h", 1), 1_000, is_client=True).state is RpcState.OUTGOING
    assert Rpc(3, 2, ("h", 1), 1_000, is_client=False).state is RpcState.INCOMING
