"""Homa ioctl numbers for every generation we talk to, computed as ``<linux/ioctl.h>``.

Layer: transport.kernel. Imports: stdlib only.

The numbers moved twice (spec §3.1): the ``0x89`` range from G1 to G8a, ``'h'`` 1..3 in
G8b, ``'h'`` 0x90..0x92 in G8c. Which set a loaded module answers is found by the probes
(``probe.py``). The seed's ``HOMAIOCREPLY`` (0xC01089E2 as go-homa computed it) is
deliberately absent: no kernel ever handled it; replies are ``sendmsg`` with the
request's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "ABORT_ARGS_SIZE",
    "INFO_ARGS_SIZE",
    "IOCTLS_BY_GENERATION",
    "G8bIoctl",
    "G8cIoctl",
    "IocDir",
    "IoctlSet",
    "LegacyIoctl",
    "io",
    "ioc",
    "iowr",
]

#: sizeof(struct homa_abort_args) and sizeof(struct homa_info); the FFI modules assert
#: that cffi agrees.
ABORT_ARGS_SIZE = 32
INFO_ARGS_SIZE = 136

_HOMA_LEGACY_TYPE = 0x89
_HOMA_TYPE = ord("h")


class IocDir(IntEnum):
    """The direction bits of an ioctl number (``_IOC_NONE`` .. ``_IOC_READ|_IOC_WRITE``)."""

    NONE = 0
    WRITE = 1
    READ = 2
    READ_WRITE = 3


def ioc(direction: IocDir, type_: int, nr: int, size: int) -> int:
    """``_IOC(dir, type, nr, size)`` for x86-64 (2 direction bits, 14 size bits)."""
    if not (0 <= type_ < 256 and 0 <= nr < 256 and 0 <= size < 1 << 14):
        raise ValueError(f"ioctl field out of range: type={type_} nr={nr} size={size}")
    return direction << 30 | size << 16 | type_ << 8 | nr


def io(type_: int, nr: int) -> int:
    """``_IO(type, nr)``: no argument."""
    return ioc(IocDir.NONE, type_, nr, 0)


def iowr(type_: int, nr: int, size: int) -> int:
    """``_IOWR(type, nr, size)``: the argument is read and written."""
    return ioc(IocDir.READ_WRITE, type_, nr, size)


class LegacyIoctl(IntEnum):
    """G1 .. G8a (including the seed's G4a)."""

    ABORT = iowr(_HOMA_LEGACY_TYPE, 0xE3, ABORT_ARGS_SIZE)
    FREEZE = io(_HOMA_LEGACY_TYPE, 0xEF)


class G8bIoctl(IntEnum):
    """HomaModule 2025-10-10 .. 2026-04-12 (and upstream v16)."""

    INFO = iowr(_HOMA_TYPE, 0x01, INFO_ARGS_SIZE)
    ABORT = iowr(_HOMA_TYPE, 0x02, ABORT_ARGS_SIZE)
    FREEZE = io(_HOMA_TYPE, 0x03)


class G8cIoctl(IntEnum):
    """HomaModule from 2026-04-13 on."""

    INFO = iowr(_HOMA_TYPE, 0x90, INFO_ARGS_SIZE)
    ABORT = iowr(_HOMA_TYPE, 0x91, ABORT_ARGS_SIZE)
    FREEZE = io(_HOMA_TYPE, 0x92)


@dataclass(frozen=True, slots=True)
class IoctlSet:
    """The ioctl numbers one loaded module answers (``None``: it has no such ioctl)."""

    info: int | None
    abort: int | None
    freeze: int | None


#: What each sub-generation's numbering would be, before probing whether abort works.
IOCTLS_BY_GENERATION = {
    "G4a": IoctlSet(None, LegacyIoctl.ABORT, LegacyIoctl.FREEZE),
    "G8a": IoctlSet(None, LegacyIoctl.ABORT, LegacyIoctl.FREEZE),
    "G8b": IoctlSet(G8bIoctl.INFO, G8bIoctl.ABORT, G8bIoctl.FREEZE),
    "G8c": IoctlSet(G8cIoctl.INFO, G8cIoctl.ABORT, G8cIoctl.FREEZE),
}
