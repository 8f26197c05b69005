"""One command for all generated code: protoc's ``_pb2.py``/``_pb2.pyi`` plus our stubs.

Layer: codegen. Imports: the stdlib, ``google.protobuf``, ``grpc_tools`` (the bundled
protoc) and the codegen modules; no transport, no asyncio, no runtime.

``compile_protos`` runs ``grpc_tools.protoc`` once with ``--python_out``,
``--pyi_out`` and ``--descriptor_set_out``, then feeds the descriptors to the same
``generate()`` the plugin uses, in this process: no plugin executable is needed, so it
works from a source checkout as well as from an install. protoc reports bad
``.proto`` files itself, on stderr, and the exit status says whether it worked.

``build_protos`` is the rebuild-when-stale form the examples call at import time.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from google.protobuf.compiler.plugin_pb2 import CodeGeneratorRequest
from google.protobuf.descriptor_pb2 import FileDescriptorSet

from .model import module_name
from .plugin import generate

__all__ = ["build_protos", "compile_protos", "describe_protos", "well_known_types_dir"]

PathLike = str | os.PathLike[str]


def well_known_types_dir() -> Path:
    """Where grpc_tools keeps ``google/protobuf/*.proto`` (Empty, Timestamp, ...)."""
    return Path(str(resources.files("grpc_tools") / "_proto"))


def compile_protos(
    protos: Sequence[PathLike],
    include: Sequence[PathLike] = (),
    out: PathLike = ".",
) -> int:
    """Write ``<name>_pb2.py``, ``<name>_pb2.pyi`` and ``<name>_pb2_homarpc.py``.

    Args:
        protos: the ``.proto`` files to compile.
        include: import directories (protoc's ``-I``); default: each file's directory.
        out: the output directory (created when missing).

    Returns:
        0 on success; otherwise protoc's exit status (or 1 for a codegen error),
        with the reason already printed on stderr.
    """
    roots = [Path(d) for d in include] or _parent_dirs(protos)
    Path(out).mkdir(parents=True, exist_ok=True)
    described = describe_protos(
        protos,
        roots,
        f"--python_out={out}",
        f"--pyi_out={out}",
        "--include_source_info",
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
        target = Path(out, generated.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(generated.content)
    return 0


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
        status = compile_protos(protos, include, scratch)
        if status != 0:
            names = ", ".join(str(proto) for proto in protos)
            raise RuntimeError(f"protoc failed on {names} (exit status {status})")
        for made in sorted(Path(scratch).rglob("*")):
            if made.is_file():
                target = out_dir / made.relative_to(scratch)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(made, target)


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
    """The name protoc gives ``proto``: its path below the import root holding it."""
    path = Path(proto)
    if path.exists():
        for root in roots:
            try:
                return path.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                continue
    return path.as_posix()
