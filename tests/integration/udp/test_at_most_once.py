"""At most once over real sockets: a server replaced mid-RPC (a restart on the same
port) never receives a request its predecessor had whole; the client is told."""

from __future__ import annotations

import errno
import threading
import time

from homarpc.transport import RpcAbortedError
from homarpc.transport.udp import UdpTransport, open_udp_transport

from .helpers import recv_or_fail


def _restarted(old: UdpTransport) -> UdpTransport:
    """A new server transport on ``old``'s port, with none of its state, as after a
    process restart; ``old`` is closed. (The new one takes over the same kernel
    socket, so no datagram meets a closed port in between: a RESEND arriving then
    would fail the call as unreachable, which is not what this tests.)"""
    sock = old._sock.dup()
    new = UdpTransport(
        sock, old.socket_sizes, old.config, old.datagram_sizes, server=True
    )
    old.close()
    return new


def test_a_restarted_server_never_gets_a_request_its_predecessor_had(client):
    old = open_udp_transport(("127.0.0.1", 0), server=True)
    new = None
    try:
        client.send(old.local_addr, b"charge my card once", cookie=5)
        assert bytes(recv_or_fail(old)) == b"charge my card once"
        time.sleep(0.1)  # the server works on it, then dies without answering
        new = _restarted(old)
        received: list[object] = []  # what the new server's application gets
        done = threading.Event()

        def serve(server: UdpTransport) -> None:  # (also answers RESENDs)
            while not done.is_set():
                message = server.recv(timeout=0.05)
                if message is not None:
                    received.append(message)

        serving = threading.Thread(target=serve, args=(new,))
        serving.start()
        try:
            failed = recv_or_fail(client, timeout=5.0)
            time.sleep(0.2)  # anything sent to the new server meanwhile arrives
        finally:
            done.set()
            serving.join()
        assert failed.cookie == 5
        assert isinstance(failed.error, RpcAbortedError)
        assert failed.error.errno == errno.ECONNRESET
        assert "may have processed" in str(failed.error)
        assert received == []  # never ran again
        assert new.stats.requests_delivered == 0
        assert new.stats.rpc_unknown_sent >= 1
    finally:
        old.close()
        if new is not None:
            new.close()
