"""Helpers of ``HomaSocket``: opening the socket, and the errors its calls raise.

Layer: transport.kernel. Imports: stdlib, ``transport.errors``, ``_ffi``, ``abi``,
``probe``.
"""

from __future__ import annotations

import errno
import os
import socket as _socket
from dataclasses import dataclass

from ..errors import (
    HomaError,
    HomaUnavailableError,
    LocalProtocolError,
    MessageTooLongError,
    TransportClosedError,
    UnsupportedAbiError,
    error_from_errno,
)
from . import _ffi
from ._ffi import System
from .abi import Abi
from .probe import Detection

__all__ = ["HomaInfo", "open_socket", "transport_error", "usable_abi"]

_MISUSE = frozenset({errno.EINVAL, errno.EAFNOSUPPORT, errno.EFAULT, errno.EOPNOTSUPP})


@dataclass(frozen=True, slots=True)
class HomaInfo:
    """What ``HOMAIOCINFO`` reports about a socket (G8b and later)."""

    bpool_avail_bytes: int
    port: int
    #: Live RPCs of the socket: client and server, including finished ones the
    #: kernel still holds (a response not yet received, a reply not yet acknowledged).
    num_rpcs: int
    #: The module's text for the last error it saw on this socket.
    error_msg: str


def usable_abi(detection: Detection) -> Abi:
    if detection.abi is not None:
        return detection.abi
    reason = detection.reason or "the Homa kernel module is not usable here"
    if detection.generation is not None:
        raise UnsupportedAbiError(reason)
    raise HomaUnavailableError(reason)


def open_socket(system: System, family: int, protocol: int) -> _ffi.SocketLike:
    try:
        return system.open_socket(family, _socket.SOCK_DGRAM, protocol)
    except OSError as exc:
        kind = "IPv6" if family == _socket.AF_INET6 else "IPv4"
        raise HomaUnavailableError(
            f"cannot open an {kind} Homa socket (protocol {protocol}): {exc.strerror}"
        ) from exc


def transport_error(err: int, what: str, module_says: str) -> HomaError:
    """The transport error for a failed local call (not a failed RPC)."""
    detail = f"{what} failed: {_errno_name(err)}"
    if module_says:
        detail += f" (the Homa module says: {module_says})"
    if err in (errno.ESHUTDOWN, errno.EBADF):
        return TransportClosedError(f"transport is closed ({detail})")
    if err == errno.EMSGSIZE:
        return MessageTooLongError(detail)
    if err in _MISUSE:
        return LocalProtocolError(detail)
    return error_from_errno(err, detail)


def _errno_name(err: int) -> str:
    return f"{errno.errorcode.get(err, str(err))} ({os.strerror(err)})"
