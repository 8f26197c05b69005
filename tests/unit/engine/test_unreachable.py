"""ICMP unreachable: a client RPC that provably never reached its server fails
with the ICMP errno (safe to send elsewhere); one that may have reached it fails
``SERVER_LOST_REQUEST`` (ECONNRESET), never to be resent (at most once)."""

from __future__ import annotations

import errno

from homarpc.transport.engine import SERVER_LOST_REQUEST, HomaConfig, RpcFailed, wire

from .helpers import SERVER, EnginePair

LOST = SERVER_LOST_REQUEST


def _sent(pair: EnginePair, limit: int | None = None) -> list[bytes]:
    """What the client sends now (to a server that is gone)."""
    return [data for data, _ in pair.client.datagrams_to_send(pair.now, limit)]


def _failures(pair: EnginePair, bounced: bytes | None) -> dict[int, int]:
    """Report ``bounced`` as ICMP port unreachable; each client RPC's errno."""
    pair.client.receive_icmp_error(SERVER, errno.ENOTCONN, pair.now, bounced)
    out = {}
    while (event := pair.client.next_event()) is not None:
        assert isinstance(event, RpcFailed) and event.unreachable
        out[event.rpc_id] = event.errno
    assert pair.client.rpc_count == 0
    return out


def test_its_own_data_bounced_and_nothing_heard_never_arrived():
    pair = EnginePair()
    rpc = pair.client.send_request(SERVER, b"q" * 100, 0, 0.0)
    (packet,) = _sent(pair)
    assert _failures(pair, packet[:64]) == {rpc: errno.ENOTCONN}
    assert pair.client.stats.lost_unreachable == 0


def test_another_rpcs_data_bounced_ours_may_have_arrived():
    pair = EnginePair()
    first = pair.client.send_request(SERVER, b"a", 0, 0.0)
    second = pair.client.send_request(SERVER, b"b", 0, 0.0)
    unsent = pair.client.send_request(SERVER, b"c", 0, 0.0)
    packets = _sent(pair, limit=2)  # the third waits its turn
    assert len(packets) == 2
    bounced = next(p for p in packets if wire.unpack_common(p).sender_id == first)
    assert _failures(pair, bounced) == {
        first: errno.ENOTCONN,  # its own packet came back
        second: LOST,  # went out; the server may have run it, then gone
        unsent: errno.ENOTCONN,  # nothing of it ever left
    }
    assert pair.client.stats.lost_unreachable == 1


def test_a_resend_bounced_after_the_server_got_the_request():
    # The server received the request and died: our RESEND for the response
    # bounces. The request may have run: ECONNRESET, whatever bounced.
    pair = EnginePair()
    pair.auto_reply = False
    rpc = pair.client.send_request(SERVER, b"q", 0, 0.0)
    pair.transfer()
    assert len(pair.requests) == 1
    resends = []
    for _ in range(20):
        pair.now += pair.config.tick
        pair.client.handle_timer(pair.now)
        resends += _sent(pair)
        if resends:
            break
    (resend,) = resends
    assert wire.unpack_common(resend).type == wire.PacketType.RESEND
    assert _failures(pair, resend) == {rpc: LOST}


def test_its_own_data_bounced_after_a_resend_may_have_arrived():
    pair = EnginePair()
    rpc = pair.client.send_request(SERVER, b"q", 0, 0.0)
    (packet,) = _sent(pair)  # lost on the way, or reached a server since gone
    for _ in range(20):
        pair.now += pair.config.tick
        pair.client.handle_timer(pair.now)
        if _sent(pair):  # RESEND: "where is my response?"
            break
    assert _failures(pair, packet) == {rpc: LOST}


def test_its_own_data_bounced_after_a_grant_may_have_arrived():
    pair = EnginePair()
    rpc = pair.client.send_request(SERVER, bytes(200_000), 0, 0.0)
    unscheduled = _sent(pair)
    for data in unscheduled:
        pair.server.receive_datagram(data, ("127.0.0.1", 40_001), pair.now)
    for data, _ in pair.server.datagrams_to_send(pair.now):  # a GRANT
        pair.client.receive_datagram(data, SERVER, pair.now)
    scheduled = _sent(pair)
    assert scheduled  # the server crashed; this one bounced
    assert _failures(pair, scheduled[-1]) == {rpc: LOST}


def test_a_response_partly_received_may_have_arrived():
    pair = EnginePair()
    pair.auto_reply = False
    rpc = pair.client.send_request(SERVER, b"q", 0, 0.0)
    pair.transfer()
    pair.server.send_response(pair.requests[0].rpc_id, bytes(200_000), pair.now)
    first, *_ = pair.server.datagrams_to_send(pair.now)
    pair.client.receive_datagram(first[0], SERVER, pair.now)
    assert _failures(pair, None) == {rpc: LOST}


def test_an_unparsable_bounce_spares_only_rpcs_that_sent_nothing():
    pair = EnginePair()
    sent = pair.client.send_request(SERVER, b"a", 0, 0.0)
    unsent = pair.client.send_request(SERVER, b"b", 0, 0.0)
    (packet,) = _sent(pair, limit=1)
    assert wire.unpack_common(packet).sender_id == sent
    foreign = packet[:8] + b"\0\0\0" + packet[11:]  # not our tag
    for bounced in (None, b"", packet[:20], foreign):
        pair2 = EnginePair(HomaConfig())
        a = pair2.client.send_request(SERVER, b"a", 0, 0.0)
        b = pair2.client.send_request(SERVER, b"b", 0, 0.0)
        _sent(pair2, limit=1)
        assert _failures(pair2, bounced) == {a: LOST, b: errno.ENOTCONN}
    assert _failures(pair, packet) == {sent: errno.ENOTCONN, unsent: errno.ENOTCONN}
