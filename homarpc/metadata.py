"""Metadata and deadlines: the checks grpcio makes, and the clock calls use.

Layer: rpc. Imports: stdlib and ``homarpc.status``.

Metadata is an ordered sequence of ``(key, value)`` pairs, duplicates kept. Keys are
lower-case ASCII; keys ending in ``-bin`` carry ``bytes``, all others printable ASCII
text (a ``bytes`` value on a text key is accepted and arrives as ``str``, as in grpcio).

``check_metadata`` checks what our application sends; ``check_incoming`` checks what a
peer sent (a server refuses the call with the ``MetadataRefusal`` it returns) and
``for_application`` leaves out the keys gRPC keeps to itself.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from .status import RpcError, StatusCode

__all__ = [
    "DEFAULT_MAX_METADATA_SIZE",
    "Deadline",
    "Metadata",
    "MetadataRefusal",
    "Metadatum",
    "check_incoming",
    "check_metadata",
    "for_application",
    "format_peer",
    "metadata_size",
    "metadata_size_limit",
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


# --- Metadata a peer sent -------------------------------------------------------------
#
# What gRPC core (the C library under grpcio) does with the metadata it receives, which
# this section follows (grpc/grpc, read 2026):
# - Keys: src/core/lib/surface/validate_metadata.cc ValidateHeaderKeyIsLegal, which
#   the HPACK parser (src/core/ext/transport/chttp2/transport/hpack_parser.cc,
#   ValidateKey) applies to every received key: not empty, only [0-9a-z_.-]. Failure
#   is absl::InternalError, i.e. INTERNAL, "Illegal header key: <key>" or "Metadata
#   keys cannot be zero length" (hpack_parse_result.cc, kInvalidMetadata).
# - Text values: gRPC core checks them against 0x20-0x7E only when sending
#   (grpc_validate_header_nonbin_value_is_legal, INTERNAL "Illegal header value"); a
#   received CR/LF/NUL never gets that far over HTTP/2 (RFC 9113 section 8.2.1 makes
#   such a field malformed). Our frames have no HTTP/2 layer, so the same rule is
#   applied on receipt, with the same code. (Non-ASCII never decodes: FrameError.)
# - Size: each entry counts key length + value length + 32 (hpack_constants.h
#   kEntryOverhead; hpack_parser.cc transport_size), summed over the block; a total
#   at or above the hard limit is refused (random_early_detection.h MustReject:
#   size >= hard_limit) with RESOURCE_EXHAUSTED "received metadata size exceeds hard
#   limit (N vs. M)" and a per-key size summary (hpack_parse_result.cc; grpcio shows
#   it as e.g. grpc/grpc#37852: "... (18013 vs. 16384);  grpc-status:44B ...").
#   The hard limit is ``grpc.absolute_max_metadata_size``, else 1.25 x
#   ``grpc.max_metadata_size`` but at least 16 KiB (16 KiB by default:
#   chttp2 DEFAULT_MAX_HEADER_LIST_SIZE; GetHardLimitFromChannelArgs).
#   Differences: gRPC counts HTTP/2 wire sizes (Huffman-coded text, base64 binary,
#   plus its own headers such as :path); we count the bytes that arrived. Between the
#   soft limit (8 KiB) and the hard one gRPC refuses at random, with a probability
#   rising linearly; we do not: the same metadata is always accepted or refused.
# - Reserved keys: gRPC parses the headers it uses itself into fields of its own and
#   does not publish them to the application (call.cc PublishToAppEncoder publishes
#   unknown keys plus user-agent, host, grpc-previous-rpc-attempts,
#   grpc-retry-pushback-ms, lb-token). Pseudo-headers (":path") fail the key rule
#   above. ``for_application`` leaves out the same keys; it does not refuse the call.

#: gRPC core's default hard limit on received metadata (bytes, as ``metadata_size``).
DEFAULT_MAX_METADATA_SIZE = 16 * 1024
#: Per-entry overhead in the size rule (HPACK's, RFC 7541 section 4.1).
_ENTRY_OVERHEAD = 32
#: Keys gRPC core consumes itself (metadata_batch.h traits that call.cc does not
#: publish): a peer's entries with these keys never reach a handler.
_RESERVED_KEYS = frozenset(
    (
        "content-type",
        "te",
        "grpc-encoding",
        "grpc-internal-encoding-request",
        "grpc-accept-encoding",
        "grpc-status",
        "grpc-timeout",
        "grpc-message",
        "grpc-server-stats-bin",
        "grpc-trace-bin",
        "grpc-tags-bin",
        "grpclb_client_stats",
        "endpoint-load-metrics-bin",
        "lb-cost-bin",
    )
)
#: Keys named in a refusal are cut here (a refusal travels back as status details).
_SHOWN_KEY_CHARS = 40
_SHOWN_ENTRIES = 3


class MetadataRefusal(NamedTuple):
    """Why received metadata is refused: the call ends with ``code`` and ``details``."""

    code: StatusCode
    details: str


def metadata_size(entries: Iterable[tuple[str, str | bytes]]) -> int:
    """Size as gRPC counts it against its limit: key + value + 32 per entry."""
    return sum(len(key) + len(value) + _ENTRY_OVERHEAD for key, value in entries)


def metadata_size_limit(options: Sequence[tuple[str, Any]] | None) -> int:
    """The hard limit on received metadata from grpcio-style ``options``, derived as
    gRPC core does (``GetHardLimitFromChannelArgs``): ``grpc.absolute_max_metadata_size``
    if set, else 1.25 x ``grpc.max_metadata_size`` but never under 16 KiB.

    Raises:
        ValueError: a limit that is not an integer.
    """
    found = dict(options or ())
    hard = found.get("grpc.absolute_max_metadata_size", -1)
    soft = found.get("grpc.max_metadata_size", -1)
    if not isinstance(hard, int) or not isinstance(soft, int):
        raise ValueError("grpc.*max_metadata_size options must be integers")
    if hard >= 0:
        return hard
    return max(int(soft * 1.25), DEFAULT_MAX_METADATA_SIZE)


def check_incoming(
    entries: Sequence[tuple[str, str | bytes]] | None,
    limit: int = DEFAULT_MAX_METADATA_SIZE,
) -> MetadataRefusal | None:
    """Check metadata a peer sent, as gRPC core checks what it receives (see above).

    Returns ``None`` when it may reach the application, else the status to end the
    call with: RESOURCE_EXHAUSTED when ``metadata_size(entries) >= limit``, INTERNAL
    for an illegal key or text value. The size comes first: it bounds the work (at
    most ``limit // 32`` entries are looked at one by one).
    """
    if not entries:
        return None  # the usual call
    size = metadata_size(entries)
    if size >= limit:
        return MetadataRefusal(
            StatusCode.RESOURCE_EXHAUSTED, _too_large(entries, size, limit)
        )
    for key, value in entries:
        reason = _illegal(key, value)
        if reason is not None:
            return MetadataRefusal(StatusCode.INTERNAL, reason)
    return None


def for_application(entries: tuple[Metadatum, ...]) -> tuple[Metadatum, ...]:
    """``entries`` without the keys gRPC keeps to itself (``_RESERVED_KEYS``), as a
    grpcio handler sees them; the same tuple when there are none (the usual case)."""
    if not any(key in _RESERVED_KEYS for key, _ in entries):
        return entries
    return tuple(entry for entry in entries if entry[0] not in _RESERVED_KEYS)


def _illegal(key: str, value: str | bytes) -> str | None:
    """gRPC's words for what is wrong with one received entry, or ``None``."""
    if not key:
        return "Metadata keys cannot be zero length"
    if not _KEY_CHARS.issuperset(key):
        return f"Illegal header key: {_shown(key)}"
    if is_binary_key(key):
        return None  # any bytes
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    # For ASCII, str.isprintable() is exactly 0x20-0x7E: no CR, LF, NUL, TAB or DEL.
    if not (text.isascii() and text.isprintable()):
        return f"Illegal header value: {_shown(key)}"
    return None


def _too_large(
    entries: Sequence[tuple[str, str | bytes]], size: int, limit: int
) -> str:
    """gRPC's message, naming the largest entries (not all: there may be 100,000)."""
    largest = heapq.nlargest(
        _SHOWN_ENTRIES, entries, key=lambda entry: len(entry[0]) + len(entry[1])
    )
    summary = " ".join(
        f"{_shown(key)}:{len(key) + len(value) + _ENTRY_OVERHEAD}B"
        for key, value in largest
    )
    more = len(entries) - _SHOWN_ENTRIES
    tail = f" and {more} more" if more > 0 else ""
    return (
        f"received metadata size exceeds hard limit ({size} vs. {limit}); "
        f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'}, "
        f"largest {summary}{tail}"
    )


def _shown(key: str) -> str:
    """A peer's key fit to print and to send back: escaped (no CR/LF reaches a log
    line or status), and cut short."""
    cut = key[:_SHOWN_KEY_CHARS]
    return ascii(cut)[1:-1] + ("..." if len(key) > _SHOWN_KEY_CHARS else "")


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
