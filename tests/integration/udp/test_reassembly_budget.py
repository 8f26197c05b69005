"""Tiny datagrams that claim 4 MB messages do not block large calls: the
reassembly budget charges what a message holds, not what it claims."""

from __future__ import annotations

import socket
import time

from homarpc.transport.engine import HomaConfig, wire
from homarpc.transport.udp import open_udp_transport

from .helpers import EchoServer, recv_or_fail

TAG = HomaConfig().wire_tag
CLAIMERS = 20
CLAIM = 4_000_000  # 20 x 4 MB claimed: more than the 64 MB budget


def _wait_for(server: EchoServer, datagrams: int) -> None:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        if server.transport.stats_snapshot()["datagrams_received"] >= datagrams:
            return
        time.sleep(0.002)
    raise AssertionError("the server never read the claims")


def test_a_1_mb_call_completes_promptly_beside_tiny_4_mb_claims():
    # A long timeout keeps the claimers' silent messages around for the whole
    # test (they used to hold the budget until they timed out).
    config = HomaConfig(
        max_message_length=4_259_840, max_incoming=1_000_000, timeout_ticks=3_000
    )
    server = EchoServer(
        open_udp_transport(("127.0.0.1", 0), server=True, config=config),
        answer=lambda request: len(request).to_bytes(4, "big"),
    )
    client = open_udp_transport(("127.0.0.1", 0))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            port = raw.getsockname()[1]
            for i in range(CLAIMERS):  # 57 B each: a header and one byte
                fields = wire.DataHeader(CLAIM, 1, 0, 0, 0, 0, 0)
                header = wire.pack_data_header(port, server.address[1], 2 * i + 2,
                                               TAG, fields)  # fmt: skip
                raw.sendto(header + b"\x01", server.address)
            _wait_for(server, CLAIMERS)
            held = server.transport.stats_snapshot()
            assert held["rx_messages"] == CLAIMERS
            started = time.monotonic()
            client.send(server.address, bytes(1_000_000), cookie=9)
            response = recv_or_fail(client, timeout=10.0)
            elapsed = time.monotonic() - started
        assert response.error is None, response.error
        assert bytes(response) == (1_000_000).to_bytes(4, "big")
        assert elapsed < 1.5, f"the 1 MB call took {elapsed:.3f} s"
        print(f"1 MB call beside {CLAIMERS} claims: {elapsed * 1e3:.1f} ms")
        counters = server.transport.stats_snapshot()
        assert counters.get("dropped_no_buffer", 0) == 0
        assert counters["rx_bytes_reserved"] <= config.rx_share  # the claimers' share
    finally:
        client.close()
        server.stop()
