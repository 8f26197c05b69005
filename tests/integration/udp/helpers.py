"""Helpers for the embedded (UDP) transport's real-socket tests on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from homarpc.transport import Address, Message, Transport
from homarpc.transport.udp import UdpTransport

RECV_TIMEOUT = 10.0


def recv_or_fail(transport: Transport, timeout: float = RECV_TIMEOUT) -> Message:
    message = transport.recv(timeout=timeout)
    assert message is not None, f"{transport!r} received nothing within {timeout}s"
    return message


class EchoServer:
    """A server transport answered by a thread: each request gets ``answer(bytes)``."""

    def __init__(
        self, transport: UdpTransport, answer: Callable[[bytes], bytes] = bytes
    ) -> None:
        self.transport = transport
        self.address = transport.local_addr
        self.requests = 0
        self._answer = answer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            message = self.transport.recv(timeout=0.05)
            if message is not None:
                self.requests += 1
                reply = self._answer(bytes(message))
                self.transport.reply(message.peer, message.id, reply)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(RECV_TIMEOUT)
        self.transport.close()


def kernel_drops(port: int) -> int:
    """Datagrams the kernel dropped for the UDP socket bound to ``port`` (its
    receive queue was full), from the last column of /proc/net/udp and udp6."""
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as lines:
            next(lines)  # header
            for line in lines:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    total += int(fields[-1])
    return total


class DropReads:
    """Stands in for a ``UdpTransport``'s socket and loses the first ``count``
    datagrams the transport reads from ``source``, as if the network had: the
    transport asks for them again (RESEND) like after any loss.

    Install with ``DropReads.install(transport, source)``; everything else
    (sending, the error queue, ``fileno``) goes to the real socket.
    """

    def __init__(self, sock: socket.socket, source: Address, count: int) -> None:
        self._sock = sock
        self._source = source
        self.left = count
        self.dropped = 0

    @classmethod
    def install(
        cls, transport: UdpTransport, source: Address, count: int = 1
    ) -> DropReads:
        lossy = cls(transport._sock, source, count)
        vars(transport)["_sock"] = lossy  # duck-typed: only what the transport uses
        return lossy

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Address]:
        while True:
            data, addr = self._sock.recvfrom(bufsize, flags)
            if self.left and addr[:2] == self._source:
                self.left -= 1
                self.dropped += 1
                continue  # lost: read the next one (or raise BlockingIOError)
            return data, addr

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)
