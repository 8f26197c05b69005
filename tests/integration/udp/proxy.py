"""A port-changing UDP relay for tests: what docker-proxy, a Kubernetes Service
whose port differs from its targetPort, or a source NAT does to datagrams.

Clients send to ``proxy.address``; each client gets a socket of its own towards
the server (another port, so the server sees the proxy's address and port, not
the client's), and what the server sends to that socket goes back to the client
from ``proxy.address``. Datagrams are relayed unchanged: the Homa header still
names the ports the client and the server know.
"""

from __future__ import annotations

import selectors
import socket
import threading

Address = tuple[str, int]

_BUFFER = 4 * 1024 * 1024


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


class UdpProxy:
    """Relays datagrams between clients and ``server`` from ports of its own.

    Attributes:
        address: where clients send.
        relayed: datagrams relayed, both ways.
    """

    def __init__(self, server: Address) -> None:
        self.server = server
        self._front = _socket()
        self.address: Address = self._front.getsockname()
        self.relayed = 0
        self._lock = threading.Lock()
        self._back: dict[Address, socket.socket] = {}  # client -> its socket out
        self._clients: dict[socket.socket, Address] = {}
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._front, selectors.EVENT_READ)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def outbound_ports(self) -> list[int]:
        """The ports the server has seen datagrams come from, so far."""
        with self._lock:
            return [sock.getsockname()[1] for sock in self._clients]

    def rebind(self, client: Address) -> None:
        """Give ``client`` a new socket (a new port) towards the server, as a NAT
        whose mapping expired would; the old one stops relaying."""
        with self._lock:
            old = self._back.pop(client, None)
            if old is not None:
                self._clients.pop(old)
                self._selector.unregister(old)
                old.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                self._drain(sock)

    def _drain(self, sock: socket.socket) -> None:
        for _ in range(64):
            try:
                data, source = sock.recvfrom(65_535)
            except (BlockingIOError, OSError):
                return
            with self._lock:
                if sock is self._front:
                    out, dest = self._outbound(source), self.server
                else:
                    client = self._clients.get(sock)
                    if client is None:
                        return  # rebound meanwhile
                    out, dest = self._front, client
                self.relayed += 1
            try:
                out.sendto(data, dest)
            except OSError:
                pass  # like a middlebox: drop and carry on

    def _outbound(self, client: Address) -> socket.socket:
        sock = self._back.get(client)
        if sock is None:
            sock = self._back[client] = _socket()
            self._clients[sock] = client
            self._selector.register(sock, selectors.EVENT_READ)
        return sock

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._selector.close()
        for sock in [self._front, *self._clients]:
            sock.close()
