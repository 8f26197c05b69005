"""The embedded Homa transport: homarpc's own user-space Homa over UDP (the default).

Layer: transport (udp backend). Imports: stdlib, ``transport._base``,
``transport.errors``, ``transport.engine``.

``open_udp_transport`` binds a UDP socket, sizes it, fits the engine's configuration
to what the kernel granted, chooses datagram sizes per peer (``_paths``), and
returns a ``UdpTransport`` (see ``_transport`` for the threading design and
``docs/udp-transport.md`` for figures).
"""

from __future__ import annotations

import dataclasses
import os

from .._base import Address
from ..engine import HomaConfig
from ._paths import DatagramSizes
from ._sockets import SocketSizes, open_udp_socket, set_dont_fragment
from ._transport import UdpTransport

__all__ = [
    "DEFAULT_MAX_INCOMING",
    "DEFAULT_MAX_MESSAGE",
    "DEFAULT_SOCKET_BUFFER",
    "DatagramSizes",
    "UdpTransport",
    "fit_config",
    "open_udp_transport",
]

#: Bytes asked for each of SO_RCVBUF and SO_SNDBUF. Linux caps an unprivileged
#: request at ``net.core.rmem_max``/``wmem_max`` (often 212,992; 4 MiB here).
DEFAULT_SOCKET_BUFFER = 4 * 1024 * 1024
#: Granted-but-unreceived bytes a receiver allows by default (lowered further if the
#: socket's buffer is smaller). Everything granted can be queued in our socket ahead
#: of a short message that arrives next, so this bounds how long it waits behind
#: long ones; too little and a lone 1 MB message (whose window is half of this)
#: waits for grants, worst when the receiver loses its CPU to other work. Measured
#: A/B (docs/udp-transport.md): 1,000,000 kept 1 MB within noise of the old
#: default (a quarter of SO_RCVBUF, 2 MiB here) and cut a 64 B RPC issued into two
#: running 1 MB ones from ~1.4 ms to ~0.55 ms, always finishing first (the old
#: default: a 1 MB RPC first in 1 trial of 5 to 7); 600,000 and 400,000 cut it
#: further but cost 1 MB up to half its throughput in some runs.
DEFAULT_MAX_INCOMING = 1_000_000
#: Largest Homa message a UDP transport accepts and may send by default: a gRPC
#: message up to grpcio's default receive limit (4 MiB) plus its frame head fits
#: in one. The kernel's limit is 1,000,000; the embedded protocol has none of its
#: own. The RPC layer sends a peer more than 1,000,000 only once the peer has said
#: it accepts it (``Frame.max_message``): 1 MB RPC echo 786-812 -> 725-756 us.
DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024 + 64 * 1024
#: Seconds ``recv`` polls before sleeping (``HOMARPC_UDP_BUSY_POLL`` overrides).
DEFAULT_BUSY_POLL = float(os.environ.get("HOMARPC_UDP_BUSY_POLL", "50e-6"))


def open_udp_transport(
    local: Address = ("127.0.0.1", 0),
    *,
    server: bool = False,
    config: HomaConfig | None = None,
    socket_buffer: int = DEFAULT_SOCKET_BUFFER,
    busy_poll: float | None = None,
    path_mtu: int | None = None,
) -> UdpTransport:
    """Open an embedded-Homa message socket bound to ``local``.

    Args:
        local: address to bind; port 0 picks a free port. The host's family (IPv4 or
            IPv6) is the socket's family.
        server: accept incoming requests (implied by a nonzero port).
        config: engine tunables (default ``HomaConfig()`` with ``max_incoming`` of
            ``DEFAULT_MAX_INCOMING`` and ``max_message_length`` of
            ``DEFAULT_MAX_MESSAGE``). Its ``max_incoming`` is
            lowered to what the receive buffer holds (see ``fit_config``); its
            ``max_datagram`` caps the size chosen for each peer.
        socket_buffer: bytes to ask for as SO_RCVBUF and SO_SNDBUF.
        busy_poll: seconds a thread in ``recv`` polls the socket before it sleeps
            (the kernel's ``poll_usecs``); default ``DEFAULT_BUSY_POLL``, 0 = never.
        path_mtu: the largest IP packet towards peers on other hosts (default:
            the MTU of the kernel's route to each). Peers on this host always get
            ~64 KB datagrams.

    Raises:
        OSError: the address does not resolve or cannot be bound (e.g. in use).
    """
    sock, sizes = open_udp_socket(local[0], local[1], socket_buffer)
    try:
        datagram_sizes = DatagramSizes(sock.family, path_mtu=path_mtu)
        if config is None:
            config = HomaConfig(
                max_incoming=DEFAULT_MAX_INCOMING,
                max_message_length=DEFAULT_MAX_MESSAGE,
            )
        fitted = fit_config(config, sizes)
        # A datagram the path cannot carry fails visibly (EMSGSIZE fails the RPC)
        # rather than travelling as IP fragments, where one lost fragment loses all.
        set_dont_fragment(sock)
        return UdpTransport(
            sock, sizes, fitted, datagram_sizes, server=server or local[1] != 0,
            busy_poll=DEFAULT_BUSY_POLL if busy_poll is None else busy_poll,
        )  # fmt: skip
    except BaseException:
        sock.close()
        raise


def fit_config(config: HomaConfig, sizes: SocketSizes) -> HomaConfig:
    """``config`` with sizes the socket can honour.

    (``max_datagram`` is left alone: it is the cap on every peer's datagram size,
    which ``DatagramSizes`` chooses per peer from the path.)

    * ``max_incoming``: at most ``sizes.usable_receive_bytes`` (the payload the
      socket queues before the kernel drops), so granted bytes fit in the socket.
    * ``unsched_bytes``: at most ``max_incoming / (overcommit + 1)``, the
      smallest grant window the receiver uses, so what a sender may send unasked
      always fits the receive buffer. (Scheduled packets are cut at the granted
      offset, so they never exceed a window either.)
    """
    max_incoming = max(1, min(config.max_incoming, sizes.usable_receive_bytes))
    windows = config.overcommit + 1
    return dataclasses.replace(
        config,
        max_incoming=max_incoming,
        unsched_bytes=max(1, min(config.unsched_bytes, max_incoming // windows)),
    )
