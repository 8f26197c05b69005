"""The embedded transport over real UDP sockets on loopback: sizes, concurrency,
a receive buffer so small that the kernel drops datagrams, dead peers, bad input."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

import pytest

from homarpc.transport import PeerUnreachableError
from homarpc.transport.engine import HomaConfig
from homarpc.transport.udp import UdpTransport, open_udp_transport

from .helpers import RECV_TIMEOUT, EchoServer, kernel_drops, recv_or_fail


def _reversed(data: bytes) -> bytes:
    return data[::-1]


def _boundary_sizes() -> list[int]:
    """0, 1, the unscheduled limit and the per-packet payload, each +-1, and 1 MB."""
    with open_udp_transport(("127.0.0.1", 0)) as probe:
        unsched = probe.config.unsched_bytes
        per_packet = probe.config.data_per_packet
    edges = {n + d for n in (unsched, per_packet) for d in (-1, 0, 1)}
    return sorted({0, 1, 1_000_000, *edges})


@pytest.mark.parametrize("size", _boundary_sizes())
def test_exact_bytes_come_back_at_every_size_boundary(client, size):
    server = EchoServer(open_udp_transport(("127.0.0.1", 0), server=True), _reversed)
    try:
        payload = os.urandom(size)
        rpc_id = client.send(server.address, payload, cookie=size + 1)
        response = recv_or_fail(client)
        assert response.error is None
        assert (response.id, response.cookie) == (rpc_id, size + 1)
        assert bytes(response) == payload[::-1]
    finally:
        server.stop()


def test_peers_with_different_datagram_sizes_understand_each_other(client):
    # As with a server bound to 0.0.0.0 (MTU-sized datagrams) and a client bound to
    # loopback (64 KB datagrams): each must read the other's datagrams whole.
    small = HomaConfig(max_datagram=1_472)
    server = EchoServer(
        open_udp_transport(("127.0.0.1", 0), server=True, config=small), _reversed
    )
    try:
        assert server.transport.config.max_datagram == 1_472
        assert client.config.max_datagram > 60_000
        payload = os.urandom(200_000)
        client.send(server.address, payload, cookie=3)
        assert bytes(recv_or_fail(client)) == payload[::-1]
        # Whole datagrams: when the server cut them to its own size, this exchange
        # took 70 retransmissions; a stray RESEND on a loaded machine takes one.
        assert client.stats.retransmitted_packets <= 2
    finally:
        server.stop()


def test_ipv6_one_megabyte(client):
    server = EchoServer(open_udp_transport(("::1", 0), server=True), _reversed)
    try:
        with open_udp_transport(("::1", 0)) as six:
            payload = os.urandom(1_000_000)
            six.send(server.address, payload, cookie=6)
            response = recv_or_fail(six)
            assert response.peer[0] == "::1"
            assert bytes(response) == payload[::-1]
    finally:
        server.stop()


#: The server and every client of these tests share one process, so one GIL: under
#: a burst a peer can be starved for longer than the default 200 silent ticks
#: (~0.2 s). Separate processes do not have that problem; these tests allow more.
PATIENT = HomaConfig(timeout_ticks=3000)


def _request(client_index: int, i: int) -> bytes:
    size = (1, 100, 5_000, 20_000, 70_000)[i % 5]
    return bytes([client_index, i % 251]) * (size // 2) + b"!" * (size % 2)


def _run_client(
    server_address: tuple[str, int], index: int, transport: UdpTransport,
    per_client: int, completions: dict[tuple[int, int], int],
) -> None:  # fmt: skip
    """Send ``per_client`` RPCs at once, then count each completion."""
    for i in range(per_client):
        transport.send(server_address, _request(index, i), cookie=i)
    for _ in range(per_client):
        response = recv_or_fail(transport, timeout=30.0)
        assert response.error is None, response
        assert bytes(response) == _request(index, response.cookie)[::-1]
        key = (index, response.cookie)
        completions[key] = completions.get(key, 0) + 1


def _run_clients(
    server_address: tuple[str, int], clients: list[UdpTransport], per_client: int
) -> dict[tuple[int, int], int]:
    """Each client in its own thread, all at once; failures are re-raised here."""
    completions: dict[tuple[int, int], int] = {}
    errors: list[BaseException] = []

    def run(index: int, transport: UdpTransport) -> None:
        try:
            _run_client(server_address, index, transport, per_client, completions)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60.0)
    if errors:
        raise errors[0]
    return completions


def test_many_concurrent_rpcs_from_several_clients_each_complete_once():
    server = EchoServer(
        open_udp_transport(("127.0.0.1", 0), server=True, config=PATIENT), _reversed
    )
    clients = [open_udp_transport(("127.0.0.1", 0), config=PATIENT) for _ in range(4)]
    try:
        completions = _run_clients(server.address, clients, per_client=100)
    finally:
        for transport in clients:
            transport.close()
        server.stop()
    assert len(completions) == 4 * 100
    assert set(completions.values()) == {1}
    assert server.requests == 4 * 100


def test_tiny_receive_buffer_drops_datagrams_and_every_rpc_still_completes():
    # 16 KiB of receive buffer: bursts from eight clients overflow it in the kernel.
    server = EchoServer(
        open_udp_transport(
            ("127.0.0.1", 0), server=True, config=PATIENT, socket_buffer=16_384
        ),
        _reversed,
    )
    # Datagrams that fit the buffer (as MTU-sized ones on a real link do): a 40 KB
    # one gets into a 16 KiB buffer only when it is empty, so under this load a
    # request whose first packet is that large was refused until it timed out.
    small = HomaConfig(timeout_ticks=3000, max_datagram=8_000)
    clients = [open_udp_transport(("127.0.0.1", 0), config=small) for _ in range(8)]
    try:
        assert server.transport.config.max_incoming <= 16_384
        completions = _run_clients(server.address, clients, per_client=30)
        drops = kernel_drops(server.address[1])
    finally:
        for transport in clients:
            transport.close()
        server.stop()
    assert drops > 0, "the tiny buffer was meant to make the kernel drop datagrams"
    assert len(completions) == 8 * 30
    assert set(completions.values()) == {1}


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_rpc_to_a_dead_port_fails_as_unreachable_not_as_a_timeout(host):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_DGRAM) as placeholder:  # fmt: skip
        placeholder.bind((host, 0))
        dead = placeholder.getsockname()[:2]
    with open_udp_transport((host, 0)) as transport:
        transport.send(dead, b"anyone there?", cookie=9)
        failed = recv_or_fail(transport)
        assert failed.cookie == 9
        assert isinstance(failed.error, PeerUnreachableError)
        assert failed.error.errno == errno.ENOTCONN
        assert transport.icmp_errors >= 1


def test_an_icmp_error_about_one_peer_does_not_fail_rpcs_to_another(
    echo_server, client
):
    # The kernel reports a pending ICMP error on the *next* sendto, whatever its
    # destination; that send must not be blamed for it.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead = placeholder.getsockname()
    client.send(dead, b"to nobody", cookie=1)  # on loopback the ICMP error is queued
    client.send(echo_server.address, b"to the server", cookie=2)  # before this send
    outcomes = {m.cookie: m for m in (recv_or_fail(client), recv_or_fail(client))}
    assert isinstance(outcomes[1].error, PeerUnreachableError)
    assert outcomes[2].error is None and bytes(outcomes[2]) == b"to the server"


def test_unresolvable_destination_is_refused_with_a_clear_error(client):
    with pytest.raises(PeerUnreachableError, match="cannot resolve"):
        client.send(("no-such-host.invalid", 1), b"x", 1)


def test_garbage_datagrams_are_dropped_and_counted_and_the_server_still_serves(
    echo_server, client
):
    junk = [b"", b"\x00", os.urandom(27), os.urandom(28), os.urandom(100),
            bytes(56) + b"data", os.urandom(65_000)]  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
        for datagram in junk:
            attacker.sendto(datagram, echo_server.address)
    deadline = time.monotonic() + RECV_TIMEOUT
    stats = echo_server.transport.stats
    while stats.dropped_total < len(junk) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stats.dropped_total >= len(junk)
    client.send(echo_server.address, b"still alive?", cookie=1)
    assert bytes(recv_or_fail(client)) == b"still alive?"
