"""Engine events as the contract's ``Message``s, for ``UdpTransport``.

Layer: transport (udp backend). Imports: ``transport._base``, ``transport.errors``,
``transport.engine``.

A complete message keeps the pieces it was received in (``Message.payload_parts``);
a failed client RPC becomes a ``Message`` with ``error`` set, worded for the
at-most-once cases the engine tells apart (``docs/udp-transport.md``, "Errors").
"""

from __future__ import annotations

from collections.abc import Callable

from .._base import Message
from ..engine import (
    REQUEST_REFUSED,
    SERVER_LOST_REQUEST,
    RequestReceived,
    ResponseReceived,
    RpcFailed,
)
from ..errors import (
    HomaError,
    PeerUnreachableError,
    RpcAbortedError,
    error_from_errno,
)

__all__ = ["to_message"]


def _request(event: RequestReceived) -> Message:
    return _received(event, 0, True)


def _response(event: ResponseReceived) -> Message:
    return _received(event, event.cookie, False)


def _received(
    event: RequestReceived | ResponseReceived, cookie: int, is_request: bool
) -> Message:
    """A complete message; one received in pieces stays in pieces (see
    ``Message.payload_parts``)."""
    payload = event.payload
    if isinstance(payload, list):
        return Message(event.rpc_id, cookie, event.peer, is_request, parts=payload)
    return Message(event.rpc_id, cookie, event.peer, is_request, payload)


def _failure(event: RpcFailed) -> Message:
    peer = f"peer {event.peer[0]}:{event.peer[1]}"
    error: HomaError
    if event.errno == SERVER_LOST_REQUEST:
        text = _UNREACHABLE_LOST if event.unreachable else _SERVER_LOST
        error = RpcAbortedError(event.errno, text.format(peer))
    elif event.errno == REQUEST_REFUSED:
        error = PeerUnreachableError(event.errno, _REFUSED.format(peer))
    else:
        error = error_from_errno(event.errno, peer)
    return Message(event.rpc_id, event.cookie, event.peer, False, b"", error)


_SERVER_LOST = (
    "the server lost an RPC whose request it may have processed (did it "
    "restart?); not resent ({})"
)
_UNREACHABLE_LOST = (
    "{} became unreachable after our request may have reached it; not resent "
    "(the server may have processed it)"
)
_REFUSED = "the server refused the request on every retry (RPC_UNKNOWN) ({})"


_CONVERTERS: dict[type, Callable[..., Message]] = {
    RequestReceived: _request,
    ResponseReceived: _response,
    RpcFailed: _failure,
}


def to_message(event: RequestReceived | ResponseReceived | RpcFailed) -> Message:
    return _CONVERTERS[type(event)](event)
