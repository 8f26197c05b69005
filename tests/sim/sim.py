"""A deterministic discrete-event simulator for the sans-IO Homa engine.

Virtual clock; endpoints joined by links with delay, optional bandwidth (a FIFO
egress queue per endpoint), seeded loss, duplication and reordering, scripted drops
(``drop_if``), partitions, and crash/restart of endpoints (a fresh engine with a
new random id base). Server applications answer each request after
``service_time``; client applications record what came back.

``SimNetwork.check()`` asserts the invariants after a run: each RPC completed with
its exact bytes (or failed where a crash or partition allowed it), each server saw
each request at most once, and all engine state is gone once the network is idle.
The bytes-in-flight invariant (scheduled DATA bytes travelling towards a receiver
never exceed its ``max_incoming``) is checked on every packet sent.
"""

from __future__ import annotations

import errno
import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from homarpc.transport.engine import (
    HomaConfig,
    HomaEngine,
    RequestReceived,
    ResponseReceived,
    RpcFailed,
    wire,
)

Address = tuple[str, int]

#: ``Call.errno`` of calls that died with their client.
CLIENT_CRASHED = -2
#: ``Call.errno`` of calls the client aborted.
ABORTED = -3


@dataclass(frozen=True)
class Packet:
    """A datagram in flight, decoded enough for drop rules and accounting."""

    data: bytes
    src: Address
    dst: Address
    type: int
    sender_id: int
    offset: int = 0
    length: int = 0  # payload bytes (DATA)
    retransmit: bool = False
    copy: bool = False  # a duplicate the network made

    @property
    def from_client(self) -> bool:
        return self.sender_id & 1 == 0


def decode(data: bytes, src: Address, dst: Address) -> Packet:
    head = wire.unpack_common(data)
    if head.type != wire.PacketType.DATA:
        return Packet(data, src, dst, head.type, head.sender_id)
    fields = wire.unpack_data_header(data)
    return Packet(
        data, src, dst, head.type, head.sender_id, fields.offset,
        len(data) - wire.DATA_HEADER_LENGTH, bool(fields.retransmit),
    )  # fmt: skip


@dataclass
class Call:
    """One client RPC and what became of it."""

    index: int
    client: Address
    server: Address
    request: bytes
    expected: bytes
    issued_at: float
    rpc_id: int = 0
    response: bytes | None = None
    errno: int | None = None
    done_at: float | None = None


def default_response(request: bytes) -> bytes:
    return request[::-1]


@dataclass
class Node:
    """One endpoint: an engine plus a trivial application on top."""

    addr: Address
    config: HomaConfig
    server: bool
    service_time: float
    respond: Callable[[bytes], bytes]
    seed: int
    engine: HomaEngine | None = None
    incarnation: int = 0
    link_free_at: float = 0.0
    pull_pending: bool = False
    seen: Counter[tuple[Address, int]] = field(default_factory=Counter)
    seen_ever: Counter[tuple[Address, int]] = field(default_factory=Counter)
    datagram_size: Callable[[Address], int] | None = None  # the driver's per-peer hook

    def boot(self, now: float) -> None:
        self.incarnation += 1
        rng = random.Random(self.seed * 1000 + self.incarnation)
        self.engine = HomaEngine(
            self.config, self.addr[1], rng, server=self.server,
            datagram_size=self.datagram_size, started=now,
        )  # fmt: skip
        self.seen = Counter()


class SimNetwork:
    """Endpoints, links and a virtual clock.

    Args:
        seed: seeds every random choice of the network.
        loss, duplicate, reorder: per-datagram probabilities.
        delay: one-way latency in seconds; ``reorder`` adds up to ``jitter`` more.
        bandwidth: bytes/s of each endpoint's egress link (``None``: unlimited).
        icmp: an endpoint that is down answers with ICMP port unreachable.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        delay: float = 20e-6,
        jitter: float = 200e-6,
        bandwidth: float | None = None,
        icmp: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.loss, self.duplicate, self.reorder = loss, duplicate, reorder
        self.delay, self.jitter, self.bandwidth, self.icmp = (
            delay,
            jitter,
            bandwidth,
            icmp,
        )
        self.now = 0.0
        self.nodes: dict[Address, Node] = {}
        self.calls: list[Call] = []
        self.drop_if: list[Callable[[Packet], bool]] = []
        self.partitions: list[tuple[float, float, frozenset[Address]]] = []
        self.disrupted: set[Address] = set()  # endpoints hit by a crash or partition
        self.sent: Counter[int] = Counter()
        self.dropped: Counter[int] = Counter()
        self.record = False  # keep every delivered packet in ``delivered``
        self.delivered: list[Packet] = []
        self._queue: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._in_flight: dict[Address, int] = {}
        self._ranges: dict[tuple[Address, Address, int, int], int] = {}

    # ------------------------------------------------------------------ setup

    def add(
        self,
        port: int,
        config: HomaConfig | None = None,
        *,
        server: bool = False,
        service_time: float = 0.0,
        respond: Callable[[bytes], bytes] = default_response,
        datagram_size: Callable[[Address], int] | None = None,
    ) -> Address:
        addr = ("10.0.0.1", port)
        node = Node(addr, config or HomaConfig(), server, service_time, respond, port)
        node.datagram_size = datagram_size
        node.boot(self.now)
        self.nodes[addr] = node
        return addr

    def call(
        self, client: Address, server: Address, request: bytes, at: float | None = None
    ) -> Call:
        """Schedule an RPC; the expected response is the server's ``respond``."""
        index = len(self.calls)
        expected = self.nodes[server].respond(request) if server in self.nodes else b""
        record = Call(index, client, server, request, expected, at or self.now)
        self.calls.append(record)
        self._schedule(record.issued_at, "call", record)
        return record

    def crash(self, addr: Address, at: float, restart_after: float | None) -> None:
        """Take ``addr`` down at ``at`` (losing all its state); maybe bring it back."""
        self._schedule(at, "crash", addr)
        if restart_after is not None:
            self._schedule(at + restart_after, "restart", addr)

    def abort(self, call: Call, at: float) -> None:
        """Have the client abort ``call`` at ``at`` (silently, as a cancel would)."""
        self._schedule(at, "abort", call)

    def inject(self, packet: Packet, at: float) -> None:
        """Deliver a copy of ``packet`` at ``at`` (a badly delayed duplicate)."""
        self._schedule(at, "deliver", Packet(**{**packet.__dict__, "copy": True}))

    def partition(self, a: Address, b: Address, start: float, end: float) -> None:
        self.partitions.append((start, end, frozenset((a, b))))
        self.disrupted.update((a, b))

    # ------------------------------------------------------------------- run

    def run(self, until: float, max_steps: int = 2_000_000) -> None:
        """Advance the clock to ``until`` or until nothing is left to do."""
        for _ in range(max_steps):
            when = self._next_time()
            if when is None or when > until:
                self.now = until if when is not None else self.now
                return
            self.now = max(self.now, when)
            self._step()
        raise AssertionError("simulation did not settle")

    def run_until_idle(self, limit: float = 30.0) -> None:
        """Run until no engine has anything left (tombstones expire too)."""
        self.run(self.now + limit)
        busy = [a for a, n in self.nodes.items() if n.engine and n.engine.has_state]
        assert not busy, f"state left behind on {busy} at t={self.now:.3f}"

    def _next_time(self) -> float | None:
        timers = [n.engine.get_timer() for n in self.nodes.values() if n.engine]
        times = [t for t in timers if t is not None]
        if self._queue:
            times.append(self._queue[0][0])
        return min(times) if times else None

    def _step(self) -> None:
        while self._queue and self._queue[0][0] <= self.now:
            _, _, kind, item = heapq.heappop(self._queue)
            getattr(self, f"_do_{kind}")(item)
        for node in self.nodes.values():
            engine = node.engine
            if (
                engine is not None
                and (t := engine.get_timer()) is not None
                and t <= self.now
            ):
                engine.handle_timer(self.now)
                self._flush(node)

    def _schedule(self, when: float, kind: str, item: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, kind, item))

    # --------------------------------------------------------------- actions

    def _do_call(self, record: Call) -> None:
        node = self.nodes[record.client]
        if node.engine is None:
            record.errno = -1  # the client was down: never issued
            return
        record.rpc_id = node.engine.send_request(
            record.server, record.request, record.index, self.now
        )
        self._flush(node)

    def _do_abort(self, call: Call) -> None:
        node = self.nodes[call.client]
        if node.engine is not None and call.response is None and call.errno is None:
            node.engine.abort(call.rpc_id, 0, self.now)
            call.errno = ABORTED
            self._flush(node)

    def _do_deliver(self, packet: Packet) -> None:
        self._account(packet, -1)
        if self.record:
            self.delivered.append(packet)
        node = self.nodes.get(packet.dst)
        if node is None or node.engine is None:
            if self.icmp and (sender := self.nodes.get(packet.src)) and sender.engine:
                sender.engine.receive_icmp_error(
                    packet.dst, errno.ENOTCONN, self.now, packet.data[:64]
                )
                self._flush(sender)
            return
        node.engine.receive_datagram(packet.data, packet.src, self.now)
        self._flush(node)

    def _do_reply(self, item: tuple[Address, int, int, bytes]) -> None:
        addr, incarnation, rpc_id, payload = item
        node = self.nodes[addr]
        if node.engine is not None and node.incarnation == incarnation:
            node.engine.send_response(rpc_id, payload, self.now)
            self._flush(node)

    def _do_crash(self, addr: Address) -> None:
        self.nodes[addr].engine = None
        self.disrupted.add(addr)
        for call in self.calls:
            issued = call.rpc_id != 0
            if (
                call.client == addr
                and issued
                and call.response is None
                and call.errno is None
            ):
                call.errno = CLIENT_CRASHED

    def _do_restart(self, addr: Address) -> None:
        self.nodes[addr].boot(self.now)

    # ------------------------------------------------------------- plumbing

    def _flush(self, node: Node) -> None:
        engine = node.engine
        assert engine is not None
        if self.bandwidth is None:
            for data, dst in engine.datagrams_to_send(self.now):
                self._transmit(node, decode(data, node.addr, dst))
        else:
            self._pull(node, engine)
        while (event := engine.next_event()) is not None:
            self._on_event(node, event)

    def _pull(self, node: Node, engine: HomaEngine) -> None:
        """A paced link: take one DATA packet (plus control) each time it is idle.

        This is how a driver on a busy socket behaves, and what lets the engine's
        SRPT choice matter: nothing waits in a FIFO queue below the engine.
        """
        while node.link_free_at <= self.now:
            batch = engine.datagrams_to_send(self.now, max_datagrams=1)
            if not batch:
                return
            for data, dst in batch:
                self._transmit(node, decode(data, node.addr, dst))
        if not node.pull_pending:
            node.pull_pending = True
            self._schedule(node.link_free_at, "pull", node.addr)

    def _do_pull(self, addr: Address) -> None:
        node = self.nodes[addr]
        node.pull_pending = False
        if node.engine is not None:
            self._flush(node)

    def _on_event(self, node: Node, event: object) -> None:
        if isinstance(event, RequestReceived):
            key = (event.peer, event.rpc_id)
            node.seen[key] += 1
            node.seen_ever[key] += 1
            reply = (
                node.addr,
                node.incarnation,
                event.rpc_id,
                node.respond(event.payload),
            )
            self._schedule(self.now + node.service_time, "reply", reply)
        elif isinstance(event, ResponseReceived):
            call = self.calls[event.cookie]
            assert call.response is None and call.errno is None, (
                f"call {call.index} twice"
            )
            call.response, call.done_at = event.payload, self.now
        elif isinstance(event, RpcFailed):
            call = self.calls[event.cookie]
            assert call.response is None and call.errno is None, (
                f"call {call.index} twice"
            )
            call.errno, call.done_at = event.errno, self.now

    def _transmit(self, node: Node, packet: Packet) -> None:
        self.sent[packet.type] += 1
        departs = self.now
        if self.bandwidth is not None:
            departs = (
                max(self.now, node.link_free_at) + len(packet.data) / self.bandwidth
            )
            node.link_free_at = departs
        if self._lost(packet):
            self.dropped[packet.type] += 1
            return
        self._enqueue(packet, departs + self.delay + self._extra_delay())
        if self.rng.random() < self.duplicate:
            copy = Packet(**{**packet.__dict__, "copy": True})
            self._enqueue(copy, departs + self.delay + self._extra_delay())

    def _lost(self, packet: Packet) -> bool:
        if any(rule(packet) for rule in self.drop_if):
            return True
        for start, end, pair in self.partitions:
            if start <= self.now < end and {packet.src, packet.dst} == pair:
                return True
        return self.rng.random() < self.loss

    def _extra_delay(self) -> float:
        return (
            self.rng.random() * self.jitter if self.rng.random() < self.reorder else 0.0
        )

    def _enqueue(self, packet: Packet, when: float) -> None:
        self._account(packet, +1)
        self._schedule(when, "deliver", packet)

    def _account(self, packet: Packet, sign: int) -> None:
        """Track scheduled (granted) DATA bytes travelling towards each receiver.

        A range counts from its first transmission until the first copy of it
        arrives (the network's duplicates and the sender's retransmissions are
        repairs of bytes already counted, not new load).
        """
        if packet.type != wire.PacketType.DATA or packet.dst not in self.nodes:
            return
        key = (packet.src, packet.dst, packet.sender_id, packet.offset)
        if sign < 0:
            scheduled = self._ranges.pop(key, 0)
        elif packet.retransmit or packet.copy or key in self._ranges:
            return
        else:
            unsched = self.nodes[packet.src].config.unsched_bytes
            scheduled = max(
                0, packet.offset + packet.length - max(packet.offset, unsched)
            )
            self._ranges[key] = scheduled
        total = self._in_flight.get(packet.dst, 0) + sign * scheduled
        self._in_flight[packet.dst] = total
        limit = self.nodes[packet.dst].config.max_incoming
        assert total <= limit, (
            f"{total} scheduled bytes in flight to {packet.dst} > {limit}"
        )

    # ------------------------------------------------------------ invariants

    def check(self, *, allow_failures: bool | None = None) -> None:
        """Assert the run's invariants (call after ``run_until_idle``)."""
        if allow_failures is None:
            allow_failures = bool(self.disrupted)
        for call in self.calls:
            if call.errno is not None:
                assert allow_failures, (
                    f"call {call.index} failed with errno {call.errno}"
                )
                continue
            assert call.response is not None, f"call {call.index} never finished"
            assert call.response == call.expected, f"call {call.index}: wrong bytes"
        for node in self.nodes.values():
            # At most once, across restarts too: a request a crashed server may
            # have run is never sent again (the call fails instead).
            worst = max(node.seen_ever.values(), default=0)
            assert worst <= 1, f"{node.addr} executed a request {worst} times"
        lost = {key[1] for key in self._ranges}  # never arrived: the receiver was down
        assert all(v == 0 for a, v in self._in_flight.items() if a not in lost)

    def completed(self) -> list[Call]:
        return [c for c in self.calls if c.response is not None]
