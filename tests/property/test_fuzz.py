"""Random and mutated datagrams never raise out of the engine, and leak nothing."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from homarpc.transport.engine import HomaConfig, HomaEngine, wire

from ..unit.engine.helpers import CLIENT, SERVER, EnginePair

SMALL = HomaConfig(
    max_datagram=600, unsched_bytes=2_000, max_incoming=8_000, timeout_ticks=20
)


def _capture() -> list[tuple[bytes, tuple[str, int], tuple[str, int]]]:
    """Every datagram of a few RPCs, lossy enough to include each packet type."""
    pair = EnginePair(SMALL, seed=100)  # other ids than the pairs under test
    captured: list[tuple[bytes, tuple[str, int], tuple[str, int]]] = []
    rng = random.Random(4)

    def record(datagram: tuple[bytes, tuple[str, int], tuple[str, int]]) -> bool:
        captured.append(datagram)
        return rng.random() < 0.2

    for size in (0, 100, 5_000, 20_000):
        pair.client.send_request(SERVER, bytes(range(256)) * (size // 256), 0, pair.now)
        pair.transfer(record)
        pair.tick(40, record)
    return captured


CAPTURED = _capture()
TYPES = {d[11] for d, _, _ in CAPTURED}


def test_the_capture_covers_the_protocol():
    assert {
        wire.PacketType.DATA,
        wire.PacketType.GRANT,
        wire.PacketType.RESEND,
    } <= TYPES
    assert wire.PacketType.ACK in TYPES or wire.PacketType.NEED_ACK in TYPES


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_are_dropped_and_counted(data):
    engine = HomaEngine(HomaConfig(), SERVER[1], random.Random(0), server=True)
    engine.receive_datagram(data, CLIENT, 0.0)
    assert engine.stats.dropped_total == 1
    assert engine.datagrams_to_send(0.0) == [] and not engine.has_state


FIELDS = [(4, 4), (20, 8), (28, 4), (32, 4), (36, 8), (44, 2), (52, 4)]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, tuple[str, int], tuple[str, int]]:
    data, src, dst = draw(st.sampled_from(CAPTURED))
    packet = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["byte", "field", "truncate", "extend"]))
        if kind == "byte" and packet:
            packet[draw(st.integers(0, len(packet) - 1))] = draw(st.integers(0, 255))
        elif kind == "field":
            offset, size = draw(st.sampled_from(FIELDS))
            if offset + size <= len(packet):
                top = 2 ** (8 * size) - 1
                special = [
                    v
                    for v in (0, 1, 1_000_000, 1_000_001, top // 2 + 1, top)
                    if v <= top
                ]
                value = draw(st.sampled_from(special) | st.integers(0, top))
                packet[offset : offset + size] = value.to_bytes(size, "big")
        elif kind == "truncate":
            del packet[draw(st.integers(0, len(packet))) :]
        else:
            packet += draw(st.binary(min_size=1, max_size=64))
    return bytes(packet), src, dst


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=8), st.booleans())
def test_mutated_datagrams_never_raise_never_leak_and_never_block_others(
    junk, memoryviews
):
    pair = EnginePair(SMALL)
    pair.client.send_request(SERVER, b"a" * 3_000, 9, 0.0)
    for data, src, dst in junk:
        payload = memoryview(data) if memoryviews else data
        pair.engine_at(dst).receive_datagram(payload, src, pair.now)
        pair.drain_events()
    pair.transfer()
    pair.tick(SMALL.resend_ticks + 1)
    pair.settle(4 * SMALL.tombstone_lifetime)
    mine = [e for e in pair.client_events if getattr(e, "cookie", None) == 9]
    assert len(mine) == 1
    assert getattr(mine[0], "payload", None) in (b"a" * 3_000, None)
    assert (
        pair.client.stats.datagrams_received + pair.server.stats.datagrams_received > 0
    )


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutating_live_traffic_ends_every_rpc_once_and_leaks_nothing(data):
    pair = EnginePair(SMALL, seed=data.draw(st.integers(0, 3)))
    cookies = list(range(3))
    for cookie in cookies:
        pair.client.send_request(
            SERVER, b"z" * data.draw(st.sampled_from([0, 700, 6_000])), cookie, 0.0
        )
    for _ in range(data.draw(st.integers(1, 6))):
        batch = pair.pending()
        if not batch:
            break
        for datagram in batch:
            if data.draw(st.integers(0, 3)) == 0:
                raw, src, dst = datagram
                offset = data.draw(st.integers(0, max(0, len(raw) - 1)))
                mutated_raw = (
                    raw[:offset]
                    + bytes([data.draw(st.integers(0, 255))])
                    + raw[offset + 1 :]
                )
                datagram = (
                    mutated_raw[: data.draw(st.integers(0, len(mutated_raw)))],
                    src,
                    dst,
                )
            pair.deliver(datagram)
    pair.tick(3 * SMALL.timeout_ticks)
    pair.settle(4 * SMALL.tombstone_lifetime)
    ended = sorted(getattr(e, "cookie", -1) for e in pair.client_events)
    assert ended == cookies  # each RPC completed or failed, exactly once
