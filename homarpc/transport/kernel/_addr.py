"""``sockaddr_in`` / ``sockaddr_in6`` to and from homarpc ``Address`` tuples.

Layer: transport.kernel. Imports: stdlib and ``transport._base``.

Homa wants the peer as a raw sockaddr in ``msg_name`` (sendmsg) and writes one back
there (recvmsg). The family is the socket's own: Homa refuses a mismatch with
``EAFNOSUPPORT``, so we refuse it first with a message that says what to do.
"""

from __future__ import annotations

import functools
import socket
import struct

from .._base import Address

__all__ = [
    "SOCKADDR_IN6_SIZE",
    "SOCKADDR_IN_SIZE",
    "decode_sockaddr",
    "encode_sockaddr",
    "family_of",
    "is_wildcard",
]

SOCKADDR_IN_SIZE = 16
SOCKADDR_IN6_SIZE = 28

# sa_family is in host order (little-endian Linux), the port in network order.
_FAMILY = struct.Struct("<H")
_PORT = struct.Struct(">H")
_IN6_TAIL = struct.Struct("<I16sI")  # flowinfo, address, scope id


def family_of(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 literal (it has a colon), else AF_INET."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def is_wildcard(host: str) -> bool:
    """True for the any-address of either family ("", "0.0.0.0", "::")."""
    return host in ("", "0.0.0.0", "::")


def encode_sockaddr(family: int, addr: Address) -> bytes:
    """The raw sockaddr for ``addr`` on a socket of ``family``.

    Raises:
        ValueError: the port is out of range, or the host is of the other family or
            does not resolve (with the fix in the message).
    """
    host, port = addr
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} of {addr!r} is not in 0..65535")
    try:
        return _encode_literal(family, host, port)
    except OSError:
        pass  # not a literal of this family: maybe a name
    return _encode_literal(family, _resolve(family, host), port)


@functools.lru_cache(maxsize=1024)
def _encode_literal(family: int, host: str, port: int) -> bytes:
    if family == socket.AF_INET:
        packed = socket.inet_pton(socket.AF_INET, host or "0.0.0.0")
        return _FAMILY.pack(family) + _PORT.pack(port) + packed + bytes(8)
    name, _, scope = host.partition("%")
    packed = socket.inet_pton(socket.AF_INET6, name or "::")
    scope_id = _scope_id(scope)
    head = _FAMILY.pack(family) + _PORT.pack(port)
    return head + _IN6_TAIL.pack(0, packed, scope_id)


def _scope_id(scope: str) -> int:
    if not scope:
        return 0
    return int(scope) if scope.isdigit() else socket.if_nametoindex(scope)


def _resolve(family: int, host: str) -> str:
    kind = "IPv6" if family == socket.AF_INET6 else "IPv4"
    try:
        infos = socket.getaddrinfo(host, None, family, socket.SOCK_DGRAM)
    except OSError as exc:
        other = "IPv4" if kind == "IPv6" else "IPv6"
        raise ValueError(
            f"{host!r} is not an {kind} address this {kind} Homa socket can reach "
            f"({exc.strerror}); open the transport on an {other} address to reach "
            f"{other} peers"
        ) from exc
    return str(infos[0][4][0])


def decode_sockaddr(raw: bytes) -> Address:
    """``(host, port)`` from a raw sockaddr the kernel wrote.

    Raises:
        ValueError: ``raw`` is not a sockaddr_in or sockaddr_in6.
    """
    if len(raw) < SOCKADDR_IN_SIZE:
        raise ValueError(f"sockaddr of {len(raw)} bytes is too short")
    (family,) = _FAMILY.unpack_from(raw)
    (port,) = _PORT.unpack_from(raw, 2)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    if family == socket.AF_INET6 and len(raw) >= SOCKADDR_IN6_SIZE:
        _, packed, _ = _IN6_TAIL.unpack_from(raw, 4)
        return socket.inet_ntop(socket.AF_INET6, packed), port
    raise ValueError(f"sockaddr of family {family} ({len(raw)} bytes) is not IP")
