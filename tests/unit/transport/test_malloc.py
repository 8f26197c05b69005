"""The glibc malloc tuning: when it applies, and that it stops page faults."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from homarpc.transport._malloc import tuning_refused_by

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_the_user_can_turn_it_off():
    assert (
        tuning_refused_by({"HOMARPC_MALLOC_TUNING": "0"}) == "HOMARPC_MALLOC_TUNING=0"
    )


@pytest.mark.parametrize("name", ["GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_"])
def test_a_users_own_malloc_settings_win(name):
    refusal = tuning_refused_by({name: "1"})
    assert refusal is not None and name in refusal


@pytest.mark.skipif(not GLIBC, reason="the tuning is for glibc's malloc only")
def test_nothing_refuses_it_on_plain_glibc():
    assert tuning_refused_by({}) is None


# Allocates, touches and frees a few 1 MB buffers per round, like a 1 MB call, and
# prints the page faults of the last 100 rounds.
_CHURN = textwrap.dedent(
    """
    import os, resource, sys
    sys.path.insert(0, sys.argv[1])
    if sys.argv[2] == "tuned":
        from homarpc.transport import tune_malloc
        assert tune_malloc()
    data = os.urandom(1_000_000)
    def round_():
        frame = b"".join((b"head", data))
        copy = bytes(memoryview(frame)[4:])
        joined = b"".join((copy[:500_000], copy[500_000:]))
        return len(joined)
    for _ in range(20):
        round_()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(100):
        round_()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _faults(mode: str) -> int:
    env = {"PATH": "/usr/bin:/bin", "HOMARPC_MALLOC_TUNING": "1"}
    root = str(Path(__file__).resolve().parents[3])
    out = subprocess.run(
        [sys.executable, "-c", _CHURN, root, mode],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    return int(out.stdout)


@pytest.mark.skipif(not GLIBC, reason="the tuning is for glibc's malloc only")
def test_tuned_large_buffers_reuse_memory_instead_of_faulting():
    untuned, tuned = _faults("default"), _faults("tuned")
    # Untuned, each round lands on fresh pages (hundreds of faults per MB);
    # tuned, the rounds reuse the same heap memory.
    assert untuned > 100 * 100
    assert tuned < untuned / 10
