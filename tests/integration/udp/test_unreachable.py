"""A client whose socket is gone: the server's reply draws an ICMP port unreachable,
and the server side learns it at once (``on_unreachable``, ``unreachable_peers``).
A server whose socket is gone: the client tells a request that never reached it
(``PeerUnreachableError``, safe to send elsewhere) from one it may have run
(``RpcAbortedError`` ECONNRESET, not to be resent)."""

from __future__ import annotations

import errno
import socket
import threading
import time

from homarpc.transport import PeerUnreachableError, RpcAbortedError
from homarpc.transport.engine import HomaConfig, wire
from homarpc.transport.udp import open_udp_transport

from .helpers import recv_or_fail

TAG = HomaConfig().wire_tag


def test_the_server_learns_within_a_second_that_a_client_is_gone():
    server = open_udp_transport(("127.0.0.1", 0), server=True)
    noticed: list[tuple[tuple[str, int], float]] = []
    server.on_unreachable = lambda peer: noticed.append((peer, time.monotonic()))
    stop = threading.Event()

    def serve() -> None:  # a server's reader, as the RPC layer runs one
        while not stop.is_set():
            server.recv(timeout=0.05)

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.bind(("127.0.0.1", 0))
            client = raw.getsockname()
            fields = wire.DataHeader(5, 5, 0, 0, 0, 0, 0)
            port = server.local_addr[1]
            header = wire.pack_data_header(client[1], port, 0x7000, TAG, fields)
            raw.sendto(header + b"hello", server.local_addr)
            request = recv_or_fail(server)
            assert request.peer == client
        # The client's socket is closed: nothing listens on its port any more.
        reader = threading.Thread(target=serve)
        reader.start()
        replied_at = time.monotonic()
        server.reply(request.peer, request.id, b"too late")
        deadline = replied_at + 5.0
        while not noticed and time.monotonic() < deadline:
            time.sleep(0.005)
        stop.set()
        reader.join()
        assert noticed, "no ICMP port unreachable was noticed"
        (peer, at), *_ = noticed
        assert peer == client
        assert at - replied_at < 1.0, f"noticed after {at - replied_at:.3f} s"
        assert server.unreachable_peers() == [client]
        assert server.unreachable_peers() == []  # drained
        assert server.icmp_errors >= 1
        counters = server.stats_snapshot()
        assert counters["live_rpcs"] == 0  # the request was forgotten with its peer
        assert counters["unreachable_reported"] >= 1
    finally:
        stop.set()
        server.close()


def test_a_server_gone_after_it_received_the_request_is_not_safe_to_retry():
    server = open_udp_transport(("127.0.0.1", 0), server=True)
    client = open_udp_transport(("127.0.0.1", 0))
    try:
        client.send(server.local_addr, b"run me once", cookie=4)
        request = recv_or_fail(server)
        assert bytes(request) == b"run me once"
        server.close()  # it took the request, then died: our RESEND bounces
        started = time.monotonic()
        failure = recv_or_fail(client, timeout=5.0)
        elapsed = time.monotonic() - started
        assert failure.cookie == 4
        assert isinstance(failure.error, RpcAbortedError), failure.error
        assert not isinstance(failure.error, PeerUnreachableError)
        assert failure.error.errno == errno.ECONNRESET
        assert "unreachable after our request may have reached it" in str(failure.error)
        assert elapsed < 1.0, f"noticed after {elapsed:.3f} s"
        counters = client.stats_snapshot()
        assert counters["lost_unreachable"] == 1 and counters["icmp_errors"] >= 1
    finally:
        client.close()
        server.close()


def test_a_request_to_a_closed_port_fails_peer_unreachable():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        nobody = probe.getsockname()
    client = open_udp_transport(("127.0.0.1", 0))
    try:
        client.send(nobody, b"anyone?", cookie=5)
        failure = recv_or_fail(client, timeout=5.0)
        assert isinstance(failure.error, PeerUnreachableError), failure.error
        assert failure.error.errno == errno.ENOTCONN
        assert client.stats_snapshot()["lost_unreachable"] == 0
    finally:
        client.close()
