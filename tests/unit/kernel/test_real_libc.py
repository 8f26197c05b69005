"""The cffi calls themselves, made through the real C library on ordinary sockets.

The fake module checks what the backend puts in its structs; this checks that the
declarations drive libc correctly (msghdr/iovec layout, sockaddr encoding, variadic
ioctl), using UDP sockets on 127.0.0.1 since no Homa module is needed for that.
"""

from __future__ import annotations

import errno
import socket

import pytest

from homarpc.transport.kernel import _ffi
from homarpc.transport.kernel._addr import decode_sockaddr, encode_sockaddr
from homarpc.transport.kernel.ioctl import G8cIoctl


@pytest.fixture
def udp_pair():
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        yield rx, tx


def test_sendmsg_with_our_msghdr_reaches_the_named_peer(udp_pair):
    rx, tx = udp_pair
    name = encode_sockaddr(socket.AF_INET, rx.getsockname())
    name_c = _ffi.ffi.from_buffer(name)
    payload = bytearray(b"through libc sendmsg")
    data = _ffi.ffi.from_buffer(payload)
    iov = _ffi.ffi.new("struct iovec *", {"iov_base": data, "iov_len": len(payload)})
    control = _ffi.ffi.new("char[]", 24)
    msg = _ffi.new_msghdr(name_c, len(name), control, 0)
    msg.msg_iov, msg.msg_iovlen = iov, 1
    assert _ffi.libc().sendmsg(tx.fileno(), msg, 0) == len(payload)
    got, sender = rx.recvfrom(100)
    assert got == payload and sender[1] == tx.getsockname()[1]


def test_recvmsg_with_our_msghdr_fills_the_name(udp_pair):
    rx, tx = udp_pair
    tx.sendto(b"ping", rx.getsockname())
    name = _ffi.ffi.new("char[]", 128)
    buf = _ffi.ffi.new("char[]", 16)
    iov = _ffi.ffi.new("struct iovec *", {"iov_base": buf, "iov_len": 16})
    msg = _ffi.new_msghdr(name, 28, _ffi.ffi.NULL, 0)
    msg.msg_iov, msg.msg_iovlen = iov, 1
    assert _ffi.libc().recvmsg(rx.fileno(), msg, 0) == 4
    assert _ffi.ffi.buffer(buf, 4)[:] == b"ping"
    peer = decode_sockaddr(bytes(_ffi.ffi.buffer(name, msg.msg_namelen)))
    assert peer == ("127.0.0.1", tx.getsockname()[1])


def test_variadic_ioctl_returns_errno_and_raise_oserror_reports_it(udp_pair):
    rx, _ = udp_pair
    arg = _ffi.ffi.new("char[]", 136)
    assert _ffi.libc().ioctl(rx.fileno(), G8cIoctl.INFO, arg) == -1
    with pytest.raises(OSError) as caught:
        _ffi.raise_oserror("HOMAIOCINFO")
    assert caught.value.errno in (errno.ENOTTY, errno.EINVAL)
    assert "HOMAIOCINFO" in str(caught.value)
