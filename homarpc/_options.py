"""grpcio-style options (channel args) that homarpc honours.

Layer: rpc. Imports: stdlib only.

Unknown keys are accepted and ignored, as a user switching from grpcio expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["DEFAULT_MAX_RECEIVE", "message_limits"]

#: grpcio's default receive limit (4 MiB); the send side is unlimited by default.
DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024
UNLIMITED = -1


def message_limits(options: Sequence[tuple[str, Any]] | None) -> tuple[int, int]:
    """``(max_receive, max_send)`` in bytes from ``options``; -1 means unlimited.

    Raises:
        ValueError: a limit that is not an integer.
    """
    found = dict(options or ())
    receive = found.get("grpc.max_receive_message_length", DEFAULT_MAX_RECEIVE)
    send = found.get("grpc.max_send_message_length", UNLIMITED)
    if not isinstance(receive, int) or not isinstance(send, int):
        raise ValueError("grpc.max_*_message_length options must be integers")
    return (UNLIMITED if receive < 0 else receive), (UNLIMITED if send < 0 else send)
