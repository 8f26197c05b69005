"""Rpc.age: what each timer tick calls for, as a pure function of RPC state."""

from __future__ import annotations

import itertools

from homarpc.transport.engine import HomaConfig
from homarpc.transport.engine.messages import IncomingMessage, OutgoingMessage
from homarpc.transport.engine.rpc import Rpc, RpcState, TickAction

CONFIG = HomaConfig(
    resend_ticks=3, resend_interval=2, timeout_ticks=8, request_ack_ticks=2
)
PEER = ("10.0.0.1", 1)


def ages(rpc: Rpc, ticks: int) -> list[TickAction]:
    return [rpc.age(CONFIG) for _ in range(ticks)]


def sent(payload: bytes) -> OutgoingMessage:
    message = OutgoingMessage(payload, unsched_bytes=100)
    message.sent, message.started = len(payload), True
    return message


def test_waiting_client_resends_then_times_out():
    rpc = Rpc(2, 2, PEER, 1_000, is_client=True)
    rpc.msgout = sent(b"q")
    N, R, T = TickAction.NONE, TickAction.RESEND, TickAction.TIMEOUT
    assert ages(rpc, 8) == [N, N, R, N, R, N, R, T]


def test_a_server_at_work_never_ages():
    rpc = Rpc(3, 2, PEER, 1_000, is_client=False)
    rpc.state = RpcState.IN_SERVICE
    assert set(ages(rpc, 50)) == {TickAction.NONE} and rpc.silent_ticks == 0


def test_sender_with_granted_bytes_left_owes_the_move():
    rpc = Rpc(2, 2, PEER, 1_000, is_client=True)
    rpc.msgout = OutgoingMessage(b"x" * 500, unsched_bytes=100)  # nothing sent yet
    assert set(ages(rpc, 50)) == {TickAction.NONE}


def test_receiver_without_room_to_grant_keeps_the_sender_alive():
    rpc = Rpc(3, 2, PEER, 1_000, is_client=False)
    rpc.msgin = IncomingMessage(length=1_000, granted=100, seq=0)
    rpc.msgin.add(0, memoryview(b"y" * 100), max_gaps=4)
    N, K = TickAction.NONE, TickAction.KEEP_ALIVE
    assert ages(rpc, 6) == [N, K, N, K, N, K]  # timeout 8: every max(2, 8 // 4) ticks
    assert rpc.silent_ticks == 0


def test_server_asks_for_an_ack_with_back_off_once_the_response_is_out():
    rpc = Rpc(3, 2, PEER, 1_000, is_client=False)
    rpc.state = RpcState.OUTGOING
    rpc.msgout = sent(b"r")
    config = HomaConfig()  # 1,000 ticks to the timeout: waits 2, 4, 8 ... 125
    actions = [rpc.age(config) for _ in range(config.timeout_ticks)]
    asks = [i + 1 for i, a in enumerate(actions) if a & TickAction.NEED_ACK]
    assert asks == [2, 6, 14, 30, 62, 126, 251, 376, 501, 626, 751, 876]
    assert actions[-1] == TickAction.TIMEOUT


def test_resends_back_off_and_a_busy_peer_does_not_restart_the_back_off():
    rpc = Rpc(2, 2, PEER, 1_000, is_client=True)
    rpc.msgout = sent(b"q")
    config = HomaConfig()
    asked = []
    for tick in range(1, 2_001):
        if rpc.age(config) & TickAction.RESEND:
            asked.append(tick)
            rpc.silent_ticks = 0  # the server answers BUSY: it is at work
    assert asked[:6] == [5, 15, 35, 75, 155, 280]
    assert all(b - a == 125 for a, b in itertools.pairwise(asked[5:]))


def test_keep_alives_are_spaced_by_a_quarter_of_the_timeout():
    rpc = Rpc(3, 2, PEER, 1_000, is_client=False)
    rpc.msgin = IncomingMessage(length=1_000, granted=0, seq=0)
    config = HomaConfig(resend_interval=2, timeout_ticks=40)
    actions = [rpc.age(config) for _ in range(40)]
    keep_alive_ticks = [i + 1 for i, a in enumerate(actions) if a]
    assert keep_alive_ticks == [10, 20, 30, 40]
