"""grpcio-style options (channel args) that homarpc honours, and the transport
settings channels and servers open their transports with.

Layer: rpc. Imports: stdlib and public ``homarpc.transport`` names.

Unknown keys are accepted and ignored, as a user switching from grpcio expects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .transport import choose_kind

__all__ = [
    "DEFAULT_MAX_RECEIVE",
    "RPC_BUSY_POLL",
    "message_limits",
    "transport_settings",
]

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


#: Seconds a thread waiting in a udp transport's ``recv`` polls before it sleeps,
#: for channels and servers (the transport's own default, 50 us like the kernel's
#: ``poll_usecs``, suits a C peer). A Python RPC peer takes longer than 50 us to
#: turn a request around, so a waiting client used to fall asleep just before the
#: answer came and paid a wake-up. Measured with ``rpc_bench.py --quick`` (client
#: and server in two processes), 64 B echo median 166-195 us with 50 us, 86-105 us
#: with 150-500 us; 8 callers 7.4-8.2k calls/s against 9.4-11k. The price: within
#: one process (client and server threads share the GIL) a poll delays the peer
#: thread, 64 B echo 295 -> ~330 us. ``transport_options={"busy_poll": ...}`` or
#: ``$HOMARPC_UDP_BUSY_POLL`` still choose.
#:
#: Raised from 150 to 300 us on a noisier day, when the tail was what mattered:
#: one side or the other still fell asleep in 3.5% of 64 B calls (the peer had
#: stalled for a moment), and each wake-up then cost 100-300 us. With 300 us,
#: 0.4% of calls sleep; ``rpc_bench.py --only homarpc``, two runs each: 64 B p99
#: 357-381 -> 287-319 us, median unchanged (~140 us), 8 callers 7.8k -> 7.8-8.6k
#: calls/s; 500 us and 1 ms measured no better. The price is CPU: a thread spins up
#: to 300 us after each message before it sleeps (in-process 64 B echo 364-418 ->
#: 401-434 us).
RPC_BUSY_POLL = 300e-6
_BUSY_POLL_ENV = "HOMARPC_UDP_BUSY_POLL"


def transport_settings(
    kind: str | None, options: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """The concrete transport kind for ``kind`` and the settings to open it with:
    ``options``, plus ``RPC_BUSY_POLL`` for udp unless the user chose one.

    Raises:
        ValueError: an unknown transport kind.
    """
    chosen = choose_kind(kind)
    settings = dict(options or {})
    if chosen == "udp" and _BUSY_POLL_ENV not in os.environ:
        settings.setdefault("busy_poll", RPC_BUSY_POLL)
    return chosen, settings
