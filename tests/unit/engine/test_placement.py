"""Receiving a long message in place (``engine/placement.py``): a layout hook
chooses where, packets are copied there on arrival, or read straight there by a
driver that lands them (``HomaEngine.landing``/``receive_landed``)."""

from __future__ import annotations

import random

import pytest

from homarpc.transport.engine import (
    HomaConfig,
    Landing,
    Placement,
    RequestReceived,
    ResponseReceived,
)

from .helpers import CLIENT, SERVER, EnginePair, transfer_lossily_until

SKIP = 10  # the "reader's header" the test layout keeps apart


def _placing_layout(calls: list[int]):
    def layout(first: memoryview, length: int) -> Placement | None:
        calls.append(length)
        return Placement(SKIP, memoryview(bytearray(length - SKIP)))

    return layout


def _request_bytes(event: RequestReceived) -> bytes:
    parts = event.payload
    assert isinstance(parts, list)
    return b"".join(bytes(p) if isinstance(p, Placement) else p for p in parts)


def test_a_long_request_is_written_into_the_placement_the_layout_chose():
    pair = EnginePair(gather=True)
    calls: list[int] = []
    pair.server.layout = _placing_layout(calls)
    payload = random.Random(1).randbytes(1_000_000)
    pair.client.send_request(SERVER, payload, 0, 0.0)
    pair.transfer()
    (request,) = pair.requests
    *lead, placed = request.payload
    assert isinstance(placed, Placement)
    assert b"".join(lead) == payload[:SKIP]
    assert placed.view == payload[SKIP:]
    assert calls == [len(payload)]  # asked once, at the first packet
    assert pair.server.stats.messages_placed == 1
    (response,) = pair.client_events  # the unplaced direction still works
    assert isinstance(response, ResponseReceived)


def test_a_placement_that_does_not_fit_is_ignored():
    pair = EnginePair(gather=True)
    pair.server.layout = lambda first, length: Placement(SKIP, memoryview(bytes(9)))
    payload = random.Random(2).randbytes(300_000)
    pair.client.send_request(SERVER, payload, 0, 0.0)
    pair.transfer()
    (request,) = pair.requests
    assert not any(isinstance(p, Placement) for p in request.payload)
    assert _request_bytes(request) == payload
    assert pair.server.stats.messages_placed == 0


@pytest.mark.parametrize(
    ("skip", "size", "readonly", "fits"),
    [
        (10, 990, False, True),
        (10, 991, False, False),  # one byte too many
        (600, 400, False, False),  # skips more than the first packet holds
        (10, 990, True, False),  # cannot be written
    ],
)
def test_placement_fits_only_exactly(skip, size, readonly, fits):
    buffer = bytes(size) if readonly else bytearray(size)
    assert Placement(skip, memoryview(buffer)).fits(500, 1000) is fits


@pytest.mark.parametrize("seed", range(3))
def test_a_placed_message_survives_loss_reordering_and_duplicates(seed):
    rng = random.Random(seed)
    pair = EnginePair(HomaConfig(max_datagram=9_000, max_incoming=200_000), gather=True)
    pair.server.layout = _placing_layout([])

    payload = rng.randbytes(300_000)
    pair.client.send_request(SERVER, payload, 0, pair.now)
    transfer_lossily_until(pair, rng, lambda: bool(pair.requests))
    (request,) = pair.requests
    assert _request_bytes(request) == payload


def _land_or_deliver(pair: EnginePair, datagram, landed: list[int]) -> None:
    """What the UDP driver does: read into the landing zone if there is one."""
    data, src, dst = datagram
    if isinstance(data, list):
        data = b"".join(data)
    engine = pair.engine_at(dst)
    landing = engine.landing()
    if landing is not None:
        header = bytearray(data[: Landing.HEADER])
        body = data[Landing.HEADER :]
        fields = landing.matches(header, len(data), src)
        if fields is not None:
            landing.zone[: len(body)] = body  # recvmsg_into's work
            engine.receive_landed(fields, landing.zone[: len(body)], src, pair.now)
            landed.append(len(body))
            pair.drain_events()
            return
    engine.receive_datagram(data, src, pair.now)
    pair.drain_events()


def test_landed_packets_need_no_copy_and_make_the_same_message():
    pair = EnginePair(gather=True)
    pair.server.layout = _placing_layout([])
    payload = random.Random(3).randbytes(1_000_000)
    pair.client.send_request(SERVER, payload, 0, 0.0)
    landed: list[int] = []
    while batch := pair.pending():
        for datagram in batch:
            _land_or_deliver(pair, datagram, landed)
    (request,) = pair.requests
    assert _request_bytes(request) == payload
    # Every byte after the first packet (the unscheduled bytes) landed in place.
    assert sum(landed) == len(payload) - pair.config.unsched_bytes
    assert pair.server.landing() is None  # nothing more expected


def _granted_next_packet(pair: EnginePair, receiver: tuple[str, int]) -> bytes:
    """Deliver ``receiver``'s GRANT to its peer; the DATA packet that earns."""
    sender = CLIENT if receiver == SERVER else SERVER
    for grant, dst in pair.engine_at(receiver).datagrams_to_send(pair.now):
        pair.deliver((grant, receiver, dst))
    (packet, _), *_ = pair.engine_at(sender).datagrams_to_send(pair.now)
    return b"".join(packet) if isinstance(packet, list) else packet


def test_a_landing_refuses_other_packets():
    pair = EnginePair(gather=True)
    pair.server.layout = _placing_layout([])
    pair.client.send_request(SERVER, bytes(500_000), 0, 0.0)
    first_batch = pair.pending()
    pair.deliver(first_batch[0])  # the first packet: placed, a landing appears
    landing = pair.server.landing()
    assert landing is not None
    # The next packet of that message would match; the same bytes from
    # elsewhere, at another offset, or declaring another length would not.
    raw = _granted_next_packet(pair, receiver=SERVER)
    header = bytearray(raw[: Landing.HEADER])
    assert landing.matches(header, len(raw), CLIENT) is not None
    assert landing.matches(header, len(raw), ("127.0.0.1", 9)) is None
    later = Landing(
        landing.sender_id, landing.peer, landing.offset, landing.length, landing.zone
    )
    assert later.advance(1) and later.matches(header, len(raw), CLIENT) is None
    longer = Landing(
        landing.sender_id,
        landing.peer,
        landing.offset,
        landing.length + 1,
        landing.zone,
    )
    assert longer.matches(header, len(raw), CLIENT) is None
    assert landing.matches(header[:33], 33, CLIENT) is None  # a control packet
    assert not landing.advance(len(landing.zone))  # the zone is used up


def test_a_packet_landed_for_a_message_that_was_aborted_meanwhile_is_dropped():
    # The driver reads without the lock: the RPC can be aborted between a read
    # into its landing zone and the engine seeing that packet.
    pair = EnginePair(gather=True)
    pair.client.layout = _placing_layout([])
    pair.auto_reply = False
    pair.client.send_request(SERVER, bytes(10), 0, 0.0)
    pair.transfer()
    (request,) = pair.requests
    pair.server.send_response(request.rpc_id, bytes(300_000), 0.0)
    batch = pair.pending()
    pair.deliver(batch[0])  # the response's first packet: placed on the client
    landing = pair.client.landing()
    assert landing is not None
    raw = _granted_next_packet(pair, receiver=CLIENT)
    fields = landing.matches(bytearray(raw[: Landing.HEADER]), len(raw), SERVER)
    assert fields is not None
    client_id = request.rpc_id ^ 1  # (the server's id is the client's | 1)
    pair.client.abort(client_id, 0, pair.now)  # the caller gave up meanwhile
    body = landing.zone[: len(raw) - Landing.HEADER]
    body[:] = raw[Landing.HEADER :]
    dropped = pair.client.stats.dropped_total
    pair.client.receive_landed(fields, body, SERVER, pair.now)
    assert pair.client.stats.dropped_total == dropped + 1
    assert pair.client.landing() is None and not pair.client_events
