"""``homarpc.aio.ServicerContext``: what an async handler sees of its call.

Layer: rpc (homarpc.aio). Imports: stdlib, ``homarpc`` rpc-layer modules
(``_servicer``, ``_server_call`` core, ``metadata``, ``status``), ``homarpc.aio``
siblings.

The context drives one ``homarpc._server_call.ServerCallCore``, the call core the blocking
server uses too. The core's ``notify`` wakes the context on the loop (coalesced, one
pending wake-up at most); reads and writes then run on the loop, waiting on an
``asyncio.Event`` while the flow-control window is closed or no request is queued.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

from .._server_call import ServerCallCore
from .._servicer import ContextState, abort_code
from ..metadata import check_metadata
from ..status import Status, StatusCode
from ._bridge import call_in_loop
from ._errors import EOF, AbortError
from ._metadata import MetadataLike

__all__ = ["ServicerContext"]


class ServicerContext(ContextState):
    """The server side of one call, for ``async def`` handlers (grpc.aio's shape).

    The call's facts and the chosen status (``peer()``, ``set_code()``,
    ``set_trailing_metadata()``, ...) are the blocking context's
    (``_servicer.ContextState``); what waits is here, as coroutines.
    """

    def __init__(
        self,
        core: ServerCallCore,
        decode: Callable[[bytes], Any],
        encode: Callable[[Any], bytes],
    ) -> None:
        super().__init__(core)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._decode = decode
        self._encode = encode
        self._changed = asyncio.Event()
        self._wake_pending = False
        core.notify = self._notify

    # -- waking up -----------------------------------------------------------------

    def _notify(self) -> None:
        if threading.get_ident() == self._loop_thread:
            self._changed.set()
        elif not self._wake_pending:
            self._wake_pending = True
            call_in_loop(self._loop, self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        self._changed.set()

    async def _wait_until(self, ready: Callable[[], bool]) -> None:
        while True:
            self._changed.clear()
            if ready():
                return
            await self._changed.wait()

    # -- messages ------------------------------------------------------------------

    async def read(self) -> Any:
        """The next request, or ``EOF`` once the client has half-closed."""
        while True:
            self._changed.clear()
            payload = self._core.read()
            if payload is not None:
                return self._decode(payload)
            if self._core.reading_done:
                return EOF
            await self._changed.wait()

    async def requests(self) -> AsyncIterator[Any]:
        """The request iterator a streaming-request handler receives."""
        while (request := await self.read()) is not EOF:
            yield request

    async def write(self, message: Any) -> None:
        """Send one response message; waits while the client's window is full.

        Raises:
            asyncio.CancelledError: the call has ended (cancelled, deadline, stop).
        """
        payload = self._encode(message)
        while True:
            await self._wait_until(self._core.writable)
            if not self._core.is_active:
                # Cancelled, timed out or stopped: end the handler as grpc.aio
                # does, rather than let it produce into the void.
                raise asyncio.CancelledError("the call has ended")
            if self._core.write(payload):
                return

    # -- metadata ------------------------------------------------------------------

    async def send_initial_metadata(self, initial_metadata: MetadataLike) -> None:
        entries = tuple(check_metadata(initial_metadata))
        self._core.send_initial_metadata(entries, flush=True)

    # -- status --------------------------------------------------------------------

    async def abort(
        self,
        code: StatusCode,
        details: str = "",
        trailing_metadata: MetadataLike = (),
    ) -> NoReturn:
        """End the call with ``code``; raises ``AbortError`` (let it propagate).

        Raises:
            ValueError: ``code`` is OK (grpcio refuses that too).
        """
        status = abort_code(code)
        if status is StatusCode.OK:
            raise ValueError("abort() needs a status code other than OK")
        self._code, self._details = status, details
        if trailing_metadata:
            self.set_trailing_metadata(trailing_metadata)
        raise AbortError(f"call aborted with {status.name}: {details}")

    async def abort_with_status(self, status: Status) -> NoReturn:
        await self.abort(status.code, status.details, status.trailing_metadata)

    # -- the call ------------------------------------------------------------------

    def cancelled(self) -> bool:
        return self._core.cancelled

    def done(self) -> bool:
        return not self._core.is_active

    def add_done_callback(self, callback: Callable[[ServicerContext], object]) -> None:
        """Run ``callback(context)`` on the loop when the call ends."""
        if not self._core.add_done_callback(
            lambda: call_in_loop(self._loop, callback, self)
        ):
            self._loop.call_soon(callback, self)

    def __repr__(self) -> str:
        return f"<aio.ServicerContext {self._core.method} from {self.peer()}>"
