"""The abstract shapes grpcio users code against: ``Call``, ``Future``, contexts.

Layer: rpc. Imports: stdlib and ``homarpc.status``.

Concrete classes live next to their machinery (``channel.py``, ``server.py``); these
ABCs exist so ``isinstance(x, homarpc.Call)`` and type hints work as with grpcio.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable
from types import TracebackType
from typing import Any, NoReturn

from .status import MetadataTuple, Status, StatusCode

__all__ = [
    "Call",
    "ChannelConnectivity",
    "Compression",
    "Future",
    "RpcContext",
    "ServicerContext",
]


class ChannelConnectivity(enum.Enum):
    """grpcio's connectivity states. Homa has no connections: a channel is READY
    once a server answered its probe (see ``homarpc._connectivity``)."""

    IDLE = (0, "idle")
    CONNECTING = (1, "connecting")
    READY = (2, "ready")
    TRANSIENT_FAILURE = (3, "transient failure")
    SHUTDOWN = (4, "shutdown")


class Compression(enum.IntEnum):
    """Accepted for grpcio compatibility; homarpc sends messages uncompressed."""

    NoCompression = 0
    Deflate = 1
    Gzip = 2


class RpcContext(abc.ABC):
    """What both ends of a call can ask of it."""

    @abc.abstractmethod
    def is_active(self) -> bool:
        """True while the call is still running."""

    @abc.abstractmethod
    def time_remaining(self) -> float | None:
        """Seconds until the deadline, or None without one."""

    @abc.abstractmethod
    def cancel(self) -> bool:
        """Cancel the call (CANCELLED on both sides)."""

    @abc.abstractmethod
    def add_callback(self, callback: Callable[[], Any]) -> bool:
        """Run ``callback`` when the call ends; False if it has already ended."""


class Call(RpcContext):
    """The client's view of a call (grpcio's ``grpc.Call``)."""

    @abc.abstractmethod
    def initial_metadata(self) -> MetadataTuple:
        """The server's initial metadata (blocks until it arrives)."""

    @abc.abstractmethod
    def trailing_metadata(self) -> MetadataTuple:
        """The server's trailing metadata (blocks until the call ends)."""

    @abc.abstractmethod
    def code(self) -> StatusCode:
        """The final status code (blocks until the call ends)."""

    @abc.abstractmethod
    def details(self) -> str:
        """The final status details (blocks until the call ends)."""


class Future(abc.ABC):
    """grpcio's ``grpc.Future``: the eventual outcome of a call."""

    @abc.abstractmethod
    def cancel(self) -> bool: ...

    @abc.abstractmethod
    def cancelled(self) -> bool: ...

    @abc.abstractmethod
    def running(self) -> bool: ...

    @abc.abstractmethod
    def done(self) -> bool: ...

    @abc.abstractmethod
    def result(self, timeout: float | None = None) -> Any: ...

    @abc.abstractmethod
    def exception(self, timeout: float | None = None) -> BaseException | None: ...

    @abc.abstractmethod
    def traceback(self, timeout: float | None = None) -> TracebackType | None: ...

    @abc.abstractmethod
    def add_done_callback(self, fn: Callable[[Any], Any]) -> None: ...


class ServicerContext(RpcContext):
    """The server's view of a call, handed to every handler."""

    @abc.abstractmethod
    def invocation_metadata(self) -> MetadataTuple: ...

    @abc.abstractmethod
    def peer(self) -> str: ...

    @abc.abstractmethod
    def send_initial_metadata(self, initial_metadata: Any) -> None: ...

    @abc.abstractmethod
    def set_trailing_metadata(self, trailing_metadata: Any) -> None: ...

    @abc.abstractmethod
    def abort(self, code: StatusCode, details: str) -> NoReturn: ...

    @abc.abstractmethod
    def abort_with_status(self, status: Status) -> NoReturn: ...

    @abc.abstractmethod
    def set_code(self, code: StatusCode) -> None: ...

    @abc.abstractmethod
    def set_details(self, details: str) -> None: ...
