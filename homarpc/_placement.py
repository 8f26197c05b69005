"""Long gRPC messages received straight into the ``bytes`` the application gets.

Layer: rpc. Imports: stdlib and public ``homarpc.transport`` names, ``_framing``.

A transport that supports it (``Transport.set_layout``: the embedded UDP Homa) asks
``layout`` where a long incoming Homa message should go when its first packet
arrives. If that packet begins a frame carrying a chunk of a gRPC message, the
answer is a ``PlacedMessage``: the frame's header and head stay apart, and every
payload byte is written, as its packet arrives, into a new ``bytes`` object the
size of the whole gRPC message (``writable_bytes``). A one-frame message is then
complete with no copy at all; a split message (its first frame says how long the
whole is: ``Frame.message_length``) has its later frames copied in behind the
first, which for a message just over the Homa limit is a few bytes. Without this,
the pieces the datagrams brought are joined once at the end: for 1 MB, one copy
of ~60-90 µs on the critical path, per direction.

Nothing unwritten is ever handed out: ``result()`` returns the object only once
every byte of it has been written, and otherwise copies what was.
"""

from __future__ import annotations

from ._framing import Flags, Pieces, peek_head
from .transport import Layout, Placement, Transport, writable_bytes

__all__ = ["MIN_PLACED", "PlacedMessage", "install_layout", "make_layout"]

#: Payloads shorter than this stay in pieces: joining a few packets costs less
#: than setting up a placement (~2 µs).
MIN_PLACED = 64 * 1024
#: A split message is placed only if it is at most this many times its first
#: Homa message: the size comes from the peer, and the engine's receive-buffer
#: budget counts Homa messages, so this bounds what a lying peer can make us
#: allocate per byte it sends. (Messages of 1-4 MB are placed.)
_MAX_GROWTH = 4


class PlacedMessage(Placement):
    """A gRPC message being written into ``data``; this frame's part is ``view``.

    Attributes:
        data: the object handed out once complete (``bytes`` where the interpreter
            allows, see ``writable_bytes``).
        whole: a writable view of all of ``data``.
        filled: bytes of ``whole`` written or promised so far: this frame's
            chunk, then each later chunk ``extend`` copies in.
    """

    __slots__ = ("data", "filled", "whole")

    def __init__(self, skip: int, chunk: int, total: int) -> None:
        self.data, self.whole = writable_bytes(total)
        super().__init__(skip, self.whole[:chunk])
        self.filled = chunk

    def extend(self, chunk: bytes | memoryview | Pieces | Placement) -> bool:
        """Copy a later frame's chunk in behind what is there; False (and nothing
        copied) if it does not fit in the announced length."""
        size = len(chunk)
        start, stop = self.filled, self.filled + size
        if stop > len(self.whole):
            return False
        if isinstance(chunk, Pieces):
            for part in chunk.parts:
                self.whole[start : start + len(part)] = part
                start += len(part)
        elif isinstance(chunk, Placement):
            self.whole[start:stop] = chunk.view
        else:
            self.whole[start:stop] = chunk
        self.filled = stop
        return True

    def result(self) -> bytes:
        """The message: ``data`` itself when every byte of it was written, else a
        copy of the bytes that were (a sender that announced more than it sent)."""
        data = self.data
        if self.filled == len(data) and type(data) is bytes:
            return data
        return bytes(self.whole[: self.filled])

    def written(self) -> memoryview:
        """The bytes written so far, as a view."""
        return self.whole[: self.filled]


def make_layout(limit: int) -> Layout:
    """The layout hook for an endpoint that accepts messages of up to ``limit``
    bytes (negative: no limit)."""

    def layout(first: memoryview, length: int) -> Placement | None:
        head = peek_head(first)
        if head is None:
            return None
        flags, skip, announced = head
        chunk = length - skip
        if not flags & Flags.MESSAGE or chunk < MIN_PLACED:
            return None
        if flags & Flags.MSG_END:
            total = chunk
        elif announced is None or not chunk < announced <= _MAX_GROWTH * length:
            return None  # a split message's first frame must say how long it is
        else:
            total = announced
        if 0 <= limit < total:
            return None  # refused when it arrives (RESOURCE_EXHAUSTED), not here
        return PlacedMessage(skip, chunk, total)

    return layout


def install_layout(transport: Transport, limit: int) -> bool:
    """Have ``transport`` receive long messages in place, if it can (a duck-typed
    transport without ``set_layout`` simply keeps delivering them whole)."""
    set_layout = getattr(transport, "set_layout", None)
    return bool(set_layout(make_layout(limit))) if set_layout is not None else False
