"""The sans-IO Homa engine: RPCs over datagrams, with no sockets and no clock.

Layer: transport.engine. Imports: the stdlib only (no socket, asyncio, time, os).

Shape (aioquic): the driver feeds inputs -- ``receive_datagram``,
``receive_icmp_error``, ``send_request``, ``send_response``, ``abort``,
``handle_timer`` -- each with ``now`` (monotonic seconds), then drains
``datagrams_to_send(now)``, re-arms one timer at ``get_timer()`` and drains
``next_event()``. Time and randomness come in from outside, so the whole protocol
runs unchanged in a deterministic simulator.

What the engine does (``spec/homa-protocol.md`` §2, §6):

* messages go out as DATA packets; the first ``unsched_bytes`` without permission,
  the rest as the receiver GRANTs it (``grants.py``), never more than its
  ``max_incoming`` in flight;
* the sender picks the next packet by SRPT (fewest bytes left first), control
  packets before any data;
* loss is repaired by the receiver: after ``resend_ticks`` silent ticks it sends
  RESENDs; a server that is still working answers BUSY; an endpoint with no state
  answers RPC_UNKNOWN, carrying its uptime (a server RPC is forgotten);
* at most once: a client told RPC_UNKNOWN restarts its request only if the
  request provably never arrived whole (some bytes were never sent, or the
  server has been up since before the request). Otherwise the server lost an
  RPC whose request it may have processed (it restarted, say): the RPC fails
  with ``SERVER_LOST_REQUEST`` (ECONNRESET) and is not resent. A server that
  refuses a request for ``timeout_ticks`` fails it with ``REQUEST_REFUSED``;
* a client acks finished RPCs (piggy-backed on DATA, or ACK packets); a server
  that has sent its response asks with NEED_ACK until it hears one, then keeps a
  tombstone so a delayed duplicate request is never executed twice;
* RESENDs and NEED_ACKs back off exponentially per RPC (``Rpc.age``): a peer
  that never answers gets ~12 before the timeout, not one per tick;
* partly received messages are charged what they hold, not what they claim,
  against ``max_rx_buffer`` and a per-peer share; the first grant commits a
  message's whole length (``budget.py``);
* RPCs silent for ``timeout_ticks`` fail (client) or are freed (server); a
  receiver with no room to grant yet keeps its sender alive with empty RESENDs;
* the timer visits only RPCs with something to do: a server at work, or an RPC
  waiting for its peer, is parked until its next RESEND/NEED_ACK or timeout
  (``RpcTable.park``), so thousands of unacknowledged responses cost a tick
  nothing until they are due;
* with ``gather`` and a ``layout`` hook, a long incoming message is written where
  the hook says as its packets arrive (``placement.py``); a driver that reads the
  next in-order packet straight there (``landing()``, then ``receive_landed``)
  saves the copy altogether.

Bad input never raises: it is dropped and counted in ``stats.dropped``.
"""

from __future__ import annotations

import errno as _errno
import random
from collections import deque
from collections.abc import Callable

from . import wire
from .budget import MESSAGE_OVERHEAD, RxBudget
from .config import HomaConfig
from .control import ControlPackets
from .events import (
    Address,
    Datagram,
    HomaEvent,
    Received,
    RequestReceived,
    ResponseReceived,
)
from .grants import GrantScheduler
from .ledger import PendingAcks, Tombstones
from .messages import COMMITTED, IncomingMessage, OutgoingMessage
from .placement import Landing, Layout
from .rpc import Rpc, RpcInput, RpcState, TickAction
from .sender import SrptSender
from .stats import EngineStats
from .table import RpcTable
from .timer import TickTimer
from .writer import PacketWriter

__all__ = ["HomaEngine"]

_HEADER = wire.DATA_HEADER_LENGTH
_DATA = wire.PacketType.DATA
_unpack_data_header = wire.DATA_HEADER.unpack_from
_unpack_common = wire.COMMON.unpack_from
_OUTGOING = RpcState.OUTGOING
_INCOMING = RpcState.INCOMING
_IN_SERVICE = RpcState.IN_SERVICE
_QUIET = TickAction.NONE

_Handler = Callable[[wire.Readable, Address, int], None]


class HomaEngine(ControlPackets):
    """One Homa endpoint (one UDP port): client RPCs, and server RPCs if ``server``.

    Args:
        config: protocol tunables.
        local_port: our UDP port (written as ``sport``; received headers' ports are
            not checked: see ``_admitted``).
        rng: source of the random starting RPC id (inject a seeded one in tests).
        server: accept incoming requests (a client-only endpoint drops them).
        datagram_size: the largest datagram to send to a peer, asked once per new
            RPC (see ``HomaConfig.packet_data_per_peer``).
        gather: DATA packets come out of ``datagrams_to_send`` as a list of
            buffers (the header, then views of the message) for a driver that
            sends with ``sendmsg``, instead of one ``bytes`` built by copying the
            message bytes behind the header; and a message received in several
            packets is delivered as its list of pieces (``Received``), for a
            reader that joins it once itself, with whatever else it needs joined.
        started: the ``now`` at which the engine starts (the clock's zero by
            default, as in a simulation): its uptime goes out in RPC_UNKNOWN, so
            a client can tell a server that has been up since before its request
            (which then provably never got it) from one that may have restarted.
    """

    def __init__(
        self,
        config: HomaConfig,
        local_port: int,
        rng: random.Random,
        *,
        server: bool = False,
        datagram_size: Callable[[Address], int] | None = None,
        gather: bool = False,
        started: float = 0.0,
    ) -> None:
        self.config = config
        self._started = started
        self._now = started  # of the control packet or timer run being handled
        self.local_port = local_port
        self.is_server = server
        self.stats = EngineStats()
        self._tag = ((config.wire_tag >> 16) & 0xFF, config.wire_tag & 0xFFFF)
        self._rpcs = RpcTable(rng, config.packet_data_per_peer(datagram_size))
        self._tombstones = Tombstones()
        self._pending_acks = PendingAcks(wire.MAX_ACKS_PER_PACKET)
        self._writer = PacketWriter(local_port, config.wire_tag, self.stats, gather)
        self._gather = gather
        #: With ``gather``: asked where a long incoming message should be written
        #: as it arrives (``placement.py``); None keeps messages in pieces.
        self.layout: Layout | None = None
        #: The RPC (and its peer's id) whose placed message took the last packet.
        self._landing: tuple[Rpc, int] | None = None
        self._sender = SrptSender(self._writer, self._pending_acks)
        self._seq = 0
        self._events: deque[HomaEvent] = deque()
        self._budget = RxBudget(config.max_rx_buffer, config.rx_share)
        self._grants = GrantScheduler(
            config.max_incoming, config.overcommit, self._budget
        )
        self._grants_dirty = False
        self._timer = TickTimer(config.tick)
        # Control packets (DATA has its own path in ``receive_datagram``).
        self._handlers: dict[int, _Handler] = {
            wire.PacketType.GRANT: self._handle_grant_packet,
            wire.PacketType.RESEND: self._handle_resend_packet,
            wire.PacketType.RPC_UNKNOWN: self._handle_rpc_unknown_packet,
            wire.PacketType.BUSY: self._handle_busy_packet,
            wire.PacketType.CUTOFFS: self._handle_ignored_packet,
            wire.PacketType.FREEZE: self._handle_ignored_packet,
            wire.PacketType.NEED_ACK: self._handle_need_ack_packet,
            wire.PacketType.ACK: self._handle_ack_packet,
        }

    # ------------------------------------------------------------------ inputs

    def receive_datagram(self, data: wire.Readable, addr: Address, now: float) -> None:
        """Process one datagram from ``addr``; bad ones are dropped and counted.

        ``bytes`` are kept by reference until their message is complete (no
        copy); any other buffer is copied, so a reused receive buffer is fine.

        Then call ``datagrams_to_send()``.
        """
        self.stats.datagrams_received += 1
        if len(data) < wire.COMMON.size:
            self._drop("short")
            return
        ptype = data[11]
        min_length = wire.MIN_LENGTH.get(ptype)
        if min_length is None:
            self._drop("unknown_type")
            return
        if len(data) < min_length:
            self._drop("truncated")
            return
        # DATA is most datagrams: one unpack of its whole header (the common
        # header's fields come first) serves the checks below and the packet.
        is_data = ptype == _DATA
        head = _unpack_data_header(data) if is_data else _unpack_common(data)
        if self._admitted(head, addr):
            if is_data:
                self._handle_data_packet(data, addr, head, False)
            else:
                self._now = now
                self._handlers[ptype](data, addr, head[11])
            if self._timer.needs_arming:
                self._arm_timer(now)

    def landing(self) -> Landing | None:
        """Where the next DATA packet will be, if it continues in order the message
        last received in place: a driver may read a datagram with its header into
        one buffer and the rest into ``zone`` (``recvmsg_into``), then hand it
        to ``receive_landed`` if ``Landing.matches`` says it is that packet."""
        landing = self._landing
        if landing is None:
            return None
        rpc, sender_id = landing
        msgin = rpc.msgin
        if msgin is None or msgin.placement is None:
            self._landing = None
            return None
        at = msgin.recv_end - msgin.placement.skip
        if at < 0:
            return None
        zone = msgin.placement.view[at:]
        return Landing(sender_id, rpc.peer, msgin.recv_end, msgin.length, zone)

    def receive_landed(
        self, fields: tuple[int, ...], body: memoryview, addr: Address, now: float
    ) -> None:
        """Process a DATA packet whose header ``Landing.matches`` unpacked into
        ``fields`` and whose data a driver read straight into ``body`` (the start
        of that landing's zone): the data is already where it belongs and is not
        copied again.

        Then call ``datagrams_to_send()``.
        """
        self.stats.datagrams_received += 1
        if not self._admitted(fields, addr):
            return
        # The packets of a long message, one after another: ``matches`` checked
        # the sender's id, the offset, the length and the peer against the landing
        # it was given; check that it is still the message being received, then
        # only count the bytes. Anything else goes the general way.
        landing = self._landing
        msgin = None if landing is None else landing[0].msgin
        offset = wire.data_offset(fields[2], fields[20])
        if (
            landing is None
            or msgin is None
            or msgin.placement is None
            or offset != msgin.recv_end
            or fields[11] != landing[1]
            or fields[12] != msgin.length
            or addr != landing[0].peer
        ):
            self._handle_data_packet(body, addr, fields, True)
        else:
            rpc = landing[0]
            if fields[14]:
                self._apply_ack(addr, fields[14])
            if fields[13] > msgin.granted:
                msgin.granted = min(fields[13], msgin.length)
            added = msgin.add(offset, body, 0, True)
            self._after_data(rpc, msgin, added)
        if self._timer.needs_arming:
            self._arm_timer(now)

    def _admitted(self, head: tuple[int, ...], addr: Address) -> bool:
        """Whether a datagram carries our wire tag.

        The header's ports are not checked against the UDP ports: a NAT, a
        docker-proxy or a Kubernetes Service rewrites the UDP ports and leaves the
        Homa header alone. The datagram's addresses are the truth: it reached our
        socket, and an RPC's peer is where its datagrams come from.
        """
        if (head[3], head[4]) != self._tag:
            self._drop("bad_tag")
            return False
        return True

    def receive_icmp_error(
        self,
        addr: Address,
        errno: int,
        now: float,
        bounced: wire.Readable | None = None,
    ) -> None:
        """``addr`` is unreachable (ICMP): fail our RPCs to it, forget its requests.

        ``bounced`` is what came back of the datagram that drew the error (the
        error queue returns its first bytes; None: unknown). A client RPC fails
        with ``errno`` only if its request provably never reached ``addr``: it
        sent nothing yet, or ``bounced`` is its own DATA packet and it never
        heard from the server nor sent it a RESEND; every other one with
        ``SERVER_LOST_REQUEST`` (the server may have run it, then gone away:
        not to be sent again). Both come with ``RpcFailed.unreachable``.

        Then call ``datagrams_to_send()``.
        """
        bounced_id = self._bounced_request(bounced)
        for rpc in [rpc for rpc in self._rpcs.snapshot() if rpc.peer == addr]:
            if rpc.is_client:
                self._fail_unreachable(rpc, errno, bounced_id)
            else:
                self._free_server(rpc, RpcInput.ABORT)

    def send_request(
        self,
        peer: Address,
        payload: wire.Readable | list[memoryview],
        cookie: int,
        now: float,
    ) -> int:
        """Start a client RPC to ``peer``; return its id (even).

        ``payload`` may be a list of byte views sent as their concatenation; they
        are kept (not copied) until the RPC ends and must not change.

        Raises:
            ValueError: ``payload`` is longer than ``config.max_message_length``.

        Then call ``datagrams_to_send()``.
        """
        message = self._outgoing(payload)
        rpc = self._rpcs.new_client(peer, cookie)
        rpc.msgout = message
        rpc.started_at = now
        self._sender.queue(rpc)
        self._arm_timer(now)
        return rpc.id

    def send_response(
        self, rpc_id: int, payload: wire.Readable | list[memoryview], now: float
    ) -> None:
        """Answer the request ``rpc_id`` (from ``RequestReceived``).

        An unknown or finished id is ignored (the client went away), as in the kernel.

        Raises:
            ValueError: ``payload`` is longer than ``config.max_message_length``.
            LocalProtocolError: the request was already answered.

        Then call ``datagrams_to_send()``.
        """
        message = self._outgoing(payload)
        rpc = self._rpcs.server_ids.get(rpc_id)
        if rpc is None:
            return
        rpc.process(RpcInput.REPLY)
        rpc.msgout = message
        rpc.silent_ticks = 0
        self._rpcs.activate(rpc)
        self._sender.queue(rpc)
        self._arm_timer(now)

    def abort(self, rpc_id: int, error: int, now: float) -> None:
        """End client RPC ``rpc_id`` (0: all of them) or forget server RPC ``rpc_id``.

        ``error == 0`` ends client RPCs silently; otherwise each produces
        ``RpcFailed(errno=error)``. The peer is not told. Unknown ids are ignored.

        Then call ``datagrams_to_send()``.
        """
        if rpc_id == 0:
            for rpc in list(self._rpcs.clients.values()):
                self._fail_client(rpc, error)
            return
        client = self._rpcs.clients.get(rpc_id)
        if client is not None:
            self._fail_client(client, error)
            return
        server = self._rpcs.server_ids.get(rpc_id)
        if server is not None:
            self._free_server(server, RpcInput.ABORT)

    def handle_timer(self, now: float) -> None:
        """Run one timer tick if it is due: RESENDs, NEED_ACKs, timeouts, cleanup.

        Ticks are counted per call, not per elapsed ``tick``: after a long pause of
        the caller every RPC ages by one tick, not by the length of the pause.

        Then call ``datagrams_to_send()``.
        """
        if not self._timer.run_if_due(now):
            return
        self._now = now
        self._rpcs.due(self._timer.ticks)  # parked RPCs due now join the rest
        for rpc in list(self._rpcs.active):
            self._tick_rpc(rpc)
        self._tombstones.expire(self._timer.ticks)
        self._flush_old_acks()
        self._arm_timer(now)

    # ----------------------------------------------------------------- outputs

    def datagrams_to_send(
        self, now: float, max_datagrams: int | None = None
    ) -> list[tuple[Datagram, Address]]:
        """Datagrams to transmit now, in order: control packets, then DATA by SRPT.

        Args:
            now: the current time.
            max_datagrams: stop after this many (the rest wait for the next call);
                ``None`` returns everything that may be sent.
        """
        if self._grants_dirty:
            self._issue_grants()
        out = self._writer.take_control()
        limit = len(out) + max_datagrams if max_datagrams is not None else -1
        self._sender.fill(out, limit)
        self.stats.datagrams_sent += len(out)
        return out

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next run (``None``: nothing pending)."""
        return self._timer.deadline

    def next_event(self) -> HomaEvent | None:
        """The next event for the application, or ``None``."""
        return self._events.popleft() if self._events else None

    # ------------------------------------------------------------ introspection

    @property
    def rpc_count(self) -> int:
        """Live RPCs, client and server."""
        return len(self._rpcs)

    def snapshot(self) -> dict[str, int]:
        """The counters (``EngineStats.counters``) and what is held now: RPCs
        (live, client, server, parked), tombstones, pending acks (peers), and
        reassembly (``rx_messages``, ``rx_bytes_held`` received so far,
        ``rx_bytes_reserved`` charged against ``max_rx_buffer``, ``rx_peers``
        charged anything: ``budget.py``). O(messages being reassembled): for
        monitoring, not per packet."""
        out = self.stats.counters()
        rpcs = self._rpcs
        messages, held = self._grants.held()
        out.update(
            live_rpcs=len(rpcs), client_rpcs=len(rpcs.clients),
            server_rpcs=len(rpcs.servers), parked_rpcs=len(rpcs) - len(rpcs.active),
            tombstones=len(self._tombstones), peer_moves=rpcs.moves,
            rx_messages=messages, rx_bytes_held=held,
            rx_bytes_reserved=self._budget.held, rx_peers=self._budget.peers,
        )  # fmt: skip
        return out

    def in_flight(self) -> int:
        """What closing this endpoint's socket now could lose: client RPCs still
        waiting for their response (an aborted one is gone), server RPCs whose
        response is not yet acknowledged, and one more if control packets or
        acks wait to go out. 0: nothing here needs the socket any longer (a
        peer may still ask about it, but nothing it lacks comes from us).
        O(server RPCs): for a driver about to close, not per packet."""
        rpcs = self._rpcs
        unacked = sum(1 for rpc in rpcs.servers.values() if rpc.state is _OUTGOING)
        queued = bool(self._writer.control or self._pending_acks)
        return len(rpcs.clients) + unacked + queued

    @property
    def has_state(self) -> bool:
        """Anything at all is remembered (RPCs, tombstones, pending acks, packets)."""
        return bool(
            self._rpcs or self._tombstones or self._pending_acks
            or self._writer.control or self._events
        )  # fmt: skip

    def __repr__(self) -> str:
        role = "server" if self.is_server else "client"
        return (
            f"<HomaEngine {role} port={self.local_port} rpcs={len(self._rpcs)} "
            f"tombstones={len(self._tombstones)} ticks={self._timer.ticks}>"
        )

    # --------------------------------------------------------- packet handlers

    def _handle_data_packet(
        self,
        data: wire.Readable,
        addr: Address,
        fields: tuple[int, ...],
        landed: bool,
    ) -> None:
        """A DATA packet: ``data`` is the datagram, or with ``landed`` only the
        message bytes it carried, already in place."""
        sender_id = fields[11]
        length, incoming, ack_id = fields[12:15]
        offset = wire.data_offset(fields[2], fields[20])
        if length > self.config.max_message_length:
            self._drop("too_long")
            return
        if offset + len(data) - (0 if landed else _HEADER) > length:
            self._drop("out_of_range")
            return
        if ack_id:
            self._apply_ack(addr, ack_id)
        if sender_id & 1:
            rpc = self._rpcs.clients.get(sender_id ^ 1)
            if rpc is None:
                self._drop("unknown_rpc")
                return
            if rpc.peer != addr:
                self._rpcs.move(rpc, addr)
        else:
            maybe = self._server_for_request(addr, sender_id)
            if maybe is None:
                return
            rpc = maybe
        self._receive_data(rpc, sender_id, data, offset, (length, incoming), landed)

    def _server_for_request(self, addr: Address, client_id: int) -> Rpc | None:
        """The server RPC request data from ``addr`` belongs to, created if new."""
        key = (addr, client_id)
        rpc = self._rpcs.servers.get(key)
        if rpc is not None:
            if rpc.state is not _INCOMING:
                self._drop("duplicate")
                return None
            return rpc
        if not self.is_server:
            self._drop("not_server")
        elif key in self._tombstones:
            self._drop("stale")
        else:
            return self._rpcs.new_server(addr, client_id)
        return None

    def _receive_data(
        self,
        rpc: Rpc,
        sender_id: int,
        data: wire.Readable,
        offset: int,
        sizes: tuple[int, int],
        landed: bool,
    ) -> None:
        length, incoming = sizes
        msgin = rpc.msgin
        size = len(data) - (0 if landed else _HEADER)
        if msgin is None:
            rpc.reached = True  # (a client's: the server answers, it has our request)
            if offset == 0 and not landed and size == length:
                self._message_complete(rpc, bytes(data[_HEADER:]))  # whole at once
                return
            msgin = self._attach_incoming(rpc, length, incoming, size)
            if msgin is None:
                return
        elif msgin.length != length:
            self._drop("length_mismatch")
            return
        if msgin.commit != COMMITTED and not self._budget.fits(msgin.owner, size):
            self._drop("no_buffer")  # bytes nobody granted, and no room for them
            return
        if incoming > msgin.granted:
            msgin.granted = min(incoming, length)
        if landed:
            body = memoryview(data)
            if msgin.placement is None or offset != msgin.recv_end:
                body = memoryview(bytes(body))  # not where it belongs after all
                landed = False
        else:  # pieces are kept by reference: copy a driver's reusable buffer first
            body = memoryview(data if type(data) is bytes else bytes(data))[_HEADER:]
        if offset == 0 and msgin.received == 0 and self.layout is not None:
            self._place(msgin, body)
        added = msgin.add(offset, body, self.config.max_gaps, landed)
        if msgin.placement is not None:
            self._landing = (rpc, sender_id)
        self._after_data(rpc, msgin, added)

    def _after_data(self, rpc: Rpc, msgin: IncomingMessage, added: int) -> None:
        """``added`` new bytes (-1: refused) of ``rpc``'s incoming message came."""
        if added > 0 and msgin.commit != COMMITTED:
            self._budget.charge(msgin, added)  # held, though nobody granted them
        if added < 0:
            self._drop("too_many_gaps")
        elif msgin.is_complete:
            self._detach_incoming(rpc)
            whole = msgin.ordered_pieces() if self._gather else msgin.assemble()
            self._message_complete(rpc, whole)
        elif added == 0:
            self._drop("duplicate")  # no progress: not a sign of life either
        else:
            rpc.silent_ticks = rpc.nag_wait = 0  # progress: back-off starts over
            if rpc.wake:
                self._rpcs.activate(rpc)
            self._grants_dirty = True

    def _attach_incoming(
        self, rpc: Rpc, length: int, incoming: int, first: int
    ) -> IncomingMessage | None:
        """Start reassembling ``rpc``'s incoming message, if the reassembly budget
        has room for the ``first`` bytes that came (not for its claimed length:
        ``budget.py``)."""
        if not self._budget.fits(rpc.peer, MESSAGE_OVERHEAD + first):
            self._drop("no_buffer")  # the sender will try again when asked
            if not rpc.is_client:
                self._free_server(rpc, RpcInput.ABORT)
            return None
        self._seq += 1
        msgin = rpc.msgin = IncomingMessage(length, incoming, self._seq, rpc.peer)
        self._budget.charge(msgin, MESSAGE_OVERHEAD)
        self._grants.add(rpc)
        self._grants_dirty = True
        if rpc.is_client:
            rpc.process(RpcInput.RESPONSE_DATA)
        return msgin

    def _place(self, msgin: IncomingMessage, first: memoryview) -> None:
        """Ask the layout hook where ``msgin`` goes, given its first packet's data."""
        if not self._gather:
            return  # a message is delivered as bytes: nothing could use a placement
        rest = msgin.length + MESSAGE_OVERHEAD - msgin.charged
        if msgin.commit != COMMITTED and not self._budget.fits(msgin.owner, rest):
            return  # no room for a buffer of its whole length: pieces, as they come
        assert self.layout is not None
        placement = self.layout(first, msgin.length)
        if placement is not None and placement.fits(len(first), msgin.length):
            self._budget.commit(msgin)  # the buffer is the whole message
            msgin.placement = placement
            self.stats.messages_placed += 1

    def _message_complete(self, rpc: Rpc, payload: Received) -> None:
        if rpc.is_client:
            rpc.process(RpcInput.RESPONSE_COMPLETE)
            self._forget_client(rpc)
            self.stats.responses_delivered += 1
            self._events.append(ResponseReceived(rpc.id, rpc.cookie, rpc.peer, payload))
            self._add_pending_ack(rpc)
        else:
            rpc.process(RpcInput.REQUEST_COMPLETE)
            rpc.delivered = True
            self.stats.requests_delivered += 1
            self._events.append(RequestReceived(rpc.id, rpc.peer, payload))

    # ------------------------------------------------------------------ sending

    def _outgoing(self, payload: wire.Readable | list[memoryview]) -> OutgoingMessage:
        config = self.config
        return OutgoingMessage.checked(
            payload, config.unsched_bytes, config.max_message_length
        )

    def _issue_grants(self) -> None:
        self._grants_dirty = False
        for rpc in self._grants.schedule():
            assert rpc.msgin is not None
            self._writer.write_grant_packet(rpc, rpc.msgin.granted)

    # ---------------------------------------------------------------- acks

    def _add_pending_ack(self, rpc: Rpc) -> None:
        """Remember to ack ``rpc``; send an ACK packet when a sixth would be needed."""
        full = self._pending_acks.add(rpc.peer, rpc.id, self._timer.ticks)
        if full is not None:
            self._writer.write_ack_packet(rpc.peer, rpc.id, full)

    def _flush_old_acks(self) -> None:
        """Acks no DATA carried for a whole tick go out alone (saves a NEED_ACK)."""
        for peer, acks in self._pending_acks.take_older_than(self._timer.ticks - 1):
            self._writer.write_ack_packet(peer, acks[0], acks[1:])

    # ---------------------------------------------------------------- timers

    def _arm_timer(self, now: float) -> None:
        if not self._timer.needs_arming:  # the common case: armed already
            return
        busy = bool(self._rpcs or self._pending_acks)
        self._timer.arm(now, busy=busy, tombstones=self._tombstones)

    def _tick_rpc(self, rpc: Rpc) -> None:
        """Carry out what one timer tick means for ``rpc`` (see ``Rpc.age``)."""
        actions = rpc.age(self.config)
        if actions is _QUIET:  # the common case, without slow Flag arithmetic
            if rpc.silent_ticks or rpc.state is _IN_SERVICE:
                self._park(rpc)
            return
        if actions & TickAction.KEEP_ALIVE:
            assert rpc.msgin is not None  # ask for nothing: BUSY comes back
            self._writer.write_resend_packet(rpc, rpc.msgin.recv_end, 0)
        if actions & TickAction.NEED_ACK:
            self._writer.write_need_ack_packet(rpc)
        if actions & TickAction.TIMEOUT:
            self.stats.timeouts += 1
            if rpc.is_client:
                self._fail_client(rpc, _errno.ETIMEDOUT)
            else:
                self._free_server(rpc, RpcInput.ABORT)
        elif actions & TickAction.RESEND:
            self._request_retransmission(rpc)

    def _park(self, rpc: Rpc) -> None:
        """Stop ticking ``rpc`` until it has something to do: a server at work
        until it replies (``send_response`` wakes it); an RPC whose peer owes the
        next move until its next RESEND/NEED_ACK or its timeout, with the ticks
        in between counted now (progress wakes it: ``_wake``)."""
        if rpc.state is _IN_SERVICE:
            self._rpcs.park(rpc, -1)
            return
        ahead = min(rpc.nag_wait, self.config.timeout_ticks - rpc.silent_ticks)
        if ahead > 1:
            rpc.silent_ticks += ahead - 1
            rpc.nag_wait -= ahead - 1
            self._rpcs.park(rpc, self._timer.ticks + ahead)

    def _request_retransmission(self, rpc: Rpc) -> None:
        msgin = rpc.msgin
        if msgin is None:
            if rpc.is_client:
                rpc.resent_at = self._now  # see _server_lost
                rpc.reached = True  # asking for the response: it may have
                self._writer.write_resend_packet(rpc, 0, wire.RESEND_ALL)
            return
        for start, end in msgin.missing_ranges():
            self._writer.write_resend_packet(rpc, start, end - start)
