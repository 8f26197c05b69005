"""Sans-IO framing of gRPC calls inside Homa messages (wire format version 1).

Layer: rpc. Imports: stdlib and ``homarpc.metadata`` only: no asyncio, no threads, no
transport. Every Homa message homarpc sends is exactly one frame; the layout is
documented in ``docs/wire-format.md``. In short (all integers big-endian)::

    0  u8   version (1)          4  u32  seq (0: not part of the ordered stream)
    1  u8   flags                8  u64  call id (chosen by the client)
    2  u16  reserved (0)        16  u32  head length H
    20      head: H bytes of TLV records  (u8 tag | u32 length | value)
    20+H    payload: the rest of the message (one chunk of one gRPC message)

``decode_frame`` raises ``FrameError`` (a ``ValueError``) on anything malformed and
never anything else; callers drop and count such messages.
"""

from __future__ import annotations

import enum
import functools
import struct
from typing import Final, NamedTuple

from .metadata import Metadatum
from .transport import Placement, join_pieces

__all__ = [
    "GATHER_THRESHOLD",
    "HEADER_SIZE",
    "VERSION",
    "Flags",
    "Frame",
    "FrameError",
    "Pieces",
    "decode_frame",
    "encode_frame",
    "encode_frame_parts",
    "peek_head",
]

VERSION: Final = 1
_HEADER = struct.Struct(">BBHIQI")
HEADER_SIZE: Final = _HEADER.size  # 20
_TLV = struct.Struct(">BI")
_MD_ENTRY = struct.Struct(">HI")
_TLV_SIZE: Final = _TLV.size
_MD_ENTRY_SIZE: Final = _MD_ENTRY.size
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_STATUS = struct.Struct(">I")
_NO_TIMEOUT: Final = (1 << 64) - 1


class Flags:
    """Bits of the flags byte; see ``docs/wire-format.md`` for the rules.

    Plain ``int`` constants, not an ``enum.IntFlag``: flag arithmetic runs several
    times per call on the hot path, and IntFlag's costs a microsecond a time.
    """

    MESSAGE: Final = 0x01  # the payload is a chunk of a gRPC message (maybe empty)
    MSG_END: Final = 0x02  # ... and that chunk completes the message
    EOS: Final = 0x04  # end of this direction: client half-close / server final status
    POLL: Final = 0x08  # client request: hold me until you have something to send back
    CANCEL: Final = 0x10  # the sender cancelled the call


_KNOWN_FLAGS: Final = 0x1F


class _Tag(enum.IntEnum):
    METHOD = 1  # utf-8 method path, client's first frame
    TIMEOUT = 2  # u64 microseconds left when sent
    METADATA = 3  # invocation metadata (client) / initial metadata (server)
    STATUS = 4  # u32 code | utf-8 details (server's final frame)
    TRAILERS = 5  # trailing metadata (server's final frame)
    MESSAGE_LENGTH = 6  # u64 bytes of the whole gRPC message (first frame of a split)
    MAX_MESSAGE = 7  # u32 largest Homa message the sender accepts (call's first frames)


# The tags as plain ints, for the hot paths (an IntEnum member costs a class
# attribute lookup through the enum machinery on every use).
_METHOD: Final = int(_Tag.METHOD)
_TIMEOUT: Final = int(_Tag.TIMEOUT)
_METADATA: Final = int(_Tag.METADATA)
_STATUS_TAG: Final = int(_Tag.STATUS)
_TRAILERS: Final = int(_Tag.TRAILERS)
_MESSAGE_LENGTH: Final = int(_Tag.MESSAGE_LENGTH)
_MAX_MESSAGE: Final = int(_Tag.MAX_MESSAGE)


class FrameError(ValueError):
    """A message that is not a well-formed frame of a supported version."""


MetadataEntries = tuple[Metadatum, ...]


class Pieces:
    """A received payload still in pieces: views of the immutable datagrams that
    brought it. Whoever needs it whole joins it once (``bytes(pieces)``), or adds
    the pieces to those of the other frames of a split message first, so that a
    message arriving in pieces is copied once on its way to the application.
    """

    __slots__ = ("_length", "parts")

    def __init__(self, parts: list[bytes | memoryview]) -> None:
        self.parts = parts
        self._length = sum(map(len, parts))

    def __len__(self) -> int:
        return self._length

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)

    def __repr__(self) -> str:
        return f"<Pieces {len(self.parts)} parts, {self._length} B>"


class Frame(NamedTuple):
    """One frame; ``None`` fields are absent on the wire, ``()`` is present-but-empty.

    A ``NamedTuple`` (immutable, and several times cheaper to build than a frozen
    dataclass: frames are built and copied on every call's hot path).
    """

    call_id: int
    seq: int = 0
    flags: int = 0
    method: str | None = None
    timeout: float | None = None
    metadata: MetadataEntries | None = None
    status: tuple[int, str] | None = None
    trailers: MetadataEntries | None = None
    #: Outgoing chunks may be memoryviews into the caller's message (no copy until
    #: ``encode_frame``); decoded ones view the received message when it is bytes,
    #: are ``Pieces`` when it came as pieces, or the ``Placement`` it was received
    #: into (``_placement.py``).
    payload: bytes | memoryview | Pieces | Placement = b""
    #: On the first frame of a message split over several: the whole message's size.
    message_length: int | None = None
    #: On a call's first frame each way: the largest Homa message the sender's
    #: transport accepts (what the peer may send it unsplit).
    max_message: int | None = None


def encode_frame(frame: Frame) -> bytes:
    """Serialise ``frame``; the caller keeps it under the Homa message limit."""
    lead = _encode_lead(frame)
    payload = frame.payload
    if not payload:
        return lead
    if isinstance(payload, Pieces):  # a received payload sent on: its pieces follow
        return b"".join([lead, *payload.parts])
    if isinstance(payload, Placement):
        return b"".join((lead, payload.view))
    return b"".join((lead, payload))


def _encode_lead(frame: Frame) -> bytes:
    """The fixed header and the head records: everything before the payload."""
    head = _encode_head(frame)
    header = _HEADER.pack(VERSION, frame.flags, 0, frame.seq, frame.call_id, len(head))
    return header + head


#: Payloads at least this long are sent as a separate part, not joined to the head.
GATHER_THRESHOLD: Final = 64 * 1024


def encode_frame_parts(frame: Frame) -> bytes | list[bytes | bytearray | memoryview]:
    """``frame`` serialised for a gathering ``Transport.send``/``reply``: one
    ``bytes``, or for a large payload ``[header and head, payload]`` so that the
    payload is not copied once more just to sit behind a few bytes of header."""
    payload = frame.payload
    if len(payload) < GATHER_THRESHOLD:
        return encode_frame(frame)
    if isinstance(payload, Pieces):
        return [_encode_lead(frame), *payload.parts]
    if isinstance(payload, Placement):
        return [_encode_lead(frame), payload.view]
    return [_encode_lead(frame), payload]


def head_size(frame: Frame) -> int:
    """Bytes ``encode_frame`` spends before the payload (header included)."""
    return HEADER_SIZE + len(_encode_head(frame))


def _encode_head(frame: Frame) -> bytes:
    # Hot path (every frame of every call): records that repeat from call to call
    # (the method, empty metadata, an OK status) come from caches and constants.
    _, _, _, method, timeout, metadata, status, trailers, _, message_length, most = (
        frame
    )
    if (
        method is None
        and timeout is None
        and metadata is None
        and status is None
        and trailers is None
        and message_length is None
        and most is None
    ):
        return b""
    parts: list[bytes] = []
    if method is not None:
        parts.append(_method_record(method))
    if timeout is not None:
        micros = min(max(0, round(timeout * 1e6)), _NO_TIMEOUT - 1)
        parts.append(_U64_RECORD.pack(_TIMEOUT, 8, micros))
    if metadata is not None:
        parts.append(_metadata_record(_METADATA, metadata))
    if status is not None:
        parts.append(_status_record(status))
    if trailers is not None:
        parts.append(_metadata_record(_TRAILERS, trailers))
    if message_length is not None:
        parts.append(_U64_RECORD.pack(_MESSAGE_LENGTH, 8, message_length))
    if most is not None:
        parts.append(_max_message_record(most))
    return b"".join(parts)


_U64_RECORD = struct.Struct(">BIQ")
_U32_RECORD = struct.Struct(">BII")
_EMPTY_METADATA = _TLV.pack(_METADATA, 0)
_EMPTY_TRAILERS = _TLV.pack(_TRAILERS, 0)
_OK_STATUS = _TLV.pack(_STATUS_TAG, _STATUS.size) + _STATUS.pack(0)
#: Encoded METHOD records by method path: a server has few methods.
_method_records: dict[str, bytes] = {}
_MAX_CACHED_METHODS = 1024


@functools.lru_cache(maxsize=16)
def _max_message_record(most: int) -> bytes:
    return _U32_RECORD.pack(_MAX_MESSAGE, _U32.size, most)


def _method_record(method: str) -> bytes:
    record = _method_records.get(method)
    if record is None:
        raw = method.encode()
        record = _TLV.pack(_METHOD, len(raw)) + raw
        if len(_method_records) < _MAX_CACHED_METHODS:
            _method_records[method] = record
    return record


def _metadata_record(tag: int, entries: MetadataEntries) -> bytes:
    if not entries:
        return _EMPTY_METADATA if tag == _METADATA else _EMPTY_TRAILERS
    block = _encode_metadata(entries)
    return _TLV.pack(tag, len(block)) + block


def _status_record(status: tuple[int, str]) -> bytes:
    code, details = status
    if not code and not details:
        return _OK_STATUS
    raw = details.encode()
    return _TLV.pack(_STATUS_TAG, _STATUS.size + len(raw)) + _STATUS.pack(code) + raw


def _encode_metadata(entries: MetadataEntries) -> bytes:
    parts: list[bytes] = []
    for key, value in entries:
        raw_key = key.encode("ascii")
        raw_value = value if isinstance(value, bytes) else value.encode("ascii")
        parts.append(_MD_ENTRY.pack(len(raw_key), len(raw_value)))
        parts.append(raw_key)
        parts.append(raw_value)
    return b"".join(parts)


def decode_frame(
    data: bytes | memoryview | list[bytes | memoryview | Placement],
) -> Frame:
    """Parse one Homa message into a ``Frame``.

    The payload is a view into ``data`` when ``data`` is ``bytes`` (immutable, kept
    alive by the view: no copy), else a copy (a transport buffer that goes back
    to the transport on ``Message.release()``). ``data`` may also be the message
    in pieces (``Message.payload_parts()``: views of immutable bytes); the payload
    is then ``Pieces``, uncopied.

    Raises:
        FrameError: too short, unknown version, lengths that do not add up, or a
            head record that does not parse.
    """
    if isinstance(data, list):
        if len(data) != 1 or isinstance(data[0], Placement):
            return _decode_pieces(data)
        data = data[0]  # whole: decoded as is, below
    if len(data) < HEADER_SIZE:
        raise FrameError(f"message of {len(data)} bytes is shorter than a frame header")
    view = memoryview(data)
    header = _HEADER.unpack_from(view)
    end = HEADER_SIZE + header[5]
    payload = view[end:] if isinstance(data, bytes) else bytes(view[end:])
    return _decode_lead(view, header, payload)


def _decode_pieces(parts: list[bytes | memoryview | Placement]) -> Frame:
    """``decode_frame`` of a message in pieces: the header and head are read from
    the first piece (a message's first packet: tens of kilobytes on loopback,
    1.4 KB across a network), the payload stays in pieces, or is the
    ``Placement`` the transport wrote it into when that starts right after the
    head."""
    first = parts[0] if parts else b""
    if isinstance(first, Placement) or len(first) < HEADER_SIZE:
        return decode_frame(join_pieces(parts))  # raises, or a tiny first piece
    view = memoryview(first)
    header = _HEADER.unpack_from(view)
    end = HEADER_SIZE + header[5]
    if len(view) < end:  # a head spread over pieces (huge metadata): join
        return decode_frame(join_pieces(parts))
    rest = parts[1:]
    placement = rest[-1] if rest and isinstance(rest[-1], Placement) else None
    payload: Pieces | Placement
    if placement is not None and len(rest) == 1 and end == len(view):
        payload = placement  # the layout hook's doing: the head is the first piece
    else:
        tail = [bytes(p) if isinstance(p, Placement) else p for p in rest]
        payload = Pieces([view[end:], *tail] if end < len(view) else tail)
    return _decode_lead(view, header, payload)


def peek_head(first: memoryview) -> tuple[int, int, int | None] | None:
    """``(flags, payload offset, message length)`` of the frame ``first`` begins
    (a message's first packet), or None when its head does not fit in ``first``
    or does not parse (``decode_frame`` will say why, later)."""
    if len(first) < HEADER_SIZE:
        return None
    version, flags, _, _, _, head_len = _HEADER.unpack_from(first)
    end = HEADER_SIZE + head_len
    if version != VERSION or end > len(first):
        return None
    try:
        message_length = _decode_head(first[HEADER_SIZE:end])[5]
    except FrameError:
        return None
    return flags, end, message_length


def _decode_lead(
    view: memoryview,
    header: tuple[int, int, int, int, int, int],
    payload: bytes | memoryview | Pieces | Placement,
) -> Frame:
    """The frame whose ``header`` (unpacked) and head start ``view``, carrying
    ``payload``."""
    version, flags, _, seq, call_id, head_len = header
    if version != VERSION:
        raise FrameError(f"unsupported frame version {version} (this is {VERSION})")
    end = HEADER_SIZE + head_len
    if end > len(view):
        raise FrameError(f"head length {head_len} runs past the message end")
    flags &= _KNOWN_FLAGS  # newer peers' extra bits are ignored
    if not head_len:
        return Frame(call_id, seq, flags, payload=payload)
    if head_len == _OK_HEAD_SIZE and view[HEADER_SIZE:end] == _OK_HEAD:
        # The usual last frame of a call: OK, no metadata, no trailers.
        return Frame(call_id, seq, flags, None, None, (), (0, ""), (), payload)
    if head_len <= _CACHED_HEAD_SIZE:
        fields = _small_head(view[HEADER_SIZE:end])
    else:
        fields = _decode_head(view[HEADER_SIZE:end])
    method, timeout, metadata, status, trailers, length, most = fields
    return Frame(
        call_id, seq, flags, method, timeout, metadata, status, trailers, payload,
        length, most,
    )  # fmt: skip


#: The head of a server's final frame with status OK and no metadata.
_OK_HEAD = _EMPTY_METADATA + _OK_STATUS + _EMPTY_TRAILERS
_OK_HEAD_SIZE = len(_OK_HEAD)
#: Heads up to this size that carry no method (a server's frames: status, small
#: metadata, the limit it accepts) are decoded once and then found by their bytes:
#: most calls get the very same response head (all fields are immutable).
_CACHED_HEAD_SIZE = 96
_MAX_CACHED_HEADS = 256
_decoded_heads: dict[bytes, _HeadFields] = {}


def _small_head(view: memoryview) -> _HeadFields:
    raw = view.tobytes()
    fields = _decoded_heads.get(raw)
    if fields is None:
        fields = _decode_head(view)
        if fields[0] is None and len(_decoded_heads) < _MAX_CACHED_HEADS:
            _decoded_heads[raw] = fields
    return fields


_HeadFields = tuple[
    str | None,
    float | None,
    MetadataEntries | None,
    tuple[int, str] | None,
    MetadataEntries | None,
    int | None,
    int | None,
]


def _decode_head(view: memoryview) -> _HeadFields:
    """The method, timeout, metadata, status, trailers, message length and largest
    accepted Homa message the head records carry."""
    method: str | None = None
    timeout: float | None = None
    metadata: MetadataEntries | None = None
    status: tuple[int, str] | None = None
    trailers: MetadataEntries | None = None
    message_length: int | None = None
    most: int | None = None
    offset, size = 0, len(view)
    while offset < size:
        if offset + _TLV_SIZE > size:
            raise FrameError("truncated head record")
        tag, length = _TLV.unpack_from(view, offset)
        offset += _TLV_SIZE
        stop = offset + length
        if stop > size:
            raise FrameError(f"head record {tag} runs past the head")
        value = view[offset:stop]
        offset = stop
        # An if-chain, not a dispatch dict: five tags, and this runs for most frames.
        if tag == _METHOD:
            method = _method_text(value)
        elif tag == _TIMEOUT:
            timeout = _decode_timeout(value)
        elif tag == _METADATA:
            metadata = decode_metadata(value)
        elif tag == _STATUS_TAG:
            status = _decode_status(value)
        elif tag == _TRAILERS:
            trailers = decode_metadata(value)
        elif tag == _MESSAGE_LENGTH:
            message_length = _decode_u64(value, "message length")
        elif tag == _MAX_MESSAGE:
            if len(value) != _U32.size:
                raise FrameError("max message record is not 4 bytes")
            most = _U32.unpack(value)[0]
        # unknown tags are skipped: newer peers may add some
    return method, timeout, metadata, status, trailers, message_length, most


#: Decoded method paths by their bytes: a client calls few methods.
_method_texts: dict[bytes, str] = {}


def _method_text(value: memoryview) -> str:
    raw = value.tobytes()
    text = _method_texts.get(raw)
    if text is None:
        text = _text(value, "method")
        if len(_method_texts) < _MAX_CACHED_METHODS:
            _method_texts[raw] = text
    return text


def _decode_timeout(value: memoryview) -> float:
    return _decode_u64(value, "timeout") / 1e6


def _decode_u64(value: memoryview, what: str) -> int:
    if len(value) != _U64.size:
        raise FrameError(f"{what} record is not 8 bytes")
    number: int = _U64.unpack(value)[0]
    return number


def _decode_status(value: memoryview) -> tuple[int, str]:
    if len(value) < _STATUS.size:
        raise FrameError("status record is too short")
    code: int = _STATUS.unpack_from(value)[0]
    return code, _text(value[4:], "details")


def _text(value: memoryview, what: str) -> str:
    try:
        return str(value, "utf-8")
    except UnicodeDecodeError:
        raise FrameError(f"{what} is not valid UTF-8") from None


def decode_metadata(view: memoryview) -> MetadataEntries:
    """Parse a metadata block; ``-bin`` values stay bytes, others become text."""
    if not view:
        return ()
    entries: list[Metadatum] = []
    offset, size = 0, len(view)
    while offset < size:
        if offset + _MD_ENTRY_SIZE > size:
            raise FrameError("truncated metadata entry")
        key_len, value_len = _MD_ENTRY.unpack_from(view, offset)
        start = offset + _MD_ENTRY_SIZE
        offset = start + key_len + value_len
        if offset > size:
            raise FrameError("metadata entry runs past its block")
        key = bytes(view[start : start + key_len])
        entries.append(_metadatum(key, bytes(view[start + key_len : offset])))
    return tuple(entries)


def _metadatum(key: bytes, raw: bytes) -> Metadatum:
    try:
        name = key.decode("ascii")
        if name.endswith("-bin"):
            return Metadatum(name, raw)
        return Metadatum(name, raw.decode("ascii"))
    except UnicodeDecodeError:
        raise FrameError("metadata is not ASCII") from None
