"""``homarpc protoc``: the same as ``python -m homarpc.codegen``.

Layer: cli. Imports: click, ``homarpc.codegen``, ``cli._common``.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..codegen import compile_protos
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
@click.argument(
    "protos", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False)
)
def protoc(include: tuple[Path, ...], out: Path, protos: tuple[str, ...]) -> None:
    """Generate messages and stubs from .proto files.

    Writes <name>_pb2.py and <name>_pb2.pyi (protobuf messages) and
    <name>_pb2_homarpc.py (Stub, AsyncStub, Servicer, add_..._to_server) for each
    file. protoc reports mistakes in a file itself, with the line they are on.
    """
    status = compile_protos(protos, include, out)
    if status != 0:
        raise SystemExit(status)
