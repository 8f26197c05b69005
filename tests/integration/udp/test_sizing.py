"""How the UDP driver sizes things: datagrams for each peer's path, grants for the
socket buffer, packets for the grant window; and how it reads ICMP errors."""

from __future__ import annotations

import errno
import os
import socket
import struct

import pytest

from homarpc.transport.engine import HomaConfig
from homarpc.transport.udp import (
    DEFAULT_MAX_INCOMING,
    DatagramSizes,
    fit_config,
    open_udp_transport,
)
from homarpc.transport.udp._paths import (
    DEFAULT_MTU,
    RouteFacts,
    is_loopback,
    probe_route,
)
from homarpc.transport.udp._sockets import (
    SocketSizes,
    _unreachable_errno,
    datagram_size_for_mtu,
)

from .helpers import EchoServer, recv_or_fail

BIG = SocketSizes(rcvbuf=8 << 20, sndbuf=8 << 20)


class FakeRoutes:
    """Stands in for the kernel's routing table: host -> (MTU, is ours)."""

    def __init__(self, routes: dict[str, RouteFacts]) -> None:
        self.routes = routes
        self.asked: list[str] = []

    def __call__(self, family: int, host: str) -> RouteFacts:
        self.asked.append(host)
        return self.routes.get(host, (DEFAULT_MTU, False))


ROUTES = {"127.0.0.1": (65_536, True), "::1": (65_536, True),
          "192.0.2.2": (65_536, True), "fd00::2": (65_536, True),
          "192.0.2.9": (1_400, False), "fd00::9": (1_400, False)}  # fmt: skip


@pytest.mark.parametrize(
    ("family", "host", "expected"),
    [
        (socket.AF_INET, "127.0.0.1", 65_507),
        (socket.AF_INET, "127.3.2.1", 65_507),  # all of 127/8 is loopback
        (socket.AF_INET, "192.0.2.2", 65_507),  # an address of this host
        (socket.AF_INET, "192.0.2.9", 1_372),  # across eth0, MTU 1,400
        (socket.AF_INET, "198.51.100.7", 1_472),  # no route known: 1,500
        (socket.AF_INET6, "::1", 65_488),
        (socket.AF_INET6, "::ffff:127.0.0.1", 65_488),  # v4-mapped loopback
        (socket.AF_INET6, "fd00::2", 65_488),
        (socket.AF_INET6, "fd00::9", 1_352),
        (socket.AF_INET6, "fe80::1%eth0", 1_452),
    ],
)
def test_each_peer_gets_the_datagram_size_of_its_path(family, host, expected):
    sizes = DatagramSizes(family, probe=FakeRoutes(ROUTES))
    assert sizes((host, 5_000)) == expected


def test_loopback_is_known_without_asking_about_the_peer():
    routes = FakeRoutes(ROUTES)
    sizes = DatagramSizes(socket.AF_INET, probe=routes)
    assert sizes(("127.0.0.9", 1)) == sizes(("127.0.0.1", 2)) == 65_507
    assert routes.asked == ["127.0.0.1"]  # loopback's own MTU, once


def test_a_host_is_asked_about_once_whatever_its_port():
    routes = FakeRoutes(ROUTES)
    sizes = DatagramSizes(socket.AF_INET, probe=routes)
    assert {sizes(("192.0.2.9", port)) for port in range(1, 50)} == {1_372}
    assert routes.asked == ["192.0.2.9"]


def test_a_configured_path_mtu_limits_remote_peers_only():
    sizes = DatagramSizes(socket.AF_INET, path_mtu=1_280, probe=FakeRoutes(ROUTES))
    assert sizes(("192.0.2.9", 1)) == 1_252
    assert sizes(("198.51.100.7", 1)) == 1_252
    assert sizes(("192.0.2.2", 1)) == sizes(("127.0.0.1", 1)) == 65_507


def test_a_path_mtu_with_no_room_for_data_is_refused():
    with pytest.raises(ValueError, match="path_mtu=80"):
        DatagramSizes(socket.AF_INET, path_mtu=80)


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", True), ("127.255.0.1", True), ("::1", True),
     ("::ffff:127.0.0.2", True), ("::ffff:10.0.0.1", False), ("10.0.0.1", False),
     ("fe80::1%lo", False), ("localhost", False), ("", False)],
)  # fmt: skip
def test_loopback_addresses_are_recognised(host, expected):
    assert is_loopback(host) is expected


def test_the_kernel_says_loopback_is_ours_and_large():
    mtu, is_ours = probe_route(socket.AF_INET, "127.0.0.1")
    assert is_ours and mtu > 9_000


@pytest.mark.parametrize(
    ("wildcard", "loopback"), [("0.0.0.0", "127.0.0.1"), ("::", "::1")]
)
def test_a_wildcard_server_sends_large_datagrams_to_a_loopback_client(
    wildcard, loopback
):
    # Servers bind to the wildcard; before datagram sizes were per peer, this one
    # cut 1 MB into ~770 MTU-sized datagrams for a client on the same host.
    server = EchoServer(open_udp_transport((wildcard, 0), server=True), bytes)
    try:
        with open_udp_transport((loopback, 0)) as client:
            payload = os.urandom(1_000_000)
            client.send((loopback, server.address[1]), payload, cookie=1)
            response = recv_or_fail(client)
            assert response.error is None and bytes(response) == payload
            for end in (server.transport, client):
                assert end.datagram_sizes((loopback, 1)) > 60_000
                fresh = end.stats.data_packets_sent - end.stats.retransmitted_packets
                # 16 full 64 KB packets, plus a few cut short at grant edges
                # (MTU-sized ones would take ~770).
                assert fresh <= 40
    finally:
        server.stop()


def test_a_wildcard_server_keeps_datagrams_small_for_other_hosts():
    with open_udp_transport(("0.0.0.0", 0), server=True) as server:
        # 192.0.2.1 (TEST-NET-1): the route's MTU, or 1,500 if there is no route.
        assert server.datagram_sizes(("192.0.2.1", 1)) <= 9_000 - 28


def test_datagram_size_leaves_room_for_ip_and_udp_headers():
    assert datagram_size_for_mtu(socket.AF_INET, 1_500) == 1_472
    assert datagram_size_for_mtu(socket.AF_INET6, 1_500) == 1_452
    assert datagram_size_for_mtu(socket.AF_INET, 65_536) == 65_507


@pytest.mark.parametrize("rcvbuf", [4_608, 32_768, 425_984, 8 << 20])
@pytest.mark.parametrize("overcommit", [1, 4, 8])
def test_unscheduled_bytes_always_fit_the_smallest_grant_window(rcvbuf, overcommit):
    sizes = SocketSizes(rcvbuf=rcvbuf, sndbuf=rcvbuf)
    fitted = fit_config(HomaConfig(overcommit=overcommit, max_incoming=10**9), sizes)
    assert fitted.max_incoming == sizes.usable_receive_bytes
    smallest_window = fitted.max_incoming // (overcommit + 1)
    assert 1 <= fitted.unsched_bytes <= smallest_window


def test_default_grants_are_bounded_and_an_explicit_config_is_capped():
    with open_udp_transport(("127.0.0.1", 0)) as derived:
        usable = derived.socket_sizes.usable_receive_bytes
        assert derived.config.max_incoming == min(DEFAULT_MAX_INCOMING, usable)
    with open_udp_transport(("127.0.0.1", 0), socket_buffer=4_096) as small:
        assert small.config.max_incoming == small.socket_sizes.usable_receive_bytes
    explicit = HomaConfig(max_incoming=100_000)
    with open_udp_transport(("127.0.0.1", 0), config=explicit) as chosen:
        assert chosen.config.max_incoming == 100_000
    with open_udp_transport(
        ("127.0.0.1", 0), config=explicit, socket_buffer=4_096
    ) as tiny:
        assert (
            tiny.config.max_incoming == tiny.socket_sizes.usable_receive_bytes < 100_000
        )


def _extended_err(origin: int, icmp_type: int, code: int) -> bytes:
    return struct.pack("=IBBBBII", errno.ECONNREFUSED, origin, icmp_type, code, 0, 0, 0)


@pytest.mark.parametrize(
    ("origin", "icmp_type", "code", "expected"),
    [
        (2, 3, 3, errno.ENOTCONN),  # ICMP port unreachable: no Homa socket there
        (2, 3, 2, errno.EPROTONOSUPPORT),  # protocol unreachable
        (2, 3, 1, errno.EHOSTUNREACH),  # host unreachable
        (2, 3, 4, None),  # fragmentation needed: not fatal
        (3, 1, 4, errno.ENOTCONN),  # ICMPv6 port unreachable
        (3, 1, 3, errno.EHOSTUNREACH),  # ICMPv6 address unreachable
        (1, 0, 0, None),  # a local error
        (2, 11, 0, None),  # time exceeded
    ],
)
def test_icmp_errors_map_as_the_kernel_module_maps_them(
    origin, icmp_type, code, expected
):
    assert _unreachable_errno(_extended_err(origin, icmp_type, code)) == expected


def test_a_short_extended_error_is_ignored():
    assert _unreachable_errno(b"\x00" * 8) is None
