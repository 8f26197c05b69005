"""Client and server interceptors, shaped like grpcio's.

Layer: rpc. Imports: stdlib and other rpc-layer modules (no transport).

Client side: ``intercept_channel(channel, *interceptors)`` returns a channel whose
multicallables run each interceptor in list order; every continuation returns an
object that is both a ``Call`` and a ``Future`` (unary responses) or a ``Call`` and an
iterator (streamed responses), as in grpcio. Server side: ``ServerInterceptor`` objects
given to ``homarpc.server(interceptors=...)`` wrap handler lookup, in list order.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ._handlers import (
    HandlerCallDetails,
    MethodHandler,
    RpcMethodHandler,
    as_method_handler,
)

__all__ = [
    "ClientCallDetails",
    "ServerInterceptor",
    "StreamStreamClientInterceptor",
    "StreamUnaryClientInterceptor",
    "UnaryStreamClientInterceptor",
    "UnaryUnaryClientInterceptor",
    "intercept_channel",
]


class ClientCallDetails(abc.ABC):
    """What client interceptors see and may rewrite: ``method``, ``timeout``,
    ``metadata``, ``credentials``, ``wait_for_ready``, ``compression``."""

    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str | bytes]] | None
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Sequence[tuple[str, str | bytes]] | None
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


ClientCallDetails.register(_CallDetails)

Continuation = Callable[[Any, Any], Any]


class UnaryUnaryClientInterceptor(abc.ABC):
    @abc.abstractmethod
    def intercept_unary_unary(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        """Call ``continuation(details, request)`` (or not) and return its outcome."""


class UnaryStreamClientInterceptor(abc.ABC):
    @abc.abstractmethod
    def intercept_unary_stream(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        """Call ``continuation(details, request)`` and return the response iterator."""


class StreamUnaryClientInterceptor(abc.ABC):
    @abc.abstractmethod
    def intercept_stream_unary(
        self,
        continuation: Continuation,
        client_call_details: Any,
        request_iterator: Any,
    ) -> Any:
        """Call ``continuation(details, request_iterator)`` and return its outcome."""


class StreamStreamClientInterceptor(abc.ABC):
    @abc.abstractmethod
    def intercept_stream_stream(
        self,
        continuation: Continuation,
        client_call_details: Any,
        request_iterator: Any,
    ) -> Any:
        """Call ``continuation(details, request_iterator)``; return the iterator."""


class ServerInterceptor(abc.ABC):
    @abc.abstractmethod
    def intercept_service(
        self,
        continuation: Callable[[HandlerCallDetails], RpcMethodHandler | None],
        handler_call_details: HandlerCallDetails,
    ) -> RpcMethodHandler | None:
        """Return a handler for the call (usually ``continuation(details)``)."""


def chain_server_interceptors(
    interceptors: Sequence[ServerInterceptor],
    lookup: Callable[[HandlerCallDetails], RpcMethodHandler | None],
) -> Callable[[HandlerCallDetails], MethodHandler | None]:
    """Wrap ``lookup`` so the first interceptor runs first. Whatever handler the
    chain ends with (ours, a user's subclass, grpcio's) comes out runnable."""
    chained = lookup
    for interceptor in reversed(interceptors):
        chained = _bind_server(interceptor, chained)

    def found(details: HandlerCallDetails) -> MethodHandler | None:
        handler = chained(details)
        return None if handler is None else as_method_handler(handler)

    return found


def _bind_server(
    interceptor: ServerInterceptor,
    inner: Callable[[HandlerCallDetails], RpcMethodHandler | None],
) -> Callable[[HandlerCallDetails], RpcMethodHandler | None]:
    def intercepted(details: HandlerCallDetails) -> RpcMethodHandler | None:
        return interceptor.intercept_service(inner, details)

    return intercepted


# -- client side: a channel that routes each multicallable through an interceptor --

_KINDS = {
    "unary_unary": (UnaryUnaryClientInterceptor, "intercept_unary_unary"),
    "unary_stream": (UnaryStreamClientInterceptor, "intercept_unary_stream"),
    "stream_unary": (StreamUnaryClientInterceptor, "intercept_stream_unary"),
    "stream_stream": (StreamStreamClientInterceptor, "intercept_stream_stream"),
}


class _InterceptedMultiCallable:
    """One multicallable of an intercepted channel (any of the four kinds)."""

    def __init__(self, inner: Any, method: str, hook: Callable[..., Any], kind: str):
        self._inner = inner
        self._method = method
        self._hook = hook
        self._unary_response = kind.endswith("_unary")

    def _invoke(self, request: Any, kwargs: dict[str, Any]) -> Any:
        details = _CallDetails(
            self._method,
            kwargs.get("timeout"),
            kwargs.get("metadata"),
            kwargs.get("credentials"),
            kwargs.get("wait_for_ready"),
            kwargs.get("compression"),
        )
        return self._hook(self._continue, details, request)

    def _continue(self, details: Any, request: Any) -> Any:
        options = {
            "timeout": details.timeout,
            "metadata": details.metadata,
            "credentials": getattr(details, "credentials", None),
            "wait_for_ready": getattr(details, "wait_for_ready", None),
            "compression": getattr(details, "compression", None),
        }
        if self._unary_response:
            return self._inner.future(request, **options)
        return self._inner(request, **options)

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        outcome = self._invoke(request, kwargs)
        return outcome.result() if self._unary_response else outcome

    def with_call(self, request: Any, **kwargs: Any) -> tuple[Any, Any]:
        outcome = self._invoke(request, kwargs)
        return outcome.result(), outcome

    def future(self, request: Any, **kwargs: Any) -> Any:
        return self._invoke(request, kwargs)


class _InterceptedChannel:
    """A channel whose calls pass through one interceptor, then the inner channel."""

    def __init__(self, channel: Any, interceptor: Any) -> None:
        self._channel = channel
        self._interceptor = interceptor

    def _multicallable(self, kind: str, method: str, *args: Any, **kwargs: Any) -> Any:
        inner = getattr(self._channel, kind)(method, *args, **kwargs)
        base, hook_name = _KINDS[kind]
        if not isinstance(self._interceptor, base):
            return inner
        hook = getattr(self._interceptor, hook_name)
        return _InterceptedMultiCallable(inner, method, hook, kind)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._multicallable("unary_unary", method, *args, **kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._multicallable("unary_stream", method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._multicallable("stream_unary", method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._multicallable("stream_stream", method, *args, **kwargs)

    def subscribe(
        self, callback: Callable[..., Any], try_to_connect: bool = False
    ) -> None:
        self._channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Callable[..., Any]) -> None:
        self._channel.unsubscribe(callback)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> _InterceptedChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def intercept_channel(channel: Any, *interceptors: Any) -> Any:
    """A channel that runs ``interceptors`` (first one outermost) on every call.

    Raises:
        TypeError: an interceptor implements none of the four client interfaces.
    """
    for interceptor in interceptors:
        if not isinstance(interceptor, tuple(base for base, _ in _KINDS.values())):
            raise TypeError(f"{interceptor!r} is not a client interceptor")
    for interceptor in reversed(interceptors):
        channel = _InterceptedChannel(channel, interceptor)
    return channel
