"""The embedded Homa transport: homarpc's own user-space Homa over UDP (the default).

Layer: transport (udp backend). Imports: stdlib, ``transport._base``,
``transport.errors``, ``transport.engine``.

``open_udp_transport`` binds a UDP socket, sizes it, fits the engine's configuration
to what the kernel granted and to the path, and returns a ``UdpTransport`` (see
``_transport`` for the threading design and ``docs/udp-transport.md`` for figures).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import socket

from .._base import Address
from ..engine import HomaConfig
from ._sockets import (
    SocketSizes,
    datagram_size_for_mtu,
    open_udp_socket,
    path_datagram_size,
    set_dont_fragment,
    smallest_interface_mtu,
)
from ._transport import UdpTransport

__all__ = ["DEFAULT_SOCKET_BUFFER", "UdpTransport", "fit_config", "open_udp_transport"]

#: Bytes asked for each of SO_RCVBUF and SO_SNDBUF. Linux caps an unprivileged
#: request at ``net.core.rmem_max``/``wmem_max`` (often 212,992; 4 MiB here).
DEFAULT_SOCKET_BUFFER = 4 * 1024 * 1024
#: Seconds ``recv`` polls before sleeping (``HOMARPC_UDP_BUSY_POLL`` overrides).
DEFAULT_BUSY_POLL = float(os.environ.get("HOMARPC_UDP_BUSY_POLL", "50e-6"))


def open_udp_transport(
    local: Address = ("127.0.0.1", 0),
    *,
    server: bool = False,
    config: HomaConfig | None = None,
    socket_buffer: int = DEFAULT_SOCKET_BUFFER,
    busy_poll: float | None = None,
) -> UdpTransport:
    """Open an embedded-Homa message socket bound to ``local``.

    Args:
        local: address to bind; port 0 picks a free port. The host's family (IPv4 or
            IPv6) is the socket's family.
        server: accept incoming requests (implied by a nonzero port).
        config: engine tunables (default ``HomaConfig()`` with ``max_incoming`` as
            large as the socket's receive buffer holds). Its ``max_datagram`` is
            lowered to what the path carries and its ``max_incoming`` to what the
            receive buffer holds; see ``fit_config``.
        socket_buffer: bytes to ask for as SO_RCVBUF and SO_SNDBUF.
        busy_poll: seconds a thread in ``recv`` polls the socket before it sleeps
            (the kernel's ``poll_usecs``); default ``DEFAULT_BUSY_POLL``, 0 = never.

    Raises:
        OSError: the address does not resolve or cannot be bound (e.g. in use).
    """
    sock, sizes = open_udp_socket(local[0], local[1], socket_buffer)
    try:
        host = str(sock.getsockname()[0])
        if config is None:  # grant as much as the kernel lets the socket queue
            config = HomaConfig(max_incoming=sizes.usable_receive_bytes)
        fitted = fit_config(config, sock.family, host, sizes)
        # A datagram the path cannot carry fails visibly (EMSGSIZE fails the RPC)
        # rather than travelling as IP fragments, where one lost fragment loses all.
        set_dont_fragment(sock)
        return UdpTransport(
            sock, sizes, fitted, server=server or local[1] != 0,
            busy_poll=DEFAULT_BUSY_POLL if busy_poll is None else busy_poll,
        )  # fmt: skip
    except BaseException:
        sock.close()
        raise


def fit_config(
    config: HomaConfig, family: int, bound_host: str, sizes: SocketSizes
) -> HomaConfig:
    """``config`` with sizes the socket and the path can honour.

    * ``max_datagram``: at most what one IP packet carries on the path. A socket
      bound to a loopback address only ever talks over loopback (~64 KB datagrams);
      any other socket may talk to remote hosts, so it uses the smallest MTU among
      the host's interfaces that are up (or loopback's when only loopback is up,
      as in a fresh network namespace).
    * ``max_incoming``: at most ``sizes.usable_receive_bytes`` (the payload the
      socket queues before the kernel drops), so granted bytes fit in the socket.
    * ``unsched_bytes`` (which also bounds the data in one packet): at most
      ``max_incoming / (overcommit + 1)``, the smallest grant window the receiver
      uses, so a window always has room for a whole packet (a window smaller than
      a packet would never be granted and the message would stall).
    """
    mtu = None if _is_loopback(bound_host) else smallest_interface_mtu()
    if mtu is None:
        path = path_datagram_size(family, _loopback(family))
    else:
        path = datagram_size_for_mtu(family, mtu)
    max_incoming = max(1, min(config.max_incoming, sizes.usable_receive_bytes))
    windows = config.overcommit + 1
    return dataclasses.replace(
        config,
        max_datagram=min(config.max_datagram, path),
        max_incoming=max_incoming,
        unsched_bytes=max(1, min(config.unsched_bytes, max_incoming // windows)),
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _loopback(family: int) -> Address:
    """Some address on this family's loopback (port 9, "discard", is never used)."""
    return ("::1" if family == socket.AF_INET6 else "127.0.0.1", 9)
