"""Generated stubs (and the examples using them) pass ``mypy --strict``, and mypy
catches user code that misuses them.

The configuration is ``strict`` and nothing else: the ``_pb2.pyi`` files are
mypy-protobuf's (``compile_protos``' default), which need no relaxing. protoc's own
(``pyi="protoc"``) do not pass strict mode; a test shows why the default changed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from homarpc.codegen import build_protos, compile_protos

from ._requests import protos_in

REPO = Path(__file__).resolve().parents[2]
PROTOS = REPO / "protos"
USER_CODE = Path(__file__).parent / "typing_cases"
CASES = Path(__file__).parent / "cases"


def _mypy(
    paths: list[Path], scratch: Path, cache: Path, *, package_root: bool = False
) -> str:
    """mypy --strict over ``paths``; ``package_root``: ``scratch`` is the root of
    the packages the paths are in (``acme/x_pb2.pyi`` is ``acme.x_pb2``)."""
    config = scratch / "mypy.ini"
    config.write_text(
        f"[mypy]\nstrict = True\nwarn_unreachable = True\nmypy_path = {REPO}\n"
        f"follow_imports = silent\nexplicit_package_bases = {package_root}\n"
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
        [*stubs, tmp_path / good.name, tmp_path / bad.name], tmp_path, mypy_cache
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
    output = _mypy(sources, tmp_path, mypy_cache)
    assert ": error:" not in output, output


def test_every_golden_case_passes_strict_mypy_as_generated(tmp_path, mypy_cache):
    # Stubs, messages (.py) and message types (.pyi) of every shape: a service
    # without methods, Editions files, non-ASCII comments, symlinks, no package...
    for case in sorted(p for p in CASES.iterdir() if p.is_dir()):
        out = tmp_path / case.name  # the root of the generated packages
        root = case / "protos"
        assert compile_protos(protos_in(root), [root], out) == 0
        typed = [*out.rglob("*.pyi"), *out.rglob("*_homarpc.py")]
        output = _mypy(sorted(typed), out, mypy_cache, package_root=True)
        assert ": error:" not in output, f"{case.name}:\n{output}"


def test_protocs_own_pyi_is_not_strict_clean(tmp_path, mypy_cache):
    # Why mypy-protobuf writes the .pyi by default: protoc's need configuration.
    proto = PROTOS / "route_guide.proto"
    assert compile_protos([proto], [PROTOS], tmp_path, pyi="protoc") == 0
    output = _mypy([tmp_path / "route_guide_pb2.pyi"], tmp_path, mypy_cache)
    assert "route_guide_pb2.pyi" in output and ": error:" in output, output
