"""A hypothesis state machine over two engines and an adversarial network.

Rules: start an RPC, deliver / drop / duplicate any datagram in flight (so also
reorder), advance the clock. Invariants: each completed RPC arrives exactly once
with its bytes intact, and the server executes each request at most once. At the
end the network turns perfect and every RPC must complete.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from homarpc.transport.engine import HomaConfig, ResponseReceived, RpcFailed

from ..unit.engine.helpers import SERVER, Datagram, EnginePair

CONFIG = HomaConfig(
    max_datagram=300, unsched_bytes=1_000, max_incoming=3_000, timeout_ticks=400
)


class LossyPair(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pair = EnginePair(CONFIG)
        self.in_flight: list[Datagram] = []
        self.sent: dict[int, bytes] = {}  # cookie -> request

    def _collect(self) -> None:
        self.in_flight += self.pair.pending()

    @rule(size=st.sampled_from([0, 1, 299, 1_000, 1_001, 2_500, 7_000]))
    def start_rpc(self, size: int) -> None:
        cookie = len(self.sent)
        request = bytes([cookie % 251]) * size
        self.sent[cookie] = request
        self.pair.client.send_request(SERVER, request, cookie, self.pair.now)
        self._collect()

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(min_value=0), copies=st.integers(1, 2))
    def deliver(self, index: int, copies: int) -> None:
        datagram = self.in_flight.pop(index % len(self.in_flight))
        for _ in range(copies):
            self.pair.deliver(datagram)
        self._collect()

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(min_value=0))
    def duplicate(self, index: int) -> None:
        """A copy that may arrive much later (after the RPC is over)."""
        self.in_flight.append(self.in_flight[index % len(self.in_flight)])

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(min_value=0))
    def drop(self, index: int) -> None:
        self.in_flight.pop(index % len(self.in_flight))

    @rule(ticks=st.integers(1, 3))
    def advance_clock(self, ticks: int) -> None:
        for _ in range(ticks):
            self.pair.now += CONFIG.tick
            self.pair.client.handle_timer(self.pair.now)
            self.pair.server.handle_timer(self.pair.now)
            self.pair.drain_events()
            self._collect()

    @invariant()
    def completed_rpcs_arrive_once_and_intact(self) -> None:
        cookies = Counter(getattr(e, "cookie", None) for e in self.pair.client_events)
        assert all(n == 1 for n in cookies.values()), cookies
        for event in self.pair.client_events:
            assert not isinstance(event, RpcFailed), event
            assert isinstance(event, ResponseReceived)
            assert event.payload == self.sent[event.cookie][::-1]

    @invariant()
    def each_request_runs_at_most_once(self) -> None:
        seen = Counter((r.peer, r.rpc_id) for r in self.pair.requests)
        assert all(n == 1 for n in seen.values()), seen

    def teardown(self) -> None:
        for datagram in self.in_flight:
            self.pair.deliver(datagram)
        self.pair.transfer()
        self.pair.settle(5_000)
        self.completed_rpcs_arrive_once_and_intact()
        assert len(self.pair.client_events) == len(self.sent)


LossyPair.TestCase.settings = settings(
    max_examples=120, stateful_step_count=40, deadline=None
)
test_lossy_pair = LossyPair.TestCase
