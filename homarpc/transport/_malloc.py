"""Keep large message buffers out of fresh memory (glibc's malloc thresholds).

Layer: transport. Imports: the stdlib only.

Why: every large message costs a few buffers of its size (the joined payload, a
frame, a copy the application makes). glibc serves them from the heap once it has
seen one freed, but gives the heap's free top back to the kernel as soon as it
exceeds twice the largest such buffer. With ~1 MB messages that happens on every
call, so every call's buffers land on fresh pages: ~250 page faults per megabyte,
measured at ~1.4 ms of a 3 ms round trip of a 1,000,000-byte unary echo
(``benchmarks/rpc_bench.py``). Raising the trim threshold keeps that memory for
the next message; fixing the mmap threshold keeps buffers up to 16 MiB in the
heap, which is where glibc's own dynamic threshold puts them anyway (setting any
threshold turns the dynamic one off).

Cost: a process keeps up to ``TRIM_THRESHOLD`` bytes of freed heap instead of
returning it to the kernel. Process-wide, so it is applied once, on glibc only,
and not at all when the user has chosen malloc settings of their own
(``MALLOC_*_`` or ``GLIBC_TUNABLES`` in the environment) or sets
``HOMARPC_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_malloc", "tuning_refused_by"]

#: Allocations up to this size come from the heap, where freed memory is reused.
MMAP_THRESHOLD = 16 * 1024 * 1024
#: Free memory at the heap's top kept for reuse rather than given back.
TRIM_THRESHOLD = 64 * 1024 * 1024

# mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Environment variables through which a user configures glibc's malloc.
_USER_SETTINGS = (
    "GLIBC_TUNABLES",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)

_lock = threading.Lock()
_tuned: bool | None = None  # None: not tried yet


def tuning_refused_by(environ: dict[str, str] | os._Environ[str]) -> str | None:
    """Why the tuning must not be applied in this environment (None: it may)."""
    if environ.get("HOMARPC_MALLOC_TUNING", "1").strip() in ("0", "no", "false", "off"):
        return "HOMARPC_MALLOC_TUNING=0"
    for name in _USER_SETTINGS:
        if name in environ:
            return f"the user's own malloc setting {name}"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "not glibc"
    return None


def tune_malloc() -> bool:
    """Apply the thresholds once per process; True if they are in effect."""
    global _tuned
    with _lock:
        if _tuned is None:
            _tuned = tuning_refused_by(os.environ) is None and _apply()
        return _tuned


def _apply() -> bool:
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
