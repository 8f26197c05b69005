"""Generated stubs for each case under cases/ match the committed golden files.

Each ``cases/<case>/`` holds ``protos/`` (the import root) and ``expected/``, the
``_pb2_homarpc.py`` files they must produce, saved as ``<name>.golden`` so that
linters, type checkers and test collection leave them alone. A new case directory is
picked up automatically. After an intended change to the generator, rewrite the
golden files with ``HOMARPC_UPDATE_GOLDEN=1 pytest tests/codegen`` and review the diff.

Every case is generated three ways, which must agree: ``render()`` over the request
protoc describes, ``compile_protos`` (what ``homarpc protoc`` runs) and protoc
driving the installed ``protoc-gen-homarpc`` plugin. Shapes covered: packages and
imports across files, no package, a file without services, a service without
methods, Editions files, non-ASCII comments, symlinks inside the import root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from homarpc.codegen import compile_protos
from homarpc.codegen.model import build_files, module_name
from homarpc.codegen.protoc import well_known_types_dir
from homarpc.codegen.render import HEADER, render

from ._requests import protos_in, request_for

CASES = Path(__file__).parent / "cases"
ALL_CASES = sorted(p for p in CASES.iterdir() if p.is_dir())
SUFFIX = ".golden"
UPDATE = os.environ.get("HOMARPC_UPDATE_GOLDEN") == "1"
PLUGIN = Path(sys.executable).parent / "protoc-gen-homarpc"

cases = pytest.mark.parametrize("case", ALL_CASES, ids=lambda p: p.name)


def _rendered(case: Path, scratch: Path) -> dict[str, str]:
    proto_root = case / "protos"
    return {
        file.output_name: render(file)
        for file in build_files(request_for(proto_root, scratch))
    }


def _golden(case: Path) -> dict[str, str]:
    expected = case / "expected"
    return {
        path.relative_to(expected).as_posix().removesuffix(SUFFIX): path.read_text(
            encoding="utf-8"
        )
        for path in sorted(expected.rglob(f"*{SUFFIX}"))
    }


def _stubs_in(out: Path) -> dict[str, str]:
    return {
        path.relative_to(out).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(out.rglob("*_pb2_homarpc.py"))
    }


def _write_golden(case: Path, rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        target = case / "expected" / (name + SUFFIX)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


@cases
def test_render_matches_golden_files(case: Path, tmp_path: Path) -> None:
    rendered = _rendered(case, tmp_path)
    if UPDATE:
        _write_golden(case, rendered)
    assert rendered == _golden(case)
    for name, text in rendered.items():
        assert text.startswith(HEADER + "\n")
        compile(text, name, "exec")  # every golden file is valid Python


@cases
def test_compile_protos_writes_the_golden_files(case: Path, tmp_path: Path) -> None:
    root = case / "protos"
    assert compile_protos(protos_in(root), [root], tmp_path) == 0
    assert _stubs_in(tmp_path) == _golden(case)
    for proto in protos_in(root):  # every file gets its messages and their types
        module = module_name(proto.relative_to(root).as_posix()).replace(".", "/")
        assert (tmp_path / f"{module}.py").exists()
        assert (tmp_path / f"{module}.pyi").exists()


@cases
def test_protoc_with_the_plugin_writes_the_golden_files(
    case: Path, tmp_path: Path
) -> None:
    assert PLUGIN.exists(), "pip install -e . creates the protoc-gen-homarpc script"
    root = case / "protos"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{well_known_types_dir()}",
            f"--plugin=protoc-gen-homarpc={PLUGIN}",
            f"--homarpc_out={tmp_path}",
            *map(str, protos_in(root)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert _stubs_in(tmp_path) == _golden(case)
