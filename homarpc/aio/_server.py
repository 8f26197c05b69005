"""``homarpc.aio.Server``: serve calls with ``async def`` handlers on an event loop.

Layer: rpc (homarpc.aio). Imports: stdlib, ``homarpc`` rpc-layer modules
(``server``, ``_server_call``, ``_handlers``), ``homarpc.aio`` siblings.

The aio server *is* the blocking server (``homarpc.server.Server``: ports, handler
tables, admission, graceful stop, the ``_server_call`` call core) with two changes: its
transports are read from the event loop (``_driver.ServerPump``) instead of by
receive threads, and a new call runs there instead of in the thread pool. The
handler is looked up (through async or blocking server interceptors) and run as a
task: ``async def`` and async-generator behaviors on the loop
(``_runner.run_async``), plain functions in the migration thread pool with the
blocking runner. A call cancelled by the
client, by its deadline or by ``stop()`` cancels its handler task.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent import futures
from typing import Any

from .. import _handlers
from .._handlers import HandlerCallDetails, RpcMethodHandler, as_method_handler
from .._server_call import ServerCallCore
from ..server import Server as _BlockingServer
from ..status import StatusCode
from ._bridge import call_in_loop
from ._driver import ServerPump
from ._runner import is_async_handler, run_async, run_blocking

__all__ = ["Server", "ServerInterceptor", "server"]

log = logging.getLogger("homarpc.aio.server")


Continuation = Callable[[HandlerCallDetails], Awaitable[RpcMethodHandler | None]]


class ServerInterceptor(abc.ABC):
    """An async server interceptor (``grpc.aio.ServerInterceptor``)."""

    @abc.abstractmethod
    async def intercept_service(
        self, continuation: Continuation, handler_call_details: HandlerCallDetails
    ) -> RpcMethodHandler | None:
        """Return ``await continuation(details)``, a substitute handler, or None."""


class _LoopServer(_BlockingServer):
    """The blocking server, running admitted calls as tasks on an event loop."""

    def attach(
        self,
        loop: asyncio.AbstractEventLoop,
        interceptors: Sequence[Any],
        pool: futures.Executor | None,
    ) -> None:
        """Serve on ``loop`` from now on (``start()`` calls this first)."""
        self.loop = loop
        self.interceptors = list(interceptors)
        self.pool = pool
        self.tasks: set[asyncio.Task[None]] = set()
        self.pumps: list[ServerPump] = []

    # -- reading from the loop instead of receive threads (see ``_driver``) ----------

    def add_insecure_port(self, address: str) -> int:
        if self._started:
            raise RuntimeError("add ports before start(): the aio server reads them")
        return super().add_insecure_port(address)

    def start(self) -> None:
        with self._lock:
            if self._started:
                raise ValueError("Cannot start an already-started server")
            self._started = True
            endpoints = list(self._endpoints)
        self.pumps = [ServerPump(endpoint, self.loop) for endpoint in endpoints]

    def _shut_down(self) -> None:
        """Stop reading on the loop first, then close the endpoints as usual."""
        self._on_loop(self._close_pumps)
        super()._shut_down()

    def _close_pumps(self) -> None:
        for pump in self.pumps:
            pump.close()

    def _on_loop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop and wait for it (at once if already there)."""
        try:
            here = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            here = False
        if here:
            fn()
            return
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        if call_in_loop(self.loop, run):
            done.wait(timeout=5)

    def _dispatch(self, core: ServerCallCore) -> None:
        """An admitted call (read on the loop, by a ``ServerPump``): run it."""
        self._spawn(core)

    def _spawn(self, core: ServerCallCore) -> None:
        task = self.loop.create_task(self._serve(core))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        loop = self.loop

        def cancel_if_cancelled() -> None:
            if core.cancelled:
                call_in_loop(loop, task.cancel)

        if not core.add_done_callback(cancel_if_cancelled):
            task.cancel()

    async def _serve(self, core: ServerCallCore) -> None:
        details = HandlerCallDetails(core.method, core.metadata)
        try:
            handler = await self._intercepted(0, details)
        except Exception as exc:
            log.exception("homarpc: server interceptor failed for %s", core.method)
            core.finish(StatusCode.UNKNOWN, f"Exception calling application: {exc}")
            return
        if handler is None:
            core.finish(StatusCode.UNIMPLEMENTED, "Method not found!")
            return
        runnable = as_method_handler(handler)  # a user's or grpcio's handler too
        if is_async_handler(runnable):
            await run_async(core, runnable, self._max_send)
        else:
            await run_blocking(core, runnable, self._max_send, self.pool)

    async def _intercepted(
        self, index: int, details: HandlerCallDetails
    ) -> RpcMethodHandler | None:
        """Run interceptor ``index`` (then the next ones), ending in the lookup."""
        if index == len(self.interceptors):
            return self._find_handler(details)

        async def continuation(
            next_details: HandlerCallDetails,
        ) -> RpcMethodHandler | None:
            return await self._intercepted(index + 1, next_details)

        result = self.interceptors[index].intercept_service(continuation, details)
        if inspect.isawaitable(result):
            result = await result
        return None if result is None else _handlers.as_method_handler(result)


class Server:
    """An asyncio server (``grpc.aio.Server``'s shape); make it with ``server()``."""

    def __init__(
        self,
        inner: _LoopServer,
        interceptors: Sequence[Any],
        pool: futures.Executor | None,
    ) -> None:
        self._inner = inner
        self._interceptors = list(interceptors)
        self._pool = pool
        self._stopped: asyncio.Event | None = None

    # -- set-up (the blocking server's, unchanged) --------------------------------

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Iterable[Any]) -> None:
        """Add generic handlers (ours or grpcio's), asked in the order added."""
        self._inner.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, Any]
    ) -> None:
        """Register ``/service_name/<method>`` handlers (what generated code calls)."""
        self._inner.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        """Listen on ``address`` ("host:port"; port 0 picks one); return the port.

        Raises:
            RuntimeError: the address is malformed or cannot be bound.
        """
        return self._inner.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: Any) -> int:
        return self._inner.add_secure_port(address, server_credentials)

    # -- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving, on the running loop, on every port added so far."""
        self._inner.attach(asyncio.get_running_loop(), self._interceptors, self._pool)
        self._stopped = asyncio.Event()
        self._inner.start()

    async def stop(self, grace: float | None) -> None:
        """Refuse new calls; after ``grace`` seconds (None: now) cancel the rest."""
        # Off the loop: closing lingers (bounded) until the last replies got
        # through, and the loop must keep running meanwhile.
        stopped = await asyncio.to_thread(self._inner.stop, grace)
        await asyncio.to_thread(stopped.wait)
        tasks = set(self._inner.tasks) if self._stopped is not None else set()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if self._stopped is not None:
            self._stopped.set()

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Wait until ``stop()`` has finished; True if ``timeout`` ran out first."""
        if self._stopped is None:
            raise RuntimeError("the server has not been started")
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout)
        except TimeoutError:
            return True
        return False


def server(
    migration_thread_pool: futures.Executor | None = None,
    handlers: Sequence[Any] | None = None,
    interceptors: Sequence[Any] | None = None,
    options: Sequence[tuple[str, Any]] | None = None,
    maximum_concurrent_rpcs: int | None = None,
    compression: object = None,
    *,
    transport: str | None = None,
    transport_options: Mapping[str, Any] | None = None,
) -> Server:
    """Create an asyncio server (``grpc.aio.server``'s signature, plus ``transport``).

    Args:
        migration_thread_pool: where plain (non-async) handlers run; default: the
            loop's default executor.
        handlers: generic handlers to start with.
        interceptors: server interceptors, ``async`` or blocking
            ``intercept_service``, applied in list order.
        options: grpcio-style channel args; ``grpc.max_receive_message_length`` is
            honoured, unknown keys are ignored.
        maximum_concurrent_rpcs: calls beyond this get RESOURCE_EXHAUSTED.
        compression: accepted for compatibility; messages go uncompressed.
        transport: "udp", "kernel", "memory" or "auto" (default:
            ``$HOMARPC_TRANSPORT``, else auto).
        transport_options: backend settings passed to ``open_transport``.
    """
    inner = _LoopServer(
        1,  # max_workers: unused, calls go to the loop (``_dispatch``)
        handlers or (),
        (),  # interceptors run on the loop, where they may be async
        options or (),
        maximum_concurrent_rpcs,
        transport,
        transport_options=transport_options,
    )
    return Server(inner, interceptors or (), migration_thread_pool)
