"""``UdpTransport.linger``: before closing, wait (bounded) until nothing this
socket sent can still be asked for again (Homa retransmits from the sending
socket), over real loopback sockets; loss comes from ``DropReads``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from homarpc.transport import Message
from homarpc.transport.udp import UdpTransport, open_udp_transport

from .helpers import DropReads, EchoServer, recv_or_fail


@pytest.fixture
def server() -> Iterator[UdpTransport]:
    transport = open_udp_transport(("127.0.0.1", 0), server=True)
    yield transport
    transport.close()


def _receive_in_background(transport: UdpTransport) -> tuple[threading.Thread, list]:
    got: list[Message | None] = []
    thread = threading.Thread(target=lambda: got.append(transport.recv(timeout=5.0)))
    thread.start()
    return thread, got


def _lose_the_reply_then_answer(
    server: UdpTransport, client: UdpTransport, linger: bool
) -> Message:
    """The client's first read of the reply is lost; the server closes right after
    replying, lingering first or not. What the client gets."""
    lossy = DropReads.install(client, server.local_addr)
    client.send(server.local_addr, b"ping", cookie=7)
    request = recv_or_fail(server)
    thread, got = _receive_in_background(client)
    server.reply(request.peer, request.id, b"pong")
    if linger:
        assert server.linger(2.0) is True
    server.close()
    thread.join(10.0)
    assert lossy.dropped == 1
    (message,) = got
    assert message is not None
    return message


def test_a_lost_reply_arrives_when_the_server_lingers_before_closing(server, client):
    message = _lose_the_reply_then_answer(server, client, linger=True)
    assert message.error is None and message.cookie == 7
    assert bytes(message) == b"pong"


def test_a_lost_reply_fails_when_the_server_closes_at_once(server, client):
    """What linger is for: the client's RESEND meets a closed port."""
    message = _lose_the_reply_then_answer(server, client, linger=False)
    assert message.error is not None and message.cookie == 7


def test_linger_waits_for_the_response_and_keeps_it_for_recv(echo_server, client):
    """Nobody else receives: linger drives the socket and queues the response."""
    lossy = DropReads.install(client, echo_server.address)
    client.send(echo_server.address, b"hello", cookie=3)
    assert client.linger(5.0) is True
    assert lossy.dropped == 1  # the response came only after a RESEND
    message = client.recv(timeout=0)
    assert message is not None and bytes(message) == b"hello"
    assert message.cookie == 3


def test_linger_lets_a_receiving_thread_have_the_response(echo_server, client):
    thread, got = _receive_in_background(client)
    time.sleep(0.05)  # the thread leads the socket
    client.send(echo_server.address, b"hi", cookie=4)
    assert client.linger(5.0) is True
    thread.join(10.0)
    (message,) = got
    assert message is not None and bytes(message) == b"hi"
    assert client.recv(timeout=0) is None  # nothing was kept twice


def test_linger_on_a_server_waits_for_the_ack_of_its_reply(server, client):
    client.send(server.local_addr, b"ping")
    request = recv_or_fail(server)
    thread, _ = _receive_in_background(client)
    server.reply(request.peer, request.id, b"pong")
    assert server._engine.in_flight() == 1
    assert server.linger(2.0) is True
    assert server._engine.in_flight() == 0
    thread.join(10.0)


def test_a_server_whose_client_went_away_stops_lingering_at_once(server, client):
    """The reply meets a closed port: ICMP frees the server RPC, nothing is left."""
    client.send(server.local_addr, b"ping")
    request = recv_or_fail(server)
    client.close()
    server.reply(request.peer, request.id, b"pong")
    started = time.monotonic()
    assert server.linger(2.0) is True
    assert time.monotonic() - started < 0.5


def test_an_unanswered_request_is_not_waited_for(server, client):
    """The layer above decides what to answer before it lingers."""
    client.send(server.local_addr, b"ping")
    recv_or_fail(server)
    assert server.linger(2.0) is True


def test_linger_times_out_on_an_rpc_nobody_answers(server, client):
    client.send(server.local_addr, b"never answered")
    started = time.monotonic()
    assert client.linger(0.1) is False
    assert 0.1 <= time.monotonic() - started < 1.0


def test_aborted_rpcs_are_not_waited_for(server, client):
    rpc_id = client.send(server.local_addr, b"abandoned")
    client.abort(rpc_id)
    started = time.monotonic()
    assert client.linger(2.0) is True
    assert time.monotonic() - started < 0.5


def test_linger_with_nothing_sent_returns_at_once(client):
    assert client.linger(2.0) is True


def test_linger_returns_false_once_closed_and_never_raises(server, client):
    client.send(server.local_addr, b"never answered")
    threading.Timer(0.05, client.close).start()
    started = time.monotonic()
    assert client.linger(5.0) is False
    assert time.monotonic() - started < 1.0
    assert client.linger(1.0) is False  # closed already


def test_echo_server_fixture_still_serves_after_a_linger(
    echo_server: EchoServer, client
):
    for _ in range(3):
        client.send(echo_server.address, b"x")
        assert client.linger(5.0) is True
        assert bytes(recv_or_fail(client, 1.0)) == b"x"
