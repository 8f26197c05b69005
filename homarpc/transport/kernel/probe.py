"""Which Homa ABI generation is loaded, found by behaviour (spec §2.4).

Layer: transport.kernel. Imports: stdlib, ``_ffi``, ``abi``, ``ioctl``, ``g8``,
``g4a``, ``bufpool``.

No kernel call reports an ABI version, so the generation is told apart by how the
module answers a few harmless calls on a throw-away socket that is unbound, not a
server, has a pool, and never sends anything:

1. ``socket(AF_INET, SOCK_DGRAM, 146)``: works from G4b on; else 253 (G1 .. G4a);
   both fail: no module.
2. On 253: register the pool with ``SO_HOMA_SET_BUF`` (G1 has none), then recvmsg
   with the in-struct NONBLOCKING flag and ``msg_controllen`` 120 (G4a) or 96 (G3).
3. On 146: (a) a sendmsg whose 24-byte args carry an invalid flag and whose address
   has the wrong family: G6+ check flags first (``EINVAL``), G4b/G5 the family
   (``EAFNOSUPPORT``); nothing is sent either way. (b) G4b vs G5: is a 120-byte
   receive accepted? (c) G7 vs G6/G8: a nonzero u32 at offset 20 is harmless in G7's
   ``bpage_offsets[0]``. (d) G6 vs G8: offset 16 = 1 is G6's NONBLOCKING flag but G8's
   ``num_bpages``, with an offset far outside the pool, which G8 refuses untouched.
   (e) G8a/b/c by which ``HOMAIOCINFO`` number answers.
4. Whether ``HOMAIOCABORT`` works: abort-all on the probe socket (it has no RPCs).
   Upstream ("net: homa") builds lack it; the socket then aborts locally.

Every probe control buffer is 128 zeroed bytes whatever length the call is told,
because old kernels wrote back their own struct size even when it did not match.
"""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from . import _ffi, g4a, g8
from ._ffi import SocketLike, System, real_system
from .abi import Abi, IpProto, RecvmsgFlag
from .bufpool import BufferPool, minimum_pool_bytes, possible_cpus
from .ioctl import ABORT_ARGS_SIZE, INFO_ARGS_SIZE, IOCTLS_BY_GENERATION, IoctlSet

__all__ = [
    "SUPPORTED",
    "Detection",
    "cached_detection",
    "describe",
    "detect",
    "forget_detection",
]

#: Generations homarpc speaks, and the ``Abi`` each maps to.
SUPPORTED: dict[str, Abi] = {
    "G8a": g8.ABI,
    "G8b": g8.ABI,
    "G8c": g8.ABI,
    "G4a": g4a.ABI,
}

_GENERATIONS = {
    "G1/G2": "HomaModule 2022-09 .. 2022-12: sends and receives through ioctls",
    "G3": "HomaModule v2.0, 2022-12 .. 2023-10: protocol 253, 96-byte recvmsg args",
    "G4a": "HomaModule 2023-10 .. 2024-10, the seed: protocol 253, 120-byte args",
    "G4b": "HomaModule 2024-10-25 .. 2024-11-10: protocol 146, 120-byte recvmsg args",
    "G5": "HomaModule 2024-11 .. 2025-03: 88-byte recvmsg args with a flags field",
    "G6": "HomaModule 2025-03 .. 2025-05: private RPCs, recvmsg flags at offset 16",
    "G7": "HomaModule 2025-05 .. 2025-07: bpage_offsets at offset 20",
    "G8a": "HomaModule 2025-07 .. 2025-10 (or an upstream build)",
    "G8b": "HomaModule 2025-10 .. 2026-04",
    "G8c": "HomaModule since 2026-04-13",
}

_FIX = "use the embedded transport: transport='udp' or HOMARPC_TRANSPORT=udp"
_PROBE_BYTES = 128
_U32 = struct.Struct("<I")
_NO_IOCTLS = IoctlSet(None, None, None)


@dataclass(frozen=True, slots=True)
class Detection:
    """What the probes found.

    Attributes:
        generation: "G8c", "G4a", ... or ``None`` when no module answered.
        abi: the ``Abi`` to speak, or ``None`` when the generation is unsupported.
        ioctls: the ioctl numbers this module answers (abort ``None``: no abort ioctl).
        reason: ``None`` when usable; else one sentence saying what was found.
    """

    generation: str | None
    abi: Abi | None
    ioctls: IoctlSet
    reason: str | None


def describe(generation: str) -> str:
    """One line about a generation, for messages and ``homarpc doctor``."""
    return _GENERATIONS.get(generation, "unknown")


def detect(system: System) -> Detection:
    """Run the §2.4 probes through ``system`` and say what is loaded."""
    problem = _ffi.platform_problem() or "; ".join(
        _ffi.LAYOUT_PROBLEMS + g8.LAYOUT_PROBLEMS + g4a.LAYOUT_PROBLEMS
    )
    if problem:
        return Detection(None, None, _NO_IOCTLS, f"{problem}; {_FIX}")
    try:
        opened = system.open_socket(socket.AF_INET, socket.SOCK_DGRAM, IpProto.HOMA)
    except OSError as exc146:
        try:
            opened = system.open_socket(
                socket.AF_INET, socket.SOCK_DGRAM, IpProto.HOMA_PRE_2024
            )
        except OSError:
            return Detection(None, None, _NO_IOCTLS, _absent_reason(exc146))
        return _finish(system, opened, _Steps253)
    return _finish(system, opened, _Steps146)


def _absent_reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    call = f"socket(AF_INET, SOCK_DGRAM, {int(IpProto.HOMA)}) failed with {name}"
    if exc.errno in (errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT, errno.EAFNOSUPPORT):
        return f"the Homa kernel module is not loaded ({call}); {_FIX}"
    return f"Homa sockets cannot be opened here ({call}: {exc.strerror}); {_FIX}"


class _Probe:
    """The probe socket's calls, each answering with an errno (0: success)."""

    def __init__(self, system: System, sock: SocketLike, pool: BufferPool) -> None:
        self.system = system
        self.sock = sock
        self.fd = sock.fileno()
        self.pool = pool

    def register_pool(self, level: int) -> int:
        try:
            self.pool.register(self.sock, level)
        except OSError as exc:
            return exc.errno or errno.EIO
        return 0

    def recvmsg(self, controllen: int, patches: Mapping[int, int]) -> int:
        """A non-blocking recvmsg with a zeroed control block and u32s ``patches``."""
        control = bytearray(_PROBE_BYTES)
        for offset, value in patches.items():
            _U32.pack_into(control, offset, value)
        block = _ffi.ffi.from_buffer(control)
        name = _ffi.ffi.new("char[]", _PROBE_BYTES)  # G4a writes it without a check
        msg = _ffi.new_msghdr(name, 28, block, controllen)
        return self._errno(self.system.lib.recvmsg(self.fd, msg, socket.MSG_DONTWAIT))

    def sendmsg_bad_flag_wrong_family(self) -> int:
        control = bytearray(_PROBE_BYTES)
        _U32.pack_into(control, 16, 0x80)  # not a valid homa_sendmsg_args flag
        block = _ffi.ffi.from_buffer(control)
        name = _ffi.ffi.new("struct homa_sockaddr_in6 *", {"sin6_family": 10})
        iov = _ffi.ffi.new("struct iovec *", {"iov_base": block, "iov_len": 1})
        msg = _ffi.new_msghdr(name, 28, block, 0)
        msg.msg_iov, msg.msg_iovlen = iov, 1
        return self._errno(self.system.lib.sendmsg(self.fd, msg, socket.MSG_DONTWAIT))

    def ioctl(self, number: int, size: int) -> int:
        arg = _ffi.ffi.new("char[]", max(size, 1))
        return self._errno(self.system.lib.ioctl(self.fd, number, arg))

    @staticmethod
    def _errno(result: int) -> int:
        return _ffi.ffi.errno if result < 0 else 0


@contextmanager
def _probe_socket(system: System, sock: SocketLike) -> Iterator[_Probe]:
    pool = BufferPool(minimum_pool_bytes(possible_cpus()))
    try:
        yield _Probe(system, sock, pool)
    finally:
        sock.close()  # the kernel never unmaps: close the socket before the pool
        pool.close()


def _finish(system: System, sock: SocketLike, probe: type[_Steps]) -> Detection:
    with _probe_socket(system, sock) as p:
        generation = probe(p).generation()
        return _verdict(p, generation)


class _Steps:
    def __init__(self, p: _Probe) -> None:
        self.p = p

    def generation(self) -> str:
        raise NotImplementedError


class _Steps253(_Steps):
    """Step 2: G4a, G3, or an ioctl-era G1/G2 module."""

    def generation(self) -> str:
        if self.p.register_pool(IpProto.HOMA_PRE_2024):
            return "G1/G2"
        nonblocking = {16: RecvmsgFlag.NONBLOCKING}
        if self.p.recvmsg(120, nonblocking) == errno.EAGAIN:
            return "G4a"
        if self.p.recvmsg(96, nonblocking) == errno.EAGAIN:
            return "G3"
        return "G1/G2"


class _Steps146(_Steps):
    """Step 3: G4b .. G8c."""

    def generation(self) -> str:
        if self.p.register_pool(IpProto.HOMA):
            return "unknown"
        first = self.p.sendmsg_bad_flag_wrong_family()
        if first == errno.EAFNOSUPPORT:  # 16-byte sendmsg args
            return "G4b" if self.p.recvmsg(120, {}) == errno.EAGAIN else "G5"
        if first != errno.EINVAL:
            return "unknown"
        if self.p.recvmsg(88, {20: 0xFFFFFFFF}) == errno.EAGAIN:
            return "G7"
        if self.p.recvmsg(88, {16: 1, 24: 0xFFFFFFFF}) == errno.EAGAIN:
            return "G6"
        return self._g8_numbering()

    def _g8_numbering(self) -> str:
        for generation in ("G8c", "G8b"):
            info = IOCTLS_BY_GENERATION[generation].info
            if info is not None and self.p.ioctl(info, INFO_ARGS_SIZE) == 0:
                return generation
        return "G8a"


def _verdict(p: _Probe, generation: str) -> Detection:
    abi = SUPPORTED.get(generation)
    if abi is None:
        reason = (
            f"a Homa kernel module is loaded but speaks ABI {generation} "
            f"({describe(generation)}); homarpc supports G8 (protocol 146, HomaModule "
            f"since 2025-07) and G4a (protocol 253, 2023-10 .. 2024-10): load one of "
            f"those, or {_FIX}"
        )
        return Detection(generation, None, _NO_IOCTLS, reason)
    numbers = IOCTLS_BY_GENERATION[generation]
    if numbers.abort is not None and p.ioctl(numbers.abort, ABORT_ARGS_SIZE) == 0:
        return Detection(generation, abi, numbers, None)
    # An upstream ("net: homa") build: neither abort nor freeze; abort locally instead.
    return Detection(generation, abi, IoctlSet(numbers.info, None, None), None)


_cache_lock = threading.Lock()
_cached: Detection | None = None


def cached_detection() -> Detection:
    """``detect()`` on this host, run once per process (the module cannot change ABI
    while sockets are open, and probing costs a few system calls)."""
    global _cached
    with _cache_lock:
        if _cached is None:
            _cached = detect(real_system())
        return _cached


def forget_detection() -> None:
    """Probe again on next use (after loading or unloading the module)."""
    global _cached
    with _cache_lock:
        _cached = None
