"""Blocking call objects: what the channel's multicallables return.

Layer: rpc. Imports: stdlib and rpc-layer modules (no transport, no asyncio).

``UnaryOutcome`` is a ``Call`` and a ``Future`` (``.future()``, ``.with_call()``);
``ResponseStream`` is a ``Call``, a ``Future`` and an iterator of responses. Both wrap
a ``ClientCallCore`` and wait on it with a ``Waiter``. A call that fails because no
server answered at its address is restarted on the next one (failover) when its
request is unary, so it can be sent again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from ._call import ClientCallCore
from ._interfaces import Call, Future
from ._sync import Waiter
from .status import (
    FutureCancelledError,
    FutureTimeoutError,
    MetadataTuple,
    RpcError,
    StatusCode,
)

__all__ = ["ResponseStream", "UnaryOutcome", "send_requests"]

log = logging.getLogger("homarpc.client")

#: Slack past the deadline before a waiting thread expires the call itself (the
#: channel's receive thread normally does it on time).
_DEADLINE_SLACK = 0.02

Starter = Callable[[Callable[[], None], int], ClientCallCore | None]


class _CallState(Call, Future):
    """What unary and streamed responses share: the core, waiting, callbacks."""

    def __init__(
        self, start: Starter, deserializer: Callable[[bytes], Any] | None
    ) -> None:
        self._start = start
        self._deserialize = deserializer or _identity
        self._waiters: list[Waiter] = []
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._locally_cancelled = False
        self._error: RpcError | None = None
        self._attempt = 0
        self._core = self._first_core()

    def _first_core(self) -> ClientCallCore:
        core = self._start(self._on_notify, 0)
        assert core is not None
        return core

    def _on_notify(self) -> None:
        """Core progress (any thread): retry elsewhere, wake waiters, run callbacks."""
        core = self._core
        if core.done and core.unreachable:
            self._attempt += 1
            replacement = self._start(self._on_notify, self._attempt)
            if replacement is not None:
                self._core = replacement
                replacement.start()
                return
        for waiter in tuple(self._waiters):
            waiter.wake()
        if core.done:
            self._run_callbacks()

    def _run_callbacks(self) -> None:
        with self._lock:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("homarpc: call callback raised")

    def _wait(self, ready: Callable[[], bool], timeout: float | None = None) -> bool:
        """Block until ``ready()``; enforce the deadline even if no thread does."""
        waiter = Waiter()
        with self._lock:
            self._waiters.append(waiter)
        try:
            while True:
                core = self._core
                remaining = core.time_remaining()
                limit = timeout if remaining is None else remaining + _DEADLINE_SLACK
                if timeout is not None and limit is not None:
                    limit = min(limit, timeout)
                if core.endpoint.wait_for(ready, waiter, limit):
                    return True
                if core.time_remaining() == 0.0:
                    core.expire()
                    continue
                return False
        finally:
            with self._lock:
                self._waiters.remove(waiter)

    def _wait_done(self, timeout: float | None = None) -> bool:
        return self._wait(lambda: self._core.done, timeout)

    def error(self) -> RpcError | None:
        """The call's failure as a fresh ``RpcError`` (None while running or OK)."""
        core = self._core
        if core.code is None or core.code is StatusCode.OK:
            return None
        if self._error is None:
            self._error = RpcError(
                core.code,
                core.details,
                core.initial_metadata or (),
                core.trailing_metadata,
            )
        return self._error

    # -- grpc.Call / RpcContext ------------------------------------------------------

    def initial_metadata(self) -> MetadataTuple:
        self._wait(lambda: self._core.initial_metadata is not None)
        return self._core.initial_metadata or ()

    def trailing_metadata(self) -> MetadataTuple:
        self._wait_done()
        return self._core.trailing_metadata

    def code(self) -> StatusCode:
        self._wait_done()
        assert self._core.code is not None
        return self._core.code

    def details(self) -> str:
        self._wait_done()
        return self._core.details

    def debug_error_string(self) -> str:
        error = self.error()
        return "" if error is None else error.debug_error_string()

    def is_active(self) -> bool:
        return not self._core.done

    def time_remaining(self) -> float | None:
        return self._core.time_remaining()

    def cancel(self) -> bool:
        cancelled = self._core.cancel()
        if cancelled:
            self._locally_cancelled = True
        return cancelled

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        with self._lock:
            if not self._core.done:
                self._callbacks.append(callback)
                return True
        return False

    # -- grpc.Future -----------------------------------------------------------------

    def cancelled(self) -> bool:
        return self._locally_cancelled

    def running(self) -> bool:
        return not self._core.done

    def done(self) -> bool:
        return self._core.done

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self._wait_done(timeout):
            raise FutureTimeoutError()
        if self._locally_cancelled:
            raise FutureCancelledError()
        return self.error()

    def traceback(self, timeout: float | None = None) -> TracebackType | None:
        error = self.exception(timeout)
        return None if error is None else error.__traceback__

    def add_done_callback(self, fn: Callable[[Any], Any]) -> None:
        if not self.add_callback(lambda: fn(self)):
            fn(self)


class UnaryOutcome(_CallState):
    """A call with one response: ``Call`` and ``Future``."""

    def result(self, timeout: float | None = None) -> Any:
        """The response; raises the call's ``RpcError`` when it failed."""
        if not self._wait_done(timeout):
            raise FutureTimeoutError()
        if self._locally_cancelled:
            raise FutureCancelledError()
        error = self.error()
        if error is not None:
            raise error
        payload = self._core.read()
        if payload is None:
            raise RpcError(
                StatusCode.INTERNAL,
                "Server sent OK without a response",
                self._core.initial_metadata or (),
                self._core.trailing_metadata,
            )
        try:
            return self._deserialize(payload)
        except Exception:
            raise RpcError(
                StatusCode.INTERNAL,
                "Exception deserializing response!",
                self._core.initial_metadata or (),
                self._core.trailing_metadata,
            ) from None

    def __repr__(self) -> str:
        return f"<homarpc call {self._core.call_id} code={self._core.code}>"


class ResponseStream(_CallState, Iterator[Any]):
    """A call with streamed responses: ``Call``, ``Future`` and iterator."""

    def __iter__(self) -> ResponseStream:
        return self

    def __next__(self) -> Any:
        holder: list[bytes] = []

        def ready() -> bool:
            payload = self._core.read()
            if payload is not None:
                holder.append(payload)
                return True
            return self._core.reading_done

        self._wait(ready)
        if holder:
            try:
                return self._deserialize(holder[0])
            except Exception:
                self._core.cancel(
                    StatusCode.INTERNAL, "Exception deserializing response!"
                )
                raise self._failure() from None
        error = self.error()
        if error is not None:
            raise error
        raise StopIteration

    def _failure(self) -> RpcError:
        error = self.error()
        assert error is not None
        return error

    def result(self, timeout: float | None = None) -> Any:
        """Waits for the end of the call; raises its ``RpcError`` if it failed."""
        error = self.exception(timeout)
        if error is not None:
            raise error
        return None

    def __repr__(self) -> str:
        return f"<homarpc stream call {self._core.call_id} code={self._core.code}>"


def send_requests(
    call: _CallState,
    requests: Iterator[Any],
    serialize: Callable[[Any], bytes],
) -> None:
    """Feed ``requests`` into the call with flow control, then half-close."""
    core = call._core
    try:
        for request in requests:
            payload = serialize(request)
            call._wait(lambda: core.writable() or core.done)
            if core.done:
                return
            core.write(payload)
    except Exception:
        log.exception("homarpc: the request iterator raised")
        core.cancel(StatusCode.UNKNOWN, "Exception iterating requests!")
        return
    core.done_writing()


def _identity(data: bytes) -> Any:
    return data
