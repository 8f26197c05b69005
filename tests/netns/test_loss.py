"""Real datagram loss in the kernel: thousands of RPCs, each completed exactly once.

Each test makes a network namespace whose nftables input chain drops a random share
of UDP datagrams, runs ``lossy_echo`` (an echo server process and a client) inside
it, and checks the client's and the server's tallies. The rule counts its drops, so
a namespace where nothing was lost fails the test instead of passing it vacuously.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from .harness import LossyNamespace, lossy_namespace, unavailable_reason

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lossy(request: pytest.FixtureRequest) -> Iterator[LossyNamespace]:
    """A namespace dropping ``request.param`` % of UDP; skips only if none can be made."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with ExitStack() as stack:
        try:
            namespace = stack.enter_context(lossy_namespace(request.param))
        except RuntimeError as exc:  # e.g. a container without CAP_SYS_ADMIN
            pytest.skip(f"cannot create a network namespace here: {exc}")
        yield namespace


def _run_lossy_echo(namespace: LossyNamespace, count: int, host: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "tests.netns.lossy_echo",
            "--count", str(count), "--host", host, "--seconds", "60"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = namespace.run(argv, timeout=90, env=env)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def _assert_exactly_once(report: dict[str, Any], count: int) -> None:
    assert report["failed"] == {}
    assert report["missing"] == []
    assert report["wrong_bytes"] == []
    assert report["completed_twice"] == []
    assert report["executed_twice"] == []
    assert report["corrupted_requests"] == 0
    assert report["completed_once"] == count
    assert report["executed_once"] == count


@pytest.mark.parametrize(
    ("lossy", "count", "host"),
    [(5, 10_000, "127.0.0.1"), (5, 2_000, "::1"), (20, 1_000, "127.0.0.1")],
    indirect=["lossy"],
    ids=["5%-ipv4-10000", "5%-ipv6-2000", "20%-ipv4-1000"],
)
def test_every_rpc_completes_exactly_once_despite_loss(lossy, count, host):
    report = _run_lossy_echo(lossy, count, host)
    _assert_exactly_once(report, count)
    # The loss was real, and the protocol repaired it.
    assert lossy.dropped_datagrams() > 0
    retransmitted = (report["client_engine"]["retransmitted_packets"]
                     + report["server_engine"]["retransmitted_packets"]
                     + report["client_engine"]["restarts"])  # fmt: skip
    assert retransmitted > 0


@pytest.mark.parametrize("lossy", [0], indirect=True, ids=["no-loss"])
def test_the_harness_reports_no_drops_without_a_rule(lossy):
    report = _run_lossy_echo(lossy, 200, "127.0.0.1")
    _assert_exactly_once(report, 200)
    assert lossy.dropped_datagrams() == 0
