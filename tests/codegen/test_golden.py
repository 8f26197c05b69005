"""render() output for each case under cases/ matches the committed golden files.

Each ``cases/<case>/`` holds ``protos/`` (the import root) and ``expected/``, the
``_pb2_homarpc.py`` files they must produce, saved as ``<name>.golden`` so that
linters, type checkers and test collection leave them alone. A new case directory is
picked up automatically. After an intended change to the generator, rewrite the
golden files with ``HOMARPC_UPDATE_GOLDEN=1 pytest tests/codegen`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from homarpc.codegen.model import build_files
from homarpc.codegen.render import HEADER, render

from ._requests import request_for

CASES = Path(__file__).parent / "cases"
SUFFIX = ".golden"
UPDATE = os.environ.get("HOMARPC_UPDATE_GOLDEN") == "1"


def _rendered(case: Path, scratch: Path) -> dict[str, str]:
    proto_root = case / "protos"
    return {
        file.output_name: render(file)
        for file in build_files(request_for(proto_root, scratch))
    }


def _golden(case: Path) -> dict[str, str]:
    expected = case / "expected"
    return {
        path.relative_to(expected).as_posix().removesuffix(SUFFIX): path.read_text()
        for path in sorted(expected.rglob(f"*{SUFFIX}"))
    }


def _write_golden(case: Path, rendered: dict[str, str]) -> None:
    for name, text in rendered.items():
        target = case / "expected" / (name + SUFFIX)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


@pytest.mark.parametrize(
    "case", sorted(p for p in CASES.iterdir() if p.is_dir()), ids=lambda p: p.name
)
def test_render_matches_golden_files(case: Path, tmp_path: Path) -> None:
    rendered = _rendered(case, tmp_path)
    if UPDATE:
        _write_golden(case, rendered)
    assert rendered == _golden(case)
    for name, text in rendered.items():
        assert text.startswith(HEADER + "\n")
        compile(text, name, "exec")  # every golden file is valid Python
