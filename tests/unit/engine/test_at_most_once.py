"""At most once, at the transport: RPC_UNKNOWN restarts a request only if it
provably never arrived whole; a request a server may have processed fails instead."""

from __future__ import annotations

import errno
import random

from homarpc.transport.engine import (
    REQUEST_REFUSED,
    SERVER_LOST_REQUEST,
    HomaConfig,
    HomaEngine,
    ResponseReceived,
    RpcFailed,
)

from .helpers import SERVER, EnginePair


def _restart_server(pair: EnginePair) -> HomaEngine:
    """The server process restarts now: a fresh engine on the same port."""
    pair.server = HomaEngine(
        pair.config, SERVER[1], random.Random(99), server=True, started=pair.now
    )
    return pair.server


def _tick_until_event(pair: EnginePair, ticks: int) -> None:
    for _ in range(ticks):
        if pair.client_events:
            return
        pair.tick()


def test_a_fully_sent_request_is_not_sent_again_to_a_restarted_server():
    pair = EnginePair()
    pair.auto_reply = False
    pair.client.send_request(SERVER, b"q" * 64, 7, pair.now)
    pair.transfer()
    assert len(pair.requests) == 1  # the first incarnation has it (and dies)
    pair.tick(20)
    fresh = _restart_server(pair)
    _tick_until_event(pair, 200)
    (event,) = pair.client_events
    assert isinstance(event, RpcFailed) and event.cookie == 7
    assert event.errno == SERVER_LOST_REQUEST == errno.ECONNRESET
    assert fresh.stats.requests_delivered == 0 and len(pair.requests) == 1
    assert pair.client.stats.lost_by_server == 1 and pair.client.stats.restarts == 0


def test_a_large_request_sent_whole_is_not_sent_again_either():
    pair = EnginePair()
    pair.auto_reply = False
    pair.client.send_request(SERVER, bytes(300_000), 1, pair.now)
    pair.transfer()
    pair.tick(20)
    fresh = _restart_server(pair)
    _tick_until_event(pair, 200)
    (event,) = pair.client_events
    assert isinstance(event, RpcFailed) and event.errno == SERVER_LOST_REQUEST
    assert fresh.stats.requests_delivered == 0


def test_a_request_lost_on_the_way_is_restarted():
    # The server has been up since before the request and has no trace of it:
    # it never arrived, so sending it again cannot run it twice.
    pair = EnginePair()
    pair.client.send_request(SERVER, b"lost", 1, pair.now)
    pair.transfer(lose=lambda d: d[2] == SERVER)  # the request's one packet
    _tick_until_event(pair, 200)
    (event,) = pair.client_events
    assert isinstance(event, ResponseReceived) and event.payload == b"tsol"
    assert pair.client.stats.restarts == 1 and len(pair.requests) == 1


def test_a_partly_sent_request_is_restarted_on_a_new_server():
    # Not every byte went out: the first incarnation never had it whole.
    config = HomaConfig(max_datagram=1_000, unsched_bytes=2_000)
    pair = EnginePair(config)
    pair.client.send_request(SERVER, bytes(range(256)) * 40, 1, pair.now)
    for datagram, dst in pair.client.datagrams_to_send(pair.now):
        assert dst == SERVER
        data = b"".join(datagram) if isinstance(datagram, list) else datagram
        pair.server.receive_datagram(data, ("127.0.0.1", 40_001), pair.now)
    pair.server.datagrams_to_send(pair.now)  # its grants are lost with it
    fresh = _restart_server(pair)
    _tick_until_event(pair, 300)
    (event,) = pair.client_events
    assert isinstance(event, ResponseReceived)
    assert event.payload == (bytes(range(256)) * 40)[::-1]
    assert fresh.stats.requests_delivered == 1


def test_a_refusing_server_is_reported_as_refusing_not_as_silent():
    # Every first packet is refused (no buffer space) and the RPC forgotten; the
    # server answers each RESEND with RPC_UNKNOWN. The client restarts until the
    # timeout, which then names the refusal (the server was never silent).
    config = HomaConfig(timeout_ticks=100, max_rx_buffer=10_000)
    pair = EnginePair(config)
    pair.client.send_request(SERVER, bytes(60_000), 1, pair.now)
    pair.transfer()
    _tick_until_event(pair, 400)
    (event,) = pair.client_events
    assert isinstance(event, RpcFailed)
    assert event.errno == REQUEST_REFUSED == errno.ECONNREFUSED
    assert pair.client.stats.restarts >= 2 and pair.client.stats.timeouts == 0
