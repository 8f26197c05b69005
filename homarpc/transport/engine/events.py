"""Events the engine hands to its driver through ``HomaEngine.next_event()``.

Layer: transport.engine. Imports: the stdlib only.

Frozen, slotted, past tense. Addresses are ``(host, port)`` tuples.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from .placement import Placement

__all__ = [
    "REQUEST_REFUSED",
    "SERVER_LOST_REQUEST",
    "Address",
    "Datagram",
    "HomaEvent",
    "Received",
    "RequestReceived",
    "ResponseReceived",
    "RpcFailed",
]

#: ``RpcFailed.errno`` when the server said it has no state for an RPC whose whole
#: request had been transmitted (RPC_UNKNOWN), and the server may have restarted
#: since: it may have processed the request, which is therefore not sent again
#: (at most once). A request that provably never arrived whole is restarted.
SERVER_LOST_REQUEST = errno.ECONNRESET
#: ``RpcFailed.errno`` when the server kept answering RPC_UNKNOWN to restarts of a
#: request it never got whole, for ``HomaConfig.timeout_ticks`` (it answers, so
#: the RPC does not time out as silent, but it must not retry for ever).
REQUEST_REFUSED = errno.ECONNREFUSED

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
    """Our request ``rpc_id`` failed: ETIMEDOUT, an ICMP errno, the abort errno,
    ``SERVER_LOST_REQUEST`` or ``REQUEST_REFUSED``.

    ``unreachable``: the peer was reported unreachable (ICMP, a failed send).
    With an ICMP errno the request provably never reached it; with
    ``SERVER_LOST_REQUEST`` it may have (``HomaEngine.receive_icmp_error``).
    """

    rpc_id: int
    cookie: int
    peer: Address
    errno: int
    unreachable: bool = False


HomaEvent = RequestReceived | ResponseReceived | RpcFailed
