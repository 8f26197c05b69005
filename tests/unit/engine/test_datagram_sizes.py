"""Datagram sizes chosen per peer: the driver's ``datagram_size`` hook."""

from __future__ import annotations

import random

import pytest

from homarpc.transport.engine import HomaConfig, HomaEngine, wire

from .helpers import CLIENT, SERVER, EnginePair

NEAR = ("127.0.0.1", 6_000)
FAR = ("192.0.2.9", 6_000)


class Sizes:
    """A driver's choice: ``NEAR`` gets 9,000 B, anyone else 1,400 B. Counts calls."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def __call__(self, peer: tuple[str, int]) -> int:
        self.asked.append(peer)
        return 9_000 if peer == NEAR else 1_400


def _sent(engine: HomaEngine) -> dict[tuple[str, int], list[int]]:
    lengths: dict[tuple[str, int], list[int]] = {}
    for data, peer in engine.datagrams_to_send(0.0):
        lengths.setdefault(peer, []).append(len(data))
    return lengths


def test_each_peer_gets_datagrams_of_its_own_size():
    sizes = Sizes()
    engine = HomaEngine(HomaConfig(), CLIENT[1], random.Random(0), datagram_size=sizes)
    engine.send_request(NEAR, bytes(40_000), 0, 0.0)
    engine.send_request(FAR, bytes(40_000), 0, 0.0)
    lengths = _sent(engine)
    assert max(lengths[NEAR]) == 9_000 and max(lengths[FAR]) == 1_400
    header = wire.DATA_HEADER_LENGTH
    assert sum(n - header for n in lengths[NEAR]) == 40_000
    assert sum(n - header for n in lengths[FAR]) == 40_000
    assert sizes.asked == [NEAR, FAR]  # once per RPC, not once per packet


def test_the_config_caps_what_the_driver_asks_for():
    config = HomaConfig(max_datagram=5_000)
    engine = HomaEngine(config, CLIENT[1], random.Random(0), datagram_size=Sizes())
    engine.send_request(NEAR, bytes(40_000), 0, 0.0)
    assert max(_sent(engine)[NEAR]) == 5_000


def test_a_packet_boundary_falls_at_the_unscheduled_limit_then_packets_are_full():
    config = HomaConfig(unsched_bytes=3_000)
    engine = HomaEngine(config, CLIENT[1], random.Random(0), datagram_size=Sizes())
    engine.send_request(NEAR, bytes(30_000), 0, 0.0)
    assert _sent(engine)[NEAR] == [wire.DATA_HEADER_LENGTH + 3_000]
    pair = EnginePair(HomaConfig(unsched_bytes=3_000, max_incoming=1_000_000))
    pair.client.send_request(SERVER, bytes(1_000_000), 0, 0.0)
    pair.transfer()
    full = pair.config.data_per_packet
    assert full == pair.config.max_datagram - wire.DATA_HEADER_LENGTH
    assert pair.client.stats.data_packets_sent == 1 + -(-(1_000_000 - 3_000) // full)


@pytest.mark.parametrize("size", [200_000, 1_000_000])
def test_peers_with_different_sizes_exchange_whole_messages(size):
    pair = EnginePair()
    # The server sends MTU-sized datagrams to this client, the client 65,000 B ones.
    pair.server = HomaEngine(
        pair.config, SERVER[1], random.Random(5), server=True,
        datagram_size=lambda peer: 1_400,
    )  # fmt: skip
    request = random.Random(size).randbytes(size)
    event = pair.roundtrip(request, cookie=4)
    assert event.payload == request[::-1]
    assert pair.requests[0].payload == request
    per_packet = 1_400 - wire.DATA_HEADER_LENGTH
    assert pair.server.stats.data_packets_sent >= size // per_packet
    assert pair.client.stats.data_packets_sent <= size // 60_000 + 10
    pair.settle()


def test_data_per_packet_never_falls_below_one_byte():
    config = HomaConfig()
    assert config.data_per_packet_for(10) == 1
    assert config.data_per_packet_for(1_400) == 1_400 - wire.DATA_HEADER_LENGTH
    assert config.data_per_packet_for(65_507) == config.data_per_packet
