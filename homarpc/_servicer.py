"""Running one call's handler on a worker thread, and its ``ServicerContext``.

Layer: rpc. Imports: stdlib and rpc-layer modules (no transport, no asyncio).

Error mapping follows grpcio, strings included: no handler -> UNIMPLEMENTED
"Method not found!"; a behavior that raises -> UNKNOWN "Exception calling
application: <exc>" (plus a log line) unless it set a code first; ``abort`` -> the
given code and details; a unary behavior returning None -> INTERNAL "Failed to
serialize response!".
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, Protocol

from ._handlers import HandlerCallDetails, MethodHandler
from ._interfaces import ServicerContext
from ._ratelimit import RateLimitedLog
from ._server_call import ServerCallCore
from ._sync import Waiter
from .metadata import Metadatum, check_metadata, format_peer
from .status import MetadataTuple, Status, StatusCode, as_status_code

__all__ = [
    "BadRequest",
    "Context",
    "ContextState",
    "Finisher",
    "TooLarge",
    "abort_code",
    "decoder",
    "encoder",
    "expired_before_start",
    "finish_after_exception",
    "run_call",
    "unary_response",
]

log = logging.getLogger("homarpc.server")
_bug_log = RateLimitedLog(log, per_seconds=60.0, burst=5)

Lookup = Callable[[HandlerCallDetails], MethodHandler | None]


class Finisher(Protocol):
    """What ends a call with the handler's chosen status. The blocking ``Context``
    and ``homarpc.aio.ServicerContext`` both are one, so they share the endings."""

    def code(self) -> StatusCode | None: ...

    def finish(self, message: bytes | None = None) -> None: ...

    def finish_with(self, code: StatusCode, details: str) -> None: ...


class _Abort(Exception):
    """Raised by ``context.abort`` to unwind the behavior."""


class BadRequest(Exception):
    """The request could not be deserialized."""


class ContextState:
    """What every servicer context keeps about its call, blocking or asyncio: the
    call's facts, and the status and trailing metadata the handler chose, which
    ``finish`` sends. ``homarpc.aio.ServicerContext`` builds on it too."""

    def __init__(self, core: ServerCallCore) -> None:
        self._core = core
        self._code: StatusCode | None = None
        self._details = ""
        self._trailing: tuple[Metadatum, ...] = ()

    # -- about the call -----------------------------------------------------------

    def invocation_metadata(self) -> MetadataTuple:
        return self._core.metadata

    def peer(self) -> str:
        return format_peer(self._core.peer)

    def peer_identities(self) -> None:
        return None

    def peer_identity_key(self) -> None:
        return None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def time_remaining(self) -> float | None:
        """Seconds until the deadline; without one, grpcio's answer: the seconds
        until the end of its clock (about 9.2e18), so ``time_remaining() < 1``
        works as it does there."""
        remaining = self._core.time_remaining()
        if remaining is None:
            return _NO_DEADLINE - time.time()
        return remaining

    def is_active(self) -> bool:
        return self._core.is_active

    # -- the status the handler chooses ---------------------------------------------

    def set_trailing_metadata(self, trailing_metadata: Any) -> None:
        self._trailing = tuple(check_metadata(trailing_metadata))

    def trailing_metadata(self) -> MetadataTuple:
        return self._trailing

    def set_code(self, code: StatusCode) -> None:
        self._code = as_status_code(code)

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def set_compression(self, compression: Any) -> None:
        """Accepted for compatibility; homarpc does not compress."""

    def disable_next_message_compression(self) -> None:
        """Accepted for compatibility; homarpc does not compress."""

    # -- used by the runners ----------------------------------------------------------

    def finish(self, message: bytes | None = None) -> None:
        code = self._code or StatusCode.OK
        self._core.finish(
            code,
            self._details,
            self._trailing,
            message if code is StatusCode.OK else None,
        )

    def finish_with(self, code: StatusCode, details: str) -> None:
        self._core.finish(code, details, self._trailing)


class Context(ContextState, ServicerContext):
    """The ``ServicerContext`` a blocking handler receives."""

    def __init__(self, core: ServerCallCore, waiter: Waiter, streaming: bool) -> None:
        super().__init__(core)
        self._waiter = waiter
        self._streaming = streaming

    def cancel(self) -> bool:
        self._core.terminate(StatusCode.CANCELLED, "Cancelled")
        return True

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        return self._core.add_done_callback(callback)

    def send_initial_metadata(self, initial_metadata: Any) -> None:
        entries = tuple(check_metadata(initial_metadata))
        self._core.send_initial_metadata(entries, flush=self._streaming)

    def abort(self, code: StatusCode, details: str) -> NoReturn:
        code = abort_code(code)
        if code is StatusCode.OK:
            log.error("abort() called with StatusCode.OK; returning UNKNOWN instead")
            code = StatusCode.UNKNOWN
        self._code, self._details = code, details
        raise _Abort(details)

    def abort_with_status(self, status: Status) -> NoReturn:
        self.set_trailing_metadata(status.trailing_metadata)
        self.abort(status.code, status.details)


def _requests(
    core: ServerCallCore, waiter: Waiter, decode: Callable[[bytes], Any]
) -> Iterator[Any]:
    """The request iterator a streaming-request behavior receives."""
    while True:
        payload = _next_payload(core, waiter)
        if payload is None:
            return
        yield decode(payload)


def _next_payload(core: ServerCallCore, waiter: Waiter) -> bytes | None:
    payload = core.read()
    if payload is not None:
        return payload  # the usual case for unary requests: it came with the start
    holder: list[bytes] = []

    def ready() -> bool:
        payload = core.read()
        if payload is not None:
            holder.append(payload)
            return True
        return core.reading_done

    waiter.wait_for(ready)
    return holder[0] if holder else None


def _decode(handler: MethodHandler, payload: bytes) -> Any:
    """One request message, deserialized for ``handler``."""
    deserialize = handler.request_deserializer
    if deserialize is None:
        return payload
    try:
        return deserialize(payload)
    except Exception as exc:
        raise BadRequest(str(exc)) from exc


def decoder(handler: MethodHandler) -> Callable[[bytes], Any]:
    """``handler``'s request deserializer; raises ``BadRequest`` on bad input."""
    return functools.partial(_decode, handler)


def _encode(handler: MethodHandler, max_send: int, response: Any) -> bytes:
    """One response message, serialized for ``handler`` and checked for size."""
    serialize = handler.response_serializer
    payload = response if serialize is None else serialize(response)
    if type(payload) is not bytes:
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"serializer returned {type(payload).__name__}, not bytes")
        payload = bytes(payload)
    if 0 <= max_send < len(payload):
        raise TooLarge(f"Sent message larger than max ({len(payload)} vs. {max_send})")
    return payload


def encoder(handler: MethodHandler, max_send: int) -> Callable[[Any], bytes]:
    """``handler``'s response serializer; raises ``TooLarge`` over ``max_send``."""
    return functools.partial(_encode, handler, max_send)


class TooLarge(Exception):
    """A response over ``grpc.max_send_message_length``."""


#: grpcio's deadline for a call without one: the end of a signed 64-bit clock.
_NO_DEADLINE = float(2**63 - 1)


def abort_code(code: object) -> StatusCode:
    """The status ``abort(code, ...)`` ends a call with: ``code``, or UNKNOWN when
    it is not a status code (grpcio does the same; the details are kept)."""
    try:
        return as_status_code(code)
    except TypeError:
        return StatusCode.UNKNOWN


def expired_before_start(core: ServerCallCore) -> bool:
    """End a call whose deadline passed before its handler could start (e.g. a
    client's ``timeout=-1``, or a call that waited for a worker): its handler
    never runs, as with grpcio."""
    if core.deadline is None or core.time_remaining():
        return False
    core.terminate(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    return True


def run_call(core: ServerCallCore, lookup: Lookup, max_send: int) -> None:
    """Find the handler for ``core`` and run it to completion (worker thread).

    Never raises: a bug anywhere here still ends the call (INTERNAL) with a log line,
    instead of leaving the client to wait for its deadline.
    """
    try:
        _run_call(core, lookup, max_send)
    except Exception as exc:
        # A peer may be able to reach a bug here again and again: a few lines a
        # minute, the method (peer input) escaped.
        _bug_log.log(
            "serving", logging.ERROR, "homarpc: internal error serving %r",
            core.method, exc_info=True,
        )  # fmt: skip
        core.terminate(StatusCode.INTERNAL, f"internal error: {exc}")


def _run_call(core: ServerCallCore, lookup: Lookup, max_send: int) -> None:
    if expired_before_start(core):
        return
    waiter = Waiter()
    core.notify = waiter.wake
    try:
        handler = lookup(HandlerCallDetails(core.method, core.metadata))
    except Exception as exc:
        log.exception("homarpc: handler lookup for %s failed", core.method)
        core.finish(StatusCode.UNKNOWN, f"Exception calling application: {exc}")
        return
    if handler is None:
        core.finish(StatusCode.UNIMPLEMENTED, "Method not found!")
        return
    context = Context(core, waiter, handler.response_streaming)
    if handler.request_streaming or handler.response_streaming:
        core.will_block()  # a stream waits on its peer: not on the receive thread
    try:
        _run_behavior(core, waiter, handler, context, max_send)
    except _Abort:
        context.finish()
    except BadRequest:
        context.finish_with(StatusCode.INTERNAL, "Exception deserializing request!")
    except TooLarge as exc:
        context.finish_with(StatusCode.RESOURCE_EXHAUSTED, str(exc))
    except Exception as exc:
        finish_after_exception(context, core, exc)


def finish_after_exception(
    context: Finisher, core: ServerCallCore, exc: Exception
) -> None:
    """End the call after the behavior raised ``exc``: with the code it set, if
    any, else UNKNOWN "Exception calling application: <exc>" and a log line."""
    if not core.is_active:
        return  # cancelled or timed out meanwhile: the client has its status
    if context.code() not in (None, StatusCode.OK):
        context.finish()  # e.g. the generated "Method not implemented!" default
        return
    log.exception("Exception calling application: %s", exc)
    context.finish_with(StatusCode.UNKNOWN, f"Exception calling application: {exc}")


def _unary_request(core: ServerCallCore, waiter: Waiter, handler: MethodHandler) -> Any:
    payload = _next_payload(core, waiter)
    if payload is None:
        if core.is_active:
            core.finish(StatusCode.INTERNAL, "Expected exactly one request message")
        raise _Cancelled
    return _decode(handler, payload)


class _Cancelled(Exception):
    """The call ended before the handler could run."""


def unary_response(
    context: Finisher, handler: MethodHandler, max_send: int, response: Any
) -> None:
    """End a unary-response call with ``response``; None (unless the behavior set
    a code) or an unserializable one -> INTERNAL "Failed to serialize response!".
    Raises ``TooLarge`` for a response over ``max_send``."""
    if response is None:
        if context.code() in (None, StatusCode.OK):
            context.finish_with(StatusCode.INTERNAL, "Failed to serialize response!")
        else:
            context.finish()
        return
    try:
        payload = _encode(handler, max_send, response)
    except TooLarge:
        raise
    except Exception:
        context.finish_with(StatusCode.INTERNAL, "Failed to serialize response!")
        return
    context.finish(payload)


def _stream_response(
    core: ServerCallCore,
    waiter: Waiter,
    context: Context,
    handler: MethodHandler,
    max_send: int,
    responses: Iterator[Any],
) -> None:
    encode = encoder(handler, max_send)
    try:
        for response in responses:
            payload = encode(response)
            waiter.wait_for(core.writable)
            if not core.is_active or not core.write(payload):
                break
    finally:
        close = getattr(responses, "close", None)
        if close is not None:
            close()
    context.finish()


def _run_behavior(
    core: ServerCallCore,
    waiter: Waiter,
    handler: MethodHandler,
    context: Context,
    max_send: int,
) -> None:
    """Feed the behavior its request(s) and send its response(s), per cardinality."""
    request: Any
    if handler.request_streaming:
        request = _requests(core, waiter, decoder(handler))
    else:
        try:
            request = _unary_request(core, waiter, handler)
        except _Cancelled:
            return
    result = handler.behavior(request, context)
    if handler.response_streaming:
        _stream_response(core, waiter, context, handler, max_send, iter(result or ()))
    else:
        unary_response(context, handler, max_send, result)
