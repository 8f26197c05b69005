"""What a peer can make a server hold is bounded, and the peer is told.

A raw client (``raw.py``) writes frames a well-behaved client never would: frames
for a call whose start never comes, and messages far beyond its flow-control
window while the handler reads nothing. The server (its own process) must keep
its memory (RSS) and answer with RESOURCE_EXHAUSTED, and keep serving others.
"""

from __future__ import annotations

from typing import Any

import pytest

import homarpc
from homarpc._framing import Flags, Frame

from .conftest import method
from .raw import RawClient

pytestmark = [pytest.mark.timeout(90), pytest.mark.slow]

_CHUNK = 2_000_000
_FRAMES = 80  # 160 MB offered in each test
#: The server's RSS may grow by what it may hold: the transport's reassembly
#: budget (64 MiB: messages on their way in) plus the RPC layer's bounds (a few
#: messages per call, 4 MiB of early frames per client), not by what is offered.
_LIMIT_MIB = 100


def test_frames_for_a_call_that_never_starts_are_bounded(
    spawn_server: Any, open_channel: Any
) -> None:
    server = spawn_server()
    before = server.rss_kib()
    client = RawClient(server.port)
    try:
        for seq in range(2, 2 + _FRAMES):  # seq 1, the start, never comes
            client.send(Frame(5, seq, Flags.MESSAGE, payload=b"x" * _CHUNK))
        answers = client.answers(_FRAMES, timeout=20)
    finally:
        client.close()
    grown_mib = (server.rss_kib() - before) / 1024
    assert grown_mib < _LIMIT_MIB, f"RSS grew {grown_mib:.0f} MiB for early frames"
    refused = [f for f in answers if f.status is not None]
    assert refused and refused[0].status is not None
    assert refused[0].status[0] == homarpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    echo = open_channel(server.target).unary_unary(method("Echo"))
    assert echo(b"others still served", timeout=5) == b"others still served"


def test_a_client_that_ignores_the_window_gets_resource_exhausted(
    spawn_server: Any,
) -> None:
    """``Stall`` reads nothing for 5 s; a well-behaved client would stop after 8
    messages. This one keeps sending: its call ends RESOURCE_EXHAUSTED and the
    server holds a bounded amount meanwhile."""
    server = spawn_server()
    before = server.rss_kib()
    client = RawClient(server.port)
    try:
        client.send(Frame(9, 1, Flags.POLL, method("Stall"), 30.0))
        for seq in range(2, 2 + _FRAMES):
            flags = Flags.MESSAGE | Flags.MSG_END
            client.send(Frame(9, seq, flags, payload=b"y" * _CHUNK))
        answers = client.answers(_FRAMES + 1, timeout=20)
        grown_mib = (server.rss_kib() - before) / 1024
    finally:
        client.close()
    assert grown_mib < _LIMIT_MIB, f"RSS grew {grown_mib:.0f} MiB for unread messages"
    statuses = [f.status for f in answers if f.status is not None]
    assert statuses, "the call was never ended"
    code, details = statuses[0]
    assert code == homarpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert "flow-control window" in details
