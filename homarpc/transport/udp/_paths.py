"""How large a datagram each peer gets: ~64 KB on this host, the path MTU elsewhere.

Layer: transport (udp backend). Imports: stdlib, ``transport.engine.wire`` (the
header size) and ``transport.udp._sockets``.

A socket bound to ``0.0.0.0`` or ``::`` (what servers usually do) talks to
loopback clients and remote hosts alike, so the size is chosen per peer, not per
socket. The engine asks once for each new RPC; the answer per host is cached.

* A loopback address (``127.0.0.0/8``, ``::1``, ``::ffff:127.x.x.x``) gets what
  loopback carries (65,507 B for an MTU of 65,536): one syscall-free check.
* Any other address is asked of the kernel once: a throw-away UDP socket is
  connected to it (a route lookup, nothing is sent), which tells the route's MTU
  and the source address the kernel would use. A source equal to the destination
  means the address is one of this host's own (its route goes through ``lo``), so
  it gets loopback's size too. Otherwise the route's MTU, lowered to ``path_mtu``
  if one was configured, minus the IP and UDP headers (1,372 B over an ``eth0``
  with MTU 1,400).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from ..engine.wire import DATA_HEADER_LENGTH
from ._sockets import IP_MTU, IPV6_MTU, datagram_size_for_mtu

__all__ = ["DEFAULT_MTU", "DatagramSizes", "RouteFacts", "is_loopback", "probe_route"]

#: MTU assumed when the kernel will not say (no route, odd address).
DEFAULT_MTU = 1500
#: Hosts whose size is remembered; the cache starts over beyond this.
_MAX_CACHED = 4096

#: What the kernel says about the route to a host: (MTU, is one of our addresses).
RouteFacts = tuple[int, bool]


def is_loopback(host: str) -> bool:
    """``host`` is a loopback address (IPv6 scope and v4-mapped forms included)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def probe_route(family: int, host: str) -> RouteFacts:
    """The route's MTU to ``host`` and whether ``host`` is an address of this host.

    Connecting a UDP socket only looks the route up; nothing is sent. An address
    the kernel cannot route gets ``DEFAULT_MTU`` and counts as remote.
    """
    level, option = (
        (socket.IPPROTO_IPV6, IPV6_MTU)
        if family == socket.AF_INET6
        else (socket.IPPROTO_IP, IP_MTU)
    )
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 9))  # port 9 ("discard"): never sent to
            mtu = probe.getsockopt(level, option)
            source = str(probe.getsockname()[0])
    except OSError:
        return DEFAULT_MTU, False
    return mtu, _same_address(source, host)


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a.split("%", 1)[0]) == ipaddress.ip_address(
            b.split("%", 1)[0]
        )
    except ValueError:
        return False


class DatagramSizes:
    """Callable ``peer -> largest UDP payload to send it``, for ``HomaEngine``.

    Args:
        family: the socket's address family (decides the IP header size).
        path_mtu: the most an IP packet to a peer off this host may carry
            (``None``: whatever the route's MTU says). Peers on this host are not
            limited by it.
        probe: asks the kernel about the route to a host (tests inject a fake).
    """

    __slots__ = ("_cache", "_family", "_local_size", "_path_mtu", "_probe")

    def __init__(
        self,
        family: int,
        *,
        path_mtu: int | None = None,
        probe: Callable[[int, str], RouteFacts] = probe_route,
    ) -> None:
        if path_mtu is not None and (
            datagram_size_for_mtu(family, path_mtu) <= DATA_HEADER_LENGTH
        ):
            raise ValueError(
                f"path_mtu={path_mtu} leaves no room for data after the IP, UDP and "
                f"Homa headers; use the link's MTU (e.g. 1500)"
            )
        self._family = family
        self._path_mtu = path_mtu
        self._probe = probe
        self._cache: dict[str, int] = {}
        self._local_size: int | None = None

    def __call__(self, peer: tuple[str, int]) -> int:
        host = peer[0]
        size = self._cache.get(host)
        if size is None:
            size = self.size_for(host)
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[host] = size
        return size

    def size_for(self, host: str) -> int:
        """The datagram size for ``host``, worked out afresh (not cached)."""
        if is_loopback(host):
            return self.local_size()
        mtu, is_ours = self._probe(self._family, host)
        if is_ours:
            return self.local_size()
        if self._path_mtu is not None:
            mtu = min(mtu, self._path_mtu)
        return datagram_size_for_mtu(self._family, mtu)

    def local_size(self) -> int:
        """What loopback carries in one datagram (asked of the kernel once)."""
        if self._local_size is None:
            loopback = "::1" if self._family == socket.AF_INET6 else "127.0.0.1"
            mtu, _ = self._probe(self._family, loopback)
            self._local_size = datagram_size_for_mtu(self._family, mtu)
        return self._local_size
