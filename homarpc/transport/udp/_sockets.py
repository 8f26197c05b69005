"""The UDP socket under the embedded Homa transport: options, sizes, ICMP errors.

Layer: transport (udp backend). Imports: stdlib only.

Everything here is about one kernel UDP socket and nothing about Homa: how big its
buffers are (what the kernel actually grants, since ``net.core.rmem_max`` caps an
unprivileged request), how large a datagram fills an MTU, and how ICMP
errors reach us (``IP_RECVERR`` queues them on the socket's error queue, read with
``MSG_ERRQUEUE``; they name the destination that could not be reached).
"""

from __future__ import annotations

import dataclasses
import errno
import socket
import struct

__all__ = [
    "IcmpError",
    "SocketSizes",
    "datagram_size_for_mtu",
    "open_udp_socket",
    "read_icmp_errors",
    "resolve",
    "set_dont_fragment",
]

# Linux constants the socket module does not export (linux/in.h, linux/in6.h).
IP_MTU_DISCOVER = 10
IP_RECVERR = 11
IP_MTU = 14
IP_PMTUDISC_DO = 2
IPV6_MTU_DISCOVER = 23
IPV6_MTU = 24
IPV6_RECVERR = 25
IPV6_PMTUDISC_DO = 2
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)

# struct sock_extended_err (linux/errqueue.h), native byte order.
_EXTENDED_ERR = struct.Struct("=IBBBBII")
_ORIGIN_ICMP = 2
_ORIGIN_ICMP6 = 3
_ICMP_DEST_UNREACH = 3
_ICMP_PROT_UNREACH = 2
_ICMP_PORT_UNREACH = 3
_ICMP_FRAG_NEEDED = 4
_ICMP6_DST_UNREACH = 1
_ICMP6_PORT_UNREACH = 4

#: Bytes of IP + UDP header per datagram, by address family.
_HEADER_BYTES: dict[int, int] = {socket.AF_INET: 20 + 8, socket.AF_INET6: 40 + 8}
#: The largest UDP payload IPv4 can carry at all (65,535 - 20 - 8).
_MAX_UDP_PAYLOAD = 65_507


@dataclasses.dataclass(frozen=True, slots=True)
class SocketSizes:
    """Buffer sizes as the kernel reports them after our request (bytes)."""

    rcvbuf: int
    sndbuf: int

    @property
    def usable_receive_bytes(self) -> int:
        """Payload bytes the receive queue holds before the kernel drops datagrams.

        Linux charges each queued datagram its buffer's *true size*, which for
        ~64 KB loopback datagrams is about twice the payload, against the reported
        ``SO_RCVBUF`` (itself double the request). A quarter of the reported size
        is what may safely be in flight; measured: 4 MiB of grants into an 8 MiB
        buffer overflowed it, 2 MiB did not.
        """
        return self.rcvbuf // 4


#: Bytes of a bounced datagram read back from the error queue: a DATA header.
BOUNCED_BYTES = 64


@dataclasses.dataclass(frozen=True, slots=True)
class IcmpError:
    """One ICMP error from the error queue: ``dest`` could not be reached.

    ``bounced`` is the start of the datagram of ours that drew it (what the ICMP
    message quoted: at least the first ``BOUNCED_BYTES`` on any path that
    quotes 64 bytes; empty if nothing came back)."""

    dest: tuple[str, int]
    errno: int
    bounced: bytes = b""


def resolve(family: int, host: str, port: int) -> tuple[str, int]:
    """``(host, port)`` with ``host`` as the numeric address the kernel reports.

    Raises:
        OSError: the name does not resolve for this family.
    """
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    address = infos[0][4]
    return str(address[0]), int(address[1])


def open_udp_socket(
    host: str, port: int, buffer_bytes: int
) -> tuple[socket.socket, SocketSizes]:
    """A bound UDP socket with large buffers and ICMP error reporting turned on.

    The socket stays *blocking* so that ``sendto`` waits for buffer space instead of
    dropping our own datagrams; reads pass ``MSG_DONTWAIT``.

    Raises:
        OSError: the address does not resolve or cannot be bound.
    """
    family = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        sizes = _set_buffers(sock, buffer_bytes)
        sock.bind(resolve(family, host, port))
    except BaseException:
        sock.close()
        raise
    return sock, sizes


def _set_buffers(sock: socket.socket, buffer_bytes: int) -> SocketSizes:
    """Ask for ``buffer_bytes`` each way; return what the kernel granted."""
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, buffer_bytes)
    return SocketSizes(
        rcvbuf=sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
        sndbuf=sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
    )


def datagram_size_for_mtu(family: int, mtu: int) -> int:
    """The UDP payload that fills one ``mtu``-byte IP packet."""
    return min(mtu - _HEADER_BYTES[family], _MAX_UDP_PAYLOAD)


def set_dont_fragment(sock: socket.socket) -> None:
    """Refuse IP fragmentation, so an oversized datagram fails (EMSGSIZE) visibly."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)


def read_icmp_errors(sock: socket.socket, limit: int = 64) -> list[IcmpError]:
    """Drain the socket's error queue into ``IcmpError``s (never blocks, never raises).

    Each comes with the first ``BOUNCED_BYTES`` of the datagram that bounced
    (``recvmsg`` on the error queue returns the payload the ICMP quoted).

    Only "destination unreachable" matters to Homa; it is mapped as the kernel module
    maps it: port unreachable -> ENOTCONN (no Homa socket there), protocol
    unreachable -> EPROTONOSUPPORT, anything else -> EHOSTUNREACH. Local errors and
    "fragmentation needed" are dropped (the RPC recovers by retransmission).
    """
    found: list[IcmpError] = []
    for _ in range(limit):
        try:
            bounced, ancillary, _, address = sock.recvmsg(
                BOUNCED_BYTES, 512, MSG_ERRQUEUE | socket.MSG_DONTWAIT
            )
        except OSError:  # empty queue (EAGAIN) or the socket is gone
            break
        for _level, _type, data in ancillary:
            err = _unreachable_errno(data)
            if err is not None and isinstance(address, tuple):
                dest = (str(address[0]), int(address[1]))
                found.append(IcmpError(dest, err, bounced))
    return found


def _unreachable_errno(data: bytes) -> int | None:
    """The Homa errno for one ``sock_extended_err``, or None if it is not fatal."""
    if len(data) < _EXTENDED_ERR.size:
        return None
    _err, origin, icmp_type, code, _pad, _info, _data = _EXTENDED_ERR.unpack_from(data)
    if origin == _ORIGIN_ICMP and icmp_type == _ICMP_DEST_UNREACH:
        if code == _ICMP_PORT_UNREACH:
            return errno.ENOTCONN
        if code == _ICMP_PROT_UNREACH:
            return errno.EPROTONOSUPPORT
        return None if code == _ICMP_FRAG_NEEDED else errno.EHOSTUNREACH
    if origin == _ORIGIN_ICMP6 and icmp_type == _ICMP6_DST_UNREACH:
        return errno.ENOTCONN if code == _ICMP6_PORT_UNREACH else errno.EHOSTUNREACH
    return None
