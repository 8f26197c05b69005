"""Two engines joined back to back, for unit and property tests (h11's ConnectionPair).

``transfer()`` moves datagrams both ways until nothing is left to send, with an
optional ``lose`` filter; the server application answers every request with its
bytes reversed unless told otherwise.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from homarpc.transport.engine import (
    HomaConfig,
    HomaEngine,
    HomaEvent,
    RequestReceived,
    ResponseReceived,
)

CLIENT = ("127.0.0.1", 40_001)
SERVER = ("127.0.0.1", 5_000)

Datagram = tuple[bytes, tuple[str, int], tuple[str, int]]  # data, src, dst


class EnginePair:
    """A client engine and a server engine with a virtual clock."""

    def __init__(
        self, config: HomaConfig | None = None, seed: int = 0, *, gather: bool = False
    ) -> None:
        self.config = config or HomaConfig()
        self.now = 0.0
        self.client = HomaEngine(
            self.config, CLIENT[1], random.Random(seed), gather=gather
        )
        # The server has been up a while (its uptime, in RPC_UNKNOWN, shows it
        # predates every request: one that never arrived may be restarted).
        self.server = HomaEngine(
            self.config, SERVER[1], random.Random(seed + 1), server=True,
            gather=gather, started=-60.0,
        )  # fmt: skip
        self.client_events: list[HomaEvent] = []
        self.requests: list[RequestReceived] = []
        self.auto_reply = True

    def engine_at(self, addr: tuple[str, int]) -> HomaEngine:
        return self.client if addr == CLIENT else self.server

    def pending(self) -> list[Datagram]:
        """Everything both engines want to send now."""
        out = [(d, CLIENT, dst) for d, dst in self.client.datagrams_to_send(self.now)]
        out += [(d, SERVER, dst) for d, dst in self.server.datagrams_to_send(self.now)]
        return out

    def deliver(self, datagram: Datagram) -> None:
        data, src, dst = datagram
        if isinstance(data, list):  # a gathered DATA packet: what sendmsg would send
            data = b"".join(data)
        self.engine_at(dst).receive_datagram(data, src, self.now)
        self.drain_events()

    def drain_events(self) -> None:
        while (event := self.server.next_event()) is not None:
            assert isinstance(event, RequestReceived)
            self.requests.append(event)
            if self.auto_reply:
                request = event.payload
                if isinstance(request, list):  # pieces, from a gathering engine
                    request = b"".join(map(bytes, request))  # (maybe a Placement)
                self.server.send_response(event.rpc_id, request[::-1], self.now)
        while (event := self.client.next_event()) is not None:
            self.client_events.append(event)

    def transfer(self, lose: Callable[[Datagram], bool] | None = None) -> int:
        """Deliver until both sides are quiet; return how many datagrams moved."""
        moved = 0
        while batch := self.pending():
            for datagram in batch:
                moved += 1
                if lose is None or not lose(datagram):
                    self.deliver(datagram)
        return moved

    def tick(
        self, count: int = 1, lose: Callable[[Datagram], bool] | None = None
    ) -> None:
        """Advance the clock ``count`` ticks, running timers and transfers."""
        for _ in range(count):
            self.now += self.config.tick
            self.client.handle_timer(self.now)
            self.server.handle_timer(self.now)
            self.drain_events()
            self.transfer(lose)

    def roundtrip(self, payload: bytes, cookie: int = 0) -> ResponseReceived:
        """One complete RPC over a perfect network."""
        before = len(self.client_events)
        self.client.send_request(SERVER, payload, cookie, self.now)
        self.transfer()
        (event,) = self.client_events[before:]
        assert isinstance(event, ResponseReceived), event
        return event

    def settle(self, max_ticks: int | None = None) -> None:
        """Tick until neither engine holds any state (default bound: tombstones age out
        twice over)."""
        bound = max_ticks or 2 * self.config.tombstone_lifetime
        for _ in range(bound):
            if not (self.client.has_state or self.server.has_state):
                return
            self.tick()
        raise AssertionError("engines still hold state")


def transfer_lossily_until(
    pair: EnginePair, rng: random.Random, done: Callable[[], bool]
) -> None:
    """Deliver in shuffled batches, losing 10% and duplicating 5%, ticking the
    clock (timers: RESENDs) until ``done()``; 2,000 ticks at most."""

    def shuffled_lossy_transfer() -> None:
        while batch := pair.pending():
            rng.shuffle(batch)
            for datagram in batch:
                roll = rng.random()
                if roll >= 0.1:  # else lost
                    pair.deliver(datagram)
                if roll > 0.95:
                    pair.deliver(datagram)  # duplicated

    shuffled_lossy_transfer()
    for _ in range(2_000):
        if done():
            return
        pair.now += pair.config.tick
        pair.client.handle_timer(pair.now)
        pair.server.handle_timer(pair.now)
        shuffled_lossy_transfer()
