"""Errors the engine raises for local API misuse.

Layer: transport.engine. Imports: the stdlib only.

Network input never raises (bad packets are dropped and counted in ``EngineStats``);
only the local caller's mistakes do. The driver maps these onto
``homarpc.transport.errors`` at its boundary (the engine may not import it).
"""

from __future__ import annotations

__all__ = ["EngineError", "LocalProtocolError"]


class EngineError(Exception):
    """Base class of engine errors."""


class LocalProtocolError(EngineError):
    """The caller used the engine against the protocol (e.g. replied twice)."""
