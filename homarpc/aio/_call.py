"""Client-side asyncio calls: awaitable, async-iterable, ``read``/``write``.

Layer: rpc (homarpc.aio). Imports: stdlib, ``homarpc`` rpc-layer modules
(``_call`` core, ``status``), ``homarpc.aio`` siblings.

Each call drives one ``homarpc._call.ClientCallCore``, the same core the blocking API
uses: the core frames, sends, orders, reassembles and applies flow control, and the
channel's endpoint reads responses and expires deadlines (its background thread
serves every aio call). The core's ``notify`` callback only wakes this call's loop
(coalesced: at most one cross-thread wake-up pending per call); every
read, write and status check then happens on the loop, without locks held across
awaits and without a thread per call.

Cancellation follows grpc.aio: ``call.cancel()`` or cancelling the awaiting task
ends the RPC with CANCELLED on both sides, and awaiting a cancelled call raises
``asyncio.CancelledError``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, Callable, Generator, Iterable
from typing import Any, Final, Generic, TypeVar

from .._call import ClientCallCore
from ..status import RpcError, StatusCode
from ._bridge import call_in_loop
from ._errors import EOF, AioRpcError, EOFType, UsageError
from ._metadata import Metadata

__all__ = [
    "Call",
    "Codec",
    "StreamStreamCall",
    "StreamUnaryCall",
    "UnaryResponse",
    "UnaryStreamCall",
    "UnaryUnaryCall",
]

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")

#: grpcio's wording, kept so users' log matching keeps working.
LOCAL_CANCEL: Final = "Locally cancelled by application!"
_SERIALIZE_FAILED: Final = "Exception serializing request!"
_DESERIALIZE_FAILED: Final = "Exception deserializing response!"
_ITERATE_FAILED: Final = "Exception iterating requests!"

#: Opens the call's core on the server for ``attempt`` (0, 1, ...): the channel's
#: address choice. None when no server is left to try (failover is exhausted).
#: The caller keeps the core, then sends it with ``core.start()``.
StartCall = Callable[[Callable[[], None], int], ClientCallCore | None]


class Codec(Generic[RequestT, ResponseT]):
    """A method's request serializer and response deserializer (None: raw bytes)."""

    __slots__ = ("deserialize", "serialize")

    def __init__(
        self,
        serialize: Callable[[RequestT], bytes] | None,
        deserialize: Callable[[bytes], ResponseT] | None,
    ) -> None:
        self.serialize: Callable[[Any], bytes] = serialize or bytes
        self.deserialize: Callable[[bytes], Any] = deserialize or _identity


def _identity(data: bytes) -> bytes:
    return data


class Call(Generic[RequestT, ResponseT]):
    """What every aio call offers: status, metadata, cancellation, callbacks."""

    #: The server answers without waiting for more requests (a unary request).
    _answers_unprompted = True

    def __init__(self, start: StartCall, codec: Codec[RequestT, ResponseT]) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._codec = codec
        self._changed = asyncio.Event()
        self._wake_pending = False
        self._cancelled_locally = False
        self._callbacks: list[Callable[[Call[RequestT, ResponseT]], None]] = []
        self._start = start
        self._attempt = 0
        self._may_fail_over = True
        self._inside_core = True  # notifications now come from inside a core call
        core = start(self._notify, 0)
        assert core is not None  # the first attempt always opens
        self._core = core
        core.start()
        self._inside_core = False

    # -- waking up -----------------------------------------------------------------

    def _notify(self) -> None:
        """The core changed (any thread): wake this call's waiters on the loop.

        On the loop's own thread (the loop reads the transport) the wake-up runs at
        once, unless the notification comes from inside one of our own calls into
        the core (``start``, ``cancel``), which may still be mid-update: then it
        waits for the next loop turn, as it does from any other thread.
        """
        on_loop = threading.get_ident() == self._loop_thread
        if on_loop and not self._inside_core:
            self._wake()
            return
        if self._wake_pending:
            return
        self._wake_pending = True
        if on_loop:
            self._loop.call_soon(self._wake)
        else:
            call_in_loop(self._loop, self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        self._changed.set()
        if self._fail_over():
            return
        if self._callbacks and self._core.done:
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                self._loop.call_soon(callback, self)

    def _fail_over(self) -> bool:
        """If no server answered at this address, restart on the next one.

        Called wherever the loop looks at the core's outcome, so a failure is never
        reported while another server may still answer. Only the channel's starter
        knows whether restarting is safe (a unary request can be sent again); it
        returns None when it is not, or when no address is left.
        """
        core = self._core
        if not (self._may_fail_over and core.done and core.unreachable):
            return False
        self._attempt += 1
        replacement = self._start(self._notify, self._attempt)
        if replacement is None:
            self._may_fail_over = False
            return False
        self._core = replacement
        self._inside_core = True
        try:
            replacement.start()
        finally:
            self._inside_core = False
        return True

    async def _wait_until(self, ready: Callable[[], bool]) -> None:
        """Sleep until ``ready()``; cancelling the waiting task cancels the RPC."""
        while True:
            self._changed.clear()
            self._fail_over()
            if ready():
                return
            try:
                await self._changed.wait()
            except asyncio.CancelledError:
                self.cancel()
                raise

    # -- grpc.aio.Call / RpcContext ------------------------------------------------

    def cancel(self) -> bool:
        """Cancel the RPC (CANCELLED on both sides); False if it had already ended."""
        self._inside_core = True
        try:
            if not self._core.cancel(StatusCode.CANCELLED, LOCAL_CANCEL):
                return False
        finally:
            self._inside_core = False
        self._cancelled_locally = True
        return True

    def cancelled(self) -> bool:
        return self._core.code is StatusCode.CANCELLED

    def done(self) -> bool:
        return self._core.done

    def time_remaining(self) -> float | None:
        return self._core.time_remaining()

    def add_done_callback(
        self, callback: Callable[[Call[RequestT, ResponseT]], None]
    ) -> None:
        """Run ``callback(call)`` on the loop once the call has ended."""
        if self._core.done:
            self._loop.call_soon(callback, self)
        else:
            self._callbacks.append(callback)

    async def initial_metadata(self) -> Metadata:
        await self._wait_until(lambda: self._core.initial_metadata is not None)
        return Metadata.from_tuple(self._core.initial_metadata)

    async def trailing_metadata(self) -> Metadata:
        await self._wait_until(lambda: self._core.done)
        return Metadata.from_tuple(self._core.trailing_metadata)

    async def code(self) -> StatusCode:
        await self._wait_until(lambda: self._core.done)
        code = self._core.code
        assert code is not None
        return code

    async def details(self) -> str:
        await self._wait_until(lambda: self._core.done)
        return self._core.details

    async def wait_for_connection(self) -> None:
        """Return once the server has answered (its initial metadata); raise the
        call's ``AioRpcError`` if it ended without OK first, e.g. UNAVAILABLE
        where no server is (grpc.aio: the RPC could not connect). A call that
        streams its requests returns at once unless it has already failed: Homa
        has no connection to wait for, and its server may say nothing until
        requests arrive."""
        if self._answers_unprompted:
            await self._wait_until(lambda: self._core.initial_metadata is not None)
        if self._core.done:
            self._raise_unless_ok()

    # -- outcomes --------------------------------------------------------------------

    def _raise_unless_ok(self) -> None:
        """Raise what the ended call's status means to the caller, if not OK."""
        code = self._core.code
        if code is StatusCode.OK:
            return
        if self._cancelled_locally:
            raise asyncio.CancelledError(LOCAL_CANCEL)
        assert code is not None
        raise AioRpcError(
            code,
            Metadata.from_tuple(self._core.initial_metadata),
            Metadata.from_tuple(self._core.trailing_metadata),
            self._core.details,
        )

    def _fail_locally(self, details: str) -> None:
        self._core.cancel(StatusCode.INTERNAL, details)

    def _decode(self, payload: bytes) -> ResponseT:
        try:
            response: ResponseT = self._codec.deserialize(payload)
        except Exception:
            self._fail_locally(_DESERIALIZE_FAILED)  # ends a stream still running
            raise AioRpcError(
                StatusCode.INTERNAL,
                Metadata.from_tuple(self._core.initial_metadata),
                Metadata.from_tuple(self._core.trailing_metadata),
                _DESERIALIZE_FAILED,
            ) from None
        return response

    def __repr__(self) -> str:
        state = self._core.code.name if self._core.code else "active"
        return f"<{type(self).__name__} {state} call_id={self._core.call_id}>"


class UnaryResponse(Call[RequestT, ResponseT]):
    """Awaiting the call gives the single response (or raises its status)."""

    _response: Any = None
    _has_response = False

    def __await__(self) -> Generator[Any, None, ResponseT]:
        return self._wait_for_response().__await__()

    async def _wait_for_response(self) -> ResponseT:
        if not self._has_response:
            await self._wait_until(lambda: self._core.done)
            self._raise_unless_ok()
            payload = self._core.read()
            if payload is None:  # OK without a message: the server broke the protocol
                raise AioRpcError(StatusCode.INTERNAL, details="No response message")
            self._response = self._decode(payload)
            self._has_response = True
        response: ResponseT = self._response
        return response


class _StreamResponse(Call[RequestT, ResponseT]):
    """Responses come one by one: ``await call.read()`` or ``async for``."""

    async def read(self) -> ResponseT | EOFType:
        """The next response, or ``EOF`` once the server has finished with OK.

        Raises:
            asyncio.CancelledError: the call was cancelled (messages still queued
                are dropped, as in grpc.aio).
            AioRpcError: the call ended with a status other than OK.
        """
        while True:
            if self._cancelled_locally:
                raise asyncio.CancelledError(LOCAL_CANCEL)
            self._changed.clear()
            self._fail_over()
            payload = self._core.read()
            if payload is not None:
                return self._decode(payload)
            if self._core.reading_done:
                self._raise_unless_ok()
                return EOF
            try:
                await self._changed.wait()
            except asyncio.CancelledError:
                self.cancel()
                raise

    def __aiter__(self) -> Any:
        return self._responses()

    async def _responses(self) -> Any:
        while (response := await self.read()) is not EOF:
            yield response


class _StreamRequest(Call[RequestT, ResponseT]):
    """Requests go out by ``await call.write()`` or from an iterator given at start."""

    _answers_unprompted = False
    _writes_closed = False
    _feeder: asyncio.Task[None] | None = None

    def __init__(
        self,
        start: StartCall,
        codec: Codec[RequestT, ResponseT],
        requests: Iterable[RequestT] | AsyncIterable[RequestT] | None,
    ) -> None:
        super().__init__(start, codec)
        if requests is not None:
            self._writes_closed = True  # the iterator owns the request side
            self._feeder = self._loop.create_task(self._feed(requests))

    async def _feed(
        self, requests: Iterable[RequestT] | AsyncIterable[RequestT]
    ) -> None:
        try:
            if isinstance(requests, AsyncIterable):
                async for request in requests:
                    if not await self._send(request):
                        return
            else:
                for request in requests:
                    if not await self._send(request):
                        return
        except asyncio.CancelledError:
            raise
        except Exception:
            self._core.cancel(StatusCode.UNKNOWN, _ITERATE_FAILED)
            return
        self._core.done_writing()

    async def _send(self, request: RequestT) -> bool:
        """Serialize and queue one request, waiting for window room; False if ended."""
        try:
            payload = self._codec.serialize(request)
        except RpcError as exc:  # e.g. over the channel's send limit
            self._core.cancel(exc.code(), exc.details())
            return False
        except Exception:
            self._fail_locally(_SERIALIZE_FAILED)
            return False
        await self._wait_until(lambda: self._core.done or self._core.writable())
        return self._core.write(payload) and not self._core.done

    async def write(self, request: RequestT) -> None:
        """Send one request; waits while the flow-control window is full.

        Raises:
            UsageError: after ``done_writing()``, or when the call was given a
                request iterator.
            AioRpcError: the call has already ended with a failure.
        """
        if self._writes_closed:
            raise UsageError("write() after done_writing() or with a request iterator")
        if not await self._send(request) or self._core.done:
            self._raise_unless_ok()
            raise UsageError("write() after the call has finished")

    async def done_writing(self) -> None:
        """Half-close: tell the server no more requests are coming."""
        if not self._writes_closed:
            self._writes_closed = True
            self._core.done_writing()

    def cancel(self) -> bool:
        if self._feeder is not None:
            self._feeder.cancel()
        return super().cancel()


class UnaryUnaryCall(UnaryResponse[RequestT, ResponseT]):
    """A unary call: ``response = await call``."""


class UnaryStreamCall(_StreamResponse[RequestT, ResponseT]):
    """A server-streaming call: ``async for response in call`` or ``read()``."""


class StreamUnaryCall(
    _StreamRequest[RequestT, ResponseT], UnaryResponse[RequestT, ResponseT]
):
    """A client-streaming call: ``write()`` ... ``done_writing()``, then ``await``."""


class StreamStreamCall(
    _StreamRequest[RequestT, ResponseT], _StreamResponse[RequestT, ResponseT]
):
    """A bidirectional call: ``write()``/``done_writing()`` and ``read()``."""
