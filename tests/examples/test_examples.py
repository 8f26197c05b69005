"""Each example's server and client, run as a user would: separate processes on
127.0.0.1 over the embedded UDP transport. Plus the README's demo."""

from __future__ import annotations

import itertools
import math
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STARTUP_TIMEOUT_S = 30


def _first_line(stream: IO[str], timeout: float) -> str:
    """The first line the process prints, or "" if none comes in time."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


@pytest.fixture
def serve():
    """Start ``examples/<script>`` on a free port, yield the port, stop with SIGINT."""
    started: list[subprocess.Popen[str]] = []

    def start(script: str) -> int:
        server = subprocess.Popen(
            [
                sys.executable,
                str(EXAMPLES / script),
                "--address",
                "127.0.0.1:0",
                "--transport",
                "udp",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(server)
        assert server.stdout is not None
        line = _first_line(server.stdout, STARTUP_TIMEOUT_S)
        match = re.search(r"listening on port (\d+)", line)
        assert match, f"{script} printed {line!r}; stderr: {_stderr_if_dead(server)}"
        return int(match.group(1))

    yield start
    for server in started:
        server.send_signal(signal.SIGINT)
        try:
            _, stderr = server.communicate(timeout=15)  # also closes the pipes
        finally:
            server.kill()
        assert server.returncode == 0, stderr


def _stderr_if_dead(process: subprocess.Popen[str]) -> str:
    if process.poll() is None or process.stderr is None:
        return "(still running)"
    return process.stderr.read()


def _client(script: str, port: int) -> list[str]:
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / script),
            "--target",
            f"127.0.0.1:{port}",
            "--transport",
            "udp",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_readme_demo_serves_and_calls_over_udp():
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "helloworld" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "client: received 'Hello, homarpc!'" in result.stdout.splitlines()


def test_helloworld_client_greets_the_server(serve):
    port = serve("helloworld/greeter_server.py")
    assert _client("helloworld/greeter_client.py", port) == [
        "Greeter client received: Hello, world!"
    ]


@pytest.mark.parametrize(
    "client", ["route_guide_client.py", "route_guide_async_client.py"]
)
def test_route_guide_makes_all_four_kinds_of_call(serve, client):
    port = serve("route_guide/route_guide_server.py")
    lines = _client(f"route_guide/{client}", port)
    assert lines == [
        "GetFeature(488583700, 22944810): Eiffel Tower, Paris",
        "GetFeature(0, 0): no feature",
        "ListFeatures(Paris): 7 features: Arc de Triomphe, Paris, Eiffel Tower, "
        "Paris, Gare du Nord, Paris, Louvre Museum, Paris, Notre-Dame, Paris, "
        "Pantheon, Paris, Sacre-Coeur, Paris",
        f"RecordRoute: 4 points, 4 features, {_walk_length_m()} m",
        "RouteChat: received ['first', 'second']",
    ]


def _walk_length_m() -> int:
    """The client's walk (Eiffel Tower -> Arc -> Louvre -> Notre-Dame), measured
    with the spherical law of cosines rather than the server's haversine."""
    walk = [
        (48.85837, 2.294481),
        (48.87378, 2.295005),
        (48.860611, 2.337644),
        (48.85296, 2.349902),
    ]
    total = 0.0
    for (lat1, lon1), (lat2, lon2) in itertools.pairwise(walk):
        p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
        cosine = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(
            dl
        )
        total += 6_371_000 * math.acos(cosine)
    return round(total)


def test_kvstore_reads_writes_and_watches(serve):
    port = serve("kvstore/kvstore_server.py")
    assert _client("kvstore/kvstore_client.py", port) == [
        "watch: SNAPSHOT_DONE",
        "put user/ada: version 1",
        "compare-and-set refused: FAILED_PRECONDITION: 'user/ada' is at version 1, "
        "not 7",
        "get user/alan: Alan Turing (version 1)",
        "list: ['config/theme', 'user/ada', 'user/alan']",
        "get user/ada after delete: NOT_FOUND",
        "watch: ['PUT user/ada', 'PUT user/alan', 'DELETE user/ada']",
    ]
