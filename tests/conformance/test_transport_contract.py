"""The transport contract (homarpc.transport._base), checked against every backend.

One suite, parametrised over ``BACKENDS``: a backend is done when it passes all of it.
Backends that cannot run on this host (the kernel module is absent) skip with the reason.
"""

from __future__ import annotations

import errno
import os
import selectors
import threading
import time
from collections.abc import Iterator

import pytest

from homarpc.transport import (
    Message,
    MessageTooLongError,
    PeerUnreachableError,
    RpcAbortedError,
    Transport,
    TransportClosedError,
)

from .backends import BACKENDS, Backend

RECV_TIMEOUT = 10.0  # generous: CI machines are shared and noisy


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    made = BACKENDS[request.param]()
    reason = made.skip_reason()
    if reason is not None:
        pytest.skip(f"{made.name} backend unavailable here: {reason}")
    return made


def _pair(backend: Backend, host: str) -> tuple[Transport, Transport]:
    server = backend.make((host, 0), True)
    client = backend.make((host, 0), False)
    return server, client


@pytest.fixture
def pair(backend: Backend) -> Iterator[tuple[Transport, Transport]]:
    server, client = _pair(backend, "127.0.0.1")
    yield server, client
    client.close()
    server.close()


def _recv(t: Transport) -> Message:
    msg = t.recv(timeout=RECV_TIMEOUT)
    assert msg is not None, f"{t!r} received nothing within {RECV_TIMEOUT}s"
    return msg


def _echo_once(
    server: Transport, client: Transport, payload: bytes, cookie: int
) -> None:
    rpc_id = client.send(server.local_addr, payload, cookie)
    request = _recv(server)
    assert request.is_request and request.error is None
    assert bytes(request) == payload
    server.reply(request.peer, request.id, bytes(request)[::-1])
    request.release()
    response = _recv(client)
    assert not response.is_request and response.error is None
    assert response.id == rpc_id
    assert response.cookie == cookie
    assert bytes(response) == payload[::-1]
    response.release()


@pytest.mark.parametrize("size", [1, 100_000, 1_000_000])
def test_round_trip_returns_exact_bytes_and_cookie(pair, size):
    server, client = pair
    payload = os.urandom(size)
    _echo_once(server, client, payload, cookie=0xC0FFEE + size)


def test_empty_message_round_trip(backend, pair):
    if not backend.supports_empty:
        with pytest.raises(ValueError, match="empty"):
            pair[1].send(pair[0].local_addr, b"", 1)
        return
    _echo_once(*pair, b"", cookie=7)


def test_ipv6(backend):
    if not backend.supports_ipv6:
        pytest.skip(f"{backend.name} has no IPv6")
    server, client = _pair(backend, "::1")
    try:
        assert server.local_addr[0] == "::1" or ":" in server.local_addr[0]
        _echo_once(server, client, b"over six", cookie=6)
    finally:
        client.close()
        server.close()


def test_local_addr_has_a_real_port_after_binding_zero(pair):
    server, client = pair
    assert server.local_addr[1] != 0
    assert client.local_addr[1] != 0
    assert server.local_addr != client.local_addr


def test_requests_carry_distinct_ids_and_responses_match_cookies(pair):
    server, client = pair
    ids = {
        client.send(server.local_addr, f"req {i}".encode(), 1000 + i) for i in range(20)
    }
    assert len(ids) == 20
    for _ in range(20):
        request = _recv(server)
        server.reply(request.peer, request.id, b"re: " + bytes(request))
    seen = {}
    for _ in range(20):
        response = _recv(client)
        seen[response.cookie] = bytes(response)
    assert seen == {1000 + i: f"re: req {i}".encode() for i in range(20)}


@pytest.mark.parametrize("size", [300, 999_000])
def test_a_list_of_parts_travels_as_their_concatenation(pair, size):
    """Gathered send/reply: parts of bytes, memoryview and bytearray, split at
    places no packet boundary matches."""
    server, client = pair
    body = os.urandom(size)
    mutable = bytearray(b"tail")
    parts = [
        b"head",
        memoryview(body)[: size // 3],
        memoryview(body)[size // 3 :],
        mutable,
    ]
    rpc_id = client.send(server.local_addr, parts, 5)
    mutable[:] = b"XXXX"  # a mutable part was taken as it was when sent
    request = _recv(server)
    assert bytes(request) == b"head" + body + b"tail"
    server.reply(request.peer, request.id, [bytes(request)[:7], bytes(request)[7:]])
    request.release()
    response = _recv(client)
    assert response.id == rpc_id and response.error is None
    assert bytes(response) == b"head" + body + b"tail"
    response.release()


def test_too_long_list_of_parts_is_refused(pair):
    server, client = pair
    half = bytes(client.max_message_length // 2 + 1)
    with pytest.raises(MessageTooLongError):
        client.send(server.local_addr, [half, half], 1)


def test_too_long_message_is_refused_before_sending(pair):
    server, client = pair
    with pytest.raises(MessageTooLongError):
        client.send(server.local_addr, bytes(client.max_message_length + 1), 1)


def test_recv_timeout_returns_none(pair):
    _, client = pair
    started = time.monotonic()
    assert client.recv(timeout=0.05) is None
    assert client.recv(timeout=0) is None
    assert time.monotonic() - started < RECV_TIMEOUT


def test_abort_with_error_reports_the_rpc_with_its_cookie(pair):
    server, client = pair
    rpc_id = client.send(server.local_addr, b"never answered", 77)
    _recv(server)  # the server holds the request and does not answer
    client.abort(rpc_id, errno.ECANCELED)
    failed = _recv(client)
    assert failed.id == rpc_id and failed.cookie == 77
    assert isinstance(failed.error, RpcAbortedError)
    assert failed.error.errno == errno.ECANCELED


def test_abort_all_silently_destroys_client_rpcs(pair):
    server, client = pair
    for i in range(3):
        client.send(server.local_addr, b"x", i)
    for _ in range(3):
        request = _recv(server)
        late = request
    client.abort(0, 0)
    server.reply(late.peer, late.id, b"too late")  # ignored: the RPC is gone
    assert client.recv(timeout=0.2) is None


def test_abort_all_with_error_reports_each_rpc(pair):
    server, client = pair
    cookies = {
        client.send(server.local_addr, b"x", 50 + i) and 50 + i for i in range(3)
    }
    client.abort(0, errno.ECONNRESET)
    reported = {_recv(client).cookie for _ in range(3)}
    assert reported == cookies


def test_an_rpc_to_a_dead_port_fails_as_unreachable(backend, pair):
    """Also: a server can bind that port later (Homa: only ports below 32768)."""
    _, client = pair
    dead = ("127.0.0.1", backend.dead_port())
    rpc_id = client.send(dead, b"anyone there?", 9)
    failed = _recv(client)
    assert (failed.id, failed.cookie) == (rpc_id, 9)
    assert isinstance(failed.error, PeerUnreachableError)
    late = backend.make(dead, True)
    try:
        _echo_once(late, client, b"now someone is", cookie=10)
    finally:
        late.close()


def test_a_socket_that_is_not_a_server_never_returns_a_request(backend):
    """A client socket is never asked to answer: the request fails as unreachable
    (G8: the kernel drops it) or goes unanswered (G4a, where every socket accepts
    requests: ours drops them), but ``recv`` on it never returns it."""
    quiet = backend.make(("127.0.0.1", 0), False)
    sender = backend.make(("127.0.0.1", 0), False)
    try:
        sender.send(quiet.local_addr, b"anyone?", 5)
        assert quiet.recv(timeout=0.2) is None
        outcome = sender.recv(timeout=0.2)
        assert outcome is None or isinstance(outcome.error, PeerUnreachableError)
    finally:
        sender.close()
        quiet.close()


def test_close_wakes_a_blocked_receiver(pair):
    _, client = pair
    outcome: list[BaseException | Message | None] = []

    def wait() -> None:
        try:
            outcome.append(client.recv(timeout=RECV_TIMEOUT))
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.1)
    client.close()
    waiter.join(RECV_TIMEOUT)
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], TransportClosedError)


def test_calls_after_close_raise_transport_closed(pair):
    server, client = pair
    client.close()
    client.close()  # idempotent
    assert client.closed
    with pytest.raises(TransportClosedError):
        client.send(server.local_addr, b"x", 1)
    with pytest.raises(TransportClosedError):
        client.recv(timeout=0)


def test_fileno_polls_readable_when_a_message_waits(pair):
    server, client = pair
    with selectors.DefaultSelector() as sel:
        sel.register(server.fileno(), selectors.EVENT_READ)
        client.send(server.local_addr, b"ping", 1)
        message = None
        deadline = time.monotonic() + RECV_TIMEOUT
        while message is None and time.monotonic() < deadline:
            due = server.next_deadline()
            wait = RECV_TIMEOUT if due is None else max(0.0, due - time.monotonic())
            sel.select(min(wait, deadline - time.monotonic()))
            message = server.recv(timeout=0)
        assert message is not None and bytes(message) == b"ping"


def test_many_concurrent_rpcs_from_several_threads(pair):
    server, client = pair
    count, threads = 200, 4
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            request = server.recv(timeout=0.1)
            if request is not None:
                server.reply(request.peer, request.id, bytes(request))

    def send_batch(first: int) -> None:
        for cookie in range(first, first + count // threads):
            client.send(server.local_addr, cookie.to_bytes(8, "big"), cookie)

    workers = [threading.Thread(target=serve)]
    workers += [
        threading.Thread(target=send_batch, args=(t * 10_000,)) for t in range(threads)
    ]
    for worker in workers:
        worker.start()
    try:
        got = {}
        for _ in range(count):
            response = _recv(client)
            got[response.cookie] = int.from_bytes(bytes(response), "big")
        assert len(got) == count
        assert all(cookie == value for cookie, value in got.items())
    finally:
        stop.set()
        for worker in workers:
            worker.join(RECV_TIMEOUT)
