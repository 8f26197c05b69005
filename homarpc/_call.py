"""The client call core: one transport, many calls, completion through ``notify``.

Layer: rpc. Imports: stdlib, public ``homarpc.transport`` names, rpc-layer modules.
No asyncio: the blocking API and ``homarpc.aio`` both sit on this module.

Theory of operation (client-driven; see ``docs/wire-format.md``): every Homa RPC is
started by the client. Client messages ride in requests (at most ``window`` data
requests in flight: the server answers each once the handler has consumed it).
Server messages ride in the responses to *poll* requests, which the server holds
until it has something to send; the client keeps at most ``window`` polls out minus
the messages it has not yet handed to the application, so memory stays bounded on
both ends. An outstanding poll to a dead server fails in the transport, so a dead
server is noticed (``UNAVAILABLE``) even during server streaming.

Internal interface (stable; ``homarpc.aio`` uses exactly this)::

    endpoint = ClientEndpoint(transport, ...)   # _client_endpoint.py
    core = endpoint.open_call(dest, "/pkg.Svc/Method", metadata, timeout,
                              request=b"..." | None, response_streaming=False,
                              notify=callback, attended=False)
    core.start()                    # sends the call start
    core.write(payload) -> bool     # False: window full, wait for notify, retry
    core.writable() -> bool ; core.done_writing()
    core.read() -> bytes | None     # next whole message, None if none yet
    core.reading_done -> bool       # no message will ever come any more
    core.initial_metadata           # tuple once received (None before)
    core.done, core.code, core.details, core.trailing_metadata
    core.cancel(code, details) ; core.time_remaining()
    endpoint.wait_for(ready, waiter, timeout)   # block, reading for everyone
    endpoint.close()

``request`` bytes means a unary request (sent with the call start, half-closed: the
unary fast path is one Homa RPC); ``None`` means the caller streams with ``write``.
``notify()`` is called from any thread after every state change, never under a lock;
it must be cheap and must not block (``Event.set``, ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._framing import (
    Flags,
    Frame,
    FrameError,
    decode_frame,
    encode_frame,
    encode_frame_parts,
)
from ._stream import (
    LARGE_FRAME,
    LARGE_WINDOW,
    Assembler,
    FlowControlError,
    MessageTooLargeError,
    ReorderBuffer,
    message_frames,
)
from .metadata import Metadatum
from .status import StatusCode, code_from_int
from .transport import (
    Address,
    Message,
    ProtocolError,
    TransportClosedError,
)
from .transport import PeerUnreachableError as _Unreachable

if TYPE_CHECKING:
    from ._client_endpoint import ClientEndpoint

__all__ = ["ClientCallCore"]

log = logging.getLogger("homarpc.client")

#: Requests the server holds until it has something to send back: polls, and our
#: last frame (EOS), after which we need no window (see ``_server_call._apply``).
_HELD = Flags.POLL | Flags.EOS
#: Completion cookies are ``call_id << 2 | large << 1 | held``.
_POLL_BIT = 1
_LARGE_BIT = 2

#: What a final frame without a STATUS record means.
_NO_STATUS = (StatusCode.UNKNOWN.code, "")

Notify = Callable[[], None]


def _ignore() -> None:
    """The notify of an ended call."""


MetadataEntries = tuple[Metadatum, ...]


class ClientCallCore:
    """One call's client-side state. Thread-safe; see ``ClientEndpoint.open_call``."""

    # Slots: one is made per call, and its attributes are read on every frame.
    __slots__ = (
        "_assembler",
        "_data_out",
        "_early_ids",
        "_endpoint",
        "_half_closed",
        "_heard_back",
        "_heard_small",
        "_inbound",
        "_large_out",
        "_lock",
        "_messages",
        "_notify",
        "_pending",
        "_polls_out",
        "_request",
        "_response_streaming",
        "_rpc_ids",
        "_saw_only_small",
        "_send_seq",
        "_server_finished",
        "_start_frame",
        "_window",
        "call_id",
        "code",
        "deadline",
        "dest",
        "details",
        "endpoint",
        "initial_metadata",
        "last_sent",
        "start_delay",
        "trailing_metadata",
        "unreachable",
    )

    def __init__(
        self,
        endpoint: ClientEndpoint,
        call_id: int,
        dest: Address,
        deadline: float | None,
        response_streaming: bool,
        notify: Notify,
        start: Frame,
        request: bytes | None,
    ) -> None:
        self._endpoint = endpoint
        self.endpoint = endpoint
        self._start_frame = start
        self._request = request
        self.call_id = call_id
        self.dest = dest
        self.deadline = deadline
        self._notify = notify
        self._lock = threading.Lock()
        self._window = endpoint.window
        self._response_streaming = response_streaming
        # Server streams start with a small poll window and widen it once a frame
        # has shown the messages are small; one large frame narrows it for good.
        self._heard_small = False
        self._saw_only_small = True
        self._send_seq = 1
        self._pending: deque[Frame] = deque()
        self._data_out = 0
        self._large_out = 0
        self._polls_out = 0
        self._half_closed = False
        self._rpc_ids: set[int] = set()
        self._early_ids: set[int] = set()
        self._inbound: ReorderBuffer[Frame] = ReorderBuffer(4 * self._window + 4)
        self._assembler = Assembler(endpoint.max_receive_message_length)
        self._messages: deque[bytes] = deque()
        self.initial_metadata: MetadataEntries | None = None
        self.code: StatusCode | None = None
        self.details = ""
        self.trailing_metadata: MetadataEntries = ()
        #: True when the call failed because no server answered at ``dest`` before
        #: any response arrived (safe to retry elsewhere).
        self.unreachable = False
        self._heard_back = False
        self._server_finished = False
        #: Seconds ``start()`` waits before sending (set on ``wait_for_ready`` retries).
        self.start_delay = 0.0
        #: When this call last sent a frame (for keepalives).
        self.last_sent = time.monotonic()

    # -- application side --------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.code is not None

    @property
    def reading_done(self) -> bool:
        return self.code is not None and not self._messages

    def time_remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def writable(self) -> bool:
        return not self._pending and not self._half_closed and self.code is None

    def write(self, payload: bytes) -> bool:
        """Queue one message; False when the window is full (retry after notify).

        Writing after the call ended is a silent no-op that returns True (the
        caller learns the outcome from ``code``).
        """
        with self._lock:
            if self.code is not None:
                return True
            if self._pending or self._half_closed:
                return False
            self._queue_message(payload, 0)
            sends = self._flush()
        self._transmit(sends)
        return True

    def done_writing(self) -> None:
        """Half-close: no more messages from the client."""
        with self._lock:
            if self._half_closed or self.code is not None:
                return
            self._half_closed = True
            frame = Frame(self.call_id, self._next_seq(), Flags.EOS)
            self._pending.append(frame)
            sends = self._flush()
        self._transmit(sends)

    def read(self) -> bytes | None:
        """The next whole message, or None when none is waiting."""
        with self._lock:
            if not self._messages:
                return None
            message = self._messages.popleft()
            if self.code is not None:
                return message  # nothing more to ask for (the unary case)
            sends = self._flush()
        self._transmit(sends)
        return message

    def cancel(
        self,
        code: StatusCode = StatusCode.CANCELLED,
        details: str = "Locally cancelled by application!",
    ) -> bool:
        """End the call locally, abort its Homa RPCs and tell the server."""
        with self._lock:
            if self.code is not None:
                return False
            self._finish(code, details)
            ids = self._take_rpc_ids()
        self._abandon(ids)
        self._notify_ended()
        return True

    # -- start and send ----------------------------------------------------------

    def start(self) -> None:
        """Send the call start (with the whole request, for unary requests), or
        schedule it ``start_delay`` seconds from now (a ``wait_for_ready`` retry)."""
        if self.start_delay > 0:
            timer = threading.Timer(self.start_delay, self._start_now)
            timer.daemon = True
            timer.start()
        else:
            self._start_now()

    def _start_now(self) -> None:
        head, request = self._start_frame, self._request
        self._request = None
        with self._lock:
            if self.code is not None:
                return
            if request is None:
                self._pending.append(head._replace(seq=self._next_seq()))
            else:
                self._half_closed = True
                self._queue_message(request, Flags.EOS, head)
            sends = self._flush()
        self._transmit(sends)

    def _next_seq(self) -> int:
        seq = self._send_seq
        self._send_seq += 1
        return seq

    def _queue_message(
        self, payload: bytes, end: int, head: Frame | None = None
    ) -> None:
        first = head or Frame(self.call_id)
        limit = self._endpoint.limit_for(self.dest)
        frames = message_frames(first, payload, self._send_seq, limit, end)
        self._send_seq += len(frames)
        self._pending.extend(frames)

    def _flush(self) -> list[Frame]:
        """Frames to send now that the window allows (call under the lock)."""
        sends: list[Frame] = []
        while self._pending and self._may_send(self._pending[0]):
            frame = self._pending.popleft()
            if frame.flags & _HELD:
                self._polls_out += 1
            else:
                self._data_out += 1
            if len(frame.payload) >= LARGE_FRAME:
                self._large_out += 1
            sends.append(frame)
        if self.code is None:
            unread = len(self._messages) + len(self._inbound)
            for _ in range(self._poll_target() - unread - self._polls_out):
                self._polls_out += 1
                sends.append(Frame(self.call_id, 0, Flags.POLL))
        return sends

    def _may_send(self, frame: Frame) -> bool:
        """Whether the windows let ``frame`` leave now: at most ``window`` data
        requests, of which at most ``LARGE_WINDOW`` large ones (counting a large
        call start), so a call keeps about 2 MB in flight, not ``window`` MB."""
        if frame.flags & Flags.POLL:
            return True  # the call start: always first, alone
        if self._data_out >= self._window:
            return False
        return len(frame.payload) < LARGE_FRAME or self._large_out < LARGE_WINDOW

    def _poll_target(self) -> int:
        """Polls to keep out, before subtracting unread messages."""
        if not self._response_streaming:
            # One for the response; a second while a split one is arriving.
            return LARGE_WINDOW if self._assembler.is_partial else 1
        if self._heard_small and self._saw_only_small:
            return self._window
        return LARGE_WINDOW

    def _transmit(self, frames: list[Frame]) -> None:
        if not frames:
            return
        send, dest = self._endpoint.transport.send, self.dest
        call_bits = self.call_id << 2
        sent: list[int] = []
        try:
            for frame in frames:
                cookie = (
                    call_bits
                    | (len(frame.payload) >= LARGE_FRAME) << 1
                    | bool(frame.flags & _HELD)
                )
                sent.append(send(dest, encode_frame_parts(frame), cookie))
        except TransportClosedError:
            self._fail(StatusCode.UNAVAILABLE, "Channel closed!")
        except (ValueError, ProtocolError) as exc:
            self._fail(StatusCode.INTERNAL, f"could not send: {exc}")
        self.last_sent = time.monotonic()
        with self._lock:
            for rpc_id in sent:
                if rpc_id in self._early_ids:  # answered before we got here
                    self._early_ids.discard(rpc_id)
                elif self.code is None:
                    self._rpc_ids.add(rpc_id)

    # -- responses from the transport -------------------------------------------

    def on_response(self, message: Message) -> None:
        """Handle one response (or RPC failure) for this call; from the receive loop."""
        with self._lock:
            self._account(message.id, message.cookie)
            if self.code is not None:
                return
            self._absorb(message)
            ended = self.code is not None
            sends = [] if ended else self._flush()
            abort_ids = None if self._server_finished else self._take_rpc_ids()
        if not ended:
            self._transmit(sends)
            self._notify()
            return
        if abort_ids is None:
            self._endpoint.forget(self.call_id)
        else:
            self._abandon(abort_ids)
        self._notify_ended()

    def _account(self, rpc_id: int, cookie: int) -> None:
        """One of our requests was answered (the cookie says which kind)."""
        if rpc_id in self._rpc_ids:
            self._rpc_ids.discard(rpc_id)
        else:
            self._early_ids.add(rpc_id)
        if cookie & _POLL_BIT:
            self._polls_out -= 1
        else:
            self._data_out -= 1
        if cookie & _LARGE_BIT:
            self._large_out -= 1

    def _absorb(self, message: Message) -> None:
        """Apply one response (under the lock)."""
        if message.error is not None:
            # A server that went away may come back with another limit.
            self._endpoint.learn_limit(self.dest, None)
            unreachable = isinstance(message.error, _Unreachable)
            self.unreachable = unreachable and not self._heard_back
            self._finish(StatusCode.UNAVAILABLE, str(message.error))
            return
        try:
            frame = decode_frame(message.payload_parts())
        except FrameError as exc:
            message.release()
            self._endpoint.malformed += 1
            self._finish(StatusCode.INTERNAL, f"malformed response: {exc}")
            return
        message.release()
        self._heard_back = True
        if frame.flags & Flags.CANCEL:
            self._server_finished = True
            self._finish(StatusCode.CANCELLED, "Cancelled by the server")
        elif frame.seq:  # seq 0 is an empty acknowledgement
            self._take_ordered(frame)

    def _take_ordered(self, frame: Frame) -> None:
        try:
            if self._inbound.take_in_order(frame.seq):  # the common case
                self._apply(frame)
                return
            self._inbound.add(frame.seq, frame)
            for ready in self._inbound.ready():
                self._apply(ready)
        except MessageTooLargeError as exc:
            self._finish(StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except FlowControlError as exc:
            self._finish(StatusCode.INTERNAL, str(exc))

    def _apply(self, frame: Frame) -> None:
        flags, payload = frame.flags, frame.payload
        if frame.seq == 1:  # the server's first frame says what it accepts (or not)
            self._endpoint.learn_limit(self.dest, frame.max_message)
        if len(payload) >= LARGE_FRAME:
            self._saw_only_small = False
        elif not self._heard_small:
            self._heard_small = True
        if frame.metadata is not None and self.initial_metadata is None:
            self.initial_metadata = frame.metadata
        if flags & Flags.MESSAGE:
            whole = self._assembler.add(payload, bool(flags & Flags.MSG_END))
            if whole is not None:
                self._messages.append(whole)
        if flags & Flags.EOS:
            code, details = frame.status or _NO_STATUS
            self.trailing_metadata = frame.trailers or ()
            self._server_finished = True
            self._finish(code_from_int(code), details)

    # -- endings -----------------------------------------------------------------

    def _finish(self, code: StatusCode, details: str) -> None:
        """Record the outcome (under the lock)."""
        self.code = code
        self.details = details
        if self.initial_metadata is None:
            self.initial_metadata = ()
        self._pending.clear()

    def _take_rpc_ids(self) -> list[int]:
        ids = list(self._rpc_ids)
        self._rpc_ids.clear()
        return ids

    def _fail(self, code: StatusCode, details: str) -> None:
        with self._lock:
            if self.code is not None:
                return
            self._finish(code, details)
        self._endpoint.forget(self.call_id)
        self._notify_ended()

    def _notify_ended(self) -> None:
        """The last notify (the call has ended: nothing changes any more). The
        reference to ``notify`` goes with it: it usually leads back to the call
        object that holds this core, and without the cycle the whole call is
        freed by reference counting as soon as the application drops it, not by
        the cyclic garbage collector (~30 objects a call, and its pauses)."""
        notify, self._notify = self._notify, _ignore
        notify()

    def _abandon(self, rpc_ids: list[int]) -> None:
        """After a local end: abort our RPCs, tell the server, forget the call."""
        transport = self._endpoint.transport
        self._endpoint.forget(self.call_id)
        try:
            for rpc_id in rpc_ids:
                transport.abort(rpc_id)
            if self._send_seq > 1:
                cancel = Frame(self.call_id, 0, Flags.CANCEL)
                transport.send(self.dest, encode_frame(cancel), 0)
        except TransportClosedError:
            pass

    def keepalive(self) -> None:
        """Send an empty frame (answered at once) so the server knows we live."""
        with self._lock:
            if self.code is not None:
                return
            self._data_out += 1  # a data request as far as the windows go
        self._transmit([Frame(self.call_id)])

    def expire(self) -> None:
        """The deadline passed: DEADLINE_EXCEEDED, as grpcio words it."""
        self.cancel(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
