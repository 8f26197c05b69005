"""Client interceptors for ``homarpc.aio`` channels, shaped like grpc.aio's.

Layer: rpc (homarpc.aio). Imports: stdlib, ``homarpc.status``, ``homarpc.aio``
siblings.

``aio.insecure_channel(target, interceptors=[...])`` takes any mix of the four
interceptor kinds; each multicallable runs those of its kind, first in the list
outermost. An interceptor gets ``continuation(details, request)``, a coroutine
giving the call it starts, and returns that call, another call, or (for a unary
response) the response itself. The multicallable hands back an ``InterceptedCall``
at once: the chain runs in a task, and the object then behaves as the call (or
the finished call with the response) the chain produced.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Sequence,
)
from typing import Any, NamedTuple

from ..status import StatusCode
from ._call import Call, UnaryResponse
from ._errors import EOFType, UsageError
from ._metadata import Metadata, MetadataLike

__all__ = [
    "KINDS",
    "ClientCallDetails",
    "ClientInterceptor",
    "InterceptedCall",
    "StreamStreamClientInterceptor",
    "StreamUnaryClientInterceptor",
    "UnaryStreamClientInterceptor",
    "UnaryUnaryClientInterceptor",
    "intercept",
    "of_kind",
]


class ClientCallDetails(NamedTuple):
    """What an interceptor sees of a call and may replace (``details._replace``)."""

    method: str
    timeout: float | None
    metadata: MetadataLike | None
    credentials: object
    wait_for_ready: bool | None


Continuation = Callable[[ClientCallDetails, Any], Awaitable[Any]]
Invoke = Callable[[ClientCallDetails, Any], Call[Any, Any]]


class ClientInterceptor(abc.ABC):  # noqa: B024 - a marker base, as in grpc.aio
    """Base of the four client interceptor kinds."""


class UnaryUnaryClientInterceptor(ClientInterceptor):
    @abc.abstractmethod
    async def intercept_unary_unary(
        self,
        continuation: Continuation,
        client_call_details: ClientCallDetails,
        request: Any,
    ) -> Any:
        """Return ``await continuation(details, request)``, a call or a response."""


class UnaryStreamClientInterceptor(ClientInterceptor):
    @abc.abstractmethod
    async def intercept_unary_stream(
        self,
        continuation: Continuation,
        client_call_details: ClientCallDetails,
        request: Any,
    ) -> Any:
        """Return the call (or an async iterator of responses)."""


class StreamUnaryClientInterceptor(ClientInterceptor):
    @abc.abstractmethod
    async def intercept_stream_unary(
        self,
        continuation: Continuation,
        client_call_details: ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        """Return ``await continuation(details, request_iterator)`` or a response."""


class StreamStreamClientInterceptor(ClientInterceptor):
    @abc.abstractmethod
    async def intercept_stream_stream(
        self,
        continuation: Continuation,
        client_call_details: ClientCallDetails,
        request_iterator: Any,
    ) -> Any:
        """Return the call (or an async iterator of responses)."""


#: Multicallable kind -> (interceptor class, the method it implements).
KINDS: dict[str, tuple[type[ClientInterceptor], str]] = {
    "unary_unary": (UnaryUnaryClientInterceptor, "intercept_unary_unary"),
    "unary_stream": (UnaryStreamClientInterceptor, "intercept_unary_stream"),
    "stream_unary": (StreamUnaryClientInterceptor, "intercept_stream_unary"),
    "stream_stream": (StreamStreamClientInterceptor, "intercept_stream_stream"),
}


def of_kind(interceptors: Sequence[Any], kind: str) -> list[Any]:
    """The interceptors that apply to multicallables of ``kind``, in order."""
    cls, _ = KINDS[kind]
    return [i for i in interceptors if isinstance(i, cls)]


class InterceptedCall:
    """What an intercepted multicallable returns; see the module docstring."""

    def __init__(self, chain: Coroutine[Any, Any, Any], timeout: float | None) -> None:
        self._task = asyncio.get_running_loop().create_task(chain)
        self._deadline = None if timeout is None else time.monotonic() + timeout

    async def _call(self) -> Call[Any, Any] | None:
        outcome = await self._task
        return outcome if isinstance(outcome, Call) else None

    # -- the response side -----------------------------------------------------------

    def __await__(self) -> Generator[Any, None, Any]:
        return self._response().__await__()

    async def _response(self) -> Any:
        outcome = await self._task
        return await outcome if isinstance(outcome, UnaryResponse) else outcome

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._responses()

    async def _responses(self) -> AsyncIterator[Any]:
        outcome = await self._task
        async for response in outcome:
            yield response

    async def read(self) -> Any | EOFType:
        return await (await self._streaming()).read()

    # -- the request side ------------------------------------------------------------

    async def write(self, request: Any) -> None:
        await (await self._streaming()).write(request)

    async def done_writing(self) -> None:
        await (await self._streaming()).done_writing()

    async def _streaming(self) -> Any:
        call = await self._call()
        if call is None:
            raise UsageError("the interceptors returned a response, not a call")
        return call

    # -- status ----------------------------------------------------------------------

    async def code(self) -> StatusCode:
        call = await self._call()
        return StatusCode.OK if call is None else await call.code()

    async def details(self) -> str:
        call = await self._call()
        return "" if call is None else await call.details()

    async def initial_metadata(self) -> Metadata:
        call = await self._call()
        return Metadata() if call is None else await call.initial_metadata()

    async def trailing_metadata(self) -> Metadata:
        call = await self._call()
        return Metadata() if call is None else await call.trailing_metadata()

    def _settled(self) -> Any:
        """What the chain produced, once it finished without failing; else None."""
        task = self._task
        if not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    def cancel(self) -> bool:
        if not self._task.done():
            return self._task.cancel()
        call = self._settled()
        return isinstance(call, Call) and call.cancel()

    def cancelled(self) -> bool:
        call = self._settled()
        return self._task.cancelled() or (isinstance(call, Call) and call.cancelled())

    def done(self) -> bool:
        call = self._settled()
        return self._task.done() and not (isinstance(call, Call) and not call.done())

    def time_remaining(self) -> float | None:
        call = self._settled()
        if isinstance(call, Call):
            return call.time_remaining()
        return (
            None
            if self._deadline is None
            else max(0.0, self._deadline - time.monotonic())
        )

    def add_done_callback(self, callback: Callable[[InterceptedCall], None]) -> None:
        """Run ``callback(self)`` once the chain and the call it made have ended."""

        def chain_ended(_: object) -> None:
            call = self._settled()
            if isinstance(call, Call) and not call.done():
                call.add_done_callback(lambda _call: callback(self))
            else:
                callback(self)

        self._task.add_done_callback(chain_ended)

    async def wait_for_connection(self) -> None:
        """Homa has no connections: there is nothing to wait for."""

    def __repr__(self) -> str:
        return f"<aio.InterceptedCall {self._task!r}>"


def intercept(
    interceptors: Sequence[Any],
    kind: str,
    details: ClientCallDetails,
    request: Any,
    invoke: Invoke,
) -> InterceptedCall:
    """Run ``interceptors`` (of ``kind``) around ``invoke``, first one outermost."""
    method_name = KINDS[kind][1]

    async def run(index: int, details: ClientCallDetails, request: Any) -> Any:
        if index == len(interceptors):
            return invoke(details, request)

        async def continuation(
            next_details: ClientCallDetails, next_request: Any
        ) -> Any:
            return await run(index + 1, next_details, next_request)

        interceptor = getattr(interceptors[index], method_name)
        return await interceptor(continuation, details, request)

    return InterceptedCall(run(0, details, request), details.timeout)
