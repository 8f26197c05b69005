"""Control packets (GRANT, RESEND, RPC_UNKNOWN, BUSY, NEED_ACK, ACK) and the
ending of RPCs: the half of ``HomaEngine`` that is not the DATA path.

Layer: transport.engine. Imports: the stdlib only.

``HomaEngine`` inherits these methods; the attributes they use are the engine's
(declared here for the type checker, set in ``HomaEngine.__init__``).
"""

from __future__ import annotations

from collections import deque

from . import wire
from .budget import RxBudget
from .config import HomaConfig
from .events import (
    REQUEST_REFUSED,
    SERVER_LOST_REQUEST,
    Address,
    HomaEvent,
    RpcFailed,
)
from .grants import GrantScheduler
from .ledger import PendingAcks, Tombstones
from .messages import OutgoingMessage
from .rpc import Rpc, RpcInput, RpcState
from .sender import SrptSender
from .stats import EngineStats
from .table import RpcTable
from .timer import TickTimer
from .writer import PacketWriter

__all__ = ["ControlPackets"]

_OUTGOING = RpcState.OUTGOING
_INCOMING = RpcState.INCOMING

#: Seconds of uncertainty allowed when comparing the uptime an RPC_UNKNOWN carries
#: with the age of our request (``_server_lost``). Larger would misjudge a server
#: that restarted faster than this; smaller, a server started just before the
#: request that answered an earlier RESEND than our latest.
_UPTIME_SLACK = 0.005


class ControlPackets:
    """Handlers of the control packets, and how RPCs end (a ``HomaEngine`` base)."""

    config: HomaConfig
    is_server: bool
    stats: EngineStats
    _rpcs: RpcTable
    _writer: PacketWriter
    _sender: SrptSender
    _tombstones: Tombstones
    _pending_acks: PendingAcks
    _timer: TickTimer
    _grants: GrantScheduler
    _grants_dirty: bool
    _budget: RxBudget
    _events: deque[HomaEvent]
    _now: float
    _started: float
    _tag: tuple[int, int]

    def _handle_grant_packet(
        self, data: wire.Readable, addr: Address, sender_id: int
    ) -> None:
        rpc = self._rpcs.lookup(addr, sender_id)
        if rpc is None:
            self._drop("unknown_rpc")
            return
        rpc.silent_ticks = 0
        rpc.refused_since = -1  # it has our request in hand
        self._rpcs.activate(rpc)
        msgout = rpc.msgout
        if msgout is None or rpc.state is not _OUTGOING:
            self._drop("stale")
            return
        offset = wire.GRANT_BODY.unpack_from(data, wire.COMMON.size)[0]
        if offset > msgout.granted:
            msgout.granted = min(offset, msgout.length)
            self._sender.queue(rpc)

    def _handle_resend_packet(
        self, data: wire.Readable, addr: Address, sender_id: int
    ) -> None:
        self.stats.resends_received += 1
        offset, length, _ = wire.RESEND_BODY.unpack_from(data, wire.COMMON.size)
        rpc = self._rpcs.lookup(addr, sender_id)
        if rpc is None:
            if not sender_id & 1 and not self.is_server:
                self._drop("not_server")
            elif not sender_id & 1 and (addr, sender_id) in self._tombstones:
                self._drop("stale")
            else:
                uptime = self._now - self._started
                self._writer.write_rpc_unknown_packet(addr, sender_id, uptime)
            return
        msgout = rpc.msgout
        if rpc.state is not _OUTGOING or msgout is None:
            if rpc.is_client:
                self._drop("stale")  # the response is arriving: the request is done
            else:  # still receiving the request, or working on it
                self._writer.write_busy_packet(rpc)
            return
        # The peer wants our message, so it is alive. (A RESEND to a *receiver* is
        # no sign of life: two confused peers asking each other must time out.)
        rpc.silent_ticks = 0
        rpc.refused_since = -1
        self._rpcs.activate(rpc)
        if length == 0:
            return  # a keep-alive: the receiver has no room to grant yet
        end = msgout.sent if length == wire.RESEND_ALL else offset + length
        end = min(end, msgout.length)
        if end > msgout.granted:  # our grant never arrived: this RESEND replaces it
            msgout.granted = end
        if not msgout.request_retransmit(offset, end):
            # Not sent yet (SRPT chose others), or a keep-alive asking for nothing.
            self._writer.write_busy_packet(rpc)
        self._sender.queue(rpc)

    def _handle_rpc_unknown_packet(
        self, data: wire.Readable, addr: Address, sender_id: int
    ) -> None:
        rpc = self._rpcs.lookup(addr, sender_id)
        if rpc is None:
            self._drop("unknown_rpc")
        elif not rpc.is_client:
            self._free_server(rpc, RpcInput.ABORT)
        elif rpc.msgout is not None:
            uptime = wire.COMMON.unpack_from(data)[2] / 1e6
            self._server_lost(rpc, rpc.msgout, uptime)
            rpc.resent_at = -1.0

    def _server_lost(self, rpc: Rpc, msgout: OutgoingMessage, uptime: float) -> None:
        """The server, up for ``uptime`` seconds, has no state for our ``rpc``.

        At most once: a request whose every byte went out may have been processed
        by a server that has since restarted (or lost it otherwise), so the RPC
        fails with ``SERVER_LOST_REQUEST`` rather than run again. It is restarted
        only if it provably never arrived whole: some bytes were never sent, or
        the server has been up since before the request (it keeps the state or a
        tombstone of every request it got whole, so it never got this one: the
        packets were lost). Part of the response came: always fails.

        Durations compare across hosts (monotonic clocks tick alike). RPC_UNKNOWN
        answers our RESEND: if it answers the latest, sent when our request was
        ``age`` old, a server up for ``uptime`` when it answered predates the
        request iff ``uptime >= age + (RESEND's trip and wait)``, and
        ``uptime >= age`` whenever it does. ``_UPTIME_SLACK`` covers an answer to
        an earlier RESEND. Wrong only for a server that got the request, died and
        came back within one RESEND trip plus 5 ms; a server misjudged the other
        way fails the RPC (safe).
        """
        asked = rpc.resent_at if rpc.resent_at >= 0 else self._now
        predates = uptime + _UPTIME_SLACK >= asked - rpc.started_at
        if rpc.state is _INCOMING or (
            msgout.started and msgout.sent >= msgout.length and not predates
        ):
            self.stats.lost_by_server += 1
            self._fail_client(rpc, SERVER_LOST_REQUEST)
            return
        ticks = self._timer.ticks
        if rpc.refused_since < 0:
            rpc.refused_since = ticks
        elif ticks - rpc.refused_since >= self.config.timeout_ticks:
            self.stats.refused += 1
            self._fail_client(rpc, REQUEST_REFUSED)  # not silent: refusing
            return
        self.stats.restarts += 1  # the server never got our request: start over
        rpc.silent_ticks = 0  # it answered: it is not silent
        self._rpcs.activate(rpc)
        self._detach_incoming(rpc)
        rpc.process(RpcInput.RESTART)
        msgout.restart(self.config.unsched_bytes)
        self._sender.queue(rpc)

    def _handle_busy_packet(
        self, data: wire.Readable, addr: Address, sender_id: int
    ) -> None:
        rpc = self._rpcs.lookup(addr, sender_id)
        if rpc is None:
            self._drop("unknown_rpc")
        else:
            rpc.silent_ticks = 0
            rpc.refused_since = -1  # it has our request in hand

    def _handle_need_ack_packet(
        self, data: wire.Readable, addr: Address, sender_id: int
    ) -> None:
        if not sender_id & 1:
            self._drop("unexpected")
            return
        client_id = sender_id ^ 1
        if self._rpcs.lookup(addr, sender_id) is not None:
            # We still lack part of the response. Our own timer asks for it; asking
            # on every NEED_ACK too would resend the same bytes once per tick.
            return
        acks = self._pending_acks.take_all(addr)
        self._writer.write_ack_packet(
            addr, client_id, [a for a in acks if a != client_id]
        )

    def _handle_ack_packet(
        self, data: wire.Readable, addr: Address, sender_id: int
    ) -> None:
        if sender_id & 1:
            self._drop("unexpected")
            return
        try:
            entries = wire.unpack_ack(data).acks
        except ValueError:
            self._drop("bad_ack")
            return
        self._apply_ack(addr, sender_id)
        for client_id, _server_port in entries:
            self._apply_ack(addr, client_id)

    def _handle_ignored_packet(
        self, data: wire.Readable, addr: Address, sender_id: int
    ) -> None:
        """CUTOFFS and FREEZE: valid, understood, and irrelevant without priorities."""

    def _apply_ack(self, addr: Address, client_id: int) -> None:
        """``addr`` has our whole response to its RPC ``client_id``.

        An ack's ``server_port`` is not checked: it names the port the client
        sent to, which a port-changing middlebox makes differ from ours, and an
        ack that reached this socket is about this socket's RPCs.
        """
        rpc = self._rpcs.servers.get((addr, client_id))
        if rpc is not None and rpc.state is _OUTGOING:
            self._free_server(rpc, RpcInput.ACKED)

    # ------------------------------------------------------------- ending RPCs

    def _detach_incoming(self, rpc: Rpc) -> None:
        """Stop tracking ``rpc``'s incoming message (complete, or abandoned)."""
        msgin = rpc.msgin
        if msgin is not None:
            rpc.msgin = None
            self._budget.release(msgin)
            self._grants.remove(rpc)
            self._grants_dirty = True

    def _fail_client(self, rpc: Rpc, error: int, unreachable: bool = False) -> None:
        rpc.process(RpcInput.ABORT)
        self._forget_client(rpc)
        if error:
            self._events.append(
                RpcFailed(rpc.id, rpc.cookie, rpc.peer, error, unreachable)
            )

    def _fail_unreachable(self, rpc: Rpc, error: int, bounced: int) -> None:
        """``rpc``'s server is unreachable (``error``): a packet bounced, our
        DATA packet for client RPC ``bounced`` if it was one (else -1).

        At most once: ``error`` (the layer above may send the request elsewhere)
        only if the request provably never reached the server: not one packet
        of it went out; or the bounced packet was its own DATA and it never
        heard from the server nor asked it for the response (``Rpc.reached``),
        so every byte was sent once and that one never arrived. Otherwise the
        server may have run it before it went away: ``SERVER_LOST_REQUEST``.
        """
        msgout = rpc.msgout
        never = not rpc.reached and (
            msgout is None or not msgout.started or rpc.id == bounced
        )
        if not never:
            self.stats.lost_unreachable += 1
        self._fail_client(rpc, error if never else SERVER_LOST_REQUEST, True)

    def _bounced_request(self, bounced: wire.Readable | None) -> int:
        """The client RPC id of ``bounced`` (what came back of a datagram we
        sent) if it is one of our DATA packets, else -1 (not parsable, another
        kind of packet, not ours)."""
        if bounced is None or len(bounced) < wire.COMMON.size:
            return -1
        head = wire.COMMON.unpack_from(bounced)
        if (head[3], head[4]) != self._tag or head[5] != wire.PacketType.DATA:
            return -1
        sender_id: int = head[11]
        return -1 if sender_id & 1 else sender_id

    def _forget_client(self, rpc: Rpc) -> None:
        self._rpcs.remove(rpc)
        self._detach_incoming(rpc)

    def _free_server(self, rpc: Rpc, event: RpcInput) -> None:
        rpc.process(event)
        self._rpcs.remove(rpc)
        self._detach_incoming(rpc)
        if rpc.delivered:
            key = (rpc.peer, rpc.client_id)
            self._tombstones.add(
                key, self._timer.ticks + self.config.tombstone_lifetime
            )

    def _drop(self, reason: str) -> None:
        self.stats.dropped[reason] += 1
