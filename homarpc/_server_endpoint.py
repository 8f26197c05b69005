"""A server's listening transport: its requests routed to calls, its calls swept.

Layer: rpc. Imports: stdlib, public ``homarpc.transport`` names, rpc-layer modules.
No asyncio: the blocking server and ``homarpc.aio`` both sit on this module.

Internal interface (stable; ``homarpc.aio`` uses exactly this)::

    endpoint = ServerEndpoint(transport, on_call=callback, max_receive_message_length=N)
    endpoint.start(); ...; endpoint.close()
    # or, without start(), from an event loop (never blocking):
    endpoint.pump_ready() -> bool   # when fileno() is readable; False once closed
    endpoint.sweep()                # every quarter second or so
    # on_call(core) runs on the receive thread for each new call: it may run the
    # handler there (the blocking server) or hand it to an event loop; it should
    # set core.notify. ``ServerCallCore`` (``_server_call.py``) is the call.
    endpoint.stats() -> dict        # counters for operators (``Server.stats()``)

Everything a peer can make the endpoint hold is bounded (``_server_ledger.py``):
which calls started (so each runs at most once), frames that arrived before their
call's start, and whole messages waiting for a handler.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ._framing import Flags, Frame, FrameError, decode_frame, encode_frame
from ._placement import install_layout
from ._ratelimit import RateLimitedLog
from ._receivers import Receivers
from ._server_call import ServerCallCore
from ._server_ledger import HeldBytes, Parked, ParkedFrames, StartedCalls
from ._stream import DEFAULT_WINDOW, advertised_limit
from .metadata import DEFAULT_MAX_METADATA_SIZE, check_incoming, for_application
from .status import StatusCode
from .transport import Address, Message, Transport, TransportClosedError

__all__ = ["LIVENESS_TIMEOUT", "ServerEndpoint"]

log = logging.getLogger("homarpc.server")

#: Frames for calls whose start has not arrived yet, held at most this long ...
_ORPHAN_TTL = 5.0
#: ... for at most this many calls, in at most these many bytes (per client, all).
_MAX_ORPHAN_CALLS = 1024
_ORPHAN_BYTES = (16 << 20, 4 << 20)
#: Whole messages waiting for handlers, at most these many bytes (all, per client).
_QUEUED_BYTES = (256 << 20, 64 << 20)
#: A call whose client has sent nothing for this long is cancelled: the client
#: is gone (live clients send keepalives every ``KEEPALIVE_INTERVAL``, 10 s).
LIVENESS_TIMEOUT = 35.0
#: Longest ``close()`` waits for its last replies to get through (``linger``).
_CLOSE_LINGER = 1.0
#: Requests ``pump_ready`` handles per call before returning to its event loop.
_PUMP_BATCH = 64

_Key = tuple[Address, int]
#: Answers to send once the lock is released: (Homa RPC id, frame).
_Answers = list[tuple[int, Frame]]
#: What ``_route`` returns for a call that is not new (nothing to start).
_NOT_NEW: list[Parked] = []
#: Unreachable clients noted before their calls are ended (older ones dropped).
_MAX_GONE = 4096


class ServerEndpoint:
    """A listening transport, its receive threads, and the table of live calls.

    ``on_call`` runs on the thread that read the call start and may block there
    (the blocking server runs handlers inline, saving a thread hand-off);
    ``_receivers.Receivers`` keeps another thread reading when one is stuck.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        on_call: Callable[[ServerCallCore], None],
        max_receive_message_length: int = 4 * 1024 * 1024,
        max_metadata_size: int = DEFAULT_MAX_METADATA_SIZE,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self.transport = transport
        self.max_receive_message_length = max_receive_message_length
        self.max_metadata_size = max_metadata_size
        self.max_message_length = transport.max_message_length
        #: What our first frame to each client announces (``Frame.max_message``).
        self.advertised = advertised_limit(self.max_message_length)
        self.window = window
        # Long requests are received straight into the bytes handed out.
        install_layout(transport, max_receive_message_length)
        #: Requests dropped because they did not parse.
        self.malformed = 0
        #: Calls refused before their handler: a replayed start, bad metadata.
        self.refused = 0
        #: Messages ``pump_ready`` has dispatched (a loop reader's sign of activity).
        self.pumped = 0
        #: Whole messages waiting for handlers (``ServerCallCore`` counts them).
        self.held = HeldBytes(*_QUEUED_BYTES)
        self._on_call = on_call
        self._lock = threading.Lock()
        self._calls: dict[_Key, ServerCallCore] = {}
        self._started = StartedCalls()
        self._orphans = ParkedFrames(
            HeldBytes(*_ORPHAN_BYTES), _ORPHAN_TTL, _MAX_ORPHAN_CALLS
        )
        self._receivers: Receivers | None = None
        #: Calls cancelled because their client's port closed (ICMP unreachable).
        self.unreachable_cancelled = 0
        #: Clients found unreachable, whose calls are still to be ended.
        self._gone: deque[Address] = deque(maxlen=_MAX_GONE)
        transport.on_unreachable = self._peer_gone
        #: Log lines a remote peer can cause, at most a few per reason and minute.
        self.peer_log = RateLimitedLog(log, per_seconds=60.0, burst=5)

    def start(self) -> None:
        """Start reading the transport with threads (the blocking server; the
        asyncio server reads it from its event loop instead)."""
        self._receivers = Receivers(self.transport, self._dispatch, self._sweep)
        self._receivers.start()

    def hand_off(self) -> None:
        """The calling thread is about to block in a handler: if it is reading the
        transport, another thread takes over now (see ``_receivers``)."""
        if self._receivers is not None:
            self._receivers.hand_off()

    def live_calls(self) -> list[ServerCallCore]:
        with self._lock:
            return list(self._calls.values())

    def close(self) -> None:
        """Cancel every live call, answer every frame held, and close the
        transport once what we sent got through (``Transport.linger``: a kernel
        module retransmits from this socket, and loses the first packet of a
        one-packet message on loopback; the reader threads keep reading)."""
        for core in self.live_calls():
            core.terminate(StatusCode.UNAVAILABLE, "Server shutting down")
        with self._lock:
            parked = self._orphans.expired(float("inf"))
        self._cancel_parked(parked)
        self.transport.linger(_CLOSE_LINGER)
        self.transport.close()
        if self._receivers is not None:
            # A handler running inline may take longer; we wait 2 s at most.
            self._receivers.close(timeout=2.0)

    def forget(self, core: ServerCallCore) -> None:
        """``core`` has ended (its start stays in ``_started``: late frames for it
        are answered, and a replayed start is refused)."""
        with self._lock:
            self._calls.pop((core.peer, core.call_id), None)

    def _peer_gone(self, peer: Address) -> None:
        """The transport heard that ``peer``'s port is closed (ICMP unreachable).
        It may tell us from inside any of its calls, ours included (a reply that
        bounced), so this only notes the peer; ``_end_gone_peers`` acts on it."""
        self._gone.append(peer)

    def _end_gone_peers(self) -> None:
        """End the calls of clients whose port closed, as grpcio ends a call whose
        connection dropped: handlers see ``is_active()`` False, callbacks run."""
        while self._gone:
            try:
                peer = self._gone.popleft()
            except IndexError:  # another thread took it
                return
            with self._lock:
                gone = [core for (who, _), core in self._calls.items() if who == peer]
            for core in gone:
                self.unreachable_cancelled += 1
                core.terminate(StatusCode.CANCELLED, "Client unreachable", False)

    def stats(self) -> dict[str, Any]:
        """Counters an operator can read: see ``Server.stats()``."""
        with self._lock:
            calls, parked = len(self._calls), len(self._orphans)
            parked_bytes = self._orphans.held.held
        return {
            "live_calls": calls,
            "malformed_requests": self.malformed,
            "refused_calls": self.refused,
            "replayed_calls": self._started.refused,
            "peers_remembered": len(self._started),
            "queued_message_bytes": self.held.held,
            "early_frames": parked,
            "early_frame_bytes": parked_bytes,
            "over_budget": self.held.refused + self._orphans.held.refused,
            "cancelled_unreachable": self.unreachable_cancelled,
        }

    def transport_stats(self) -> dict[str, Any]:
        """The transport's own counters, where its backend keeps them."""
        found: dict[str, Any] = {
            "kind": self.transport.kind,
            "address": list(self.transport.local_addr),
        }
        found.update(self.transport.stats_snapshot())
        return found

    def pump_ready(self) -> bool:
        """Dispatch up to 64 requests waiting on the transport, without blocking.

        For a reader driven by the transport's ``fileno()`` instead of ``start()``'s
        threads (``homarpc.aio``). Returns False once the transport is closed (stop
        watching it), else True.
        """
        recv = self.transport.recv
        for _ in range(_PUMP_BATCH):
            try:
                message = recv(timeout=0)
            except TransportClosedError:
                return False
            if message is None:
                return True
            self.pumped += 1
            try:
                self._dispatch(message)
            except Exception:  # a bug must not stop the server reading
                self.peer_log.log(
                    "handle", logging.ERROR,
                    "homarpc: error handling a request from %s", message.peer,
                    exc_info=True,
                )  # fmt: skip
        return True

    def sweep(self) -> None:
        """Expire deadlines, end calls whose client went silent, and give up on
        orphaned frames; never blocks. ``start()``'s threads do this themselves;
        a reader using ``pump_ready`` calls it about every quarter second."""
        self._sweep(time.monotonic())

    # -- requests -------------------------------------------------------------------

    def _dispatch(self, message: Message) -> None:
        if not message.is_request:
            return  # servers start no RPCs; nothing to match
        try:
            frame = decode_frame(message.payload_parts())
        except FrameError as exc:
            self._malformed(message, exc)
            return
        finally:
            message.release()
        peer = message.peer
        answers: _Answers = []  # sent after the lock is released: no I/O under it
        with self._lock:
            core, orphans = self._route(peer, message.id, frame, answers)
        for rpc_id, answer in answers:
            self._answer(peer, rpc_id, answer)
        if self._gone:
            self._end_gone_peers()
        if core is None:
            return
        core.on_request(message.id, frame)
        for _, orphan_id, orphan in orphans:  # before on_call, which may block
            core.on_request(orphan_id, orphan)
        if orphans is not _NOT_NEW:
            self._on_call(core)

    def _route(
        self, peer: Address, rpc_id: int, frame: Frame, answers: _Answers
    ) -> tuple[ServerCallCore | None, list[Parked]]:
        """Find or make the call ``frame`` belongs to (under the lock): the call
        and, for a new one, the frames that came before its start (else
        ``_NOT_NEW``); None when the frame was answered or parked instead."""
        key = (peer, frame.call_id)
        core = self._calls.get(key)
        if core is not None:
            return core, _NOT_NEW
        if frame.seq != 1 or frame.method is None:
            self._park_unknown(key, rpc_id, frame, answers)
            return None, _NOT_NEW
        if not self._started.start(peer, frame.call_id):
            # A replayed datagram, or the same frame again in a new Homa RPC: it
            # never runs twice (clients never send a start twice: the caller, if
            # still there, learns why).
            details = (
                f"call id {frame.call_id} from this client has been used before: "
                "a repeated call start is not run again"
            )
            self._refuse(rpc_id, key, StatusCode.ABORTED, details, answers)
            return None, _NOT_NEW
        refusal = check_incoming(frame.metadata, self.max_metadata_size)
        if refusal is not None:
            self._refuse(rpc_id, key, *refusal, answers)
            return None, _NOT_NEW
        orphans = self._orphans.pop(key)
        core = self._calls[key] = ServerCallCore(self, peer, frame)
        core.metadata = for_application(core.metadata)
        return core, orphans

    def _malformed(self, message: Message, exc: FrameError) -> None:
        self.malformed += 1
        self.peer_log.log(
            "malformed",
            logging.DEBUG,
            "homarpc: dropped a malformed request from %s: %s",
            message.peer,
            exc,
        )
        status = (StatusCode.INTERNAL.code, f"malformed request: {exc}")
        self._answer(message.peer, message.id, Frame(0, flags=Flags.EOS, status=status))

    def _refuse(
        self,
        rpc_id: int,
        key: _Key,
        code: StatusCode,
        details: str,
        answers: _Answers,
    ) -> None:
        """End a call before it runs (under the lock): its start, or the frame
        that passed a bound, gets the final status; frames parked for it an
        acknowledgement."""
        self.refused += 1
        call_id = key[1]
        parked = self._orphans.pop(key)
        answers.extend((orphan_id, Frame(call_id)) for _, orphan_id, _ in parked)
        answers.append((rpc_id, _final(call_id, code, details)))

    def _park_unknown(
        self, key: _Key, rpc_id: int, frame: Frame, answers: _Answers
    ) -> None:
        """A frame for a call we do not have (under the lock): answer it or keep it."""
        peer, call_id = key
        if frame.flags & Flags.CANCEL or self._started.started(peer, call_id):
            answers.append((rpc_id, Frame(call_id)))  # over, or never to start
        elif not self._orphans.park(key, (time.monotonic(), rpc_id, frame)):
            # Over the bounds: the call is refused now and never starts later.
            self._started.start(peer, call_id)
            details = "too much data arrived before the call's start; try again"
            self._refuse(rpc_id, key, StatusCode.RESOURCE_EXHAUSTED, details, answers)

    def _answer(self, peer: Address, rpc_id: int, frame: Frame) -> None:
        with contextlib.suppress(TransportClosedError):
            self.transport.reply(peer, rpc_id, encode_frame(frame))

    def _sweep(self, now: float) -> None:
        """Expire deadlines and give up on orphans whose call never started."""
        self._end_gone_peers()
        with self._lock:
            expired = [
                c
                for c in self._calls.values()
                if c.deadline is not None and c.deadline <= now
            ]
            silent = [
                c for c in self._calls.values() if now - c.last_heard > LIVENESS_TIMEOUT
            ]
            dropped = self._orphans.expired(now)
        for core in expired:
            core.terminate(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        for core in silent:
            core.terminate(StatusCode.CANCELLED, "Client went silent")
        self._cancel_parked(dropped)
        self.peer_log.flush()

    def _cancel_parked(self, parked: list[tuple[_Key, list[Parked]]]) -> None:
        """Answer frames whose call never started: it is cancelled."""
        for (peer, call_id), frames in parked:
            for _, rpc_id, _frame in frames:
                self._answer(peer, rpc_id, Frame(call_id, flags=Flags.CANCEL))


def _final(call_id: int, code: StatusCode, details: str) -> Frame:
    """A call's only frame from us: its final status (the client has seen none)."""
    return Frame(call_id, seq=1, flags=Flags.EOS, status=(code.code, details))
