"""``HomaEngine.in_flight``: what closing the socket now could lose (the UDP
transport's ``linger`` waits for it to reach 0)."""

from __future__ import annotations

import errno

from .helpers import SERVER, EnginePair


def test_an_idle_engine_has_nothing_in_flight():
    pair = EnginePair()
    assert pair.client.in_flight() == 0 and pair.server.in_flight() == 0


def test_a_client_rpc_counts_until_its_response_and_its_ack_are_out():
    pair = EnginePair()
    pair.auto_reply = False
    pair.client.send_request(SERVER, b"q", 0, 0.0)
    assert pair.client.in_flight() == 1
    pair.transfer()  # the request is out; the server owes the response
    assert pair.client.in_flight() == 1
    assert pair.server.in_flight() == 0  # a request not yet answered: not ours
    pair.server.send_response(pair.requests[0].rpc_id, b"r", pair.now)
    assert pair.server.in_flight() == 1  # a response not yet acknowledged
    pair.transfer()
    assert pair.client.in_flight() == 1  # the response is in, its ack not yet out
    pair.tick(pair.config.request_ack_ticks + 2)
    assert pair.client.in_flight() == 0
    assert pair.server.in_flight() == 0  # acknowledged: a tombstone needs nothing


def test_aborted_client_rpcs_do_not_count():
    pair = EnginePair()
    pair.auto_reply = False
    first = pair.client.send_request(SERVER, b"q", 0, 0.0)
    pair.client.send_request(SERVER, b"q", 0, 0.0)
    assert pair.client.in_flight() == 2
    pair.client.abort(first, errno.ECANCELED, 0.0)
    assert pair.client.in_flight() == 1
    pair.client.abort(0, 0, 0.0)
    assert pair.client.in_flight() == 0


def test_a_server_rpc_counts_while_its_response_goes_unacknowledged():
    pair = EnginePair()
    pair.client.send_request(SERVER, b"q", 0, 0.0)
    pair.transfer(lose=lambda datagram: datagram[1] == SERVER)  # replies lost
    assert pair.server.in_flight() == 1
    pair.tick(5, lose=lambda datagram: True)  # NEED_ACKs go unanswered
    assert pair.server.in_flight() == 1
