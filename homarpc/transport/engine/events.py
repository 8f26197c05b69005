"""Events the engine hands to its driver through ``HomaEngine.next_event()``.

Layer: transport.engine. Imports: the stdlib only.

Frozen, slotted, past tense. Addresses are ``(host, port)`` tuples.
"""

from __future__ import annotations

from dataclasses import dataclass

from .placement import Placement

__all__ = [
    "Address",
    "Datagram",
    "HomaEvent",
    "Received",
    "RequestReceived",
    "ResponseReceived",
    "RpcFailed",
]

#: A peer's UDP address, ``(host, port)``.
Address = tuple[str, int]

#: One datagram to send: ``bytes``, or (a DATA packet from an engine made with
#: ``gather=True``) a list of buffers to send as their concatenation (``sendmsg``).
Datagram = bytes | list[bytes | memoryview]

#: A received message: ``bytes``, or (from an engine made with ``gather=True``) the
#: list of its pieces in order, views of the immutable datagrams that brought them,
#: the last of which may be the ``Placement`` the rest of the message was written to.
Received = bytes | list[bytes | memoryview | Placement]


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A whole request arrived; answer it with ``send_response(rpc_id, ...)``.

    ``rpc_id`` is opaque: the server-side id of the RPC (normally client id | 1).
    """

    rpc_id: int
    peer: Address
    payload: Received


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The whole response to our request ``rpc_id`` (sent with ``cookie``) arrived."""

    rpc_id: int
    cookie: int
    peer: Address
    payload: Received


@dataclass(frozen=True, slots=True)
class RpcFailed:
    """Our request ``rpc_id`` failed: ETIMEDOUT, an ICMP errno, or the abort errno."""

    rpc_id: int
    cookie: int
    peer: Address
    errno: int


HomaEvent = RequestReceived | ResponseReceived | RpcFailed
