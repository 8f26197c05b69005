"""One command for all generated code: protoc's ``_pb2.py``/``_pb2.pyi`` plus our stubs.

Layer: codegen. Imports: the stdlib, ``google.protobuf``, ``grpc_tools`` (the bundled
protoc) and the codegen modules; no transport, no asyncio, no runtime.

``compile_protos`` runs ``grpc_tools.protoc`` once with ``--python_out``,
``--mypy_out`` (mypy-protobuf's ``.pyi``; or protoc's ``--pyi_out`` when asked) and
``--descriptor_set_out``, then feeds the descriptors to the same ``generate()`` the
plugin uses, in this process: no homarpc plugin executable is needed, so it works from
a source checkout as well as from an install. Everything is written to a scratch
directory and moved into place only when all of it worked. protoc reports bad
``.proto`` files itself, on stderr, and the exit status says whether it worked.

``build_protos`` is the rebuild-when-stale form the examples call at import time.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Literal

from google.protobuf.compiler.plugin_pb2 import CodeGeneratorRequest
from google.protobuf.descriptor_pb2 import FileDescriptorSet

from .model import module_name
from .plugin import generate

__all__ = [
    "PyiGenerator",
    "build_protos",
    "compile_protos",
    "describe_protos",
    "well_known_types_dir",
]

PathLike = str | os.PathLike[str]

#: Who writes the ``_pb2.pyi`` files: mypy-protobuf (default) or protoc itself.
PyiGenerator = Literal["mypy-protobuf", "protoc"]


def well_known_types_dir() -> Path:
    """Where grpc_tools keeps ``google/protobuf/*.proto`` (Empty, Timestamp, ...)."""
    return Path(str(resources.files("grpc_tools") / "_proto"))


def compile_protos(
    protos: Sequence[PathLike],
    include: Sequence[PathLike] = (),
    out: PathLike = ".",
    *,
    pyi: PyiGenerator = "mypy-protobuf",
) -> int:
    """Write ``<name>_pb2.py``, ``<name>_pb2.pyi`` and ``<name>_pb2_homarpc.py``.

    Everything is generated into a scratch directory first, so a failure leaves
    ``out`` as it was (not even created).

    Args:
        protos: the ``.proto`` files to compile.
        include: import directories (protoc's ``-I``); default: each file's directory.
        out: the output directory (created when missing).
        pyi: who writes ``_pb2.pyi``: ``"mypy-protobuf"`` (strict-clean) or
            ``"protoc"`` (its own ``--pyi_out``).

    Returns:
        0 on success; otherwise protoc's exit status (or 1 for a codegen error),
        with the reason already printed on stderr.
    """
    with tempfile.TemporaryDirectory(prefix="homarpc-protoc-out-") as scratch:
        status = _generate_into(protos, include, Path(scratch), pyi)
        if status == 0:
            _move_files(Path(scratch), Path(out), shutil.move)
    return status


def _generate_into(
    protos: Sequence[PathLike],
    include: Sequence[PathLike],
    out: Path,
    pyi: PyiGenerator,
) -> int:
    """Run protoc and our generator over ``protos``, writing into ``out``."""
    roots = [Path(d) for d in include] or _parent_dirs(protos)
    flags = _pyi_flags(pyi, out)
    if flags is None:
        print(
            "homarpc codegen: mypy-protobuf's protoc-gen-mypy (it writes the "
            f"_pb2.pyi) is neither beside {sys.executable} nor on PATH: "
            "pip install mypy-protobuf, or use --pyi protoc",
            file=sys.stderr,
        )
        return 1
    described = describe_protos(
        protos, roots, f"--python_out={out}", *flags, "--include_source_info"
    )
    if isinstance(described, int):
        return described
    request = CodeGeneratorRequest(
        file_to_generate=[_virtual_name(proto, roots) for proto in protos],
        proto_file=described.file,
    )
    response = generate(request)
    if response.error:
        print(f"homarpc codegen: {response.error}", file=sys.stderr)
        return 1
    for generated in response.file:
        target = out / generated.name
        target.parent.mkdir(parents=True, exist_ok=True)
        # UTF-8 whatever the locale: comments become docstrings, and Python reads
        # source files as UTF-8.
        target.write_text(generated.content, encoding="utf-8")
    return 0


def _pyi_flags(pyi: PyiGenerator, out: Path) -> list[str] | None:
    """protoc's flags for the ``.pyi`` files; None when mypy-protobuf is missing."""
    if pyi == "protoc":
        return [f"--pyi_out={out}"]
    if pyi != "mypy-protobuf":
        raise ValueError(f"pyi must be 'mypy-protobuf' or 'protoc', not {pyi!r}")
    # The script pip installs beside this Python (a venv's bin/), else on PATH.
    beside = Path(sys.executable).parent / "protoc-gen-mypy"
    plugin = str(beside) if beside.exists() else shutil.which("protoc-gen-mypy")
    if plugin is None:
        return None
    return [f"--plugin=protoc-gen-mypy={plugin}", f"--mypy_out=quiet:{out}"]


def _move_files(
    source: Path, target: Path, move: Callable[[Path, Path], object]
) -> None:
    """Move every file below ``source`` to the same place below ``target``."""
    for made in sorted(source.rglob("*")):
        if made.is_file():
            destination = target / made.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            move(made, destination)


def describe_protos(
    protos: Sequence[PathLike], include: Sequence[PathLike], *flags: str
) -> FileDescriptorSet | int:
    """Run protoc over ``protos`` (with extra ``flags``, e.g. ``--python_out``).

    Returns:
        The descriptors of ``protos`` and everything they import, dependencies
        first; or protoc's exit status when it failed (its message is on stderr).
    """
    # The bundled compiler (untyped), loaded only when compiling.
    from grpc_tools import protoc  # type: ignore[import-untyped]

    with tempfile.TemporaryDirectory(prefix="homarpc-protoc-") as scratch:
        descriptors = Path(scratch, "descriptors.pb")
        status = int(
            protoc.main(
                [
                    "protoc",
                    *(f"-I{root}" for root in include),
                    f"-I{well_known_types_dir()}",
                    *flags,
                    f"--descriptor_set_out={descriptors}",
                    "--include_imports",
                    *(str(proto) for proto in protos),
                ]
            )
        )
        if status != 0:
            return status
        return FileDescriptorSet.FromString(descriptors.read_bytes())


def build_protos(
    protos: Sequence[PathLike],
    out: PathLike,
    include: Sequence[PathLike] = (),
) -> None:
    """Generate code for ``protos`` into ``out`` unless it is newer than its inputs.

    Safe when several processes build at once: each compiles into its own scratch
    directory and moves finished files into place.

    Raises:
        RuntimeError: protoc refused the files (its message is on stderr).
    """
    out_dir = Path(out)
    if _is_fresh(protos, [Path(d) for d in include] or _parent_dirs(protos), out_dir):
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".homarpc-build-", dir=out_dir) as scratch:
        status = _generate_into(protos, include, Path(scratch), "mypy-protobuf")
        if status != 0:
            names = ", ".join(str(proto) for proto in protos)
            raise RuntimeError(f"protoc failed on {names} (exit status {status})")
        _move_files(Path(scratch), out_dir, os.replace)


def _is_fresh(protos: Sequence[PathLike], roots: Sequence[Path], out_dir: Path) -> bool:
    """True when every ``_pb2.py`` is newer than the protos and this code generator."""
    generator = Path(__file__).parent.glob("*.py")
    newest_input = max(Path(p).stat().st_mtime for p in [*protos, *generator])
    for proto in protos:
        module = module_name(_virtual_name(proto, roots))
        made = out_dir / (module.replace(".", "/") + ".py")
        if not made.exists() or made.stat().st_mtime < newest_input:
            return False
    return True


def _parent_dirs(protos: Sequence[PathLike]) -> list[Path]:
    return list(dict.fromkeys(Path(proto).parent for proto in protos))


def _virtual_name(proto: PathLike, roots: Sequence[Path]) -> str:
    """The name protoc gives ``proto``: its path below the import root holding it.

    Like protoc, compare the paths as written (made absolute, symlinks kept: a link
    inside a root names a file of that root); only then through resolved links.
    """
    for absolute in (os.path.abspath, os.path.realpath):
        path = Path(absolute(proto))
        for root in roots:
            try:
                return path.relative_to(absolute(root)).as_posix()
            except ValueError:
                continue
    return Path(proto).as_posix()
