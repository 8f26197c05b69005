"""The engine's API, end to end over a perfect network, and its local errors."""

from __future__ import annotations

import errno
import random

import pytest

from homarpc.transport.engine import (
    HomaConfig,
    HomaEngine,
    LocalProtocolError,
    RequestReceived,
    ResponseReceived,
    RpcFailed,
    wire,
)

from .helpers import CLIENT, SERVER, EnginePair, transfer_lossily_until


@pytest.mark.parametrize("size", [0, 1, 64, 49_999, 50_000, 50_001, 1_000_000])
def test_roundtrip_returns_the_exact_bytes(size):
    pair = EnginePair()
    request = random.Random(size).randbytes(size)
    event = pair.roundtrip(request, cookie=77)
    assert event.payload == request[::-1]
    assert event.cookie == 77 and event.peer == SERVER
    (served,) = pair.requests
    assert served.payload == request and served.peer == CLIENT
    pair.settle()


def test_client_ids_are_even_random_and_distinct_per_endpoint():
    a = HomaEngine(HomaConfig(), 1, random.Random(1))
    b = HomaEngine(HomaConfig(), 1, random.Random(2))
    ids_a = [a.send_request(SERVER, b"x", 0, 0.0) for _ in range(3)]
    ids_b = [b.send_request(SERVER, b"x", 0, 0.0) for _ in range(3)]
    assert all(i % 2 == 0 and i > 0 for i in ids_a + ids_b)
    assert ids_a[1] - ids_a[0] == 2 and ids_a[0] != ids_b[0]


def test_server_rpc_id_is_client_id_with_low_bit_set():
    pair = EnginePair()
    rpc_id = pair.client.send_request(SERVER, b"hi", 0, 0.0)
    pair.transfer()
    assert pair.requests[0].rpc_id == rpc_id | 1


def test_payload_over_the_limit_is_refused_at_once():
    engine = HomaEngine(HomaConfig(max_message_length=10), 1, random.Random(0))
    with pytest.raises(ValueError, match="exceeds"):
        engine.send_request(SERVER, bytes(11), 0, 0.0)
    assert engine.rpc_count == 0


def test_replying_twice_is_a_local_protocol_error():
    pair = EnginePair()
    pair.auto_reply = False
    pair.client.send_request(SERVER, b"q", 0, 0.0)
    pair.transfer()
    rpc_id = pair.requests[0].rpc_id
    pair.server.send_response(rpc_id, b"a", 0.0)
    with pytest.raises(LocalProtocolError, match="cannot take reply"):
        pair.server.send_response(rpc_id, b"b", 0.0)
    pair.transfer()
    assert [e.payload for e in pair.client_events] == [b"a"]  # type: ignore[union-attr]


def test_replying_to_an_unknown_id_is_ignored():
    pair = EnginePair()
    pair.server.send_response(12345, b"late", 0.0)
    assert pair.server.datagrams_to_send(0.0) == []


def test_abort_one_with_errno_reports_failure_and_forgets_it():
    pair = EnginePair()
    pair.auto_reply = False
    rpc_id = pair.client.send_request(SERVER, b"q", 5, 0.0)
    pair.client.abort(rpc_id, errno.ECANCELED, 0.0)
    assert pair.client.next_event() == RpcFailed(rpc_id, 5, SERVER, errno.ECANCELED)
    assert pair.client.rpc_count == 0
    pair.client.abort(rpc_id, errno.ECANCELED, 0.0)  # unknown now: no-op
    assert pair.client.next_event() is None


def test_abort_all_silently():
    pair = EnginePair()
    for _ in range(3):
        pair.client.send_request(SERVER, b"q", 0, 0.0)
    pair.client.abort(0, 0, 0.0)
    assert pair.client.rpc_count == 0 and pair.client.next_event() is None


def test_abort_of_a_server_rpc_forgets_it():
    pair = EnginePair()
    pair.auto_reply = False
    pair.client.send_request(SERVER, b"q", 0, 0.0)
    pair.transfer()
    pair.server.abort(pair.requests[0].rpc_id, 0, 0.0)
    assert pair.server.rpc_count == 0


def test_icmp_error_fails_rpcs_to_that_peer_only():
    pair = EnginePair()
    doomed = pair.client.send_request(SERVER, b"q", 1, 0.0)
    other = ("127.0.0.1", 6_000)
    kept = pair.client.send_request(other, b"q", 2, 0.0)
    pair.client.receive_icmp_error(SERVER, errno.ECONNREFUSED, 0.0)
    expected = RpcFailed(doomed, 1, SERVER, errno.ECONNREFUSED, unreachable=True)
    assert pair.client.next_event() == expected
    assert pair.client.next_event() is None
    assert pair.client.rpc_count == 1 and kept


def test_silent_server_times_out_with_etimedout():
    config = HomaConfig(timeout_ticks=20)
    pair = EnginePair(config)
    rpc_id = pair.client.send_request(SERVER, b"q", 3, 0.0)
    pair.tick(25, lose=lambda d: True)
    assert pair.client_events == [RpcFailed(rpc_id, 3, SERVER, errno.ETIMEDOUT)]
    assert pair.client.stats.resends_sent >= 3


def test_timer_is_armed_only_while_there_is_state():
    pair = EnginePair()
    assert pair.client.get_timer() is None
    pair.client.send_request(SERVER, b"q", 0, 0.0)
    assert pair.client.get_timer() == pytest.approx(pair.config.tick)
    pair.transfer()
    pair.settle()
    assert pair.client.get_timer() is None and pair.server.get_timer() is None


def test_one_slow_timer_call_ages_rpcs_by_one_tick_only():
    config = HomaConfig(timeout_ticks=5)
    pair = EnginePair(config)
    pair.client.send_request(SERVER, b"q", 0, 0.0)
    pair.client.datagrams_to_send(0.0)  # lost
    pair.client.handle_timer(10.0)  # ten thousand ticks late: still one tick
    assert pair.client.rpc_count == 1 and pair.client.next_event() is None


def test_srpt_sends_the_short_message_first():
    config = HomaConfig(unsched_bytes=50_000)
    engine = HomaEngine(config, CLIENT[1], random.Random(0))
    engine.send_request(SERVER, bytes(1_000_000), 0, 0.0)
    engine.send_request(SERVER, bytes(1_000_000), 0, 0.0)
    short = engine.send_request(SERVER, b"s" * 64, 0, 0.0)
    first = engine.datagrams_to_send(0.0, max_datagrams=1)
    ((data, _),) = first
    assert wire.unpack_common(data).sender_id == short
    assert len(data) == wire.DATA_HEADER_LENGTH + 64


def test_max_datagrams_limits_data_but_not_control():
    pair = EnginePair(HomaConfig(max_datagram=1_000, unsched_bytes=4_000))
    pair.client.send_request(SERVER, bytes(10_000), 0, 0.0)
    assert len(pair.client.datagrams_to_send(0.0, max_datagrams=2)) == 2
    assert len(pair.client.datagrams_to_send(0.0)) == 3  # the rest of 4,000 unscheduled


def test_gathered_data_packets_view_the_message_and_carry_the_same_bytes():
    payload = random.Random(3).randbytes(300_000)
    built, gathered = (
        HomaEngine(HomaConfig(), CLIENT[1], random.Random(0), gather=gather)
        for gather in (False, True)
    )
    for engine in (built, gathered):
        engine.send_request(
            SERVER, [memoryview(payload[:10]), memoryview(payload[10:])], 0, 0.0
        )
    ((plain, _),) = built.datagrams_to_send(0.0)
    ((parts, _),) = gathered.datagrams_to_send(0.0)
    assert isinstance(plain, bytes) and isinstance(parts, list)
    assert [type(part) for part in parts] == [bytes, memoryview, memoryview]
    assert b"".join(parts) == plain


def test_a_gathering_pair_moves_long_messages_intact():
    pair = EnginePair(gather=True)
    payload = random.Random(4).randbytes(1_000_000)
    pair.client.send_request(SERVER, payload, 7, 0.0)
    pair.transfer()
    (response,) = pair.client_events
    assert isinstance(response, ResponseReceived)
    pieces = response.payload  # delivered unjoined: views of the datagrams
    assert isinstance(pieces, list) and len(pieces) > 1
    assert all(isinstance(piece, memoryview) for piece in pieces)
    assert b"".join(pieces) == payload[::-1]
    assert pair.server.stats.requests_delivered == 1


@pytest.mark.parametrize("seed", range(4))
def test_a_gathering_pair_recovers_lost_and_reordered_packets(seed):
    # Retransmissions are sent as views of the message too, and pieces that
    # arrive out of order (or twice) still come out in order, once.
    rng = random.Random(seed)
    pair = EnginePair(HomaConfig(max_datagram=9_000, max_incoming=200_000), gather=True)

    payload = rng.randbytes(300_000)
    pair.client.send_request(SERVER, payload, 1, pair.now)
    transfer_lossily_until(pair, rng, lambda: bool(pair.client_events))
    (response,) = pair.client_events
    assert isinstance(response, ResponseReceived)
    assert b"".join(response.payload) == payload[::-1]
    resent = (
        pair.client.stats.retransmitted_packets
        + pair.server.stats.retransmitted_packets
    )
    assert resent > 0  # losses were repaired, not dodged


def test_a_long_message_is_granted_in_a_few_steps_not_per_packet():
    pair = EnginePair(HomaConfig(max_incoming=1_000_000))
    pair.client.send_request(SERVER, bytes(1_000_000), 0, 0.0)
    pair.transfer()
    packets = -(-1_000_000 // pair.config.data_per_packet)
    # A quarter window (125 KB) per grant at least: each grant costs both ends a
    # datagram and a pass through the engine.
    assert pair.server.stats.grants_sent <= 1_000_000 // 125_000
    assert pair.server.stats.grants_sent < packets // 2


def test_events_are_frozen():
    event = ResponseReceived(2, 0, SERVER, b"")
    with pytest.raises(AttributeError):
        event.rpc_id = 4  # type: ignore[misc]
    assert isinstance(RequestReceived(3, CLIENT, b""), RequestReceived)


@pytest.mark.parametrize(
    "changes",
    [
        {"max_datagram": 56}, {"max_datagram": 70_000}, {"unsched_bytes": 0},
        {"overcommit": 0}, {"tick": 0.0}, {"wire_tag": 1 << 24},
        {"max_message_length": -1},
    ],
)  # fmt: skip
def test_config_rejects_nonsense(changes):
    with pytest.raises(ValueError):
        HomaConfig(**changes)


def _first_packet(sender_id: int, length: int, chunk: int) -> bytes:
    fields = wire.DataHeader(length, chunk, 0, 0, 0, 0, offset=0)
    header = wire.pack_data_header(
        CLIENT[1], SERVER[1], sender_id, HomaConfig().wire_tag, fields
    )
    return header + bytes(chunk)


def test_bogus_first_packets_cannot_exhaust_reassembly_memory():
    # Each is charged what it holds (1,000 B and the overhead), not the 50,000 B
    # it claims; 60 of them fill the 100,000 B budget and the rest are dropped.
    config = HomaConfig(max_rx_buffer=100_000, timeout_ticks=10)
    pair = EnginePair(config)
    for i in range(60):
        pair.server.receive_datagram(
            _first_packet(2 * i + 2, 50_000, 1_000), CLIENT, 0.0
        )
    assert pair.server.rpc_count == 49  # 49 x 2,024 B fit in 100,000
    assert pair.server.stats.dropped["no_buffer"] == 11
    assert pair.server.snapshot()["rx_bytes_reserved"] == 49 * 2_024
    pair.tick(40 * config.timeout_ticks)  # the senders never come back
    assert pair.server.rpc_count == 0
    assert pair.server.snapshot()["rx_bytes_reserved"] == 0
    assert pair.roundtrip(b"x" * 60_000).payload == b"x" * 60_000  # space is back


def test_datagrams_with_a_foreign_tag_are_dropped_whatever_their_ports():
    pair = EnginePair()
    good = _first_packet(2, 10, 10)
    foreign_tag = good[:8] + b"\0\0\0" + good[11:]
    pair.server.receive_datagram(foreign_tag, CLIENT, 0.0)
    assert pair.server.stats.dropped == {"bad_tag": 1}
    assert pair.server.rpc_count == 0
    # Ports in the header that differ from the UDP ports (a NAT rewrote them)
    # are fine: the request is the datagram source's.
    other_port = HomaEngine(HomaConfig(), 7, random.Random(0), server=True)
    other_port.receive_datagram(good, ("127.0.0.1", 1), 0.0)
    event = other_port.next_event()
    assert isinstance(event, RequestReceived) and event.peer == ("127.0.0.1", 1)


def test_repr_shows_role_port_and_load():
    pair = EnginePair()
    pair.client.send_request(SERVER, b"q", 0, 0.0)
    assert repr(pair.client) == (
        f"<HomaEngine client port={CLIENT[1]} rpcs=1 tombstones=0 ticks=0>"
    )
    assert repr(pair.server).startswith("<HomaEngine server port=5000 ")


def test_kernel_compatible_zero_tag_works_and_rejects_tagged_peers():
    pair = EnginePair(HomaConfig(wire_tag=0))
    assert pair.roundtrip(b"raw").payload == b"war"
    tagged = HomaEngine(HomaConfig(), CLIENT[1], random.Random(9))
    tagged.send_request(SERVER, b"q", 0, 0.0)
    ((datagram, _),) = tagged.datagrams_to_send(0.0)
    assert datagram[8:11] == b"HRU"
    pair.server.receive_datagram(datagram, CLIENT, 0.0)
    assert pair.server.stats.dropped == {"bad_tag": 1}


def test_with_only_tombstones_left_the_timer_sleeps_until_they_expire():
    config = HomaConfig(timeout_ticks=10)  # tombstones live 20 ticks
    pair = EnginePair(config)
    pair.roundtrip(b"q")
    pair.tick(3)  # the ack reaches the server; its RPC becomes a tombstone
    assert pair.server.rpc_count == 0 and pair.server.has_state
    wake = pair.server.get_timer()
    assert wake is not None and wake - pair.now > 10 * config.tick
    pair.client.send_request(SERVER, b"again", 0, pair.now)  # new work: wake up soon
    pair.transfer()
    assert pair.server.get_timer() == pytest.approx(pair.now + config.tick)
    pair.settle()
    assert pair.server.get_timer() is None


def test_snapshot_counts_what_is_held_in_reassembly_and_live_rpcs():
    pair = EnginePair()
    pair.server.receive_datagram(_first_packet(2, 1_000_000, 50_000), CLIENT, 0.0)
    counters = pair.server.snapshot()
    assert counters["live_rpcs"] == counters["server_rpcs"] == 1
    assert counters["rx_messages"] == 1 and counters["rx_bytes_held"] == 50_000
    # What arrived (and the overhead), until the first grant commits it all.
    assert counters["rx_bytes_reserved"] == 50_000 + 1_024
    assert counters["rx_peers"] == 1
    assert pair.server.datagrams_to_send(0.0)  # a GRANT
    assert pair.server.snapshot()["rx_bytes_reserved"] == 1_000_000 + 1_024
    pair.server.receive_datagram(b"\0" * 10, CLIENT, 0.0)
    assert pair.server.snapshot()["dropped_short"] == 1
    assert pair.server.snapshot()["dropped_total"] == 1
