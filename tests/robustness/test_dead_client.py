"""A client that dies is noticed at once: its calls end on the server (handlers
see ``is_active()`` False, their callbacks run) when the first datagram to its
closed port bounces (ICMP port unreachable), as grpcio ends them when the
connection drops, not after the 35 s liveness timeout."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from .conftest import ROOT, method

pytestmark = pytest.mark.timeout(60)

_CLIENT = """
import sys, time, homarpc
channel = homarpc.insecure_channel(sys.argv[1], transport="udp")
ticks = channel.unary_stream(sys.argv[2])(b"dead", timeout=60)
next(ticks); next(ticks)
print("ready", flush=True)
time.sleep(60)
"""


def test_a_killed_clients_call_ends_within_a_second(
    spawn_server: Any, open_channel: Any
) -> None:
    server = spawn_server()
    client = subprocess.Popen(
        [sys.executable, "-c", _CLIENT, server.target, method("Ticker")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert client.stdout is not None
        assert client.stdout.readline() == "ready\n"
        killed = time.monotonic()
        client.send_signal(signal.SIGKILL)
        client.wait(5)
    finally:
        client.kill()
        client.wait(5)
        if client.stdout is not None:
            client.stdout.close()
    ended = _wait_for_end(server, killed + 10)
    assert ended - killed < 1.0, f"noticed after {ended - killed:.2f} s"
    stats = json.loads(open_channel(server.target).unary_unary(method("Stats"))(b""))
    assert stats["cancelled_unreachable"] == 1
    assert stats["live_calls"] == 1  # the Stats call itself


def _wait_for_end(server: Any, give_up: float) -> float:
    while time.monotonic() < give_up:
        for line in server.records():
            if line.startswith("ended dead "):
                return float(line.split()[2])
        time.sleep(0.05)
    raise AssertionError("the dead client's call never ended on the server")


def test_stats_are_json_and_count_what_happened(
    spawn_server: Any, open_channel: Any
) -> None:
    server = spawn_server()
    channel = open_channel(server.target)
    assert channel.unary_unary(method("Echo"))(b"x", timeout=5) == b"x"
    stats = json.loads(channel.unary_unary(method("Stats"))(b"", timeout=5))
    assert stats["running_handlers"] == 1 and stats["queued_calls"] == 0
    assert stats["refused_calls"] == 0 and stats["malformed_requests"] == 0
    (transport,) = stats["transport"]
    assert transport["kind"] == "udp"
    assert transport["datagrams_received"] >= 2
