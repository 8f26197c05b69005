"""The static gates run with the tests: ruff (lint + format) and strict mypy.

House style puts them first in CI; running them here means the README's one test
command covers them too. Each reports the tool's own output on failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["homarpc", "tests", "benchmarks", "examples"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", *SOURCES), ("ruff", "format", "--check", *SOURCES)],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff(command):
    result = _run(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_over_the_package():
    result = _run("mypy", "homarpc")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
