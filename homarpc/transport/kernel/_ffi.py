"""cffi declarations shared by every Homa ABI generation, and the libc calls we need.

Layer: transport.kernel. Imports: stdlib and ``cffi``.

cffi runs in ABI mode over the C library already loaded into the process
(``ffi.dlopen(None)``), so nothing is compiled at install time. Only the three calls the
stdlib ``socket`` module cannot make are declared: ``sendmsg``/``recvmsg`` (Homa puts a
*user-space pointer* in ``msg_control`` with ``msg_controllen`` = 0 for sends, and reads
its input arguments from ``msg_control`` on receives) and ``ioctl``.

The per-generation argument structs live in their own FFI namespaces (``g8.ffi``,
``g4a.ffi``), each of which includes this one, so both can use the kernel's own struct
names. Layouts are x86-64 glibc; the checks at the bottom record (never raise: the
import must succeed everywhere) any platform where cffi lays them out differently.

The rest of the package sees the C library only through the ``LibC`` Protocol, so tests
can substitute a fake kernel (``tests/unit/kernel/fakekernel.py``).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeAlias

import cffi

__all__ = [
    "LAYOUT_PROBLEMS",
    "CData",
    "LibC",
    "SocketFactory",
    "SocketLike",
    "System",
    "check_layout",
    "ffi",
    "libc",
    "new_msghdr",
    "platform_problem",
    "raise_oserror",
    "real_system",
]

if TYPE_CHECKING:
    # A cdata's fields are as dynamic as the C declarations they come from; mypy
    # cannot see them, so cdata is ``Any`` here and the calls are typed by ``LibC``.
    CData: TypeAlias = Any
else:
    CData = object

ffi = cffi.FFI()
ffi.cdef(
    """
    struct iovec {
        void *iov_base;
        size_t iov_len;
    };

    struct msghdr {
        void *msg_name;
        uint32_t msg_namelen;          /* socklen_t */
        struct iovec *msg_iov;
        size_t msg_iovlen;
        void *msg_control;
        size_t msg_controllen;
        int msg_flags;
    };

    /* sockaddr_in and sockaddr_in6 as the kernel lays them out (port big-endian). */
    struct homa_sockaddr_in {
        uint16_t sin_family;
        uint16_t sin_port;
        uint8_t sin_addr[4];
        uint8_t sin_zero[8];
    };

    struct homa_sockaddr_in6 {
        uint16_t sin6_family;
        uint16_t sin6_port;
        uint32_t sin6_flowinfo;
        uint8_t sin6_addr[16];
        uint32_t sin6_scope_id;
    };

    /* SO_HOMA_RCVBUF (G8) / SO_HOMA_SET_BUF (G4a): same 16 bytes in both. */
    struct homa_rcvbuf_args {
        uint64_t start;
        uint64_t length;
    };

    /* HOMAIOCABORT argument: same 32 bytes from G1 to G8. */
    struct homa_abort_args {
        uint64_t id;
        uint32_t error;
        uint32_t _pad1;
        uint64_t _pad2[2];
    };

    ssize_t sendmsg(int sockfd, const struct msghdr *msg, int flags);
    ssize_t recvmsg(int sockfd, struct msghdr *msg, int flags);
    int ioctl(int fd, unsigned long request, ...);
    """
)


class LibC(Protocol):
    """The libc calls the kernel backend makes (real: cffi ``lib``; tests: a fake).

    Each returns -1 and leaves the error in ``ffi.errno`` on failure, like C.
    """

    def sendmsg(self, sockfd: int, msg: CData, flags: int, /) -> int: ...

    def recvmsg(self, sockfd: int, msg: CData, flags: int, /) -> int: ...

    def ioctl(self, fd: int, request: int, arg: CData, /) -> int: ...


class SocketLike(Protocol):
    """The stdlib ``socket.socket`` calls the backend makes (tests pass a fake)."""

    def fileno(self) -> int: ...

    def bind(self, address: tuple[Any, ...], /) -> None: ...

    def setsockopt(self, level: int, optname: int, value: int | bytes, /) -> None: ...

    def getsockname(self) -> Any: ...

    def shutdown(self, how: int, /) -> None: ...

    def close(self) -> None: ...


#: ``socket.socket(family, type, proto)`` or a fake with the same shape.
SocketFactory = Callable[[int, int, int], SocketLike]


@dataclass(frozen=True, slots=True)
class System:
    """Everything the backend asks the operating system for, in one replaceable place."""

    lib: LibC
    open_socket: SocketFactory


def real_system() -> System:
    """The running kernel, through libc and the stdlib ``socket`` module."""
    return System(libc(), socket.socket)


_lib_lock = threading.Lock()
_lib: LibC | None = None


def libc() -> LibC:
    """The process's C library, loaded on first use (never at import)."""
    global _lib
    with _lib_lock:
        if _lib is None:
            loaded: LibC = ffi.dlopen(None)  # type: ignore[assignment]
            _lib = loaded
        return _lib


_MSGHDR = ffi.typeof("struct msghdr *")


def new_msghdr(name: CData, namelen: int, control: CData, controllen: int) -> CData:
    """A ``struct msghdr`` with no iovec (Homa's receive ignores it)."""
    return ffi.new(
        _MSGHDR,
        {
            "msg_name": name,
            "msg_namelen": namelen,
            "msg_control": control,
            "msg_controllen": controllen,
        },
    )


def raise_oserror(what: str) -> NoReturn:
    """Raise ``OSError`` for the errno the last C call in this thread left behind."""
    err = ffi.errno
    raise OSError(err, f"{what}: {os.strerror(err)}")


# -- import-time layout checks (no kernel needed) -----------------------------------

_EXPECTED_LAYOUT: dict[str, tuple[int, dict[str, int]]] = {
    "struct iovec": (16, {"iov_base": 0, "iov_len": 8}),
    "struct msghdr": (
        56,
        {
            "msg_name": 0,
            "msg_namelen": 8,
            "msg_iov": 16,
            "msg_iovlen": 24,
            "msg_control": 32,
            "msg_controllen": 40,
            "msg_flags": 48,
        },
    ),
    "struct homa_sockaddr_in": (
        16,
        {"sin_family": 0, "sin_port": 2, "sin_addr": 4, "sin_zero": 8},
    ),
    "struct homa_sockaddr_in6": (
        28,
        {
            "sin6_family": 0,
            "sin6_port": 2,
            "sin6_flowinfo": 4,
            "sin6_addr": 8,
            "sin6_scope_id": 24,
        },
    ),
    "struct homa_rcvbuf_args": (16, {"start": 0, "length": 8}),
    "struct homa_abort_args": (32, {"id": 0, "error": 8, "_pad1": 12, "_pad2": 16}),
}


def check_layout(
    which: cffi.FFI, expected: dict[str, tuple[int, dict[str, int]]]
) -> list[str]:
    """Every way ``which`` lays a struct out differently from the kernel (none: ``[]``)."""
    problems = []
    for cdecl, (size, fields) in expected.items():
        actual = (which.sizeof(cdecl), {f: which.offsetof(cdecl, f) for f in fields})
        if actual != (size, fields):
            problems.append(
                f"{cdecl} is laid out as {actual}, Homa needs {(size, fields)}"
            )
    return problems


def platform_problem() -> str | None:
    """Why this platform cannot use the tables here (64-bit little-endian Linux)."""
    if sys.platform != "linux":
        return f"Homa is a Linux kernel module and this is {sys.platform}"
    if sys.byteorder != "little" or sys.maxsize != 2**63 - 1:
        return "homarpc's Homa struct layouts are for 64-bit little-endian Linux"
    return None


#: Layout mismatches found at import; reported by ``unavailable_reason()``, not raised,
#: because importing the backend must succeed everywhere.
LAYOUT_PROBLEMS = check_layout(ffi, _EXPECTED_LAYOUT)
