"""The Homa kernel backend: a cffi binding to the Homa Linux kernel module.

Layer: transport.kernel. Imports: stdlib, ``cffi``, ``transport._base``,
``transport.errors``; never asyncio or the engine. Importing probes nothing, so it
works on every host; the module is looked for (spec §2.4 probes, once per process)
only when one of the functions below or a ``HomaSocket`` asks.

Supported ABI generations: **G8** (protocol 146, HomaModule since 2025-07, any of its
ioctl numberings G8a/b/c) and **G4a** (protocol 253, HomaModule 2023-10 .. 2024-10,
what go-homa speaks). Any other is refused with ``UnsupportedAbiError`` naming it.

Modules:
    ``_ffi`` shared cffi declarations, the ``LibC``/``System`` seams for fakes;
    ``abi``, ``ioctl`` constants; ``g8``, ``g4a`` per-generation struct namespaces;
    ``probe`` generation detection; ``bufpool`` the receive region and its ledger;
    ``_receive`` one recvmsg and its ownership rule; ``socket`` ``HomaSocket``.
"""

from __future__ import annotations

from .._base import Address
from .bufpool import BufferPool
from .probe import cached_detection
from .socket import HomaInfo, HomaSocket

__all__ = [
    "BufferPool",
    "HomaInfo",
    "HomaSocket",
    "abi_generation",
    "is_available",
    "open_kernel_transport",
    "unavailable_reason",
]


def is_available() -> bool:
    """True when a Homa module of a supported ABI is loaded and sockets open."""
    return cached_detection().abi is not None


def unavailable_reason() -> str | None:
    """``None`` when the backend is usable; else one sentence: what was found, and
    how to use the embedded transport instead."""
    return cached_detection().reason


def abi_generation() -> str | None:
    """The supported generation in use: "G8" or "G4a"; ``None`` when unusable."""
    abi = cached_detection().abi
    return None if abi is None else abi.name


def open_kernel_transport(
    local: Address, *, server: bool = False, pool_bytes: int | None = None
) -> HomaSocket:
    """Open a Homa kernel socket on ``local`` (see ``HomaSocket``).

    Raises:
        HomaUnavailableError: the module is not loaded (the message says how to use
            the embedded transport instead).
        UnsupportedAbiError: the module speaks an ABI homarpc does not support.
    """
    return HomaSocket(local, server=server, pool_bytes=pool_bytes)
