"""The README's quick start works as written: generate code, run the Python block."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def _quickstart_block() -> str:
    marker = README.index("<!-- quickstart")
    match = re.compile(r"```python\n(.*?)```", re.DOTALL).search(README, marker)
    assert match, "the quick start's python block follows its marker"
    return match.group(1)


def test_the_readme_starts_with_the_two_ci_commands():
    first_block = re.search(r"```sh\n(.*?)```", README, re.DOTALL)
    assert first_block is not None
    assert first_block.group(1).splitlines() == [
        "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && "
        ".venv/bin/python examples/helloworld/demo.py",
        ".venv/bin/python -m pytest",
    ]


def test_the_quick_start_generates_serves_and_calls(tmp_path):
    homarpc = [sys.executable, "-c", "from homarpc.cli import main; main()"]
    protos = REPO / "protos"
    generated = subprocess.run(
        [*homarpc, "protoc", "-I", str(protos), str(protos / "helloworld.proto")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert generated.returncode == 0, generated.stderr
    (tmp_path / "quickstart.py").write_text(_quickstart_block())
    result = subprocess.run(
        [sys.executable, "quickstart.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, you!\n"
