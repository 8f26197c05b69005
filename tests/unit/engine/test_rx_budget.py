"""The reassembly budget charges what messages hold, not what they claim, and each
peer only its share (``engine/budget.py``)."""

from __future__ import annotations

from homarpc.transport.engine import HomaConfig, ResponseReceived, wire

from .helpers import CLIENT, SERVER, EnginePair

ATTACKER = ("127.0.0.1", 40_002)
TAG = HomaConfig().wire_tag


def _claim(sender_id: int, length: int, data: int, offset: int = 0) -> bytes:
    """A DATA packet of ``data`` bytes at ``offset`` of a ``length``-byte message,
    saying nothing more was sent (``incoming``: its end)."""
    fields = wire.DataHeader(length, offset + data, 0, 0, 0, 0, offset)
    return wire.pack_data_header(ATTACKER[1], SERVER[1], sender_id, TAG, fields) + (
        b"\x01" * data
    )


def _not_to_attacker(datagram: tuple[bytes, object, object]) -> bool:
    return datagram[2] == ATTACKER  # the attacker never answers


def _call(pair: EnginePair, payload: bytes, ticks: int) -> ResponseReceived:
    """An RPC from CLIENT while ATTACKER is silent; its response within ``ticks``."""
    before = len(pair.client_events)
    pair.client.send_request(SERVER, payload, 0, pair.now)
    pair.transfer(_not_to_attacker)
    for _ in range(ticks):
        if len(pair.client_events) > before:
            break
        pair.tick(lose=_not_to_attacker)
    (event,) = pair.client_events[before:]
    assert isinstance(event, ResponseReceived), event
    return event


def test_tiny_messages_that_claim_4_mb_each_do_not_block_a_1_mb_call():
    # 20 x 4,000,000 B claimed is more than the 64 MB budget: charged by their
    # claims, 16 of them used to fill it and every large message was refused.
    config = HomaConfig(max_message_length=4_259_840, timeout_ticks=3_000)
    pair = EnginePair(config)
    for i in range(20):
        pair.server.receive_datagram(_claim(2 * i + 2, 4_000_000, 1), ATTACKER, 0.0)
    counters = pair.server.snapshot()
    assert counters["rx_messages"] == 20
    assert counters["rx_bytes_reserved"] == 20 * (1 + 1_024)
    payload = bytes(range(256)) * 4_000  # 1,024,000 B
    event = _call(pair, payload, ticks=50)
    assert event.payload == payload[::-1]
    assert pair.server.stats.dropped["no_buffer"] == 0
    # The attacker's share (a quarter of the budget) was committed to a few of
    # its messages when they were granted; never the whole budget.
    assert pair.server.snapshot()["rx_bytes_reserved"] <= config.rx_share


def test_a_peer_sending_unscheduled_bytes_gets_its_share_and_no_more():
    config = HomaConfig(max_rx_buffer=400_000, max_rx_per_peer=150_000)
    pair = EnginePair(config)
    for i in range(30):  # 30 x 10,000 B sent unasked, for 50,000 B messages
        pair.server.receive_datagram(_claim(2 * i + 2, 50_000, 10_000), ATTACKER, 0.0)
    held = pair.server.snapshot()
    assert held["rx_bytes_reserved"] <= 150_000
    assert held["rx_messages"] == 150_000 // (10_000 + 1_024)  # 13
    assert pair.server.stats.dropped["no_buffer"] == 30 - 13
    # Another peer is not refused: it has a share of its own.
    payload = b"y" * 120_000  # needs grants: the first grant commits 120 KB
    assert _call(pair, payload, ticks=50).payload == payload[::-1]


def test_partial_messages_of_a_silent_peer_are_freed_on_timeout():
    config = HomaConfig(
        max_rx_buffer=400_000, max_rx_per_peer=100_000, timeout_ticks=50
    )
    pair = EnginePair(config)
    for i in range(30):
        pair.server.receive_datagram(_claim(2 * i + 2, 50_000, 10_000), ATTACKER, 0.0)
    # Granted ones time out as silent; those the budget refused to commit to
    # time out having waited for room; the rest are refused in turn.
    for _ in range(40 * config.timeout_ticks):
        if not pair.server.rpc_count:
            break
        pair.tick(lose=_not_to_attacker)
    counters = pair.server.snapshot()
    assert counters["server_rpcs"] == 0
    assert counters["rx_bytes_reserved"] == 0 and counters["rx_peers"] == 0
    assert pair.server.stats.timeouts >= 9


def test_a_message_placed_in_a_buffer_is_charged_its_whole_length():
    pair = EnginePair(gather=True)
    lengths: list[int] = []

    def layout(first, length):
        lengths.append(length)
        return None  # declined: stays in pieces, charged as it arrives

    pair.server.layout = layout
    pair.server.receive_datagram(_claim(2, 900_000, 1_000), CLIENT, 0.0)
    assert lengths == [900_000]  # it fit: asked
    assert pair.server.snapshot()["rx_bytes_reserved"] == 1_000 + 1_024
    tight = HomaConfig(max_rx_buffer=200_000)
    pair = EnginePair(tight, gather=True)
    pair.server.layout = layout
    pair.server.receive_datagram(_claim(2, 900_000, 1_000), CLIENT, 0.0)
    assert lengths == [900_000]  # no room for 900 KB: not even asked
