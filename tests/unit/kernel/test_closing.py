"""Closing a HomaSocket without losing what it sent, over the fake module (issue 12).

The fake loses the first packet of every one-packet message, as real modules do on
loopback, and asks the sending socket for it again ``DELAY`` later: a socket closed
before that loses the message. ``linger`` waits (bounded) until nothing depends on
the socket any more. Also: ``recv(timeout)`` notices ``close()`` at once where the
module's poll does not report it (G4a), and a client socket drops the requests G4a
delivers to it.
"""

from __future__ import annotations

import errno
import threading
import time

import pytest

from homarpc.transport.errors import TransportClosedError
from homarpc.transport.kernel import HomaSocket

from .fakekernel import FakeKernel

POOL = 4 << 20
WAIT = 5.0
DELAY = 0.02
#: With and without HOMAIOCINFO (G8a and G4a cannot count the socket's RPCs).
GENERATIONS = ["G8c", "G8a", "G4a"]


def _open(fake, server=False):
    return HomaSocket(
        ("127.0.0.1", 0), server=server, pool_bytes=POOL, system=fake.system()
    )


@pytest.fixture(params=GENERATIONS)
def lossy(request):
    return FakeKernel(request.param, resend_delay=DELAY)


@pytest.fixture
def pair(lossy):
    server, client = _open(lossy, server=True), _open(lossy)
    yield server, client
    client.close()
    server.close()


def _answer_one(server, seen):
    def serve():
        request = server.recv(WAIT)
        seen.append(bytes(request))
        server.reply(request.peer, request.id, b"ok")

    thread = threading.Thread(target=serve)
    thread.start()
    return thread


def test_a_cancel_sent_just_before_closing_reaches_the_server(lossy, pair):
    server, client = pair
    seen: list[bytes] = []
    serving = _answer_one(server, seen)
    client.send(server.local_addr, b"CANCEL", 1)
    assert client.linger(WAIT) is True  # until the server answered it
    client.close()
    serving.join(WAIT)
    assert seen == [b"CANCEL"]


def test_lingering_keeps_what_it_received_for_recv(pair):
    server, client = pair
    serving = _answer_one(server, [])
    client.send(server.local_addr, b"q", 5)
    assert client.linger(WAIT) is True  # nobody else reads: it receives itself
    serving.join(WAIT)
    response = client.recv(0)
    assert (bytes(response), response.cookie) == (b"ok", 5)


def test_lingering_leaves_the_messages_to_a_thread_reading(pair):
    server, client = pair
    serving = _answer_one(server, [])
    got = []
    reader = threading.Thread(target=lambda: got.append(client.recv(WAIT)))
    reader.start()
    time.sleep(0.01)
    client.send(server.local_addr, b"q", 6)
    assert client.linger(WAIT) is True
    reader.join(WAIT)
    serving.join(WAIT)
    assert [bytes(message) for message in got] == [b"ok"]


def test_a_reply_sent_just_before_a_graceful_stop_is_not_lost(pair):
    server, client = pair
    rpc_id = client.send(server.local_addr, b"q", 9)
    request = server.recv(WAIT)
    server.reply(request.peer, request.id, b"last words")
    assert server.linger(WAIT) is True  # until the kernel holds none of its RPCs
    server.close()
    response = client.recv(WAIT)
    assert response.error is None, response.error
    assert (response.id, bytes(response)) == (rpc_id, b"last words")


def test_linger_is_bounded(pair):
    server, client = pair
    client.send(server.local_addr, b"never answered", 1)
    started = time.monotonic()
    assert client.linger(0.1) is False
    assert time.monotonic() - started < 1.0
    assert client.stats["linger_timeouts"] == 1


def test_a_g8_server_lingers_while_the_kernel_holds_an_unanswered_request():
    fake = FakeKernel("G8c", resend_delay=DELAY)
    server, client = _open(fake, server=True), _open(fake)
    try:
        client.send(server.local_addr, b"q", 1)
        request = server.recv(WAIT)
        assert server.linger(0.05) is False  # num_rpcs is 1
        server.reply(request.peer, request.id, b"a")
        assert server.linger(WAIT) is True
    finally:
        client.close()
        server.close()


def test_lingering_on_a_closed_socket_returns_false_at_once(pair):
    _, client = pair
    client.close()
    assert client.linger(WAIT) is False


@pytest.mark.parametrize("generation", ["G4a", "G8c"])
def test_close_wakes_recv_with_a_timeout_at_once(generation):
    sock = _open(FakeKernel(generation))  # G4a's poll never reports the shutdown
    outcome = []

    def wait():
        started = time.monotonic()
        try:
            outcome.append(sock.recv(WAIT))
        except TransportClosedError as exc:
            outcome.append(exc)
        outcome.append(time.monotonic() - started)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.05)
    sock.close()
    waiter.join(WAIT + 1)
    assert isinstance(outcome[0], TransportClosedError)
    assert outcome[1] < 1.0


def test_a_g4a_client_socket_drops_and_counts_requests_it_receives():
    fake = FakeKernel("G4a")  # every G4a socket accepts requests
    quiet, sender = _open(fake), _open(fake)
    try:
        sender.send(quiet.local_addr, b"anyone?", 3)
        assert quiet.recv(0.1) is None
        assert quiet.stats["dropped_requests_not_serving"] == 1
        assert quiet.pool.owned_count == 0
        assert sender.recv(0) is None  # unanswered: the sender's deadline ends it
    finally:
        sender.close()
        quiet.close()


def test_a_server_socket_still_gets_requests_on_g4a():
    fake = FakeKernel("G4a")
    server, sender = _open(fake, server=True), _open(fake)
    try:
        sender.send(server.local_addr, b"hello", 3)
        assert bytes(server.recv(WAIT)) == b"hello"
        assert server.stats["dropped_requests_not_serving"] == 0
    finally:
        sender.close()
        server.close()


def test_an_aborted_rpc_does_not_hold_linger_up():
    fake = FakeKernel("G8c", resend_delay=DELAY)
    server, client = _open(fake, server=True), _open(fake)
    try:
        rpc_id = client.send(server.local_addr, b"q", 1)
        client.abort(rpc_id, errno.ECANCELED)
        assert client.linger(WAIT) is True  # its failure was received meanwhile
        assert client.recv(0).error.errno == errno.ECANCELED
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("generation", ["G8c", "G8-upstream"])
def test_a_client_does_not_linger_for_rpcs_it_abandoned(generation):
    fake = FakeKernel(generation, resend_delay=DELAY)  # upstream: abort is local
    server, client = _open(fake, server=True), _open(fake)
    try:
        rpc_id = client.send(server.local_addr, b"poll", 1)
        assert server.recv(WAIT) is not None  # held, never answered
        client.abort(rpc_id, 0)
        started = time.monotonic()
        assert client.linger(WAIT) is True
        assert time.monotonic() - started < 1.0
    finally:
        client.close()
        server.close()
