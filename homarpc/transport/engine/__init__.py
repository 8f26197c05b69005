"""The sans-IO user-space Homa engine (packets, RPC state, SRPT, grants, timers).

Layer: transport.engine. Imports: the stdlib only -- never socket, asyncio, time,
threading, os or another homarpc module. Time arrives as ``now`` arguments and
randomness as an injected ``random.Random``; a driver (``transport/udp``) moves the
datagrams. See ``engine.py`` for the protocol and the driver loop.
"""

from __future__ import annotations

from .config import HomaConfig
from .engine import HomaEngine
from .errors import EngineError, LocalProtocolError
from .events import (
    REQUEST_REFUSED,
    SERVER_LOST_REQUEST,
    Address,
    Datagram,
    HomaEvent,
    RequestReceived,
    ResponseReceived,
    RpcFailed,
)
from .placement import Landing, Layout, Placement, join_pieces
from .stats import EngineStats

__all__ = [
    "REQUEST_REFUSED",
    "SERVER_LOST_REQUEST",
    "Address",
    "Datagram",
    "EngineError",
    "EngineStats",
    "HomaConfig",
    "HomaEngine",
    "HomaEvent",
    "Landing",
    "Layout",
    "LocalProtocolError",
    "Placement",
    "RequestReceived",
    "ResponseReceived",
    "RpcFailed",
    "join_pieces",
]
