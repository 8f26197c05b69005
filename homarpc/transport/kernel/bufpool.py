"""The receive-buffer pool: an mmap'd region of 64 KiB bpages shared with the kernel.

Layer: transport.kernel. Imports: stdlib, ``_ffi``, ``abi``, ``transport.errors``.

Homa writes every incoming message into this region and tells ``recvmsg`` where
(``bpage_offsets``). The application then owns those bpages until it hands them back
in the ``bpage_offsets`` of a *later* recvmsg: at most 16 per call, each exactly once
(an offset handed back twice drives the kernel's reference count negative on older
modules). ``BufferPool`` keeps that ledger: offsets the application owns, offsets
released and waiting to go back, and how to read a message's bytes out of its chunks.
Apart from ``mmap`` and the one ``setsockopt`` that registers the region, it is pure
bookkeeping, so it is tested without a kernel.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import LocalProtocolError, RemoteProtocolError
from ._ffi import SocketLike, ffi
from .abi import HOMA_BPAGE_SIZE, HOMA_MAX_BPAGES, HOMA_MAX_MESSAGE_LENGTH, SockOpt

__all__ = [
    "MAX_POOL_BYTES",
    "BufferPool",
    "default_pool_bytes",
    "minimum_pool_bytes",
    "possible_cpus",
]

#: The kernel refuses regions over 4 GiB (since 2026-05-27).
MAX_POOL_BYTES = 4 << 30
#: go-homa's and HomaModule's own tools' default: 1000 bpages (62.5 MiB).
_DEFAULT_BPAGES = 1000
_MARGIN = 1 << 20

_RCVBUF_ARGS = struct.Struct("<QQ")  # struct homa_rcvbuf_args {u64 start; u64 length}


def possible_cpus(path: Path = Path("/sys/devices/system/cpu/possible")) -> int:
    """``nr_cpu_ids``: the kernel sizes its pool minimum by *possible* CPUs."""
    try:
        ranges = path.read_text().strip()
    except OSError:
        return os.cpu_count() or 1
    highest = 0
    for part in filter(None, ranges.split(",")):
        highest = max(highest, int(part.rpartition("-")[2]))
    return highest + 1


def minimum_pool_bytes(cpus: int) -> int:
    """The smallest region a current kernel accepts: a bpage per CPU + two messages."""
    return cpus * HOMA_BPAGE_SIZE + 2 * HOMA_MAX_MESSAGE_LENGTH


def _round_up(n: int, to: int) -> int:
    return -(-n // to) * to


def default_pool_bytes(cpus: int | None = None) -> int:
    """1000 bpages, or more where the CPU count makes the kernel's minimum larger."""
    needed = minimum_pool_bytes(possible_cpus() if cpus is None else cpus) + _MARGIN
    return max(_DEFAULT_BPAGES * HOMA_BPAGE_SIZE, _round_up(needed, HOMA_BPAGE_SIZE))


class BufferPool:
    """One socket's receive region and the ledger of who owns which bpage.

    Args:
        size: bytes to map; rounded up to whole bpages. Default: ``default_pool_bytes()``.

    Raises:
        ValueError: ``size`` is below two bpages or above 4 GiB.
    """

    def __init__(self, size: int | None = None) -> None:
        size = (
            default_pool_bytes() if size is None else _round_up(size, HOMA_BPAGE_SIZE)
        )
        if not 2 * HOMA_BPAGE_SIZE <= size <= MAX_POOL_BYTES:
            raise ValueError(
                f"pool_bytes={size} is out of range: give 2 bpages to 4 GiB "
                f"({MAX_POOL_BYTES} bytes); current Homa modules want at least "
                f"{minimum_pool_bytes(possible_cpus())} bytes on this host"
            )
        self.size = size
        self._map = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
        self._view = memoryview(self._map)
        self._pinned = ffi.from_buffer(self._map)
        #: The region's start address, as the kernel is told it.
        self.base = int(ffi.cast("uintptr_t", self._pinned))
        self._lock = threading.Lock()
        self._owned: set[int] = set()
        self._pending: deque[int] = deque()
        self.closed = False

    # -- registration ------------------------------------------------------------------

    def register(self, sock: SocketLike, level: int) -> None:
        """Hand the region to the kernel (SO_HOMA_RCVBUF / SO_HOMA_SET_BUF, both 10)."""
        sock.setsockopt(level, SockOpt.RCVBUF, _RCVBUF_ARGS.pack(self.base, self.size))

    # -- the ledger --------------------------------------------------------------------

    def adopt(self, offsets: Iterable[int]) -> None:
        """Record bpages a successful recvmsg gave the application."""
        with self._lock:
            for offset in offsets:
                if offset in self._owned or offset >= self.size:
                    raise RemoteProtocolError(
                        f"the kernel returned bpage offset {offset:#x}, which is "
                        "outside the pool or already ours: wrong ABI generation?"
                    )
                self._owned.add(offset)

    def give_back(self, offsets: Iterable[int]) -> None:
        """The application is done with these bpages: queue them for the kernel."""
        with self._lock:
            for offset in offsets:
                if offset not in self._owned:
                    raise LocalProtocolError(
                        f"bpage offset {offset:#x} is not held: released twice?"
                    )
                self._owned.remove(offset)
                self._pending.append(offset)

    def take_handbacks(self, limit: int = HOMA_MAX_BPAGES) -> list[int]:
        """Up to ``limit`` (<= 16) released offsets for the next recvmsg to hand back."""
        limit = min(limit, HOMA_MAX_BPAGES)
        with self._lock:
            count = min(limit, len(self._pending))
            return [self._pending.popleft() for _ in range(count)]

    def requeue(self, offsets: Iterable[int]) -> None:
        """A recvmsg failed before the kernel took these: they go back in line first."""
        with self._lock:
            self._pending.extendleft(reversed(list(offsets)))

    @property
    def pending_count(self) -> int:
        """Released offsets not yet handed back to the kernel."""
        return len(self._pending)

    @property
    def owned_count(self) -> int:
        """Offsets the application holds (messages not yet released)."""
        return len(self._owned)

    # -- reading messages ---------------------------------------------------------------

    def read(
        self, offsets: list[int], length: int
    ) -> tuple[bytes | memoryview, Callable[[], None] | None]:
        """The message of ``length`` bytes in ``offsets``, and how to release it.

        A message in one chunk comes back as a zero-copy view into the region, valid
        until the returned release function runs. A longer one is copied out, and its
        bpages are queued for hand-back at once (release is then ``None``).
        """
        if len(offsets) != -(-length // HOMA_BPAGE_SIZE):
            raise RemoteProtocolError(
                f"a {length}-byte message cannot span {len(offsets)} bpages"
            )
        if len(offsets) == 1:
            view = self._view[offsets[0] : offsets[0] + length]
            return view, lambda: self._release_view(view, offsets)
        chunks = []
        for i, offset in enumerate(offsets):
            size = min(HOMA_BPAGE_SIZE, length - i * HOMA_BPAGE_SIZE)
            chunks.append(self._view[offset : offset + size])
        data = b"".join(chunks)
        for chunk in chunks:
            chunk.release()
        self.give_back(offsets)
        return data, None

    def _release_view(self, view: memoryview, offsets: list[int]) -> None:
        view.release()  # later use of the payload raises ValueError, not stale bytes
        self.give_back(offsets)

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Unmap the region (only after its socket is closed: the kernel never unmaps).

        If the application still holds views of unreleased messages, the mapping stays
        alive until the last of them is gone.
        """
        if self.closed:
            return
        self.closed = True
        ffi.release(self._pinned)
        self._view.release()
        try:
            self._map.close()
        except BufferError:
            pass  # live payload views keep it mapped; it is unmapped when they die

    def __repr__(self) -> str:
        return (
            f"<BufferPool {self.size // HOMA_BPAGE_SIZE} bpages at {self.base:#x}, "
            f"{self.owned_count} held, {self.pending_count} to hand back>"
        )
