"""How the UDP driver sizes things: datagrams for the path, grants for the socket
buffer, packets for the grant window; and how it reads ICMP errors."""

from __future__ import annotations

import errno
import socket
import struct
from pathlib import Path

import pytest

from homarpc.transport.engine import HomaConfig
from homarpc.transport.udp import fit_config, open_udp_transport
from homarpc.transport.udp._sockets import (
    SocketSizes,
    _unreachable_errno,
    datagram_size_for_mtu,
    smallest_interface_mtu,
)

BIG = SocketSizes(rcvbuf=8 << 20, sndbuf=8 << 20)


def _fake_interface(root: Path, name: str, mtu: int, flags: int) -> None:
    (root / name).mkdir()
    (root / name / "mtu").write_text(f"{mtu}\n")
    (root / name / "flags").write_text(f"{flags:#x}\n")


def test_smallest_mtu_counts_only_interfaces_that_are_up_and_not_loopback(tmp_path):
    _fake_interface(tmp_path, "lo", 65_536, 0x9)  # up, loopback
    _fake_interface(tmp_path, "eth0", 1_500, 0x1003)  # up
    _fake_interface(tmp_path, "wg0", 1_420, 0x1003)  # up
    _fake_interface(tmp_path, "eth1", 576, 0x1002)  # down
    assert smallest_interface_mtu(str(tmp_path)) == 1_420


def test_no_interface_but_loopback_means_no_mtu(tmp_path):
    _fake_interface(tmp_path, "lo", 65_536, 0x9)
    assert smallest_interface_mtu(str(tmp_path)) is None
    assert smallest_interface_mtu(str(tmp_path / "missing")) is None


def test_datagram_size_leaves_room_for_ip_and_udp_headers():
    assert datagram_size_for_mtu(socket.AF_INET, 1_500) == 1_472
    assert datagram_size_for_mtu(socket.AF_INET6, 1_500) == 1_452
    assert datagram_size_for_mtu(socket.AF_INET, 65_536) == 65_507


def test_a_loopback_socket_gets_large_datagrams_and_others_mtu_sized(monkeypatch):
    import homarpc.transport.udp as udp

    monkeypatch.setattr(udp, "smallest_interface_mtu", lambda: 1_400)
    loopback = fit_config(HomaConfig(), socket.AF_INET, "127.0.0.1", BIG)
    anywhere = fit_config(HomaConfig(), socket.AF_INET, "0.0.0.0", BIG)
    assert loopback.max_datagram == HomaConfig().max_datagram  # 65,000 fits loopback
    assert anywhere.max_datagram == 1_372


@pytest.mark.parametrize("rcvbuf", [4_608, 32_768, 425_984, 8 << 20])
@pytest.mark.parametrize("overcommit", [1, 4, 8])
def test_a_packet_always_fits_the_smallest_grant_window(rcvbuf, overcommit):
    sizes = SocketSizes(rcvbuf=rcvbuf, sndbuf=rcvbuf)
    fitted = fit_config(HomaConfig(overcommit=overcommit, max_incoming=10**9),
                        socket.AF_INET, "127.0.0.1", sizes)  # fmt: skip
    assert fitted.max_incoming == sizes.usable_receive_bytes
    smallest_window = fitted.max_incoming // (overcommit + 1)
    assert 1 <= fitted.data_per_packet <= smallest_window


def test_default_grants_fill_the_granted_buffer_and_an_explicit_config_is_capped():
    with open_udp_transport(("127.0.0.1", 0)) as derived:
        assert derived.config.max_incoming == derived.socket_sizes.usable_receive_bytes
    explicit = HomaConfig(max_incoming=100_000)
    with open_udp_transport(("127.0.0.1", 0), config=explicit) as chosen:
        assert chosen.config.max_incoming == 100_000
    with open_udp_transport(("127.0.0.1", 0), config=explicit, socket_buffer=4_096) as tiny:
        assert tiny.config.max_incoming == tiny.socket_sizes.usable_receive_bytes < 100_000


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
def test_icmp_errors_map_as_the_kernel_module_maps_them(origin, icmp_type, code, expected):
    assert _unreachable_errno(_extended_err(origin, icmp_type, code)) == expected


def test_a_short_extended_error_is_ignored():
    assert _unreachable_errno(b"\x00" * 8) is None
