"""``homarpc.aio.ServicerContext``: what an async handler sees of its call.

Layer: rpc (homarpc.aio). Imports: stdlib, ``homarpc`` rpc-layer modules
(``_serving`` core, ``metadata``, ``status``), ``homarpc.aio`` siblings.

The context drives one ``homarpc._serving.ServerCallCore``, the call core the blocking
server uses too. The core's ``notify`` wakes the context on the loop (coalesced, one
pending wake-up at most); reads and writes then run on the loop, waiting on an
``asyncio.Event`` while the flow-control window is closed or no request is queued.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

from .._serving import ServerCallCore
from ..metadata import Metadatum, check_metadata, format_peer
from ..status import Status, StatusCode, as_status_code
from ._bridge import call_in_loop
from ._errors import EOF, AbortError
from ._metadata import MetadataLike

__all__ = ["ServicerContext"]


class ServicerContext:
    """The server side of one call, for ``async def`` handlers (grpc.aio's shape)."""

    def __init__(
        self,
        core: ServerCallCore,
        decode: Callable[[bytes], Any],
        encode: Callable[[Any], bytes],
    ) -> None:
        self._core = core
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._decode = decode
        self._encode = encode
        self._changed = asyncio.Event()
        self._wake_pending = False
        self._code: StatusCode | None = None
        self._details: str | None = None
        self._trailing: tuple[Metadatum, ...] = ()
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

    def invocation_metadata(self) -> tuple[Metadatum, ...]:
        return tuple(Metadatum(k, v) for k, v in self._core.metadata)

    async def send_initial_metadata(self, initial_metadata: MetadataLike) -> None:
        entries = tuple(check_metadata(initial_metadata))
        self._core.send_initial_metadata(entries, flush=True)

    def set_trailing_metadata(self, trailing_metadata: MetadataLike) -> None:
        self._trailing = tuple(check_metadata(trailing_metadata))

    def trailing_metadata(self) -> tuple[Metadatum, ...]:
        return self._trailing

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
        status = as_status_code(code)
        if status is StatusCode.OK:
            raise ValueError("abort() needs a status code other than OK")
        self._code, self._details = status, details
        if trailing_metadata:
            self.set_trailing_metadata(trailing_metadata)
        raise AbortError(f"call aborted with {status.name}: {details}")

    async def abort_with_status(self, status: Status) -> NoReturn:
        await self.abort(status.code, status.details, status.trailing_metadata)

    def set_code(self, code: StatusCode) -> None:
        self._code = as_status_code(code)

    def set_details(self, details: str) -> None:
        self._details = details

    def code(self) -> StatusCode | None:
        return self._code

    def details(self) -> str | None:
        return self._details

    # -- the call ------------------------------------------------------------------

    def peer(self) -> str:
        return format_peer(self._core.peer)

    def peer_identities(self) -> None:
        return None

    def peer_identity_key(self) -> None:
        return None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def time_remaining(self) -> float | None:
        return self._core.time_remaining()

    def cancelled(self) -> bool:
        return self._core.cancelled

    def done(self) -> bool:
        return not self._core.is_active

    def is_active(self) -> bool:
        return self._core.is_active

    def add_done_callback(self, callback: Callable[[ServicerContext], object]) -> None:
        """Run ``callback(context)`` on the loop when the call ends."""
        if not self._core.add_done_callback(
            lambda: call_in_loop(self._loop, callback, self)
        ):
            self._loop.call_soon(callback, self)

    def set_compression(self, compression: object) -> None:
        """Accepted for grpcio compatibility; homarpc does not compress."""

    def disable_next_message_compression(self) -> None:
        """Accepted for grpcio compatibility; homarpc does not compress."""

    # -- for the server runner -------------------------------------------------------

    def finish(self, message: bytes | None = None) -> None:
        """End the call with the status the handler chose (OK if none)."""
        code = self._code or StatusCode.OK
        self._core.finish(
            code,
            self._details or "",
            self._trailing,
            message if code is StatusCode.OK else None,
        )

    def finish_with(self, code: StatusCode, details: str) -> None:
        """End the call with ``code`` whatever the handler chose."""
        self._core.finish(code, details, self._trailing)

    def __repr__(self) -> str:
        return f"<aio.ServicerContext {self._core.method} from {self.peer()}>"
