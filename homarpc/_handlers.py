"""Server-side handler objects, shaped like grpcio's so generated code runs unchanged.

Layer: rpc. Imports: stdlib only.

A ``GenericRpcHandler.service(details)`` returns an ``RpcMethodHandler`` (or None). The
server also accepts grpcio's own handler objects: anything with ``.service()`` whose
result has grpcio's RpcMethodHandler fields is used through ``as_method_handler``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "GenericRpcHandler",
    "HandlerCallDetails",
    "MethodHandler",
    "RpcMethodHandler",
    "method_handlers_generic_handler",
    "stream_stream_rpc_method_handler",
    "stream_unary_rpc_method_handler",
    "unary_stream_rpc_method_handler",
    "unary_unary_rpc_method_handler",
]

Deserializer = Callable[[bytes], Any]
Serializer = Callable[[Any], bytes]


class RpcMethodHandler(abc.ABC):
    """How to run one method, as grpcio has it: an abstract class that generic
    handlers and server interceptors return. Subclass it and set these attributes
    (grpcio users do), or build one with ``unary_unary_rpc_method_handler`` and its
    siblings. Exactly one of the four behaviors is set, per the two flags.
    """

    request_streaming: bool
    response_streaming: bool
    request_deserializer: Deserializer | None
    response_serializer: Serializer | None
    unary_unary: Callable[..., Any] | None
    unary_stream: Callable[..., Any] | None
    stream_unary: Callable[..., Any] | None
    stream_stream: Callable[..., Any] | None


class _Fields(NamedTuple):
    """``RpcMethodHandler``'s attributes as a tuple: built and read on every call,
    a tuple is the cheapest holder (the ABC cannot be a NamedTuple itself)."""

    request_streaming: bool
    response_streaming: bool
    request_deserializer: Deserializer | None
    response_serializer: Serializer | None
    unary_unary: Callable[..., Any] | None
    unary_stream: Callable[..., Any] | None
    stream_unary: Callable[..., Any] | None
    stream_stream: Callable[..., Any] | None


class MethodHandler(_Fields, RpcMethodHandler):
    """The handler homarpc builds and runs: grpcio's fields in a tuple (cheap to
    make and read on every call), and the one behavior that is set."""

    __slots__ = ()

    @property
    def behavior(self) -> Callable[..., Any]:
        """The one behavior that is set."""
        found = self.unary_unary or self.unary_stream or self.stream_unary
        found = found or self.stream_stream
        if found is None:
            raise ValueError("RpcMethodHandler has no behavior")
        return found


class HandlerCallDetails(NamedTuple):
    """What a generic handler or server interceptor sees of an incoming call."""

    method: str
    invocation_metadata: tuple[tuple[str, str | bytes], ...]


class GenericRpcHandler(abc.ABC):
    """Maps a call's details to an ``RpcMethodHandler``, or None when unknown."""

    @abc.abstractmethod
    def service(
        self, handler_call_details: HandlerCallDetails
    ) -> RpcMethodHandler | None:
        """Return the handler for ``handler_call_details.method`` or None."""


class _DictionaryGenericHandler(GenericRpcHandler):
    def __init__(self, service: str, method_handlers: Mapping[str, Any]) -> None:
        self._service = service
        self._methods = {f"/{service}/{name}": h for name, h in method_handlers.items()}

    def service(
        self, handler_call_details: HandlerCallDetails
    ) -> RpcMethodHandler | None:
        found = self._methods.get(handler_call_details.method)
        return None if found is None else as_method_handler(found)

    def service_name(self) -> str:
        return self._service


def method_handlers_generic_handler(
    service: str, method_handlers: Mapping[str, Any]
) -> GenericRpcHandler:
    """A generic handler serving ``/service/<name>`` for each entry of the mapping."""
    return _DictionaryGenericHandler(service, method_handlers)


def registered_method_table(
    service: str, method_handlers: Mapping[str, Any]
) -> dict[str, MethodHandler]:
    """``add_registered_method_handlers``' table, keyed by full method path."""
    return {f"/{service}/{n}": as_method_handler(h) for n, h in method_handlers.items()}


def as_method_handler(handler: Any) -> MethodHandler:
    """The handler to run, from ours, a user's ``RpcMethodHandler`` subclass, or
    grpcio's own (any object with grpcio's fields)."""
    if type(handler) is MethodHandler:
        return handler
    return MethodHandler(
        bool(handler.request_streaming),
        bool(handler.response_streaming),
        getattr(handler, "request_deserializer", None),
        getattr(handler, "response_serializer", None),
        getattr(handler, "unary_unary", None),
        getattr(handler, "unary_stream", None),
        getattr(handler, "stream_unary", None),
        getattr(handler, "stream_stream", None),
    )


def lookup(
    handlers: Sequence[Any], details: HandlerCallDetails
) -> MethodHandler | None:
    """Ask each generic handler in turn (ours or grpcio's) for ``details.method``."""
    for generic in handlers:
        found = generic.service(details)
        if found is not None:
            return as_method_handler(found)
    return None


def unary_unary_rpc_method_handler(
    behavior: Callable[..., Any],
    request_deserializer: Deserializer | None = None,
    response_serializer: Serializer | None = None,
) -> RpcMethodHandler:
    """A handler for ``behavior(request, context) -> response``."""
    return MethodHandler(
        False, False, request_deserializer, response_serializer,
        behavior, None, None, None,
    )  # fmt: skip


def unary_stream_rpc_method_handler(
    behavior: Callable[..., Any],
    request_deserializer: Deserializer | None = None,
    response_serializer: Serializer | None = None,
) -> RpcMethodHandler:
    """A handler for ``behavior(request, context) -> iterator of responses``."""
    return MethodHandler(
        False, True, request_deserializer, response_serializer,
        None, behavior, None, None,
    )  # fmt: skip


def stream_unary_rpc_method_handler(
    behavior: Callable[..., Any],
    request_deserializer: Deserializer | None = None,
    response_serializer: Serializer | None = None,
) -> RpcMethodHandler:
    """A handler for ``behavior(request_iterator, context) -> response``."""
    return MethodHandler(
        True, False, request_deserializer, response_serializer,
        None, None, behavior, None,
    )  # fmt: skip


def stream_stream_rpc_method_handler(
    behavior: Callable[..., Any],
    request_deserializer: Deserializer | None = None,
    response_serializer: Serializer | None = None,
) -> RpcMethodHandler:
    """A handler for ``behavior(request_iterator, context) -> response iterator``."""
    return MethodHandler(
        True, True, request_deserializer, response_serializer,
        None, None, None, behavior,
    )  # fmt: skip
