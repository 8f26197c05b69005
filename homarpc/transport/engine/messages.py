"""One message in each direction: what is sent and granted, what has arrived.

Layer: transport.engine. Imports: the stdlib only.

``OutgoingMessage`` tracks the sender's side (``sent`` and ``granted`` offsets plus
ranges a RESEND asked for again). ``IncomingMessage`` collects the receiver's side
as pieces (joined once, at the end) or writes them into place, and keeps the
kernel's bookkeeping: ``recv_end`` (one past the highest byte received) and a
sorted list of gaps below it. Packets may
arrive in any order, duplicated, or overlapping what is already there; only bytes
that fill a hole are kept, so a duplicate cannot overwrite received data.
"""

from __future__ import annotations

from .placement import Placement, join_pieces

__all__ = ["COMMITTED", "REFUSED", "UNCOMMITTED", "IncomingMessage", "OutgoingMessage"]

#: ``IncomingMessage.commit``: whether the receiver has committed memory for the
#: whole message (``budget.py``): not yet, yes, or not yet and refused at least
#: once for want of room.
UNCOMMITTED, COMMITTED, REFUSED = 0, 1, -1


def _offset(piece: tuple[int, bytes | memoryview]) -> int:
    return piece[0]


class OutgoingMessage:
    """A request or response being transmitted.

    Attributes:
        parts: ``(offset, view)`` of each part of the message (one part unless
            the sender gathered several); never copied after ``__init__``.
        length: bytes in the message.
        granted: the sender may transmit every byte below this offset.
        sent: bytes below this offset have been transmitted at least once.
        started: the first packet has gone out (a 0-byte message has one packet).
        retransmit: ``[start, end)`` ranges a RESEND asked for, not yet re-sent.
    """

    __slots__ = ("granted", "length", "parts", "retransmit", "sent", "started")

    @classmethod
    def checked(
        cls,
        payload: bytes | bytearray | memoryview | list[memoryview],
        unsched_bytes: int,
        limit: int,
    ) -> OutgoingMessage:
        """A message of ``payload`` (copied unless it is ``bytes``; a list holds
        parts that must not change, e.g. views of ``bytes``).

        Raises:
            ValueError: ``payload`` is longer than ``limit``.
        """
        if type(payload) is bytes:  # the common case
            length = len(payload)
        elif isinstance(payload, list):
            length = sum([part.nbytes for part in payload])
        else:
            length = memoryview(payload).nbytes
        if length > limit:  # refused before anything is copied
            raise ValueError(f"message of {length} bytes exceeds the limit of {limit}")
        if not isinstance(payload, (bytes, list)):
            payload = bytes(payload)
        return cls(payload, unsched_bytes)

    def __init__(self, payload: bytes | list[memoryview], unsched_bytes: int) -> None:
        if isinstance(payload, list):
            self.parts: list[tuple[int, memoryview]] = []
            offset = 0
            for view in payload:
                self.parts.append((offset, view))
                offset += view.nbytes
        else:
            self.parts = [(0, memoryview(payload))]
            offset = len(payload)
        self.length = offset
        self.granted = min(unsched_bytes, self.length)
        self.sent = 0
        self.started = False
        self.retransmit: list[tuple[int, int]] = []

    def packet(self, header: bytes, start: int, stop: int) -> bytes:
        """``header`` followed by the message bytes ``[start, stop)``."""
        parts = self.parts
        if len(parts) == 1:  # the common case: one buffer
            return header + parts[0][1][start:stop]
        return b"".join(self.packet_parts(header, start, stop))

    def packet_parts(
        self, header: bytes, start: int, stop: int
    ) -> list[bytes | memoryview]:
        """``packet()`` uncopied: ``header``, then views of ``[start, stop)``."""
        pieces: list[bytes | memoryview] = [header]
        for offset, part in self.parts:  # a handful of parts: a frame's head, a body
            end = offset + part.nbytes
            if end > start and offset < stop:
                pieces.append(part[max(start - offset, 0) : min(stop, end) - offset])
        return pieces

    @property
    def is_ready(self) -> bool:
        """There is something to transmit now."""
        return bool(self.retransmit) or self.sent < self.granted or not self.started

    @property
    def is_fully_sent(self) -> bool:
        """Every byte went out at least once and no retransmission is pending."""
        return self.started and self.sent >= self.length and not self.retransmit

    @property
    def bytes_left(self) -> int:
        """Bytes never transmitted: the SRPT key."""
        return self.length - self.sent

    def request_retransmit(self, start: int, end: int) -> bool:
        """Queue ``[start, end)`` (clipped to what was sent) again; False if empty.

        A 0-byte message re-sends its one empty packet.
        """
        end = min(end, self.sent)
        if self.length == 0 and self.started:
            self.retransmit.append((0, 0))
            return True
        if start >= end:
            return False
        self.retransmit.append((start, end))
        return True

    def restart(self, unsched_bytes: int) -> None:
        """Forget all progress: the receiver lost its state (RPC_UNKNOWN)."""
        self.granted = min(unsched_bytes, self.length)
        self.sent = 0
        self.started = False
        self.retransmit.clear()


class IncomingMessage:
    """A request or response being reassembled.

    Received bytes are kept as *pieces* (views into the datagrams that brought
    them) and joined once, when the message is complete; or, once the driver's
    layout hook gave a ``placement``, copied on arrival into the buffer the reader
    will use (``placement.py``). A pre-sized buffer the engine chose itself would
    cost a copy per packet and then one more to hand the result out as ``bytes``:
    only the reader can supply a buffer that needs no further copy.

    Attributes:
        length: the message length every packet of it declares.
        pieces: ``(offset, bytes)`` of every byte received once and not placed,
            disjoint.
        placement: where bytes from ``placement.skip`` on go, or None.
        received: how many distinct bytes have arrived.
        recv_end: one past the highest offset received.
        gaps: sorted, disjoint ``[start, end)`` holes below ``recv_end``.
        granted: the sender may transmit every byte below this offset.
        owner: the peer the reassembly budget charges (``budget.py``).
        charged: bytes the budget charges this message now.
        commit: ``UNCOMMITTED``, ``COMMITTED`` or ``REFUSED`` (``budget.py``).
    """

    __slots__ = (
        "charged", "commit", "gaps", "granted", "in_order", "length", "owner",
        "pieces", "placement", "received", "recv_end", "seq",
    )  # fmt: skip

    def __init__(
        self, length: int, granted: int, seq: int, owner: tuple[str, int] = ("", 0)
    ) -> None:
        self.length = length
        self.pieces: list[tuple[int, bytes | memoryview]] = []
        self.in_order = True  # ``pieces`` is sorted by offset (no sort at the end)
        self.received = 0
        self.recv_end = 0
        self.gaps: list[list[int]] = []
        self.granted = min(granted, length)
        self.seq = seq  # creation order, the grant scheduler's tie-breaker
        self.owner = owner
        self.charged = 0
        self.commit = UNCOMMITTED
        #: Where bytes from ``placement.skip`` on are written (``placement.py``);
        #: None: every byte is kept in ``pieces``.
        self.placement: Placement | None = None

    @property
    def is_complete(self) -> bool:
        return self.received >= self.length

    @property
    def outstanding(self) -> int:
        """Granted bytes not yet received (what this message may still bring in)."""
        return max(0, self.granted - self.received)

    def add(
        self, offset: int, data: memoryview, max_gaps: int, landed: bool = False
    ) -> int:
        """Keep the new bytes of a packet; return how many were new.

        ``data`` must view immutable bytes (it is kept, not copied, when most of
        it is new), or with ``landed`` be the bytes already read into their place
        (``offset`` is then ``recv_end``: in order). ``offset + len(data)`` must
        be within ``length`` (the caller checks). Returns 0 for a pure duplicate
        and -1 if taking the packet would exceed ``max_gaps``.
        """
        end = offset + len(data)
        if offset > self.recv_end and len(self.gaps) >= max_gaps:
            return -1
        if offset == self.recv_end:  # in order: the common case
            if self.placement is None:
                self.pieces.append((offset, data))
            elif not landed:  # (landed: the driver read it straight into place)
                self._place(offset, data)
            self.recv_end = end
            self.received += end - offset
            return end - offset
        self.in_order = False
        added = self._fill_gaps(offset, end, data) if offset < self.recv_end else 0
        if end > self.recv_end:
            start = max(offset, self.recv_end)
            if start > self.recv_end:
                self.gaps.append([self.recv_end, start])
            self._keep(start, data[start - offset :])
            added += end - start
            self.recv_end = end
        self.received += added
        return added

    def assemble(self) -> bytes:
        """The whole message (call once ``is_complete``)."""
        return join_pieces(self.ordered_pieces())

    def ordered_pieces(self) -> list[bytes | memoryview | Placement]:
        """The pieces in message order, unjoined, then the ``placement`` if there
        is one (call once ``is_complete``)."""
        pieces = self.pieces
        if not self.in_order:
            pieces.sort(key=_offset)
            self.in_order = True
        ordered: list[bytes | memoryview | Placement] = [piece for _, piece in pieces]
        if self.placement is not None:
            ordered.append(self.placement)
        return ordered

    def _keep(self, start: int, piece: memoryview) -> None:
        """Keep ``piece`` (new bytes from ``start``). A piece that is a small part
        of its datagram is copied, so overlapping packets from a bad peer cannot
        pin many whole datagrams for a few new bytes each."""
        if self.placement is not None:
            self._place(start, piece)
        elif 2 * len(piece) < len(piece.obj):  # type: ignore[arg-type]
            self.pieces.append((start, bytes(piece)))
        else:
            self.pieces.append((start, piece))

    def _place(self, start: int, piece: memoryview) -> None:
        """Write ``piece`` (new bytes from ``start``) where the placement says:
        bytes below ``skip`` stay a piece (copied: they are few), the rest go
        into ``view``."""
        placement = self.placement
        assert placement is not None
        skip = placement.skip
        if start < skip:
            lead = piece[: skip - start]
            self.pieces.append((start, bytes(lead)))
            piece = piece[len(lead) :]
            start += len(lead)
        if piece:
            at = start - skip
            placement.view[at : at + len(piece)] = piece

    def _fill_gaps(self, offset: int, end: int, data: memoryview) -> int:
        """Copy the parts of ``[offset, end)`` that fall in gaps; shrink those gaps."""
        added = 0
        index = 0
        gaps = self.gaps
        while index < len(gaps):
            gap = gaps[index]
            start, stop = max(gap[0], offset), min(gap[1], end)
            if gap[0] >= end:
                break
            if start >= stop:
                index += 1
                continue
            self._keep(start, data[start - offset : stop - offset])
            added += stop - start
            index += self._shrink_gap(index, start, stop)
        return added

    def _shrink_gap(self, index: int, start: int, stop: int) -> int:
        """Remove ``[start, stop)`` from gap ``index``; return how far to advance."""
        gap = self.gaps[index]
        if start == gap[0] and stop == gap[1]:
            del self.gaps[index]
            return 0
        if start == gap[0]:
            gap[0] = stop
        elif stop == gap[1]:
            gap[1] = start
        else:
            self.gaps.insert(index + 1, [stop, gap[1]])
            gap[1] = start
        return 1

    def missing_ranges(self) -> list[tuple[int, int]]:
        """What to ask a RESEND for: each gap plus ``[recv_end, granted)``."""
        ranges = [(gap[0], gap[1]) for gap in self.gaps]
        if self.granted > self.recv_end:
            ranges.append((self.recv_end, self.granted))
        return ranges
