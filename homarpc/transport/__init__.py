"""homarpc's transport layer: one message-socket contract, three backends.

Layer: transport (the bottom). The RPC layer imports only the names exported here.

Backends:

* ``udp`` (``homarpc.transport.udp``): the embedded user-space Homa, the Homa
  protocol carried in UDP datagrams. Works everywhere, unprivileged. The default
  wherever the kernel module is missing.
* ``kernel`` (``homarpc.transport.kernel``): the Homa kernel module through cffi.
* ``memory`` (``homarpc.transport.memory``): an in-process fake network for tests.

``open_transport`` picks one: an explicit ``kind``, else ``$HOMARPC_TRANSPORT``,
else ``auto`` (kernel when the module is usable, else udp).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from ._base import MAX_MESSAGE_LENGTH, Address, Buffer, Message, Transport
from ._bytes import writable_bytes
from ._malloc import tune_malloc
from .engine.placement import Layout, Placement, join_pieces
from .errors import (
    HomaError,
    HomaUnavailableError,
    LocalProtocolError,
    MessageTooLongError,
    PeerUnreachableError,
    ProtocolError,
    RemoteProtocolError,
    RpcAbortedError,
    RpcTimeoutError,
    TransportClosedError,
    UnsupportedAbiError,
    error_from_errno,
)

__all__ = [
    "KINDS",
    "MAX_MESSAGE_LENGTH",
    "Address",
    "Buffer",
    "HomaError",
    "HomaUnavailableError",
    "Layout",
    "LocalProtocolError",
    "Message",
    "MessageTooLongError",
    "PeerUnreachableError",
    "Placement",
    "ProtocolError",
    "RemoteProtocolError",
    "RpcAbortedError",
    "RpcTimeoutError",
    "Transport",
    "TransportClosedError",
    "UnsupportedAbiError",
    "choose_kind",
    "error_from_errno",
    "join_pieces",
    "kernel_available",
    "open_transport",
    "tune_malloc",
    "writable_bytes",
]

if TYPE_CHECKING:
    from .memory import MemoryNetwork

log = logging.getLogger("homarpc.transport")

#: Names accepted by ``open_transport`` and ``$HOMARPC_TRANSPORT``.
KINDS = ("auto", "udp", "kernel", "memory")

ENV_VAR = "HOMARPC_TRANSPORT"


def kernel_available() -> bool:
    """True when the Homa kernel module is loaded and speaks a supported ABI."""
    from .kernel import is_available

    return is_available()


def choose_kind(kind: str | None = None) -> str:
    """Resolve ``kind`` (or ``$HOMARPC_TRANSPORT``, or ``auto``) to a concrete backend.

    Raises:
        ValueError: the name is not one of ``KINDS``.
    """
    requested = (kind or os.environ.get(ENV_VAR) or "auto").strip().lower()
    if requested not in KINDS:
        source = "transport" if kind else ENV_VAR
        raise ValueError(
            f"unknown {source} {requested!r}: choose one of {', '.join(KINDS)}"
        )
    if requested != "auto":
        return requested
    chosen = "kernel" if kernel_available() else "udp"
    log.info("transport auto-selection chose %s", chosen)
    return chosen


def open_transport(
    kind: str | None = None,
    local: Address = ("0.0.0.0", 0),
    *,
    server: bool = False,
    **options: Any,
) -> Transport:
    """Open a message socket of the chosen backend, bound to ``local``.

    Args:
        kind: "udp", "kernel", "memory" or "auto" (default: ``$HOMARPC_TRANSPORT``,
            else "auto").
        local: address to bind; port 0 picks a free port. The host's family
            (IPv4 or IPv6) is the socket's family.
        server: accept incoming requests (implied by a nonzero port).
        **options: backend-specific settings (e.g. ``network=`` for memory,
            ``config=`` for udp, ``pool_bytes=`` for kernel).

    Raises:
        HomaUnavailableError: kind "kernel" on a host without a usable module.
        ValueError: unknown kind.
    """
    chosen = choose_kind(kind)
    tune_malloc()  # large messages reuse heap memory (see ``_malloc``)
    if chosen == "memory":
        network: MemoryNetwork = options.pop("network", None) or _default_network()
        memory_transport: Transport = network.open(local, server=server)
        return memory_transport
    if chosen == "kernel":
        from .kernel import open_kernel_transport

        kernel_transport: Transport = open_kernel_transport(
            local, server=server, **options
        )
        return kernel_transport
    from .udp import open_udp_transport

    udp_transport: Transport = open_udp_transport(local, server=server, **options)
    return udp_transport


_network: MemoryNetwork | None = None


def _default_network() -> MemoryNetwork:
    """The process-wide memory network used when none is passed explicitly."""
    global _network
    if _network is None:
        from .memory import MemoryNetwork

        _network = MemoryNetwork()
    return _network
