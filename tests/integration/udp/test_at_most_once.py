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
        received = []  # what the new server's application is handed
        serving = threading.Thread(target=lambda: received.append(new.recv(1.0)))
        serving.start()  # (its reader also answers the client's RESENDs)
        failed = recv_or_fail(client, timeout=5.0)
        serving.join()
        assert failed.cookie == 5
        assert isinstance(failed.error, RpcAbortedError)
        assert failed.error.errno == errno.ECONNRESET
        assert "may have processed" in str(failed.error)
        assert received == [None]  # never ran again
        assert new.stats.requests_delivered == 0
        assert new.stats.rpc_unknown_sent >= 1
    finally:
        old.close()
        if new is not None:
            new.close()
