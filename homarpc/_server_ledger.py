"""What a server remembers about calls beyond the live ones, each in bounded memory.

Layer: rpc. Imports: the stdlib, ``_framing`` and ``homarpc.transport``'s ``Address``.

* ``StartedCalls``: which (peer, call id) pairs have started, so a call runs at most
  once however often its start arrives (a replayed datagram, the same frame in a new
  Homa RPC). Clients number their calls upwards per socket, so per peer a *floor*
  (every id at or below it counts as started) and a bitmap of the ids just above it
  suffice: about 600 bytes a peer, whatever the number of calls.
* ``HeldBytes``: the bytes a peer's requests make the server hold before a handler
  takes them (frames of calls not started yet, messages queued for a handler),
  against a total and a per-peer share, so one peer cannot take it all.
* ``ParkedFrames``: frames that arrived before their call's start, bounded in
  time, calls and bytes.

``docs/wire-format.md`` ("At most once") states the guarantee these give.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ._framing import Frame
from .transport import Address

__all__ = ["HeldBytes", "ParkedFrames", "StartedCalls"]

#: Call ids remembered exactly above each peer's floor. A call start that arrives
#: more than this many ids behind the newest from its peer is refused as too old.
WINDOW = 4096
#: Peers remembered; the one unheard from longest is forgotten first.
MAX_PEERS = 16384


class StartedCalls:
    """The call ids each peer has started; ``start`` admits each id once."""

    def __init__(self, window: int = WINDOW, max_peers: int = MAX_PEERS) -> None:
        self._window = window
        self._max_peers = max_peers
        #: peer -> [floor, bits]: ids <= floor count as started; bit i of bits
        #: says whether floor + 1 + i has.
        self._peers: OrderedDict[Address, list[int]] = OrderedDict()
        #: Starts refused because the id had started before or was too old.
        self.refused = 0

    def __len__(self) -> int:
        return len(self._peers)

    def start(self, peer: Address, call_id: int) -> bool:
        """Record that ``call_id`` starts; False if it started before (or is so
        far behind the peer's newest id that it can no longer be told apart)."""
        entry = self._peers.get(peer)
        if entry is None:
            # Calls may arrive a little out of order: ids up to half a window
            # below the first one seen are still admitted once.
            entry = self._add_peer(peer, max(0, call_id - self._window // 2))
        else:
            self._peers.move_to_end(peer)
        floor, bits = entry
        if call_id <= floor:
            self.refused += 1
            return False
        offset = call_id - floor - 1
        if offset >= self._window:  # slide: keep the newest half window
            shift = offset - self._window // 2 + 1
            floor += shift
            bits >>= shift
            offset -= shift
            entry[0] = floor
        if bits >> offset & 1:
            entry[1] = bits
            self.refused += 1
            return False
        entry[1] = bits | 1 << offset
        return True

    def started(self, peer: Address, call_id: int) -> bool:
        """Whether ``call_id`` has started (or is too old to start)."""
        entry = self._peers.get(peer)
        if entry is None:
            return False
        floor, bits = entry
        offset = call_id - floor - 1
        return offset < 0 or (offset < self._window and bool(bits >> offset & 1))

    def _add_peer(self, peer: Address, floor: int) -> list[int]:
        if len(self._peers) >= self._max_peers:
            self._peers.popitem(last=False)
        entry = self._peers[peer] = [floor, 0]
        return entry


class HeldBytes:
    """Bytes held for peers' requests, within a total and a per-peer share.
    Thread-safe (calls count their messages under their own locks)."""

    def __init__(self, total: int, per_peer: int) -> None:
        self._lock = threading.Lock()
        self.total = total
        self.per_peer = per_peer
        self.held = 0
        self._by_peer: dict[Address, int] = {}
        #: Requests refused because they would have gone over.
        self.refused = 0

    def take(self, peer: Address, size: int) -> bool:
        """Count ``size`` more bytes for ``peer``; False (nothing counted) when
        that would pass the total or the peer's share."""
        with self._lock:
            mine = self._by_peer.get(peer, 0)
            if self.held + size > self.total or mine + size > self.per_peer:
                self.refused += 1
                return False
            self.held += size
            self._by_peer[peer] = mine + size
            return True

    def give_back(self, peer: Address, size: int) -> None:
        with self._lock:
            mine = self._by_peer.get(peer, 0) - size
            self.held -= size
            if mine > 0:
                self._by_peer[peer] = mine
            else:
                self._by_peer.pop(peer, None)


#: One parked frame: when it arrived, the Homa RPC that carried it, the frame.
Parked = tuple[float, int, Frame]


class ParkedFrames:
    """Frames of calls whose start has not arrived yet (Homa does not keep order
    between RPCs), held at most ``ttl`` seconds, for at most ``max_calls`` calls,
    and within ``held``'s bytes. Not thread-safe: the endpoint's lock covers it."""

    def __init__(self, held: HeldBytes, ttl: float, max_calls: int) -> None:
        self.held = held
        self._ttl = ttl
        self._max_calls = max_calls
        self._calls: dict[tuple[Address, int], list[Parked]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def park(self, key: tuple[Address, int], parked: Parked) -> bool:
        """Keep one frame; False (nothing kept) when over a bound."""
        frames = self._calls.get(key)
        if frames is None and len(self._calls) >= self._max_calls:
            return False
        if not self.held.take(key[0], _size(parked)):
            return False
        self._calls.setdefault(key, []).append(parked)
        return True

    def pop(self, key: tuple[Address, int]) -> list[Parked]:
        """The frames parked for ``key`` (their bytes no longer counted)."""
        frames = self._calls.pop(key, None)
        if not frames:
            return []
        self.held.give_back(key[0], sum(map(_size, frames)))
        return frames

    def expired(self, now: float) -> list[tuple[tuple[Address, int], list[Parked]]]:
        """Take out every call whose first parked frame is older than the TTL."""
        stale = [k for k, v in self._calls.items() if v[0][0] + self._ttl < now]
        return [(key, self.pop(key)) for key in stale]


def _size(parked: Parked) -> int:
    # Every frame counts a little, so empty ones cannot be parked without bound.
    return len(parked[2].payload) + _FRAME_OVERHEAD


_FRAME_OVERHEAD = 64
