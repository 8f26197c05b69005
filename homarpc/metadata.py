"""Metadata and deadlines: the checks grpcio makes, and the clock calls use.

Layer: rpc. Imports: stdlib and ``homarpc.status``.

Metadata is an ordered sequence of ``(key, value)`` pairs, duplicates kept. Keys are
lower-case ASCII; keys ending in ``-bin`` carry ``bytes``, all others printable ASCII
text (a ``bytes`` value on a text key is accepted and arrives as ``str``, as in grpcio).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from .status import RpcError, StatusCode

__all__ = [
    "Deadline",
    "Metadata",
    "Metadatum",
    "check_metadata",
    "format_peer",
]

#: Public alias users annotate with: a sequence of ``(key, value)`` pairs.
Metadata = Sequence[tuple[str, str | bytes]]

_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class Metadatum(NamedTuple):
    """One metadata entry, as grpcio hands them back (``_Metadatum``)."""

    key: str
    value: str | bytes


def is_binary_key(key: str) -> bool:
    """Keys ending in ``-bin`` carry raw bytes."""
    return key.endswith("-bin")


def check_metadata(
    metadata: Iterable[tuple[str, str | bytes]] | None,
) -> list[Metadatum]:
    """Validate user metadata and normalise it; raise as grpcio would.

    Raises:
        TypeError: a ``-bin`` key with a ``str`` value, or a non-str/bytes value.
        RpcError: INTERNAL "Invalid metadata" for a bad key or non-ASCII text value.
    """
    if not metadata:
        return []
    checked: list[Metadatum] = []
    for entry in metadata:
        key, value = entry
        if not isinstance(key, str):
            raise RpcError(StatusCode.INTERNAL, "Invalid metadata")
        if not key or not _KEY_CHARS.issuperset(key):
            raise RpcError(StatusCode.INTERNAL, "Invalid metadata")
        checked.append(Metadatum(key, _checked_value(key, value)))
    return checked


def _checked_value(key: str, value: object) -> str | bytes:
    if is_binary_key(key):
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(
                f"metadata key {key!r} ends in -bin: its value must be bytes"
            )
        return bytes(value)
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise RpcError(StatusCode.INTERNAL, "Invalid metadata") from None
    if not isinstance(value, str):
        raise TypeError(f"metadata value for {key!r} must be str or bytes")
    if not value.isascii() or not value.isprintable():
        raise RpcError(StatusCode.INTERNAL, "Invalid metadata")
    return value


class Deadline:
    """An absolute point on the monotonic clock, or none (``when is None``)."""

    __slots__ = ("when",)

    def __init__(self, when: float | None) -> None:
        self.when = when

    @classmethod
    def after(cls, timeout: float | None) -> Deadline:
        """The deadline ``timeout`` seconds from now (``None``: no deadline)."""
        return cls(None if timeout is None else time.monotonic() + timeout)

    def remaining(self) -> float | None:
        """Seconds left (never negative), or ``None`` without a deadline."""
        if self.when is None:
            return None
        return max(0.0, self.when - time.monotonic())

    def expired(self) -> bool:
        return self.when is not None and time.monotonic() >= self.when

    def __repr__(self) -> str:
        return f"<Deadline in {self.remaining()}s>"


def format_peer(address: tuple[str, int]) -> str:
    """grpcio's peer string: ``ipv4:127.0.0.1:60880`` or ``ipv6:[::1]:60880``."""
    host, port = address
    if ":" in host:
        return f"ipv6:[{host}]:{port}"
    return f"ipv4:{host}:{port}"
