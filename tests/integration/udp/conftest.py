"""Fixtures for the embedded (UDP) transport's real-socket tests on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from homarpc.transport.udp import UdpTransport, open_udp_transport

from .helpers import EchoServer


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer(open_udp_transport(("127.0.0.1", 0), server=True))
    yield server
    server.stop()


@pytest.fixture
def client() -> Iterator[UdpTransport]:
    transport = open_udp_transport(("127.0.0.1", 0))
    yield transport
    transport.close()
