"""``Message``: payloads received in pieces are joined once, only if asked for."""

from __future__ import annotations

from homarpc.transport import Message, Placement, join_pieces


def test_a_message_in_pieces_joins_on_first_use_of_payload():
    data = bytes(range(256)) * 10
    pieces = [memoryview(data)[:100], memoryview(data)[100:]]
    message = Message(3, 0, ("127.0.0.1", 1), True, parts=pieces)
    assert len(message) == len(data)
    assert message.payload_parts() is pieces  # no join for a reader of pieces
    assert message.payload == data
    assert message.payload_parts() == [data]  # joined once, then kept
    assert "2560 B" in repr(message)


def test_a_plain_message_is_its_own_single_part():
    message = Message(2, 5, ("::1", 9), False, b"abc")
    assert message.payload_parts() == [b"abc"] and len(message) == 3


def test_release_empties_a_message_in_pieces_too():
    released = []
    message = Message(
        3, 0, ("h", 1), True, release=lambda: released.append(1), parts=[b"ab", b"c"]
    )
    message.release()
    assert released == [1] and message.payload == b"" and len(message) == 0


def test_a_message_whose_last_piece_is_a_placement_joins_its_bytes():
    placed = Placement(2, memoryview(bytearray(b"cdef")))
    message = Message(1, 0, ("127.0.0.1", 1), True, parts=[b"ab", placed])
    assert len(message) == 6
    assert message.payload_parts()[-1] is placed
    assert message.payload == b"abcdef" and bytes(message) == b"abcdef"
    assert join_pieces([b"", placed, memoryview(b"!")]) == b"cdef!"
