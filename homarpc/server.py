"""The blocking server: ``homarpc.server()``, handlers in a thread pool.

Layer: rpc. Imports: stdlib, public ``homarpc.transport`` names, rpc-layer modules.

Each listening address is a ``ServerEndpoint`` (``_server_endpoint.py``); a new call
runs on the thread that received it, or waits for a handler to finish when
``max_workers`` are busy, and ``run_call`` (``_servicer.py``) runs the behavior
against a ``ServicerContext``.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent import futures
from typing import Any

from ._handlers import (
    HandlerCallDetails,
    RpcMethodHandler,
    lookup,
    registered_method_table,
)
from ._options import message_limits, transport_settings
from ._server_call import ServerCallCore
from ._server_endpoint import ServerEndpoint
from ._servicer import run_call
from ._targets import TargetError, parse_bind
from .interceptors import ServerInterceptor, chain_server_interceptors
from .metadata import metadata_size_limit
from .status import StatusCode
from .transport import HomaError, open_transport

__all__ = ["Server", "server"]

log = logging.getLogger("homarpc.server")

_DEFAULT_WORKERS = 16


class Server:
    """A homarpc server; make one with ``homarpc.server()``."""

    def __init__(
        self,
        max_workers: int,
        handlers: Sequence[Any],
        interceptors: Sequence[ServerInterceptor],
        options: Sequence[tuple[str, Any]],
        maximum_concurrent_rpcs: int | None,
        transport: str | None,
        transport_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._generic: list[Any] = list(handlers)
        self._registered: dict[str, RpcMethodHandler] = {}
        self._lookup = chain_server_interceptors(list(interceptors), self._find_handler)
        self._max_receive, self._max_send = message_limits(options)
        self._max_metadata = metadata_size_limit(options)
        self._max_rpcs = maximum_concurrent_rpcs
        self._transport_kind = transport
        self._transport_options = dict(transport_options or {})
        self._lock = threading.Lock()
        self._endpoints: list[ServerEndpoint] = []
        self._active = 0
        #: Handlers running now, at most ``_max_running`` (grpcio's ``max_workers``);
        #: calls beyond that wait in ``_queued`` for a handler to finish.
        self._running = 0
        self._max_running = max_workers
        self._queued: deque[ServerCallCore] = deque()
        self._started = False
        self._stopping = False
        self._stopped = threading.Event()

    # -- configuration ------------------------------------------------------------

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[Any]) -> None:
        self._generic.extend(generic_rpc_handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, Any]
    ) -> None:
        self._registered.update(registered_method_table(service_name, method_handlers))

    def add_insecure_port(self, address: str) -> int:
        """Listen on ``address`` ("host:port"; port 0 picks one); return the port.

        Raises:
            RuntimeError: the address is malformed or cannot be bound.
        """
        try:
            kind, local = parse_bind(address)
            chosen, settings = transport_settings(
                kind or self._transport_kind, self._transport_options
            )
            transport = open_transport(chosen, local, server=True, **settings)
        except (TargetError, OSError, ValueError, HomaError) as exc:
            raise RuntimeError(f"Failed to bind to address {address}: {exc}") from None
        endpoint = ServerEndpoint(
            transport,
            on_call=self._on_call,
            max_receive_message_length=self._max_receive,
            max_metadata_size=self._max_metadata,
        )
        with self._lock:
            self._endpoints.append(endpoint)
            if self._started:
                endpoint.start()
        log.info(
            "homarpc server listening on %s over %s",
            transport.local_addr,
            transport.kind,
        )
        return transport.local_addr[1]

    def add_secure_port(self, address: str, server_credentials: Any) -> int:
        raise RuntimeError("homarpc serves insecure ports only: use add_insecure_port")

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._started:
                raise ValueError("Cannot start an already-started server")
            self._started = True
            endpoints = list(self._endpoints)
        for endpoint in endpoints:
            endpoint.start()

    def stop(self, grace: float | None) -> threading.Event:
        """Refuse new calls now; end live ones after ``grace`` seconds (None: now)."""
        with self._lock:
            self._stopping = True
        if grace:
            threading.Thread(
                target=self._stop_after,
                args=(grace,),
                daemon=True,
                name="homarpc-server-stop",
            ).start()
        else:
            self._shut_down()
        return self._stopped

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until stopped; True when ``timeout`` passed first (as grpcio)."""
        return not self._stopped.wait(timeout)

    def _stop_after(self, grace: float) -> None:
        cores = [c for e in self._endpoints for c in e.live_calls()]
        done = threading.Event()
        remaining = [len(cores)]
        lock = threading.Lock()

        def one_done() -> None:
            with lock:
                remaining[0] -= 1
                if remaining[0] <= 0:
                    done.set()

        for core in cores:
            if not core.add_done_callback(one_done):
                one_done()
        if not cores:
            done.set()
        done.wait(grace)
        self._shut_down()

    def _shut_down(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            endpoints = list(self._endpoints)
        for endpoint in endpoints:
            endpoint.close()
        self._stopped.set()

    # -- calls --------------------------------------------------------------------

    def _find_handler(self, details: HandlerCallDetails) -> RpcMethodHandler | None:
        return self._registered.get(details.method) or lookup(self._generic, details)

    def _on_call(self, core: ServerCallCore) -> None:
        """A new call arrived (receive thread): admit it and hand it to the pool."""
        with self._lock:
            refused = self._refusal()
            if refused is None:
                self._active += 1
        if refused is not None:
            core.terminate(*refused)
            return
        if not core.add_done_callback(self._call_ended):
            self._call_ended()
            return
        self._dispatch(core)

    def _dispatch(self, core: ServerCallCore) -> None:
        """Run an admitted call; ``homarpc.aio`` overrides this one method to hand
        calls to its event loop.

        The handler runs right here on the receive thread (the endpoint keeps
        another thread receiving), saving a thread hand-off per call, for up to
        ``max_workers`` calls at once; beyond that calls wait in a queue, as in
        grpcio's pool, and the next handler to finish runs the oldest. A queued
        call still has its deadline, cancellation and liveness watched (the
        endpoint sweeps them whatever the handlers do); one that ended while it
        waited is skipped.
        """
        with self._lock:
            if self._running >= self._max_running:
                self._queued.append(core)
                return
            self._running += 1
        self._run_here(core)

    def _run_here(self, first: ServerCallCore) -> None:
        """Run ``first``'s handler on this thread, then queued calls until none wait."""
        core: ServerCallCore | None = first
        while core is not None:
            if core.is_active:
                run_call(core, self._lookup, self._max_send)
            with self._lock:
                core = self._queued.popleft() if self._queued else None
                if core is None:
                    self._running -= 1

    def _refusal(self) -> tuple[StatusCode, str] | None:
        if self._stopping:
            return StatusCode.UNAVAILABLE, "Server shutting down"
        if self._max_rpcs is not None and self._active >= self._max_rpcs:
            return StatusCode.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!"
        return None

    def _call_ended(self) -> None:
        with self._lock:
            self._active -= 1

    def stats(self) -> dict[str, Any]:
        """Counters an operator can read, summed over the listening ports.

        Calls: ``live_calls``, ``queued_calls`` (waiting for a worker),
        ``running_handlers``, ``refused_calls`` (before their handler: a repeated
        start, bad metadata, too much early data), ``replayed_calls``,
        ``malformed_requests``. Memory a peer can make us hold:
        ``queued_message_bytes``, ``early_frames``, ``early_frame_bytes``,
        ``over_budget``. Transport: ``transport`` holds each port's own counters
        where the backend has them (datagrams, drops by reason, NEED_ACKs and
        RESENDs sent, live RPCs, bytes held). ``docs/server.md`` lists them.
        """
        with self._lock:
            endpoints = list(self._endpoints)
            totals: dict[str, Any] = {
                "queued_calls": len(self._queued),
                "running_handlers": self._running,
            }
        transports = []
        for endpoint in endpoints:
            for name, value in endpoint.stats().items():
                totals[name] = totals.get(name, 0) + value
            transports.append(endpoint.transport_stats())
        totals["transport"] = transports
        return totals

    def __repr__(self) -> str:
        ports = [e.transport.local_addr for e in self._endpoints]
        return f"<homarpc.Server on {ports}>"


def _pool_size(pool: futures.Executor | None, max_workers: int | None) -> int:
    """How many handlers may run at once: the pool's size (grpcio's meaning), else
    ``max_workers``, else 16. No executor is made: handlers run on the threads
    that receive the calls (``Server._dispatch``)."""
    size = getattr(pool, "_max_workers", None) if pool is not None else max_workers
    return size if isinstance(size, int) and size > 0 else _DEFAULT_WORKERS


def server(
    thread_pool: futures.Executor | None = None,
    handlers: Sequence[Any] | None = None,
    interceptors: Sequence[ServerInterceptor] | None = None,
    options: Sequence[tuple[str, Any]] | None = None,
    maximum_concurrent_rpcs: int | None = None,
    compression: Any = None,
    *,
    max_workers: int | None = None,
    transport: str | None = None,
    transport_options: Mapping[str, Any] | None = None,
) -> Server:
    """Create a server, as ``grpc.server`` does.

    Args:
        thread_pool: grpcio's executor argument; homarpc takes its size as the
            number of handlers that run at once (``max_workers``, default 16).
            Handlers run on the thread that received the call (no hand-off) or
            on the one that finished the handler before; calls beyond the limit
            wait in order, as in grpcio.
        handlers: generic handlers to start with.
        interceptors: ``ServerInterceptor`` objects, applied in list order.
        options: grpcio-style channel args; ``grpc.max_receive_message_length`` and
            ``grpc.max_send_message_length`` are honoured, unknown keys ignored.
        maximum_concurrent_rpcs: beyond this, new calls get RESOURCE_EXHAUSTED.
        compression: accepted for compatibility; messages travel uncompressed.
        max_workers: how many handlers run at once when no ``thread_pool`` is
            given (default 16).
        transport: "udp", "kernel", "memory" or "auto" (default:
            ``$HOMARPC_TRANSPORT``, else auto). A scheme in the address wins.
        transport_options: backend settings passed to ``open_transport``.
    """
    return Server(
        _pool_size(thread_pool, max_workers),
        handlers or (),
        interceptors or (),
        options or (),
        maximum_concurrent_rpcs,
        transport,
        transport_options,
    )
