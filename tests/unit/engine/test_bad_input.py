"""Each kind of bad datagram is dropped, counted under its own reason, and harmless."""

from __future__ import annotations

import errno

import pytest

from homarpc.transport.engine import HomaConfig, RpcFailed, wire
from homarpc.transport.engine.wire import PacketType

from .helpers import CLIENT, SERVER, EnginePair

TAG = HomaConfig().wire_tag
CLIENT_ID = 0x1000  # an id the client below never uses


def data(
    sender_id: int = CLIENT_ID, length: int = 10, offset: int = 0,
    body: bytes = b"0123456789",
    src: int = CLIENT[1], dst: int = SERVER[1],
) -> bytes:  # fmt: skip
    fields = wire.DataHeader(length, length, 0, 0, 0, 0, offset)
    return wire.pack_data_header(src, dst, sender_id, TAG, fields) + body


def bare(
    ptype: PacketType, sender_id: int, src: int = CLIENT[1], dst: int = SERVER[1]
) -> bytes:
    return wire.pack_control(ptype, src, dst, sender_id, TAG)


CASES = {
    "short": [b"\x00" * 27],
    "unknown_type": [
        bare(PacketType.BUSY, 2)[:11] + b"\x30" + bare(PacketType.BUSY, 2)[12:]
    ],
    "truncated": [wire.pack_grant(CLIENT[1], SERVER[1], 2, TAG, 10)[:32]],
    "too_long": [data(length=1_000_001, body=b"")],
    "out_of_range": [data(length=10, offset=5)],
    "length_mismatch": [
        data(length=20, body=b"x" * 5),
        data(length=21, offset=5, body=b"y"),
    ],
    "unexpected": [
        bare(PacketType.NEED_ACK, CLIENT_ID),
        wire.pack_ack(CLIENT[1], SERVER[1], 3, TAG),
    ],
    "bad_ack": [
        wire.pack_ack(CLIENT[1], SERVER[1], 2, TAG)[:28] + b"\x00\x06" + bytes(50)
    ],
    "unknown_rpc": [
        wire.pack_grant(CLIENT[1], SERVER[1], CLIENT_ID, TAG, 100),
        bare(PacketType.BUSY, CLIENT_ID),
        bare(PacketType.RPC_UNKNOWN, CLIENT_ID),
    ],
    "duplicate": [data(length=20, body=b"x" * 5), data(length=20, body=b"x" * 5)],
    "too_many_gaps": [data(length=100, offset=o, body=b"z") for o in (10, 20, 30)],
}


@pytest.mark.parametrize("reason", CASES)
def test_bad_datagram_is_dropped_for_its_reason(reason):
    pair = EnginePair(HomaConfig(max_gaps=2))
    for datagram in CASES[reason]:
        pair.server.receive_datagram(datagram, CLIENT, 0.0)
    assert pair.server.stats.dropped[reason] >= 1, pair.server.stats.dropped
    assert pair.server.next_event() is None
    assert pair.roundtrip(b"still fine").payload == b"enif llits"


def test_response_data_for_an_unknown_rpc_is_dropped():
    pair = EnginePair()
    pair.client.receive_datagram(
        data(sender_id=CLIENT_ID | 1, src=SERVER[1], dst=CLIENT[1]), SERVER, 0.0
    )
    assert pair.client.stats.dropped == {"unknown_rpc": 1}


def test_a_response_from_a_new_address_moves_the_rpc_there():
    # A server behind a load balancer answers from its own address; the client
    # RPC is found by its (random) id, as in the kernel, and follows the server.
    pair = EnginePair()
    pair.auto_reply = False
    rpc_id = pair.client.send_request(SERVER, b"q" * 100_000, 0, 0.0)
    pair.client.datagrams_to_send(0.0)
    moved = ("127.0.0.2", 6_000)
    grant = wire.pack_grant(SERVER[1], CLIENT[1], rpc_id | 1, TAG, 100_000)
    pair.client.receive_datagram(grant, moved, 0.0)
    assert {dst for _, dst in pair.client.datagrams_to_send(0.0)} == {moved}
    answer = data(sender_id=rpc_id | 1, src=SERVER[1], dst=CLIENT[1])
    pair.client.receive_datagram(answer, moved, 0.0)
    event = pair.client.next_event()
    assert event is not None and event.peer == moved and not pair.client.stats.dropped


def test_acks_overflow_into_an_explicit_ack_packet():
    pair = EnginePair()
    pair.auto_reply = False
    ids = [pair.client.send_request(SERVER, b"q", i, 0.0) for i in range(6)]
    pair.transfer()
    for request in pair.requests:
        pair.server.send_response(request.rpc_id, b"a", 0.0)
    pair.transfer()  # six responses arrive; no request carries the acks back
    assert pair.client.stats.acks_sent == 1
    assert pair.server.rpc_count == 0  # one ACK packet freed all six
    assert len(ids) == 6


def test_icmp_error_also_forgets_that_peers_requests():
    pair = EnginePair()
    pair.auto_reply = False
    pair.client.send_request(SERVER, b"q", 0, 0.0)
    pair.transfer()
    assert pair.server.rpc_count == 1
    pair.server.receive_icmp_error(CLIENT, errno.ECONNREFUSED, 0.0)
    assert pair.server.rpc_count == 0


def test_two_clients_with_the_same_id_get_distinct_server_ids():
    pair = EnginePair()
    pair.server.receive_datagram(data(sender_id=CLIENT_ID), CLIENT, 0.0)
    other = ("127.0.0.2", CLIENT[1])
    pair.server.receive_datagram(data(sender_id=CLIENT_ID), other, 0.0)
    first, second = pair.server.next_event(), pair.server.next_event()
    assert first is not None and second is not None
    assert first.rpc_id == CLIENT_ID | 1 and second.rpc_id not in (first.rpc_id, 0)
    assert second.rpc_id & 1


def test_resend_to_a_client_receiving_its_response_is_ignored():
    pair = EnginePair(HomaConfig(max_datagram=1_000, unsched_bytes=2_000))
    pair.auto_reply = False
    rpc_id = pair.client.send_request(SERVER, b"q", 0, 0.0)
    pair.transfer()
    pair.server.send_response(pair.requests[0].rpc_id, bytes(10_000), 0.0)
    first, _ = pair.server.datagrams_to_send(0.0)[0]
    pair.client.receive_datagram(first, SERVER, 0.0)
    resend = wire.pack_resend(SERVER[1], CLIENT[1], rpc_id | 1, TAG, 0, 1)
    pair.client.receive_datagram(resend, SERVER, 0.0)
    assert pair.client.stats.dropped == {"stale": 1}
    assert not [e for e in pair.client_events if isinstance(e, RpcFailed)]
