"""asyncio-side errors and the end-of-stream marker: ``AioRpcError``, ``EOF``.

Layer: rpc (homarpc.aio). Imports: stdlib, ``homarpc.status``,
``homarpc.aio._metadata``.

Names follow ``grpc.aio`` so ``from homarpc import aio`` can stand in for it. The
status ``RpcError`` users catch is still ``homarpc.RpcError``: ``AioRpcError``
subclasses it, so one ``except homarpc.RpcError`` covers blocking and async calls.
"""

from __future__ import annotations

import enum
from typing import Final, Literal

from ..status import RpcError, StatusCode
from ._metadata import Metadata, MetadataLike

__all__ = [
    "EOF",
    "AbortError",
    "AioRpcError",
    "BaseError",
    "EOFType",
    "InternalError",
    "UsageError",
]


class EOFType(enum.Enum):
    """The type of ``EOF`` (an enum member, so type checkers can narrow on it)."""

    EOF = "EOF"

    def __repr__(self) -> str:
        return "<homarpc.aio.EOF>"


#: What ``read()`` returns once the peer has finished sending.
EOF: Final = EOFType.EOF
EOFLiteral = Literal[EOFType.EOF]


class BaseError(Exception):
    """Base of the errors ``homarpc.aio`` raises for misuse, not for call status."""


class UsageError(BaseError):
    """The API was used wrongly (e.g. ``read()`` while iterating the same call)."""


class AbortError(BaseError):
    """Raised inside a handler by ``await context.abort(...)`` to end the call.

    The server catches it and sends the status recorded on the context; handlers
    should let it propagate.
    """


class InternalError(BaseError):
    """homarpc itself went wrong (a bug): please report it."""


class AioRpcError(RpcError):
    """A finished async call whose status is not OK (``grpc.aio.AioRpcError``).

    Its getters are plain methods, as in grpcio: the call is over, nothing to await.
    """

    def __init__(
        self,
        code: StatusCode,
        initial_metadata: MetadataLike | None = None,
        trailing_metadata: MetadataLike | None = None,
        details: str | None = None,
        debug_error_string: str | None = None,
    ) -> None:
        self._aio_initial = Metadata.coerce(initial_metadata)
        self._aio_trailing = Metadata.coerce(trailing_metadata)
        super().__init__(
            code,
            details or "",
            tuple(self._aio_initial),
            tuple(self._aio_trailing),
            debug_error_string or "",
        )

    @classmethod
    def from_rpc_error(cls, error: RpcError) -> AioRpcError:
        """The async twin of a blocking ``RpcError`` (same status and metadata)."""
        if isinstance(error, AioRpcError):
            return error
        return cls(
            error.code(),
            error.initial_metadata(),
            error.trailing_metadata(),
            error.details(),
            error.debug_error_string(),
        )

    def initial_metadata(self) -> Metadata:  # type: ignore[override]
        return self._aio_initial

    def trailing_metadata(self) -> Metadata:  # type: ignore[override]
        return self._aio_trailing

    def __str__(self) -> str:
        return (
            "<AioRpcError of RPC that terminated with:\n"
            f"\tstatus = {self.code()}\n"
            f'\tdetails = "{self.details()}"\n'
            f'\tdebug_error_string = "{self.debug_error_string()}"\n'
            ">"
        )

    __repr__ = __str__
