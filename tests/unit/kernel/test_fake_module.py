"""The fake module behaves like the real ones did on loopback (issue 12).

These pin the fake's own behaviour, at the level of its sockets, so that the tests
of ``HomaSocket`` built on it (``test_closing.py``) rest on what real modules do:
the first packet of a one-packet message is lost and asked for again from the
sending socket; a RESEND to a closed port aborts the peer's RPC with ENOTCONN; G4a's
poll is silent on shutdown; servers bind 1..32767 only; G4a delivers requests to
every socket.
"""

from __future__ import annotations

import errno
import select
import socket
import time

import pytest

from homarpc.transport.errors import PeerUnreachableError
from homarpc.transport.kernel import HomaSocket

from .fakekernel import ONE_PACKET, FakeError, FakeKernel

POOL = 4 << 20
WAIT = 5.0
DELAY = 0.02


def _open(fake, server=False, port=0):
    return HomaSocket(
        ("127.0.0.1", port), server=server, pool_bytes=POOL, system=fake.system()
    )


@pytest.fixture(params=["G8c", "G4a"])
def lossy(request):
    return FakeKernel(request.param, resend_delay=DELAY)


def test_a_one_packet_message_arrives_after_the_resend(lossy):
    server, client = _open(lossy, server=True), _open(lossy)
    try:
        sent_at = time.monotonic()
        client.send(server.local_addr, b"small", 1)
        assert server.recv(0) is None  # its only packet was dropped
        request = server.recv(WAIT)
        assert bytes(request) == b"small"
        assert time.monotonic() - sent_at >= DELAY
        client.send(server.local_addr, bytes(ONE_PACKET + 1), 2)
        assert len(server.recv(0)) == ONE_PACKET + 1  # several packets: at once
    finally:
        client.close()
        server.close()


def test_a_request_whose_sender_closed_before_the_resend_is_lost(lossy):
    server, client = _open(lossy, server=True), _open(lossy)
    try:
        client.send(server.local_addr, b"cancel", 1)
        client.close()
        lossy.settle()
        assert server.recv(0.1) is None
    finally:
        server.close()


def test_a_response_whose_server_closed_before_the_resend_fails_enotconn(lossy):
    server, client = _open(lossy, server=True), _open(lossy)
    try:
        rpc_id = client.send(server.local_addr, b"q", 7)
        request = server.recv(WAIT)
        server.reply(request.peer, request.id, b"answer")
        server.close()
        failed = client.recv(WAIT)
        assert (failed.id, failed.cookie) == (rpc_id, 7)
        assert isinstance(failed.error, PeerUnreachableError)
        assert failed.error.errno == errno.ENOTCONN
    finally:
        client.close()
        server.close()


def test_a_replied_rpc_stays_live_until_its_response_got_through():
    fake = FakeKernel("G8c", resend_delay=DELAY)
    server, client = _open(fake, server=True), _open(fake)
    try:
        client.send(server.local_addr, b"q", 7)
        request = server.recv(WAIT)
        assert server.info().num_rpcs == 1  # received, not yet answered
        server.reply(request.peer, request.id, b"answer")
        assert server.info().num_rpcs == 1  # answered, not yet acknowledged
        assert bytes(client.recv(WAIT)) == b"answer"
        assert server.info().num_rpcs == 0
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize(("generation", "reported"), [("G8c", True), ("G4a", False)])
def test_only_g8s_poll_reports_a_shut_down_socket(generation, reported):
    fake = FakeKernel(generation)
    sock = fake.open_socket(socket.AF_INET, socket.SOCK_DGRAM, fake.profile.protocol)
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        assert poller.poll(0) == []
        sock.shutdown(socket.SHUT_RDWR)
        assert bool(poller.poll(0)) is reported
    finally:
        sock.close()


@pytest.mark.parametrize("generation", ["G8c", "G4a"])
def test_servers_bind_ports_below_32768_and_automatic_ports_are_above(generation):
    fake = FakeKernel(generation)
    protocol = fake.profile.protocol
    sock = fake.open_socket(socket.AF_INET, socket.SOCK_DGRAM, protocol)
    try:
        assert sock.port >= 32768
        with pytest.raises(FakeError) as refused:
            sock.bind(("127.0.0.1", 32768))
        assert refused.value.errno == errno.EINVAL
        sock.bind(("127.0.0.1", 32767))
        assert sock.port == 32767 and sock.is_server
    finally:
        sock.close()


@pytest.mark.parametrize(("generation", "serves"), [("G8c", False), ("G4a", True)])
def test_g4a_sockets_accept_requests_unbound_and_unasked(generation, serves):
    fake = FakeKernel(generation)
    protocol = fake.profile.protocol
    sock = fake.open_socket(socket.AF_INET, socket.SOCK_DGRAM, protocol)
    try:
        assert sock.is_server is serves
    finally:
        sock.close()
