"""``homarpc.aio.Channel`` and its multicallables.

Layer: rpc (homarpc.aio). Imports: stdlib, ``homarpc`` rpc-layer modules
(``channel``, ``metadata``, ``status``, ``_interfaces``), ``homarpc.aio`` siblings.

An aio channel wraps a blocking ``homarpc.channel.Channel``: the same target parsing,
transport, ``ClientEndpoint``, round-robin and failover. What differs: the call
objects wait on the event loop (``_call.py``) instead of blocking a thread, and the
loop itself reads the transport (``_driver.ClientPump``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from .._interfaces import ChannelConnectivity
from ..channel import Channel as _BlockingChannel
from ..channel import insecure_channel as _blocking_insecure_channel
from ..metadata import check_metadata
from ..status import RpcError, StatusCode
from ._call import (
    Call,
    Codec,
    StartCall,
    StreamStreamCall,
    StreamUnaryCall,
    UnaryStreamCall,
    UnaryUnaryCall,
)
from ._driver import ClientPump
from ._errors import AioRpcError, UsageError
from ._interceptors import ClientCallDetails, InterceptedCall, intercept, of_kind
from ._metadata import MetadataLike

__all__ = [
    "Channel",
    "StreamStreamMultiCallable",
    "StreamUnaryMultiCallable",
    "UnaryStreamMultiCallable",
    "UnaryUnaryMultiCallable",
    "init_grpc_aio",
    "insecure_channel",
    "secure_channel",
    "shutdown_grpc_aio",
]

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")
Serializer = Callable[[Any], bytes] | None
Deserializer = Callable[[bytes], Any] | None
RequestIterator = Iterable[RequestT] | AsyncIterable[RequestT]


def _unchanged(request: Any) -> Any:
    """No serializer: the request must already be bytes."""
    return request


class _MultiCallable(Generic[RequestT, ResponseT]):
    """What the four kinds share: the method, its codec, interceptors, starting."""

    kind: ClassVar[str]

    def __init__(
        self,
        channel: Channel,
        method: str,
        serializer: Serializer,
        deserializer: Deserializer,
        interceptors: Sequence[Any],
    ) -> None:
        self._aio_channel = channel
        self._channel = channel._inner
        self._method = method
        self._serializer: Callable[[Any], Any] = serializer or _unchanged
        self._codec: Codec[RequestT, ResponseT] = Codec(self._payload, deserializer)
        self._interceptors = of_kind(interceptors, self.kind)

    def _begin(
        self,
        request: Any,
        timeout: float | None,
        metadata: MetadataLike | None,
        credentials: object,
        wait_for_ready: bool | None,
    ) -> Any:
        """Start the call, through this kind's interceptors when there are any."""
        self._aio_channel._read_on_running_loop()
        details = ClientCallDetails(
            self._method, timeout, metadata, credentials, wait_for_ready
        )
        if self._interceptors:
            return intercept(
                self._interceptors, self.kind, details, request, self._invoke
            )
        return self._invoke(details, request)

    def _invoke(self, details: ClientCallDetails, request: Any) -> Call[Any, Any]:
        raise NotImplementedError

    def _payload(self, request: Any) -> bytes:
        """Serialize one request and apply the channel's send limit."""
        try:
            payload = self._serializer(request)
            if not isinstance(payload, bytes | bytearray | memoryview):
                raise TypeError(f"{type(payload).__name__} is not bytes")
            payload = bytes(payload)
        except Exception:
            raise AioRpcError(
                StatusCode.INTERNAL, details="Exception serializing request!"
            ) from None
        try:
            self._channel._check_send_size(payload)
        except RpcError as exc:
            raise AioRpcError.from_rpc_error(exc) from None
        return payload

    def _starter(
        self,
        details: ClientCallDetails,
        request: bytes | None,
        response_streaming: bool,
    ) -> StartCall:
        entries = tuple(check_metadata(details.metadata))
        # Attended: the loop reads the transport for the call (``_driver``).
        return self._channel._starter(
            details.method,
            entries,
            details.timeout,
            request,
            response_streaming,
            attended=True,
            wait_for_ready=details.wait_for_ready,
        )


class UnaryUnaryMultiCallable(_MultiCallable[RequestT, ResponseT]):
    """``await stub.Method(request)``: one Homa RPC per call."""

    kind = "unary_unary"

    def __call__(
        self,
        request: RequestT,
        *,
        timeout: float | None = None,
        metadata: MetadataLike | None = None,
        credentials: object = None,
        wait_for_ready: bool | None = None,
        compression: object = None,
    ) -> UnaryUnaryCall[RequestT, ResponseT] | InterceptedCall:
        return self._begin(request, timeout, metadata, credentials, wait_for_ready)  # type: ignore[no-any-return]

    def _invoke(self, details: ClientCallDetails, request: Any) -> Call[Any, Any]:
        start = self._starter(details, self._payload(request), False)
        return UnaryUnaryCall(start, self._codec)


class UnaryStreamMultiCallable(_MultiCallable[RequestT, ResponseT]):
    """``async for response in stub.Method(request)``."""

    kind = "unary_stream"

    def __call__(
        self,
        request: RequestT,
        *,
        timeout: float | None = None,
        metadata: MetadataLike | None = None,
        credentials: object = None,
        wait_for_ready: bool | None = None,
        compression: object = None,
    ) -> UnaryStreamCall[RequestT, ResponseT] | InterceptedCall:
        return self._begin(request, timeout, metadata, credentials, wait_for_ready)  # type: ignore[no-any-return]

    def _invoke(self, details: ClientCallDetails, request: Any) -> Call[Any, Any]:
        start = self._starter(details, self._payload(request), True)
        return UnaryStreamCall(start, self._codec)


class StreamUnaryMultiCallable(_MultiCallable[RequestT, ResponseT]):
    """``await stub.Method(request_iterator)``, or ``write()`` then ``await``."""

    kind = "stream_unary"

    def __call__(
        self,
        request_iterator: RequestIterator[RequestT] | None = None,
        *,
        timeout: float | None = None,
        metadata: MetadataLike | None = None,
        credentials: object = None,
        wait_for_ready: bool | None = None,
        compression: object = None,
    ) -> StreamUnaryCall[RequestT, ResponseT] | InterceptedCall:
        return self._begin(  # type: ignore[no-any-return]
            request_iterator, timeout, metadata, credentials, wait_for_ready
        )

    def _invoke(self, details: ClientCallDetails, requests: Any) -> Call[Any, Any]:
        return StreamUnaryCall(
            self._starter(details, None, False), self._codec, requests
        )


class StreamStreamMultiCallable(_MultiCallable[RequestT, ResponseT]):
    """Bidirectional: an iterator of requests, or ``write()``; then ``read()``."""

    kind = "stream_stream"

    def __call__(
        self,
        request_iterator: RequestIterator[RequestT] | None = None,
        *,
        timeout: float | None = None,
        metadata: MetadataLike | None = None,
        credentials: object = None,
        wait_for_ready: bool | None = None,
        compression: object = None,
    ) -> StreamStreamCall[RequestT, ResponseT] | InterceptedCall:
        return self._begin(  # type: ignore[no-any-return]
            request_iterator, timeout, metadata, credentials, wait_for_ready
        )

    def _invoke(self, details: ClientCallDetails, requests: Any) -> Call[Any, Any]:
        return StreamStreamCall(
            self._starter(details, None, True), self._codec, requests
        )


class Channel:
    """An asyncio channel (``grpc.aio.Channel``'s shape); use ``insecure_channel``."""

    def __init__(
        self, inner: _BlockingChannel, interceptors: Sequence[Any] = ()
    ) -> None:
        self._inner = inner
        self._interceptors = list(interceptors)
        self._closed = asyncio.Event()
        self._pump: ClientPump | None = None

    def _read_on_running_loop(self) -> None:
        """Read the transport from the running loop (see ``_driver``) from now on.

        Raises:
            UsageError: the channel is already bound to another event loop.
        """
        loop = asyncio.get_running_loop()
        if self._pump is None:
            self._pump = ClientPump(self._inner._endpoint, loop)
        elif self._pump.loop is not loop:
            raise UsageError("an aio channel serves the event loop that first used it")
        self._pump.kick()  # a call is starting: its answer will be polled for

    def unary_unary(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> UnaryUnaryMultiCallable[Any, Any]:
        return UnaryUnaryMultiCallable(
            self,
            method,
            request_serializer,
            response_deserializer,
            self._interceptors,
        )

    def unary_stream(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> UnaryStreamMultiCallable[Any, Any]:
        return UnaryStreamMultiCallable(
            self,
            method,
            request_serializer,
            response_deserializer,
            self._interceptors,
        )

    def stream_unary(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> StreamUnaryMultiCallable[Any, Any]:
        return StreamUnaryMultiCallable(
            self,
            method,
            request_serializer,
            response_deserializer,
            self._interceptors,
        )

    def stream_stream(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> StreamStreamMultiCallable[Any, Any]:
        return StreamStreamMultiCallable(
            self,
            method,
            request_serializer,
            response_deserializer,
            self._interceptors,
        )

    # -- connectivity: the blocking channel's (``homarpc._connectivity``) --------

    def get_state(self, try_to_connect: bool = False) -> ChannelConnectivity:
        """The current state; ``try_to_connect`` starts connecting if IDLE (the
        state returned is still the one before, as grpc.aio's)."""
        return self._inner._connectivity.get_state(try_to_connect)

    async def wait_for_state_change(
        self, last_observed_state: ChannelConnectivity
    ) -> None:
        """Return once the state is not ``last_observed_state``.

        Raises:
            UsageError: the channel is closed (as grpc.aio: "Channel is closed.").
        """
        self._check_open()
        loop = asyncio.get_running_loop()
        changed: asyncio.Future[None] = loop.create_future()

        def on_state(state: ChannelConnectivity) -> None:  # any thread
            if state is not last_observed_state:
                try:
                    loop.call_soon_threadsafe(_settle, changed)
                except RuntimeError:
                    pass  # the loop has closed: nobody is waiting any more

        connectivity = self._inner._connectivity
        connectivity.subscribe(on_state)
        try:
            await changed
        finally:
            connectivity.unsubscribe(on_state)

    async def channel_ready(self) -> None:
        """Connect, and return once the channel is READY (a server answered).

        Raises:
            UsageError: the channel is (or gets) closed.
        """
        state = self.get_state(try_to_connect=True)
        while state is not ChannelConnectivity.READY:
            await self.wait_for_state_change(state)
            state = self.get_state(try_to_connect=True)

    def _check_open(self) -> None:
        if self._closed.is_set() or self._inner._closed:
            raise UsageError("Channel is closed.")

    async def close(self, grace: float | None = None) -> None:
        """Cancel calls still running (CANCELLED, as grpc.aio) and release the transport.

        ``grace`` is accepted for grpc.aio compatibility; calls end at once.
        """
        if not self._closed.is_set():
            self._closed.set()
            if self._pump is not None:
                self._pump.close()
            await asyncio.to_thread(self._inner.close)

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<homarpc.aio.Channel to {self._inner.target}>"


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def insecure_channel(
    target: str,
    options: Sequence[tuple[str, Any]] | None = None,
    compression: object = None,
    interceptors: Sequence[Any] | None = None,
    *,
    transport: str | None = None,
    transport_options: Mapping[str, Any] | None = None,
) -> Channel:
    """Open an asyncio channel to ``target``, as ``grpc.aio.insecure_channel`` does.

    Args:
        target: "host:port", "homa://host:port" (kernel), "homa+udp://host:port",
            or several servers separated by commas (round-robin with failover).
        options: grpcio-style channel args; ``grpc.max_receive_message_length``
            (default 4 MiB) and ``grpc.max_send_message_length`` are honoured.
        compression: accepted for compatibility; messages travel uncompressed.
        interceptors: client interceptors of the four ``aio.*ClientInterceptor``
            kinds, applied in list order (the first is outermost).
        transport: "udp", "kernel", "memory" or "auto" when the target has no scheme.
        transport_options: backend settings passed to ``open_transport``.
    """
    return Channel(
        _blocking_insecure_channel(
            target,
            options,
            compression,
            transport=transport,
            transport_options=transport_options,
        ),
        interceptors or (),
    )


def secure_channel(
    target: str, credentials: object, *args: object, **kwargs: object
) -> Channel:
    """Refused: homarpc channels are insecure (Homa has no TLS), as the server's
    ``add_secure_port`` is.

    Raises:
        NotImplementedError: always; use ``insecure_channel``.
    """
    raise NotImplementedError(
        "homarpc has no secure channels (Homa carries no TLS): use insecure_channel"
    )


def init_grpc_aio() -> None:
    """grpc.aio needs this in some set-ups; homarpc.aio needs nothing (a no-op)."""


def shutdown_grpc_aio() -> None:
    """The counterpart of ``init_grpc_aio``: a no-op."""
