"""Per-RPC state: the kernel's life cycle as a transition table.

Layer: transport.engine. Imports: the stdlib only.

Theory of operation
-------------------
Everything that moves an RPC from one state to another lives in ``TRANSITIONS``;
the engine calls ``Rpc.process(input)`` and never assigns ``state`` itself.

Client RPC (created by ``send_request``)::

    OUTGOING --RESPONSE_DATA--> INCOMING --RESPONSE_COMPLETE--> DEAD
    OUTGOING --RESPONSE_COMPLETE--> DEAD          (one-packet response)
    OUTGOING/INCOMING --RESTART--> OUTGOING       (server lost its state)

Server RPC (created by the first DATA packet of a request, at any offset)::

    INCOMING --REQUEST_COMPLETE--> IN_SERVICE --REPLY--> OUTGOING --ACKED--> DEAD

Any live RPC goes to DEAD on ABORT (local abort, timeout, ICMP error, RPC_UNKNOWN).
A pair missing from the table raises ``LocalProtocolError``. Unlike h11, a rejected
input leaves the state alone: the usual cause is the application replying twice,
and that mistake must not destroy a response the client is still receiving.
"""

from __future__ import annotations

import enum

from .config import HomaConfig
from .errors import LocalProtocolError
from .events import Address
from .messages import IncomingMessage, OutgoingMessage

__all__ = ["TRANSITIONS", "Rpc", "RpcInput", "RpcState", "TickAction"]


class RpcState(enum.Enum):
    """The kernel's RPC states (``homa_rpc.h``)."""

    __hash__ = object.__hash__  # members are singletons; Enum's own hash is slow

    OUTGOING = "outgoing"
    INCOMING = "incoming"
    IN_SERVICE = "in_service"
    DEAD = "dead"


class RpcInput(enum.Enum):
    """What can happen to an RPC."""

    __hash__ = object.__hash__

    RESPONSE_DATA = "response_data"
    RESPONSE_COMPLETE = "response_complete"
    RESTART = "restart"
    REQUEST_COMPLETE = "request_complete"
    REPLY = "reply"
    ACKED = "acked"
    ABORT = "abort"


class TickAction(enum.Flag):
    """What a timer tick asks the engine to do for one RPC."""

    NONE = 0
    KEEP_ALIVE = enum.auto()  # empty RESEND: "still want it, no room to grant yet"
    NEED_ACK = enum.auto()  # server: "have you got the whole response?"
    RESEND = enum.auto()  # ask for what is missing (RESEND(0, -1) if nothing yet)
    TIMEOUT = enum.auto()  # silent too long: fail (client) or forget (server)


_S, _I = RpcState, RpcInput

#: (is_client, state, input) -> next state.
TRANSITIONS: dict[tuple[bool, RpcState, RpcInput], RpcState] = {
    (True, _S.OUTGOING, _I.RESPONSE_DATA): _S.INCOMING,
    (True, _S.OUTGOING, _I.RESPONSE_COMPLETE): _S.DEAD,
    (True, _S.INCOMING, _I.RESPONSE_DATA): _S.INCOMING,
    (True, _S.INCOMING, _I.RESPONSE_COMPLETE): _S.DEAD,
    (True, _S.OUTGOING, _I.RESTART): _S.OUTGOING,
    (True, _S.INCOMING, _I.RESTART): _S.OUTGOING,
    (True, _S.OUTGOING, _I.ABORT): _S.DEAD,
    (True, _S.INCOMING, _I.ABORT): _S.DEAD,
    (False, _S.INCOMING, _I.REQUEST_COMPLETE): _S.IN_SERVICE,
    (False, _S.IN_SERVICE, _I.REPLY): _S.OUTGOING,
    (False, _S.OUTGOING, _I.ACKED): _S.DEAD,
    (False, _S.INCOMING, _I.ABORT): _S.DEAD,
    (False, _S.IN_SERVICE, _I.ABORT): _S.DEAD,
    (False, _S.OUTGOING, _I.ABORT): _S.DEAD,
}


class Rpc:
    """One RPC as this endpoint sees it.

    Attributes:
        id: the local id (even for our client RPCs; opaque for server RPCs).
        wire_id: the id written in ``sender_id`` of packets we send for it.
        client_id: the client's id for the RPC (the server-side lookup key).
        peer: the other end's address.
        data_per_packet: message bytes in one full DATA packet we send to ``peer``
            (the path decides: large on loopback, MTU-sized across a network).
        is_client: we sent the request.
        cookie: the completion cookie given to ``send_request`` (0 on servers).
        msgout / msgin: the message we send / receive, when there is one.
        silent_ticks: timer ticks since the peer last showed signs of life.
        idle_ticks: ticks spent waiting for room to grant (keep-alives), without
            it being the peer's fault.
        delivered: the request went up to the application (server side), so a
            tombstone must outlive the RPC.
        queued: the RPC sits in the sender's SRPT heap.
        nag_gap / nag_wait: the back-off of RESENDs and NEED_ACKs (``age``):
            the current wait, and the ticks left of it (0: none started).
        wake: 0 while the timer visits the RPC every tick; the tick at which
            it visits it next once parked (``RpcTable.park``), -1 parked until
            an event wakes it.
        refused_since: the tick of the first restart after RPC_UNKNOWN (client;
            -1: none).
        started_at: the ``now`` of ``send_request`` (client).
        resent_at: the ``now`` of our latest RESEND(0, all) (client; -1: none).
        reached: (client) the request may have reached the server: a packet
            came from it about this RPC, or we asked it for the response. An
            RPC that has not, and whose own DATA bounced, provably never did
            (``HomaEngine.receive_icmp_error``).
    """

    __slots__ = (
        "client_id",
        "cookie",
        "data_per_packet",
        "delivered",
        "id",
        "idle_ticks",
        "is_client",
        "msgin",
        "msgout",
        "nag_gap",
        "nag_wait",
        "peer",
        "queued",
        "reached",
        "refused_since",
        "resent_at",
        "silent_ticks",
        "started_at",
        "state",
        "wake",
        "wire_id",
    )

    def __init__(
        self,
        rpc_id: int,
        client_id: int,
        peer: Address,
        data_per_packet: int,
        *,
        is_client: bool,
        cookie: int = 0,
    ) -> None:
        self.id = rpc_id
        self.client_id = client_id
        self.wire_id = client_id if is_client else client_id | 1
        self.peer = peer
        self.data_per_packet = data_per_packet
        self.is_client = is_client
        self.cookie = cookie
        self.state = RpcState.OUTGOING if is_client else RpcState.INCOMING
        self.msgout: OutgoingMessage | None = None
        self.msgin: IncomingMessage | None = None
        self.silent_ticks = 0
        self.idle_ticks = 0
        self.delivered = False
        self.queued = False
        self.reached = False
        self.refused_since = -1
        self.nag_gap = 0
        self.nag_wait = 0
        self.wake = 0
        self.resent_at = -1.0
        self.started_at = 0.0

    def process(self, event: RpcInput) -> RpcState:
        """Apply ``event``; return the new state.

        Raises:
            LocalProtocolError: ``event`` is not allowed in the current state.
        """
        try:
            self.state = TRANSITIONS[self.is_client, self.state, event]
        except KeyError:
            side = "client" if self.is_client else "server"
            raise LocalProtocolError(
                f"{side} RPC {self.id} cannot take {event.value} "
                f"in state {self.state.value}"
            ) from None
        return self.state

    def age(self, config: HomaConfig) -> TickAction:
        """Count one timer tick; return what it calls for.

        Silence only counts when the peer owes the next move. While we wait for
        room to grant, the sender hears from us four times per ``timeout_ticks``
        (enough to outlast a lost keep-alive, cheap with many waiting messages).
        Otherwise we nag the peer (a server whose response is out asks for an ACK
        after ``request_ack_ticks``, anyone else sends RESENDs after
        ``resend_ticks``) with exponential back-off: each wait doubles, up to
        ``max(resend_interval, timeout_ticks // 8)`` ticks, until progress (new
        data, or our move again) starts it over. A BUSY resets the silence but
        not the back-off. So a peer that never answers is nagged ~12 times before
        the RPC times out (at 1 ms ticks: 2, 6, 14, 30, 62, 126, 251 ms, then
        every 125 ms), not ~1,000 times; a server at work for a long time is
        asked every 125 ms. A message the reassembly budget refused to commit
        to (``budget.py``) that has waited ``timeout_ticks`` for grants is
        given up like a silent one: its sender may be gone, and it holds memory.
        """
        if self.owes_next_move:
            self.silent_ticks = 0
            self.nag_wait = 0
            if not self.is_waiting_to_grant:
                return TickAction.NONE
            self.idle_ticks += 1
            msgin = self.msgin
            if self.idle_ticks >= config.timeout_ticks and msgin and msgin.commit < 0:
                return TickAction.TIMEOUT  # no room for it all along: give up
            period = max(config.resend_interval, config.timeout_ticks // 4)
            keep_alive = self.idle_ticks % period == 0
            return TickAction.KEEP_ALIVE if keep_alive else TickAction.NONE
        self.silent_ticks += 1
        if self.silent_ticks >= config.timeout_ticks:
            return TickAction.TIMEOUT
        msgout = self.msgout
        awaiting_ack = (
            not self.is_client and msgout is not None and msgout.is_fully_sent
        )
        if self.nag_wait == 0:  # the first silent tick since the last progress
            first = config.request_ack_ticks if awaiting_ack else config.resend_ticks
            self.nag_gap = self.nag_wait = first
        self.nag_wait -= 1
        if self.nag_wait:
            return TickAction.NONE
        cap = max(config.resend_interval, config.timeout_ticks // 8)
        self.nag_gap = self.nag_wait = min(2 * self.nag_gap, cap)
        return TickAction.NEED_ACK if awaiting_ack else TickAction.RESEND

    @property
    def owes_next_move(self) -> bool:
        """True when silence is this side's doing, so it must not count as the peer's.

        That is: the application is working on the request; or there are granted
        bytes still to transmit; or everything granted has arrived and the next
        grant is ours to give.
        """
        if self.state is RpcState.IN_SERVICE:
            return True
        msgout = self.msgout
        if self.state is RpcState.OUTGOING and msgout is not None and msgout.is_ready:
            return True
        return self.is_waiting_to_grant

    @property
    def is_waiting_to_grant(self) -> bool:
        """Everything granted has arrived, and more must be granted by us."""
        msgin = self.msgin
        return (
            msgin is not None
            and not msgin.gaps
            and msgin.recv_end >= msgin.granted
            and msgin.granted < msgin.length
        )

    def __repr__(self) -> str:
        side = "client" if self.is_client else "server"
        return f"<Rpc {side} id={self.id} peer={self.peer} {self.state.value}>"
