"""What outlives an RPC: acks a client still owes, ids a server must not reuse.

Layer: transport.engine. Imports: the stdlib only.

``PendingAcks`` is the client's side of at-most-once: the ids of finished RPCs,
per server, waiting to ride on the next DATA packet to that server (or to go out
in an ACK packet of their own). ``Tombstones`` is the server's side: (client
address, client id) pairs of RPCs it has executed and forgotten, kept for a while
so a delayed duplicate of the request is recognised and dropped.
"""

from __future__ import annotations

from collections import deque

from .events import Address

__all__ = ["PendingAcks", "ServerKey", "Tombstones"]

#: How a server names an RPC: the client's address and the client's id.
ServerKey = tuple[Address, int]


class PendingAcks:
    """Per-peer lists of finished client RPC ids not yet acknowledged to the server.

    Args:
        capacity: how many ids one peer's list holds (the five slots of an ACK).
    """

    __slots__ = ("_acks", "_since", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._acks: dict[Address, list[int]] = {}
        self._since: dict[Address, int] = {}

    def __bool__(self) -> bool:
        return bool(self._acks)

    def add(self, peer: Address, client_id: int, tick: int) -> list[int] | None:
        """Remember ``client_id``; if ``peer``'s list is full, return it (now emptied).

        The caller then sends an ACK packet naming ``client_id`` in its header and
        the returned ids in its body.
        """
        acks = self._acks.get(peer)
        if acks is None:
            self._acks[peer] = [client_id]
            self._since[peer] = tick
            return None
        if len(acks) < self.capacity:
            acks.append(client_id)
            return None
        self.take_all(peer)
        return acks

    def pop(self, peer: Address) -> int:
        """One id to piggy-back on a DATA packet to ``peer`` (0: none)."""
        acks = self._acks.get(peer)
        if not acks:
            return 0
        client_id = acks.pop()
        if not acks:
            del self._acks[peer], self._since[peer]
        return client_id

    def take_all(self, peer: Address) -> list[int]:
        """Every id pending for ``peer``, forgotten here."""
        self._since.pop(peer, None)
        return self._acks.pop(peer, [])

    def take_older_than(self, tick: int) -> list[tuple[Address, list[int]]]:
        """Lists that have waited since before ``tick``, forgotten here."""
        old = [peer for peer, since in self._since.items() if since < tick]
        return [(peer, self.take_all(peer)) for peer in old]


class Tombstones:
    """Server keys of finished RPCs, each remembered until an expiry tick."""

    __slots__ = ("_expiry", "_queue")

    def __init__(self) -> None:
        self._expiry: dict[ServerKey, int] = {}
        self._queue: deque[tuple[int, ServerKey]] = deque()  # in expiry order

    def __bool__(self) -> bool:
        return bool(self._expiry)

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, key: ServerKey) -> bool:
        return key in self._expiry

    def add(self, key: ServerKey, expiry: int) -> None:
        """Remember ``key`` until tick ``expiry`` (expiries must not decrease)."""
        self._expiry[key] = expiry
        self._queue.append((expiry, key))

    def next_expiry(self) -> int:
        """The earliest expiry tick still queued (call only when not empty)."""
        return self._queue[0][0]

    def expire(self, tick: int) -> None:
        """Forget every key whose expiry is ``tick`` or earlier."""
        queue = self._queue
        while queue and queue[0][0] <= tick:
            expiry, key = queue.popleft()
            if self._expiry.get(key) == expiry:
                del self._expiry[key]
