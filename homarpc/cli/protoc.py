"""``homarpc protoc``: the same as ``python -m homarpc.codegen``.

Layer: cli. Imports: click, ``homarpc.codegen``, ``cli._common``.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..codegen import compile_protos
from ..codegen.protoc import PyiGenerator
from ._common import include_option


@click.command()
@include_option("Import directory (repeatable; default: each file's directory).")
@click.option(
    "-o",
    "--out",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory.",
)
@click.option(
    "--pyi",
    type=click.Choice(["mypy-protobuf", "protoc"]),
    default="mypy-protobuf",
    show_default=True,
    help="Who writes _pb2.pyi: mypy-protobuf (passes mypy --strict) or protoc.",
)
@click.argument(
    "protos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False)
)
def protoc(
    include: tuple[Path, ...], out: Path, pyi: PyiGenerator, protos: tuple[str, ...]
) -> None:
    """Generate messages and stubs from .proto files.

    Writes <name>_pb2.py and <name>_pb2.pyi (protobuf messages) and
    <name>_pb2_homarpc.py (Stub, AsyncStub, Servicer, add_..._to_server) for each
    file. protoc reports mistakes in a file itself, with the line they are on; on
    any failure nothing is written.
    """
    status = compile_protos(protos, include, out, pyi=pyi)
    if status != 0:
        raise SystemExit(status)
