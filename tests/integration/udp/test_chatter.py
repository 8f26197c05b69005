"""Bounded protocol chatter: a peer that never acknowledges its responses gets a
few NEED_ACKs per RPC, with back-off, not one per timer tick."""

from __future__ import annotations

import socket
import time
from collections import Counter

from homarpc.transport.engine import HomaConfig, wire

TAG = HomaConfig().wire_tag
REQUESTS = 5
PAYLOAD = 64


def _request(client_port: int, server_port: int, client_id: int) -> bytes:
    fields = wire.DataHeader(PAYLOAD, PAYLOAD, 0, 0, 0, 0, 0)
    header = wire.pack_data_header(client_port, server_port, client_id, TAG, fields)
    return header + bytes(PAYLOAD)


def test_a_peer_that_never_acks_gets_at_most_twenty_datagrams_per_rpc(echo_server):
    server = echo_server.address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        port = raw.getsockname()[1]
        sent = 0
        for i in range(REQUESTS):
            request = _request(port, server[1], 0x5000 + 2 * i)
            raw.sendto(request, server)
            sent += len(request)
        datagrams: Counter[int] = Counter()  # by RPC (our id)
        received = 0
        raw.settimeout(0.2)
        quiet_since = time.monotonic()
        deadline = quiet_since + 10.0  # the server gives up after ~1 s of ticks
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 1.5:
            try:
                data = raw.recv(65_536)
            except TimeoutError:
                continue
            quiet_since = time.monotonic()
            received += len(data)
            datagrams[wire.unpack_common(data).sender_id ^ 1] += 1
    assert echo_server.requests == REQUESTS
    assert set(datagrams) == {0x5000 + 2 * i for i in range(REQUESTS)}
    assert max(datagrams.values()) <= 20, datagrams  # response + NEED_ACKs
    assert received <= 10 * sent, (received, sent)
    counters = echo_server.transport.stats_snapshot()
    assert counters["need_acks_sent"] <= 19 * REQUESTS
    assert counters["timeouts"] == REQUESTS and counters["live_rpcs"] == 0
