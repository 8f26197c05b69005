"""Sans-IO stream pieces both ends share: ordering, reassembly, splitting.

Layer: rpc. Imports: stdlib, ``homarpc._framing`` and ``homarpc._placement`` only
(no threads, no asyncio).

Homa RPCs are not ordered with respect to each other, so every frame that belongs to
a direction's ordered stream carries a sequence number (1, 2, 3, ...).
``ReorderBuffer`` releases frames in order and refuses to hold more than its bound
(a peer that ignores flow control gets an error, not our memory). ``Assembler`` joins
the chunks of one gRPC message and enforces the receive size limit.
``message_frames`` splits one outgoing message into frames that each fit in one
Homa message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from ._framing import HEADER_SIZE, Flags, Frame, Pieces, head_size
from ._placement import PlacedMessage
from .transport import MAX_MESSAGE_LENGTH, Placement

#: A received chunk of a message, as ``decode_frame`` gives it.
Chunk = bytes | memoryview | Pieces | Placement

__all__ = [
    "DEFAULT_WINDOW",
    "LARGE_FRAME",
    "LARGE_WINDOW",
    "Assembler",
    "FlowControlError",
    "MessageTooLargeError",
    "ReorderBuffer",
    "advertised_limit",
    "message_frames",
    "send_limit",
]

T = TypeVar("T")

#: Flow-control window, in frames, per call and direction: a client keeps at most
#: this many data requests out and the server at most this many messages unread.
DEFAULT_WINDOW = 8
#: Frames (messages) at least this large count as large for the windows ...
LARGE_FRAME = 256 * 1024
#: ... which allow this many of them per call and direction (about 2 MB in
#: flight rather than ``DEFAULT_WINDOW`` MB).
LARGE_WINDOW = 2


class FlowControlError(Exception):
    """The peer sent more than the flow-control window allows."""


class MessageTooLargeError(Exception):
    """A received message is larger than the receive limit.

    Its text is grpcio's: ``Received message larger than max (N vs. M)``.
    """


class ReorderBuffer(Generic[T]):
    """Holds out-of-order items by sequence number and releases them in order."""

    __slots__ = ("_bound", "_next", "_waiting")

    def __init__(self, bound: int) -> None:
        self._bound = bound
        self._next = 1
        self._waiting: dict[int, T] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, seq: int, item: T) -> bool:
        """Queue ``item``; False (and nothing queued) for a duplicate or stale seq.

        Raises:
            FlowControlError: more than ``bound`` items would be waiting.
        """
        if seq < self._next or seq in self._waiting:
            return False
        if len(self._waiting) >= self._bound:
            raise FlowControlError(
                f"peer exceeded the flow-control window of {self._bound} frames"
            )
        self._waiting[seq] = item
        return True

    def take_in_order(self, seq: int) -> bool:
        """True (and the item counted as released) when ``seq`` is next and nothing
        waits: the caller handles the item at once, skipping the buffer."""
        if seq == self._next and not self._waiting:
            self._next += 1
            return True
        return False

    def ready(self) -> Iterator[T]:
        """Yield every item whose turn has come, in order."""
        while self._next in self._waiting:
            item = self._waiting.pop(self._next)
            self._next += 1
            yield item

    def drain(self) -> list[T]:
        """Remove and return everything still waiting (order not guaranteed)."""
        items = list(self._waiting.values())
        self._waiting.clear()
        return items


class Assembler:
    """Joins the chunks of one message; refuses messages over ``limit`` bytes.

    A message that began in place (``_placement.PlacedMessage``) is completed
    there: later chunks are copied in behind the first, and no join is needed.
    """

    __slots__ = ("_chunks", "_limit", "_placed", "_size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes | memoryview] = []
        self._placed: PlacedMessage | None = None
        self._size = 0

    @property
    def is_partial(self) -> bool:
        """True while some chunks of a message have arrived but not its last."""
        return bool(self._chunks) or self._placed is not None

    def add(self, chunk: Chunk, is_last: bool) -> bytes | None:
        """Add one chunk; return the whole message when ``is_last``. The one copy
        a message costs is made here: chunks are views, or ``Pieces`` of views
        (none at all for a message received in place).

        Raises:
            MessageTooLargeError: the message has grown past the limit.
        """
        self._size += len(chunk)
        if self._limit >= 0 and self._size > self._limit:
            size, self._size, self._chunks, self._placed = self._size, 0, [], None
            raise MessageTooLargeError(
                f"Received message larger than max ({size} vs. {self._limit})"
            )
        placed = self._placed
        if placed is not None and not placed.extend(chunk):
            # Longer than its first frame announced: join after all.
            self._chunks, self._placed, placed = [placed.written()], None, None
        if placed is None and not self._chunks and isinstance(chunk, PlacedMessage):
            placed = self._placed = chunk
        if placed is not None:
            if not is_last:
                return None
            self._size, self._placed = 0, None
            return placed.result()
        if not is_last:
            self._keep(chunk)  # views of immutable bytes: no copy yet
            return None
        self._size = 0
        if self._chunks:
            self._keep(chunk)
            whole = b"".join(self._chunks)  # the one copy of a split message
            self._chunks = []
            return whole
        return chunk if isinstance(chunk, bytes) else bytes(chunk)

    def _keep(self, chunk: Chunk) -> None:
        if isinstance(chunk, Pieces):
            self._chunks.extend(chunk.parts)
        elif isinstance(chunk, Placement):
            self._chunks.append(chunk.view)
        else:
            self._chunks.append(chunk)


def send_limit(own: int, theirs: int | None) -> int:
    """The largest Homa message to send a peer: what it announced it accepts
    (``Frame.max_message``), or if it said nothing the kernel's limit, which every
    backend accepts; never more than our own transport's ``own``.

    An announcement below the kernel's limit counts as none: every backend accepts
    1,000,000-byte messages, a conforming peer announces only more
    (``advertised_limit``), and honouring, say, 1 would let a peer fail every
    response ("does not fit in one Homa message") with the blame on our handler.
    """
    if theirs is None or theirs < MAX_MESSAGE_LENGTH:
        return min(own, MAX_MESSAGE_LENGTH)
    return min(own, theirs)


def advertised_limit(own: int) -> int | None:
    """What to announce as ``Frame.max_message``: ``own``, if it is more than a
    peer assumes anyway (the kernel's limit), else nothing."""
    return own if own > MAX_MESSAGE_LENGTH else None


def message_frames(
    first: Frame, payload: bytes, next_seq: int, max_length: int, end_flags: int
) -> list[Frame]:
    """Split one message into numbered frames of at most ``max_length`` bytes each.

    Args:
        first: template of the first frame (call id, flags, head fields). Its
            ``status`` and ``trailers`` belong at the end and ride on the last frame
            (or on one extra frame when they do not fit there).
        payload: the whole gRPC message.
        next_seq: the sequence number of the first frame.
        max_length: the Homa message limit.
        end_flags: ``Flags.EOS`` when this message also closes the direction.

    Raises:
        ValueError: the head alone does not fit in one message.
    """
    whole = Frame(
        first.call_id,
        next_seq,
        first.flags | Flags.MESSAGE | Flags.MSG_END | end_flags,
        first.method,
        first.timeout,
        first.metadata,
        first.status,
        first.trailers,
        payload,
        None,
        first.max_message,
    )
    fits_surely = len(payload) + _FAST_HEAD_ROOM <= max_length
    if fits_surely and not _head_is_large(first):
        return [whole]  # the hot path: one frame, head encoded once (by the caller)
    if len(payload) + HEADER_SIZE <= max_length and (
        len(payload) + head_size(whole) <= max_length
    ):
        return [whole]
    return _split(first, payload, next_seq, max_length, end_flags)


#: A head this small always fits next to a payload of ``max_length - _FAST_HEAD_ROOM``.
_FAST_HEAD_ROOM = 64 * 1024


def _head_is_large(frame: Frame) -> bool:
    """Cheap upper bound on the head's size (the hot path skips encoding it twice)."""
    size = 256 + len(frame.method or "") + len(frame.status[1] if frame.status else "")
    for entries in (frame.metadata, frame.trailers):
        for key, value in entries or ():
            size += 6 + len(key) + 4 * len(value)
    return size > _FAST_HEAD_ROOM


def _split(
    first: Frame, payload: bytes, next_seq: int, max_length: int, end_flags: int
) -> list[Frame]:
    """``message_frames`` for a message that needs several frames.

    Frames are built directly with their final fields (each ``_replace`` costs
    about as much as building one, and this runs for every large message).
    """
    call_id, method, timeout, metadata, most = (
        first.call_id, first.method, first.timeout, first.metadata, first.max_message,
    )  # fmt: skip
    lead_flags = first.flags | Flags.MESSAGE
    lead_head = Frame(
        call_id, 0, lead_flags, method, timeout, metadata, message_length=0,
        max_message=most,
    )  # fmt: skip
    room = max_length - head_size(lead_head)
    if room <= 0:
        raise ValueError("metadata does not fit in one Homa message")
    view = memoryview(payload)  # chunks are views: the transport makes the one copy
    frames = [
        Frame(
            call_id,
            next_seq,
            lead_flags,
            method,
            timeout,
            metadata,
            None,
            None,
            view[:room],
            len(payload),  # lets the receiver write the whole in place
            most,
        )
    ]
    rest_room = max_length - HEADER_SIZE
    for offset in range(room, len(payload), rest_room):
        chunk = view[offset : offset + rest_room]
        frames.append(
            Frame(call_id, next_seq + len(frames), Flags.MESSAGE, payload=chunk)
        )
    # The end of the message (and EOS, status, trailers) rides on the last chunk
    # if they fit beside it, else on one more frame.
    status, trailers = first.status, first.trailers
    last = frames[-1]
    merged = Frame(
        call_id, last.seq, last.flags | Flags.MSG_END | end_flags, last.method,
        last.timeout, last.metadata, status, trailers, last.payload,
    )  # fmt: skip
    if head_size(merged) + len(last.payload) <= max_length:
        frames[-1] = merged
    else:
        frames[-1] = last._replace(flags=last.flags | Flags.MSG_END)
        seq = next_seq + len(frames)
        frames.append(Frame(call_id, seq, end_flags, status=status, trailers=trailers))
    return frames
