"""Receiving a long message straight into the buffer it will be read from.

Layer: transport.engine. Imports: the stdlib only.

Without a placement, an engine made with ``gather=True`` keeps a multi-packet
message as the datagrams that brought it and delivers that list of pieces: the
reader joins them, one copy of the whole message at the end, on the critical path
(~60-90 µs per megabyte here, cold). With a placement, each packet's bytes go to
their final place as the packet arrives, and the message is delivered already
whole. Copying them there costs the receiver what the join cost (measured: no
gain); what gains is a driver that reads each packet straight there: a
``Landing`` (below) says where the next in-order packet of the message goes, and
``HomaEngine.receive_landed`` then only counts its bytes.

The engine asks its ``layout`` hook once per message, when the message's first
packet (offset 0) arrives before any other: the hook sees that packet's bytes and
the message length and may return a ``Placement``: the first ``skip`` bytes of the
message stay pieces (a reader's header, say), every byte from ``skip`` on is written
to ``view[offset - skip]``. The delivered message is then its leading pieces
followed by the ``Placement`` itself, so a reader that made it can get back
whatever it attached (a subclass may carry the object ``view`` writes into).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from . import wire

__all__ = ["Landing", "Layout", "Placement", "join_pieces"]

_HEADER = wire.DATA_HEADER_LENGTH
_DATA = wire.PacketType.DATA
_unpack_data_header = wire.DATA_HEADER.unpack_from


class Placement:
    """Where the bytes of one incoming message go from ``skip`` on.

    Attributes:
        skip: leading message bytes kept apart (delivered as pieces before this);
            at most the first packet's data.
        view: a writable, byte-formatted buffer of exactly ``length - skip`` bytes.
    """

    __slots__ = ("skip", "view")

    def __init__(self, skip: int, view: memoryview) -> None:
        self.skip = skip
        self.view = view

    def fits(self, first_data: int, length: int) -> bool:
        """Whether the engine can use this for a message of ``length`` bytes whose
        first packet carried ``first_data`` bytes."""
        view = self.view
        return (
            0 <= self.skip <= first_data
            and not view.readonly
            and view.itemsize == 1
            and view.nbytes == length - self.skip
        )

    def __len__(self) -> int:
        return self.view.nbytes

    def __bytes__(self) -> bytes:
        return self.view.tobytes()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} skip={self.skip} {self.view.nbytes} B>"


def join_pieces(pieces: Iterable[bytes | memoryview | Placement]) -> bytes:
    """The bytes of a message delivered in pieces, the last maybe a ``Placement``."""
    return b"".join(
        piece.view if isinstance(piece, Placement) else piece for piece in pieces
    )


#: ``layout(first_packet_data, message_length)``: a ``Placement``, or None to keep
#: the message in pieces. Called under the driver's lock: cheap, and never calling
#: back into the engine.
Layout = Callable[[memoryview, int], Placement | None]


class Landing:
    """Where the next in-order DATA packet of a placed message goes
    (``HomaEngine.landing``): a driver reads a datagram's first ``HEADER`` bytes
    into a header buffer and the rest into ``zone``, so that packet's data needs
    no copy at all, and keeps the datagram only if ``matches`` says it was
    that packet (anything else is copied out of the zone at once). After each
    packet that landed, ``advance`` moves it on to the next.

    Attributes:
        sender_id: the RPC id the sender puts in its DATA packets.
        peer: the address they come from.
        offset: the message offset the packet must start at.
        length: the message length it must declare.
        zone: writable view of the message's place from ``offset`` on.
    """

    __slots__ = ("length", "offset", "peer", "sender_id", "zone")

    #: Bytes of a DATA packet's header, the part read apart from the zone.
    HEADER = _HEADER

    def __init__(
        self,
        sender_id: int,
        peer: tuple[str, int],
        offset: int,
        length: int,
        zone: memoryview,
    ) -> None:
        self.sender_id = sender_id
        self.peer = peer
        self.offset = offset
        self.length = length
        self.zone = zone

    def matches(
        self, header: bytes | bytearray, size: int, peer: object
    ) -> tuple[int, ...] | None:
        """If a ``size``-byte datagram from ``peer`` whose first bytes are
        ``header`` is the packet this landing expects (its data then lies in
        ``zone[:size - HEADER]``): its unpacked DATA header, for
        ``HomaEngine.receive_landed``. Else None."""
        body = size - _HEADER
        if body <= 0 or body > len(self.zone) or header[11] != _DATA:
            return None
        fields = _unpack_data_header(header)
        if (
            fields[11] == self.sender_id
            and wire.data_offset(fields[2], fields[20]) == self.offset
            and fields[12] == self.length
            and peer == self.peer
        ):
            return fields
        return None

    def advance(self, body: int) -> bool:
        """Move on to the packet after one of ``body`` bytes landed here; False
        when the zone is used up."""
        if body >= len(self.zone):
            return False
        self.zone = self.zone[body:]
        self.offset += body
        return True
