"""Generated stubs (and the examples using them) pass ``mypy --strict``, and mypy
catches user code that misuses them.

protoc's own ``_pb2.pyi`` files are not strict-clean (bare ``Mapping`` in message
constructors), so the mypy configuration here, like the one docs/codegen.md
recommends, relaxes only those modules.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from homarpc.codegen import build_protos, compile_protos

REPO = Path(__file__).resolve().parents[2]
PROTOS = REPO / "protos"
USER_CODE = Path(__file__).parent / "typing_cases"


def _mypy(paths: list[Path], pb2_modules: list[str], scratch: Path, cache: Path) -> str:
    config = scratch / "mypy.ini"
    config.write_text(
        f"[mypy]\nstrict = True\nwarn_unreachable = True\nmypy_path = {REPO}\n"
        "follow_imports = silent\n"
        f"[mypy-{','.join(pb2_modules)}]\nignore_errors = True\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(cache),
            "--no-error-summary",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=scratch,
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def _expected_errors(source: Path) -> set[tuple[int, str]]:
    """Lines marked ``# error: <code>`` in a user-code case."""
    found = set()
    for number, line in enumerate(source.read_text().splitlines(), start=1):
        marker = re.search(r"# error: ([a-z-]+)", line)
        if marker:
            found.add((number, marker.group(1)))
    return found


def _reported_errors(output: str, name: str) -> set[tuple[int, str]]:
    pattern = rf"^{re.escape(name)}:(\d+): error: .*\[([a-z-]+)\]$"
    return {(int(m[1]), m[2]) for m in re.finditer(pattern, output, re.MULTILINE)}


def test_user_code_is_checked_against_the_generated_stubs(tmp_path, mypy_cache):
    assert compile_protos(sorted(PROTOS.glob("*.proto")), [PROTOS], tmp_path) == 0
    good, bad = USER_CODE / "good_user.py", USER_CODE / "bad_user.py"
    for case in (good, bad):
        (tmp_path / case.name).write_text(case.read_text())
    stubs = sorted(tmp_path.glob("*_pb2_homarpc.py"))
    output = _mypy(
        [*stubs, tmp_path / good.name, tmp_path / bad.name],
        ["helloworld_pb2", "route_guide_pb2", "kvstore_pb2"],
        tmp_path,
        mypy_cache,
    )
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert all(line.startswith("bad_user.py:") for line in errors), output
    assert _reported_errors(output, "bad_user.py") == _expected_errors(bad), output


def test_the_examples_pass_strict_mypy(tmp_path, mypy_cache):
    examples = REPO / "examples"
    for proto in ("helloworld", "route_guide", "kvstore"):
        build_protos([PROTOS / f"{proto}.proto"], out=examples / proto)
    sources = [
        p for p in sorted(examples.glob("*/*.py")) if not p.name.endswith("_pb2.py")
    ]
    output = _mypy(
        sources,
        ["helloworld_pb2", "route_guide_pb2", "kvstore_pb2"],
        tmp_path,
        mypy_cache,
    )
    assert ": error:" not in output, output
