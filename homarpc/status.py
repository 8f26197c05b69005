"""Status codes and the one error users catch: ``StatusCode``, ``RpcError``, ``Status``.

Layer: rpc. Imports: stdlib only.

Names, values and strings follow grpcio so ``import homarpc as grpc`` keeps working:
``StatusCode.NOT_FOUND.value == (5, "not found")`` and ``str(RpcError)`` has grpcio's
``<_InactiveRpcError of RPC that terminated with: ...>`` shape.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

__all__ = [
    "FutureCancelledError",
    "FutureTimeoutError",
    "RpcError",
    "Status",
    "StatusCode",
    "as_status_code",
    "code_from_int",
]

#: Metadata as it travels: ordered ``(key, value)`` pairs; ``-bin`` keys carry bytes.
MetadataTuple = tuple[tuple[str, str | bytes], ...]


class StatusCode(enum.Enum):
    """grpcio's 17 status codes; ``value`` is ``(int code, lower-case description)``."""

    OK = (0, "ok")
    CANCELLED = (1, "cancelled")
    UNKNOWN = (2, "unknown")
    INVALID_ARGUMENT = (3, "invalid argument")
    DEADLINE_EXCEEDED = (4, "deadline exceeded")
    NOT_FOUND = (5, "not found")
    ALREADY_EXISTS = (6, "already exists")
    PERMISSION_DENIED = (7, "permission denied")
    RESOURCE_EXHAUSTED = (8, "resource exhausted")
    FAILED_PRECONDITION = (9, "failed precondition")
    ABORTED = (10, "aborted")
    OUT_OF_RANGE = (11, "out of range")
    UNIMPLEMENTED = (12, "unimplemented")
    INTERNAL = (13, "internal")
    UNAVAILABLE = (14, "unavailable")
    DATA_LOSS = (15, "data loss")
    UNAUTHENTICATED = (16, "unauthenticated")

    @property
    def code(self) -> int:
        """The integer that travels on the wire."""
        return self.value[0]


_BY_INT = {member.value[0]: member for member in StatusCode}


def code_from_int(number: int) -> StatusCode:
    """The ``StatusCode`` for a wire integer; out-of-range numbers become UNKNOWN."""
    return _BY_INT.get(number, StatusCode.UNKNOWN)


def as_status_code(code: object) -> StatusCode:
    """``code`` as our ``StatusCode``; grpcio's ``grpc.StatusCode`` (same ``(int, str)``
    values) is accepted too, so servicers written for grpcio run unchanged.

    Raises:
        TypeError: ``code`` is not a status code.
    """
    if isinstance(code, StatusCode):
        return code
    value = getattr(code, "value", None)
    for member in StatusCode:
        if member.value == value:
            return member
    raise TypeError(f"{code!r} is not a status code")


class Status(NamedTuple):
    """What ``ServicerContext.abort_with_status`` takes (grpcio's ``grpc.Status``)."""

    code: StatusCode
    details: str
    trailing_metadata: MetadataTuple = ()


class RpcError(Exception):
    """Raised by a call that ended with a status other than OK.

    It is also a finished ``Call`` (grpcio's ``_InactiveRpcError``): ``code()``,
    ``details()``, ``initial_metadata()``, ``trailing_metadata()`` answer at once.
    Constructed without arguments it is the bare base class users may subclass.
    """

    def __init__(
        self,
        code: StatusCode = StatusCode.UNKNOWN,
        details: str = "",
        initial_metadata: MetadataTuple = (),
        trailing_metadata: MetadataTuple = (),
        debug_error_string: str = "",
    ) -> None:
        super().__init__(code, details)
        self._code = code
        self._details = details
        self._initial_metadata = initial_metadata
        self._trailing_metadata = trailing_metadata
        self._debug = debug_error_string or f"homarpc: {code.name}: {details}"

    def code(self) -> StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> MetadataTuple:
        return self._initial_metadata

    def trailing_metadata(self) -> MetadataTuple:
        return self._trailing_metadata

    def debug_error_string(self) -> str:
        return self._debug

    # -- the finished-Call half of grpcio's _InactiveRpcError ---------------------

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        return False

    def __str__(self) -> str:
        return (
            "<_InactiveRpcError of RPC that terminated with:\n"
            f"\tstatus = {self._code}\n"
            f'\tdetails = "{self._details}"\n'
            f'\tdebug_error_string = "{self._debug}"\n'
            ">"
        )

    __repr__ = __str__


class FutureTimeoutError(Exception):
    """``Future.result(timeout)`` or ``exception(timeout)`` ran out of time."""


class FutureCancelledError(Exception):
    """The future's computation was cancelled."""


def metadata_tuple(pairs: Sequence[tuple[str, str | bytes]] | None) -> MetadataTuple:
    """Freeze user-given metadata into the tuple form stored in errors and calls."""
    return tuple((k, v) for k, v in pairs) if pairs else ()
