"""One server call's state: its requests in, its responses out, through ``notify``.

Layer: rpc. Imports: stdlib, public ``homarpc.transport`` names, rpc-layer modules.
No asyncio: the blocking server and ``homarpc.aio`` both sit on this module.

Theory of operation (the server half of ``_call.py``'s protocol): the server never
starts a Homa RPC. Each request from a client is answered exactly once:

* a *data* request is answered once the handler has consumed its message (chunks of
  a message still being assembled are answered at once), so the client's send window
  is the server's bound on buffered input;
* a *poll* request is held until there is a frame to send back (initial metadata, a
  message chunk, or the final status), so server messages only leave as responses
  and the number of held polls is the client's receive window;
* any answer may carry an outgoing frame; when none is queued it is an empty ack.

When the call ends every request still held is answered, so Homa keeps no state.

``_server_endpoint.ServerEndpoint`` makes one ``ServerCallCore`` per call and feeds
it the call's requests. Internal interface (stable; ``homarpc.aio`` uses exactly
this)::

    core.method, core.metadata, core.peer, core.deadline, core.time_remaining()
    core.read() -> bytes | None ; core.reading_done
    core.send_initial_metadata(md) ; core.writable() ; core.write(payload) -> bool
    core.finish(code, details, trailing_metadata, message=None)
    core.terminate(code, details)     # server-side cancel / deadline
    core.is_active, core.cancelled, core.add_done_callback(fn)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ._framing import Flags, Frame, encode_frame, encode_frame_parts
from ._server_ledger import HeldBytes
from ._stream import (
    LARGE_FRAME,
    LARGE_WINDOW,
    Assembler,
    FlowControlError,
    MessageTooLargeError,
    ReorderBuffer,
    message_frames,
    send_limit,
)
from .metadata import Metadatum
from .status import StatusCode
from .transport import Address, Transport, TransportClosedError

__all__ = ["CallHost", "ServerCallCore"]

log = logging.getLogger("homarpc.server")

Notify = Callable[[], None]
MetadataEntries = tuple[Metadatum, ...]


class CallHost(Protocol):
    """What a call needs from the endpoint that made it."""

    transport: Transport
    window: int
    max_message_length: int
    max_receive_message_length: int
    #: What our first frame to each client announces (``Frame.max_message``).
    advertised: int | None
    #: Bytes of whole messages waiting for handlers, shared by all calls.
    held: HeldBytes

    def forget(self, core: ServerCallCore) -> None: ...

    def hand_off(self) -> None: ...


class ServerCallCore:
    """One call's server-side state. Thread-safe; created by ``ServerEndpoint``."""

    def __init__(self, endpoint: CallHost, peer: Address, start: Frame) -> None:
        self._endpoint = endpoint
        self.peer = peer
        #: The largest Homa message to send this client (it may have said more).
        self._send_limit = send_limit(endpoint.max_message_length, start.max_message)
        self.call_id = start.call_id
        self.method = start.method or ""
        self.metadata: MetadataEntries = start.metadata or ()
        self.deadline = (
            None if start.timeout is None else time.monotonic() + start.timeout
        )
        self.notify: Notify = _nothing
        self.last_heard = time.monotonic()
        self._lock = threading.Lock()
        self._window = endpoint.window
        self._inbound: ReorderBuffer[tuple[int, Frame]] = ReorderBuffer(
            4 * self._window + 4
        )
        self._assembler = Assembler(endpoint.max_receive_message_length)
        self._messages: deque[tuple[bytes, int, bool]] = deque()
        self._large_waiting = 0  # messages of LARGE_FRAME bytes or more in it
        self._half_closed = False
        self._held: deque[int] = deque()  # polls waiting for something to carry
        self._answerable: deque[int] = deque()  # consumed data requests
        self._out: deque[Frame] = deque()
        self._send_seq = 1
        self._initial_metadata: MetadataEntries | None = None
        self._metadata_sent = False
        self._finished = False  # final status queued
        self.cancelled = False
        self._closed = False
        self._callbacks: list[Callable[[], object]] = []

    @property
    def _empty_ack(self) -> bytes:
        return encode_frame(Frame(self.call_id))

    # -- state seen by handlers ---------------------------------------------------

    @property
    def is_active(self) -> bool:
        return not (self._finished or self.cancelled)

    @property
    def reading_done(self) -> bool:
        return not self._messages and (self._half_closed or not self.is_active)

    def time_remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def will_block(self) -> None:
        """The calling thread is about to block in this call's handler for long
        (a stream): if it is the one reading the transport, let another take
        over now."""
        self._endpoint.hand_off()

    def add_done_callback(self, callback: Callable[[], object]) -> bool:
        """Run ``callback`` when the call ends; False if it already has."""
        with self._lock:
            if not self.is_active:
                return False
            self._callbacks.append(callback)
            return True

    # -- reading ------------------------------------------------------------------

    def read(self) -> bytes | None:
        """The next whole request message, or None when none is waiting."""
        with self._lock:
            if not self._messages:
                return None
            payload, rpc_id, is_poll = self._messages.popleft()
            self._large_waiting -= len(payload) >= LARGE_FRAME
            self._endpoint.held.give_back(self.peer, len(payload))
            self._release(rpc_id, is_poll)
            replies = self._pair()
        self._send(replies)
        return payload

    # -- writing ------------------------------------------------------------------

    def send_initial_metadata(self, metadata: MetadataEntries, flush: bool) -> None:
        """Set initial metadata; ``flush`` sends it now, not with the next frame."""
        with self._lock:
            if self._metadata_sent or not self.is_active:
                return
            self._initial_metadata = metadata
            if not flush:
                return
            self._out.append(self._stamp(Frame(self.call_id)))
            replies = self._pair()
        self._send(replies)

    def writable(self) -> bool:
        return len(self._out) < self._window or not self.is_active

    def write(self, payload: bytes) -> bool:
        """Queue one response message; False when the window is full."""
        with self._lock:
            if not self.is_active:
                return True
            if len(self._out) >= self._window:
                return False
            self._queue_message(payload, 0, Frame(self.call_id))
            replies = self._pair()
        self._send(replies)
        return True

    def finish(
        self,
        code: StatusCode,
        details: str,
        trailing_metadata: MetadataEntries = (),
        message: bytes | None = None,
    ) -> None:
        """Queue the final status (and, for unary responses, the one message)."""
        with self._lock:
            if not self.is_active:
                return
            status = (code.code, details)
            if message is None:
                last = Frame(
                    self.call_id, 0, Flags.EOS, None, None, None, status,
                    trailing_metadata,
                )  # fmt: skip
                self._out.append(self._stamp(last))
            else:
                last = Frame(self.call_id, 0, 0, None, None, None, status)
                self._queue_message(message, Flags.EOS, last, trailing_metadata)
            self._finished = True
            self._release_unread()
            replies = self._pair()
            callbacks = self._take_callbacks()
        self._send(replies)
        if callbacks:
            _run_callbacks(callbacks)

    def terminate(
        self, code: StatusCode, details: str, tell_client: bool = True
    ) -> None:
        """End the call now (cancel, deadline, protocol trouble); handlers see it.

        A call that already finished but whose last frames still wait for a poll
        (which may never come) just drops them and closes.
        """
        with self._lock:
            if self._closed:
                return
            if self.is_active:
                self._end_locked(code, details, tell_client)
                callbacks = self._take_callbacks()
            else:
                self._out.clear()
                callbacks = []
            replies = self._pair()
        self._send(replies)
        _run_callbacks(callbacks)
        self.notify()

    def _stamp(self, frame: Frame) -> Frame:
        """Give ``frame`` the next sequence number and any unsent initial metadata."""
        frame = frame._replace(seq=self._send_seq)
        self._send_seq += 1
        if not self._metadata_sent:
            metadata, most = self._opening()
            frame = frame._replace(metadata=metadata, max_message=most)
        return frame

    def _opening(self) -> tuple[MetadataEntries, int | None]:
        """What the first frame we send carries besides its own fields: the
        initial metadata and the largest Homa message we accept."""
        self._metadata_sent = True
        return self._initial_metadata or (), self._endpoint.advertised

    def _queue_message(
        self,
        payload: bytes,
        end: int,
        first: Frame,
        trailers: MetadataEntries | None = None,
    ) -> None:
        """Queue ``payload`` as frames from template ``first`` (plus the initial
        metadata, if not sent yet, and ``trailers``, which end up on the last)."""
        if not self._metadata_sent or trailers is not None:
            metadata, most = first.metadata, None
            if not self._metadata_sent:
                metadata, most = self._opening()
            first = Frame(
                first.call_id, 0, first.flags, None, None, metadata, first.status,
                trailers, b"", None, most,
            )  # fmt: skip
        frames = message_frames(first, payload, self._send_seq, self._send_limit, end)
        self._send_seq += len(frames)
        self._out.extend(frames)

    # -- requests from the transport ------------------------------------------------

    def on_request(self, rpc_id: int, frame: Frame) -> None:
        """Take one request frame of this call (from the receive thread)."""
        self.last_heard = time.monotonic()
        with self._lock:
            was_active = self.is_active
            if frame.flags & Flags.CANCEL:
                self._answerable.append(rpc_id)
                cancelled = True
            else:
                cancelled = False
                self._take(rpc_id, frame)
            replies = self._pair()
            # A bad frame may have ended the call: its callbacks run now.
            callbacks = self._take_callbacks() if was_active and self.cancelled else []
        self._send(replies)
        _run_callbacks(callbacks)
        if cancelled:
            self.terminate(StatusCode.CANCELLED, "Cancelled by the client", False)
        self.notify()

    def _take(self, rpc_id: int, frame: Frame) -> None:
        is_poll = bool(frame.flags & Flags.POLL)
        if frame.seq == 0 or self._finished:
            self._release(rpc_id, is_poll)
            return
        if self._inbound.take_in_order(frame.seq):  # the common case, e.g. unary
            self._apply_checked(rpc_id, frame)
            return
        try:
            if not self._inbound.add(frame.seq, (rpc_id, frame)):
                self._release(rpc_id, is_poll)  # a duplicate
                return
        except FlowControlError as exc:
            self._release(rpc_id, is_poll)
            self._end_locked(StatusCode.RESOURCE_EXHAUSTED, str(exc))
            return
        for ready_id, ready in self._inbound.ready():
            if not self._apply_checked(ready_id, ready):
                return

    def _apply_checked(self, rpc_id: int, frame: Frame) -> bool:
        """Apply one in-order frame; False when it ended the call (too large, or
        beyond what flow control allows)."""
        try:
            self._apply(rpc_id, frame)
        except (MessageTooLargeError, FlowControlError) as exc:
            self._release(rpc_id, bool(frame.flags & Flags.POLL))
            self._end_locked(StatusCode.RESOURCE_EXHAUSTED, str(exc))
            return False
        return True

    def _apply(self, rpc_id: int, frame: Frame) -> None:
        # The client's last frame (EOS) is held like a poll: the client has nothing
        # more to send, so its window does not need it back, and a response split
        # in two can ride on it without waiting for another poll.
        is_poll = bool(frame.flags & (Flags.POLL | Flags.EOS))
        if frame.flags & Flags.EOS:
            self._half_closed = True
        if frame.flags & Flags.MESSAGE:
            whole = self._assembler.add(
                frame.payload, bool(frame.flags & Flags.MSG_END)
            )
            if whole is not None:
                self._queue_for_handler(whole, rpc_id, is_poll)
                return
        self._release(rpc_id, is_poll)

    def _queue_for_handler(self, whole: bytes, rpc_id: int, is_poll: bool) -> None:
        """Keep a whole message for the handler, within the client's window and
        the bytes the server holds for this peer.

        Raises:
            FlowControlError: the peer ignores flow control; the call is to end
                with RESOURCE_EXHAUSTED (it gets no more of our memory).
        """
        # A client keeps at most ``window`` data requests out, of which
        # ``LARGE_WINDOW`` large ones, plus its last frame (held like a poll): more
        # only comes from a peer that ignores flow control.
        large = len(whole) >= LARGE_FRAME
        if len(self._messages) > self._window or (
            large and self._large_waiting > LARGE_WINDOW
        ):
            raise FlowControlError(
                "the client sent more than its flow-control window allows: "
                f"{len(self._messages) + 1} messages unread by the handler, "
                f"{self._large_waiting + large} of them large (the window: "
                f"{self._window}, of which {LARGE_WINDOW} of 256 KiB or more)"
            )
        held = self._endpoint.held
        if not held.take(self.peer, len(whole)):
            raise FlowControlError(
                f"the server holds too much unread data: {len(whole)} more bytes "
                f"would pass its limit ({held.per_peer} bytes per client, "
                f"{held.total} in all)"
            )
        self._messages.append((whole, rpc_id, is_poll))
        self._large_waiting += large

    def _end_locked(
        self, code: StatusCode, details: str, tell_client: bool = True
    ) -> None:
        """Cancel the call (under the lock): drop queued output, send the status."""
        self.cancelled = True
        self._out.clear()
        if tell_client:
            final = Frame(self.call_id, flags=Flags.EOS, status=(code.code, details))
            self._out.append(self._stamp(final))
        self._finished = True
        self._release_unread()

    def _release(self, rpc_id: int, is_poll: bool) -> None:
        (self._held if is_poll else self._answerable).append(rpc_id)

    def _release_unread(self) -> None:
        if not self._messages and not len(self._inbound):
            return
        held = self._endpoint.held
        for payload, rpc_id, is_poll in self._messages:
            held.give_back(self.peer, len(payload))
            self._release(rpc_id, is_poll)
        self._large_waiting = 0
        self._messages.clear()
        for rpc_id, frame in self._inbound.drain():
            self._release(rpc_id, bool(frame.flags & Flags.POLL))

    def _pair(self) -> list[tuple[int, _Encoded]]:
        """Match queued frames with answerable requests (under the lock)."""
        out = self._out
        if not (self._answerable or self._finished or out) and (
            len(self._held) <= self._window
        ):
            return _NO_REPLIES  # the usual case while a handler runs
        replies: list[tuple[int, _Encoded]] = []
        while self._answerable:
            rpc_id = self._answerable.popleft()
            replies.append(
                (rpc_id, encode_frame_parts(out.popleft()) if out else self._empty_ack)
            )
        while self._held and out:
            replies.append((self._held.popleft(), encode_frame_parts(out.popleft())))
        while len(self._held) > self._window:  # a client polling beyond its window
            replies.append((self._held.popleft(), self._empty_ack))
        if self._finished and not out:  # over: answer whatever is (or comes) late
            replies.extend((rpc_id, self._empty_ack) for rpc_id in self._held)
            self._held.clear()
            if not self._closed:
                self._closed = True
                self._endpoint.forget(self)
        return replies

    def _send(self, replies: list[tuple[int, _Encoded]]) -> None:
        if not replies:
            return
        transport = self._endpoint.transport
        try:
            for rpc_id, payload in replies:
                transport.reply(self.peer, rpc_id, payload)
        except TransportClosedError:
            pass

    def _take_callbacks(self) -> list[Callable[[], object]]:
        callbacks, self._callbacks = self._callbacks, []
        return callbacks


#: An encoded frame: one ``bytes``, or parts for a gathering send (large payloads).
_Encoded = bytes | list[bytes | bytearray | memoryview]
#: What ``_pair`` returns when there is nothing to send (never appended to).
_NO_REPLIES: list[tuple[int, _Encoded]] = []


def _nothing() -> None:
    return None


def _run_callbacks(callbacks: list[Callable[[], object]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("homarpc: call-end callback raised")
