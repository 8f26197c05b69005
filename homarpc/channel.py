"""The blocking channel: ``homarpc.insecure_channel()`` and its multicallables.

Layer: rpc. Imports: stdlib, public ``homarpc.transport`` names, rpc-layer modules.

A channel owns one client transport and one ``ClientEndpoint`` (``_call.py``); it is
thread-safe, and every call on it shares them. Targets naming several servers get
round-robin spreading; a server that does not answer is skipped for a moment and
unary-request calls fail over to the next one.

Targets are resolved late and leniently, as grpcio does (``_targets``): a channel
is made whatever its target says; calls fail ``UNAVAILABLE`` while it names no
address, and connecting (``_connectivity``) resolves host names again. The
connectivity state comes from probes and from calls that found no server.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

from ._call import ClientCallCore
from ._client_calls import ResponseStream, UnaryOutcome, send_requests
from ._client_endpoint import ClientEndpoint
from ._connectivity import Backoff, Connectivity, probe
from ._interfaces import ChannelConnectivity
from ._options import message_limits, transport_settings
from ._targets import TargetError, needs_dns, resolve, split_target
from .metadata import Metadatum, check_metadata
from .status import RpcError, StatusCode
from .transport import HomaError, Transport, open_transport

log = logging.getLogger("homarpc.channel")

IDLE = ChannelConnectivity.IDLE
Address = tuple[str, int]

__all__ = [
    "Channel",
    "StreamStreamMultiCallable",
    "StreamUnaryMultiCallable",
    "UnaryStreamMultiCallable",
    "UnaryUnaryMultiCallable",
    "insecure_channel",
]

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")
Serializer = Callable[[Any], bytes] | None
Deserializer = Callable[[bytes], Any] | None
MetadataArg = Sequence[tuple[str, str | bytes]] | None

#: How long a server that did not answer is skipped by round-robin.
_DOWN_FOR = 1.0
#: ``wait_for_ready`` retries back off from this delay to at most ``_RETRY_MAX``.
_RETRY_FIRST = 0.005
_RETRY_MAX = 0.25


class _Targets:
    """Round-robin over the channel's servers, skipping ones recently unreachable."""

    def __init__(self, addresses: list[tuple[str, int]]) -> None:
        self.addresses = addresses
        self._turn = itertools.count()
        self._down_until: dict[tuple[str, int], float] = {}

    def pick(self, attempt: int) -> tuple[str, int] | None:
        """The server for this attempt of a call; None after trying them all."""
        if attempt >= len(self.addresses):
            return None  # (also while the target names no address)
        if len(self.addresses) == 1:
            return self.addresses[0]
        now = time.monotonic()
        count = len(self.addresses)
        start = next(self._turn)
        for offset in range(count):
            candidate = self.addresses[(start + offset) % count]
            if self._down_until.get(candidate, 0.0) <= now:
                return candidate
        return self.addresses[start % count]

    def mark_down(self, address: tuple[str, int]) -> None:
        self._down_until[address] = time.monotonic() + _DOWN_FOR


class Channel:
    """A homarpc channel; make one with ``homarpc.insecure_channel()``."""

    def __init__(
        self,
        target: str,
        options: Sequence[tuple[str, Any]] | None = None,
        transport: str | None = None,
        transport_options: Mapping[str, Any] | None = None,
    ) -> None:
        kind, self._parts = split_target(target)
        self.target = target
        self._dns = needs_dns(self._parts)
        #: Why the target names no address (None: it does).
        self._unresolved: str | None = None
        self._targets = _Targets(self._resolve())
        max_receive, self._max_send = message_limits(options)
        local_host = _local_host(self._targets.addresses)
        chosen, settings = transport_settings(kind or transport, transport_options)
        link = open_transport(chosen, (local_host, 0), server=False, **settings)
        self._endpoint = ClientEndpoint(link, max_receive_message_length=max_receive)
        self._connectivity = Connectivity(self._probe, Backoff(options))
        self._open_probe_link: Callable[[], Transport] = lambda: open_transport(
            chosen, (local_host, 0), server=False, **settings
        )
        self._probe_link: Transport | None = None
        self._closed = False
        self._lock = threading.Lock()

    # -- multicallables -------------------------------------------------------------

    def unary_unary(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> UnaryUnaryMultiCallable[Any, Any]:
        return UnaryUnaryMultiCallable(
            self, method, request_serializer, response_deserializer
        )

    def unary_stream(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> UnaryStreamMultiCallable[Any, Any]:
        return UnaryStreamMultiCallable(
            self, method, request_serializer, response_deserializer
        )

    def stream_unary(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> StreamUnaryMultiCallable[Any, Any]:
        return StreamUnaryMultiCallable(
            self, method, request_serializer, response_deserializer
        )

    def stream_stream(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> StreamStreamMultiCallable[Any, Any]:
        return StreamStreamMultiCallable(
            self, method, request_serializer, response_deserializer
        )

    # -- connectivity (see ``_connectivity``: probes stand in for connections) ------

    def subscribe(
        self,
        callback: Callable[[ChannelConnectivity], None],
        try_to_connect: bool = False,
    ) -> None:
        """Call ``callback(state)`` with the current state, then on every change
        (on another thread, in order); ``try_to_connect`` leaves IDLE."""
        self._connectivity.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Callable[[ChannelConnectivity], None]) -> None:
        self._connectivity.unsubscribe(callback)

    def close(self) -> None:
        """Cancel the calls still running (CANCELLED) and release the transport;
        subscribers then see SHUTDOWN."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._endpoint.close()
        self._connectivity.shutdown()
        self._drop_probe_link()

    def _resolve(self) -> list[tuple[str, int]]:
        """The target's addresses now ([] and ``_unresolved`` says why: none)."""
        try:
            addresses = resolve(self.target, self._parts)
        except TargetError as exc:
            self._unresolved = str(exc)
            return []
        self._unresolved = None
        return addresses

    def _probe(self, timeout: float) -> bool:
        """Whether a server answers at one of the target's addresses (resolved
        again first when they come from DNS), within ``timeout`` seconds."""
        if self._dns or not self._targets.addresses:
            addresses = self._resolve()
            if addresses or not self._dns:
                self._targets.addresses = addresses
        try:
            with self._lock:
                if self._closed or not self._targets.addresses:
                    return False
                if self._probe_link is None:  # its own socket (see ``probe``)
                    self._probe_link = self._open_probe_link()
                link = self._probe_link
            answered = probe(link, self._targets.addresses, timeout)
        except (HomaError, OSError, ValueError):
            return False  # closed under us, or a send the transport refused
        if answered:
            self._drop_probe_link()  # not needed again until the server is lost
        return answered

    def _drop_probe_link(self) -> None:
        with self._lock:
            link, self._probe_link = self._probe_link, None
        if link is not None:
            link.close()

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<homarpc.Channel to {self.target} over {self._endpoint.transport.kind}>"
        )

    # -- used by the multicallables ---------------------------------------------------

    def _starter(
        self,
        method: str,
        metadata: tuple[Metadatum, ...],
        timeout: float | None,
        request: bytes | None,
        response_streaming: bool,
        *,
        attended: bool = False,
        wait_for_ready: bool | None = None,
    ) -> Callable[[Callable[[], None], int], ClientCallCore | None]:
        """A function that opens attempt N of a call (None: give up); the caller
        starts it. ``attended``: a thread will wait for the outcome (see
        ``ClientEndpoint.open_call``). An attempt that found no server fails over
        to the next one; with ``wait_for_ready`` it cycles through them (backing
        off) until the deadline instead of failing with UNAVAILABLE."""
        first: list[ClientCallCore] = []
        last: list[ClientCallCore] = []

        def start(notify: Callable[[], None], attempt: int) -> ClientCallCore | None:
            watch = None
            if self._connectivity.state is IDLE:  # a call leaves IDLE, as in grpcio
                alone = len(self._targets.addresses) == 1
                watch = self._connectivity.watch(notify, alone)
                notify = watch or notify
            if last:
                self._targets.mark_down(last[0].dest)
                self._connectivity.lost()
                if request is None:
                    return None  # a streamed request cannot be replayed
            dest, delay = self._targets.pick(attempt), 0.0
            if dest is None and not first:  # the target names no address (yet)
                if watch is not None:
                    self._connectivity.called(False)
                return self._unresolved_call(method, response_streaming, notify)
            if dest is None:
                remaining = first[0].time_remaining() if first else timeout
                if not wait_for_ready or remaining == 0.0:
                    return None
                dest = self._targets.addresses[attempt % len(self._targets.addresses)]
                delay = min(_RETRY_MAX, _RETRY_FIRST * 2 ** min(attempt, 8))
            # A retry keeps the first attempt's deadline.
            remaining = first[0].time_remaining() if first else timeout
            core = self._endpoint.open_call(
                dest,
                method,
                metadata,
                remaining,
                request=request,
                response_streaming=response_streaming,
                notify=notify,
                attended=attended,
            )
            core.start_delay = delay
            if watch is not None:
                watch.core = core  # this call's outcome decides CONNECTING
            first[:] = first or [core]
            last[:] = [core]
            return core

        return start

    def _unresolved_call(
        self, method: str, response_streaming: bool, notify: Callable[[], None]
    ) -> ClientCallCore:
        """A call that ended before it began: the target names no address (yet).
        UNAVAILABLE with grpcio's "errors resolving ..." (even with
        ``wait_for_ready``: see ``_connectivity``, "Differences from grpcio")."""
        core = self._endpoint.open_call(
            ("0.0.0.0", 0), method, (), None, request=None,
            response_streaming=response_streaming, notify=notify, attended=True,
        )  # fmt: skip
        self._endpoint.forget(core.call_id)
        core.initial_metadata = core.initial_metadata or ()
        core.details = self._unresolved or f"errors resolving {self.target}"
        core.code = StatusCode.UNAVAILABLE
        return core

    def _check_send_size(self, payload: bytes) -> None:
        if 0 <= self._max_send < len(payload):
            raise RpcError(
                StatusCode.RESOURCE_EXHAUSTED,
                f"Sent message larger than max ({len(payload)} vs. {self._max_send})",
            )


def _local_host(addresses: list[Address]) -> str:
    """Bind to loopback when every server is local (the udp backend then uses
    loopback's large datagrams); else to any address of the right family (IPv4
    while the target names no address yet)."""
    if not addresses:
        return "0.0.0.0"
    is_v6 = ":" in addresses[0][0]
    if all(host.startswith("127.") or host == "::1" for host, _ in addresses):
        return "::1" if is_v6 else "127.0.0.1"
    return "::" if is_v6 else "0.0.0.0"


class _MultiCallable(Generic[RequestT, ResponseT]):
    def __init__(
        self,
        channel: Channel,
        method: str,
        serializer: Serializer,
        deserializer: Deserializer,
    ) -> None:
        self._channel = channel
        self._method = method
        self._serialize: Callable[[Any], bytes] = serializer or _bytes_only
        self._deserialize = deserializer

    def _payload(self, request: Any) -> bytes:
        try:
            payload = self._serialize(request)
        except Exception:
            log.exception("homarpc: Exception serializing request!")
            raise RpcError(
                StatusCode.INTERNAL, "Exception serializing request!"
            ) from None
        self._channel._check_send_size(payload)
        return bytes(payload)

    def _unary(
        self,
        request: Any,
        timeout: float | None,
        metadata: MetadataArg,
        outcome: type[UnaryOutcome] | type[ResponseStream],
        attended: bool = False,
        wait_for_ready: bool | None = None,
    ) -> Any:
        return self._open(
            self._payload(request), timeout, metadata, outcome, attended, wait_for_ready
        )

    def _streamed(
        self,
        timeout: float | None,
        metadata: MetadataArg,
        outcome: type[UnaryOutcome] | type[ResponseStream],
        attended: bool = False,
    ) -> Any:
        return self._open(None, timeout, metadata, outcome, attended, None)

    def _open(
        self,
        payload: bytes | None,
        timeout: float | None,
        metadata: MetadataArg,
        outcome: type[UnaryOutcome] | type[ResponseStream],
        attended: bool,
        wait_for_ready: bool | None,
    ) -> Any:
        entries = tuple(check_metadata(metadata))
        start = self._channel._starter(
            self._method,
            entries,
            timeout,
            payload,
            outcome is ResponseStream,
            attended=attended,
            wait_for_ready=wait_for_ready,
        )
        call = outcome(start, self._deserialize)
        call._core.start()
        return call

    def _feed(self, call: Any, requests: Any) -> None:
        threading.Thread(
            target=send_requests,
            args=(call, iter(requests), self._payload),
            daemon=True,
            name="homarpc-requests",
        ).start()


def _bytes_only(request: Any) -> bytes:
    """The serializer of methods that have none: the request must already be bytes."""
    if isinstance(request, bytes | bytearray | memoryview):
        return bytes(request)
    raise TypeError(
        f"request is a {type(request).__name__}, not bytes, and the method has no "
        "request_serializer"
    )


class UnaryUnaryMultiCallable(_MultiCallable[RequestT, ResponseT]):
    """Calls a unary-unary method; one Homa RPC per call."""

    def __call__(
        self,
        request: RequestT,
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> ResponseT:
        call = self._unary(
            request, timeout, metadata, UnaryOutcome, True, wait_for_ready
        )
        return call.result()  # type: ignore[no-any-return]

    def with_call(
        self,
        request: RequestT,
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> tuple[ResponseT, UnaryOutcome]:
        call = self._unary(
            request, timeout, metadata, UnaryOutcome, True, wait_for_ready
        )
        return call.result(), call

    def future(
        self,
        request: RequestT,
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> UnaryOutcome:
        return self._unary(  # type: ignore[no-any-return]
            request, timeout, metadata, UnaryOutcome, False, wait_for_ready
        )


class UnaryStreamMultiCallable(_MultiCallable[RequestT, ResponseT]):
    """Calls a unary-stream method; returns an iterator that is also a ``Call``."""

    def __call__(
        self,
        request: RequestT,
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> ResponseStream:
        return self._unary(  # type: ignore[no-any-return]
            request, timeout, metadata, ResponseStream, False, wait_for_ready
        )


class StreamUnaryMultiCallable(_MultiCallable[RequestT, ResponseT]):
    """Calls a stream-unary method with an iterator of requests."""

    def __call__(
        self,
        request_iterator: Iterator[RequestT],
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> ResponseT:
        call = self._streamed(timeout, metadata, UnaryOutcome, attended=True)
        send_requests(call, iter(request_iterator), self._payload)
        return call.result()  # type: ignore[no-any-return]

    def with_call(
        self,
        request_iterator: Iterator[RequestT],
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> tuple[ResponseT, UnaryOutcome]:
        call = self._streamed(timeout, metadata, UnaryOutcome, attended=True)
        send_requests(call, iter(request_iterator), self._payload)
        return call.result(), call

    def future(
        self,
        request_iterator: Iterator[RequestT],
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> UnaryOutcome:
        call = self._streamed(timeout, metadata, UnaryOutcome)
        self._feed(call, request_iterator)
        return call  # type: ignore[no-any-return]


class StreamStreamMultiCallable(_MultiCallable[RequestT, ResponseT]):
    """Calls a bidirectional-streaming method; returns an iterator and ``Call``."""

    def __call__(
        self,
        request_iterator: Iterator[RequestT],
        timeout: float | None = None,
        metadata: MetadataArg = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> ResponseStream:
        call = self._streamed(timeout, metadata, ResponseStream)
        self._feed(call, request_iterator)
        return call  # type: ignore[no-any-return]


def insecure_channel(
    target: str,
    options: Sequence[tuple[str, Any]] | None = None,
    compression: Any = None,
    *,
    transport: str | None = None,
    transport_options: Mapping[str, Any] | None = None,
) -> Channel:
    """Open a channel to ``target``, as ``grpc.insecure_channel`` does.

    Args:
        target: "host:port", "homa://host:port" (kernel), "homa+udp://host:port",
            or several servers separated by commas (round-robin with failover).
        options: grpcio-style channel args; ``grpc.max_receive_message_length``
            (default 4 MiB) and ``grpc.max_send_message_length`` are honoured.
        compression: accepted for compatibility; messages travel uncompressed.
        transport: "udp", "kernel", "memory" or "auto" when the target has no scheme.
        transport_options: backend settings passed to ``open_transport``.
    """
    return Channel(target, options, transport, transport_options)
