"""Errors of the transport layer (every backend raises these, never raw OSErrors).

Layer: transport. Imports: stdlib only.

The families follow trio's honest split:

* ``TransportClosedError``: *you* closed the socket (or are using it after close).
* ``PeerUnreachableError`` / ``RpcAbortedError`` / ``RpcTimeoutError``: the network
  or the peer broke one RPC. These normally arrive as ``Message.error`` on the failed
  RPC (with its id and completion cookie), not as exceptions from ``recv()``.
* ``ProtocolError``: someone broke the rules; ``LocalProtocolError`` is our caller's
  misuse, ``RemoteProtocolError`` is what a peer sent.
* ``HomaUnavailableError``: the kernel backend was asked for but cannot be used here.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = [
    "HomaError",
    "HomaUnavailableError",
    "LocalProtocolError",
    "MessageTooLongError",
    "PeerUnreachableError",
    "ProtocolError",
    "RemoteProtocolError",
    "RpcAbortedError",
    "RpcTimeoutError",
    "TransportClosedError",
    "UnsupportedAbiError",
    "error_from_errno",
]


class HomaError(Exception):
    """Base class of every transport error."""


class ProtocolError(HomaError):
    """The Homa protocol rules were broken."""


class LocalProtocolError(ProtocolError):
    """The local caller misused the API (e.g. replied twice to one request)."""


class RemoteProtocolError(ProtocolError):
    """A peer sent something that breaks the protocol."""


class TransportClosedError(HomaError):
    """The transport was closed by its owner; no further calls are possible."""


class RpcAbortedError(HomaError):
    """An RPC ended with an error number (from ``abort(error=...)`` or the kernel).

    Attributes:
        errno: the positive error number that ended the RPC.
    """

    def __init__(self, errno: int, message: str | None = None) -> None:
        super().__init__(
            message or f"RPC aborted: {os.strerror(errno)} (errno {errno})"
        )
        # After the base initialiser: OSError's (via TimeoutError) would reset it to None.
        self.errno = errno


class PeerUnreachableError(RpcAbortedError):
    """No Homa endpoint answers at the destination (no server, host down, no Homa)."""

    def __init__(
        self, errno: int = _errno.ENOTCONN, message: str | None = None
    ) -> None:
        super().__init__(errno, message or f"peer unreachable: {os.strerror(errno)}")


# TimeoutError (an OSError) types ``errno`` as optional; ours is always set, so mypy's
# base-class conflict is about the annotation only.
class RpcTimeoutError(RpcAbortedError, TimeoutError):  # type: ignore[misc]
    """The peer went silent for longer than the transport's RPC timeout."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(_errno.ETIMEDOUT, message or "RPC timed out: peer is silent")


class MessageTooLongError(HomaError, ValueError):
    """A message is longer than the transport can carry (1,000,000 bytes for Homa)."""


class HomaUnavailableError(HomaError):
    """The Homa kernel module is not loaded or not usable on this host."""


class UnsupportedAbiError(HomaUnavailableError):
    """A Homa kernel module is loaded, but it speaks an ABI homarpc does not support."""


_UNREACHABLE = {
    _errno.ENOTCONN,
    _errno.EHOSTUNREACH,
    _errno.ECONNREFUSED,
    _errno.ENETUNREACH,
    _errno.EPROTONOSUPPORT,
}


def error_from_errno(err: int, context: str = "") -> HomaError:
    """Translate the errno of a failed RPC into the matching transport error.

    Args:
        err: a positive errno (from the kernel, the engine, or ``abort(error=...)``).
        context: optional words to append to the message (e.g. the peer address).

    Returns:
        ``RpcTimeoutError`` for ETIMEDOUT, ``PeerUnreachableError`` for the
        unreachable family, ``TransportClosedError`` for ESHUTDOWN and
        ``RpcAbortedError`` for anything else.
    """
    suffix = f" ({context})" if context else ""
    if err == _errno.ETIMEDOUT:
        return RpcTimeoutError(f"RPC timed out: peer is silent{suffix}")
    if err in _UNREACHABLE:
        return PeerUnreachableError(
            err, f"peer unreachable: {os.strerror(err)}{suffix}"
        )
    if err == _errno.ESHUTDOWN:
        return TransportClosedError(f"transport is shut down{suffix}")
    if err == _errno.EMSGSIZE:
        return MessageTooLongError(f"message too long{suffix}")
    return RpcAbortedError(
        err, f"RPC aborted: {os.strerror(err)} (errno {err}){suffix}"
    )
