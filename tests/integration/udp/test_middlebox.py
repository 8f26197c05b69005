"""Calls through a port-changing middlebox (a UDP relay in the test, standing for
docker-proxy, a Kubernetes Service port mapping or a source NAT): the datagrams'
addresses are the truth, whatever ports the Homa header names."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from homarpc.transport.udp import UdpTransport, open_udp_transport

from .helpers import EchoServer
from .proxy import UdpProxy

LARGE = 1_000_000


@pytest.fixture
def proxied() -> Iterator[tuple[EchoServer, UdpProxy]]:
    server = EchoServer(open_udp_transport(("127.0.0.1", 0), server=True))
    proxy = UdpProxy(server.address)
    yield server, proxy
    proxy.close()
    server.stop()


def _collect(client: UdpTransport, expected: dict[int, bytes], seconds: float) -> int:
    """Responses matching ``expected`` (by cookie) within ``seconds``."""
    good = 0
    deadline = time.monotonic() + seconds
    while expected and time.monotonic() < deadline:
        message = client.recv(timeout=max(0.0, deadline - time.monotonic()))
        if message is None:
            break
        want = expected.pop(message.cookie, None)
        if message.error is None and want is not None and bytes(message) == want:
            good += 1
    return good


def test_small_and_large_calls_through_a_port_changing_relay(proxied, client):
    server, proxy = proxied
    expected: dict[int, bytes] = {}
    for cookie in range(1, 21):
        payload = os.urandom(64 if cookie % 2 else LARGE)
        expected[cookie] = payload
        client.send(proxy.address, payload, cookie=cookie)
    assert _collect(client, expected, seconds=20.0) == 20
    # The server saw the relay's own port, not the client's, and executed each
    # call once (duplicates of retransmitted packets are dropped as such).
    assert client.local_addr[1] not in proxy.outbound_ports()
    assert server.requests == 20
    assert set(server.transport.stats.dropped) <= {"duplicate"}


def test_calls_keep_working_after_the_relay_changes_its_outbound_port(proxied, client):
    server, proxy = proxied
    client.send(proxy.address, b"before", cookie=1)
    assert _collect(client, {1: b"before"}, seconds=10.0) == 1
    (first,) = proxy.outbound_ports()
    proxy.rebind(client.local_addr)  # a NAT mapping expired between two calls
    payload = os.urandom(LARGE)
    client.send(proxy.address, payload, cookie=2)
    assert _collect(client, {2: payload}, seconds=10.0) == 1
    (second,) = proxy.outbound_ports()
    assert second != first and server.requests == 2
