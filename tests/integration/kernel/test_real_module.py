"""The kernel backend against a real Homa module (either supported generation).

Skipped, with the reason ``unavailable_reason()`` gives, where no module is loaded
(the case on CI machines and containers). Written to pass on G8 and G4a alike: it
uses only what both have, and checks optional ioctls only where detected. The
transport conformance suite (``tests/conformance``) also runs on this backend there;
these add what is particular to the kernel.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator

import pytest

from homarpc.transport import (
    Message,
    PeerUnreachableError,
    RpcAbortedError,
    TransportClosedError,
)
from homarpc.transport.kernel import (
    HomaSocket,
    abi_generation,
    open_kernel_transport,
    unavailable_reason,
)
from tests.conformance import test_transport_contract as contract
from tests.conformance.backends import HOMA_SERVER_PORTS, released_port

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _needs_the_module() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def _open_pair(host: str) -> tuple[HomaSocket, HomaSocket]:
    server = open_kernel_transport((host, 0), server=True)
    client = open_kernel_transport((host, 0))
    return server, client


@pytest.fixture
def pair() -> Iterator[tuple[HomaSocket, HomaSocket]]:
    server, client = _open_pair("127.0.0.1")
    yield server, client
    client.close()
    server.close()


def _recv(sock: HomaSocket) -> Message:
    return contract._recv(sock)


def _round_trip(server: HomaSocket, client: HomaSocket, payload: bytes, cookie: int):
    contract._echo_once(server, client, payload, cookie)


def test_a_supported_generation_was_detected():
    assert abi_generation() in ("G8", "G4a")


@pytest.mark.parametrize("size", [1, 65_536, 65_537, 100_000, 1_000_000])
def test_round_trip_in_one_process(pair, size):
    server, client = pair
    _round_trip(server, client, os.urandom(size), cookie=size)


def test_ipv6(pair):
    server, client = _open_pair("::1")
    try:
        assert server.local_addr[0] == "::1"
        _round_trip(server, client, b"over IPv6", cookie=6)
    finally:
        client.close()
        server.close()


def test_abort_with_an_error_reports_the_rpc_by_ioctl_or_locally(pair):
    server, client = pair
    # G4a and full G8 builds abort in the kernel; upstream builds abort locally.
    uses_ioctl = client._ioctls.abort is not None
    rpc_id = client.send(server.local_addr, b"never answered", 77)
    _recv(server)
    client.abort(rpc_id, errno.ECANCELED)
    if not uses_ioctl:
        assert client.next_deadline() is not None  # the failure is queued locally
    failed = _recv(client)
    assert (failed.id, failed.cookie) == (rpc_id, 77)
    assert isinstance(failed.error, RpcAbortedError)
    assert failed.error.errno == errno.ECANCELED


def test_a_socket_that_is_not_a_server_gets_no_requests(pair):
    _, client = pair
    quiet = open_kernel_transport(("127.0.0.1", 0))  # not a server
    try:
        client.send(quiet.local_addr, b"anyone?", 5)
        if abi_generation() == "G4a":
            # No SO_HOMA_SERVER on G4a: every socket accepts requests; ours drops
            # them, and the sender's RPC waits for its deadline.
            assert quiet.recv(timeout=1.0) is None
            assert quiet.stats["dropped_requests_not_serving"] == 1
            client.abort(0, 0)
            return
        failed = _recv(client)  # G8: the kernel answers for a client socket
        assert failed.cookie == 5 and isinstance(failed.error, PeerUnreachableError)
    finally:
        quiet.close()


def test_a_dead_server_port_fails_the_rpc_and_can_be_bound_later(pair):
    _, client = pair
    port = released_port(
        lambda local, server: open_kernel_transport(local, server=server),
        ports=HOMA_SERVER_PORTS,
    )
    assert port < 32768
    client.send(("127.0.0.1", port), b"anyone?", 6)
    failed = _recv(client)
    assert failed.cookie == 6 and isinstance(failed.error, PeerUnreachableError)
    late = open_kernel_transport(("127.0.0.1", port))  # binding makes it a server
    try:
        _round_trip(late, client, b"now", cookie=7)
    finally:
        late.close()


def test_a_reply_just_before_closing_survives_the_loopback_resend(pair):
    """The module sends a one-packet message with its offset left for GRO: on
    loopback the first packet is dropped and asked for again from the sending
    socket a few milliseconds later. ``linger`` keeps the socket open until then
    (without it, most runs failed with ENOTCONN)."""
    _, client = pair
    for attempt in range(10):
        server = open_kernel_transport(("127.0.0.1", 0), server=True)
        try:
            rpc_id = client.send(server.local_addr, b"q", attempt)
            with _recv(server) as request:
                server.reply(request.peer, request.id, b"last words")
            assert server.linger(2.0)
        finally:
            server.close()
        response = _recv(client)
        assert response.id == rpc_id and response.error is None, response.error


def test_recv_with_a_timeout_notices_close_at_once(pair):
    """G4a's poll never reports a shut-down socket; ``close`` wakes it anyway."""
    _, client = pair
    outcome: list[object] = []
    waiter = threading.Thread(target=lambda: outcome.append(_closed_after(client)))
    waiter.start()
    time.sleep(0.05)
    client.close()
    waiter.join(10)
    assert outcome and isinstance(outcome[0], float) and outcome[0] < 1.0


def _closed_after(sock: HomaSocket) -> float | None:
    started = time.monotonic()
    try:
        sock.recv(timeout=10)
    except TransportClosedError:
        return time.monotonic() - started
    return None


def test_bpages_are_recycled_over_10000_messages(pair):
    server, client = pair
    window, total, size = 32, 10_000, 3_000
    sent = received = 0
    while received < total:
        while sent < total and sent - received < window:
            client.send(server.local_addr, sent.to_bytes(4, "big") * (size // 4), sent)
            sent += 1
        with _recv(server) as request:
            server.reply(request.peer, request.id, bytes(request)[:8])
        with _recv(client) as response:
            assert bytes(response) == response.cookie.to_bytes(4, "big") * 2
        received += 1
    assert client.recv(0) is None and server.recv(0) is None  # hand the last back
    assert server.pool.owned_count == client.pool.owned_count == 0
    assert server.pool.pending_count == client.pool.pending_count == 0
    info = server.info()
    if info is not None:  # G8b and later can say how much of the pool is free
        assert info.bpool_avail_bytes == server.pool.size
