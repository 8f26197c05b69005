"""``protoc-gen-homarpc``: the protoc plugin (stdin request -> generate -> stdout).

Layer: codegen (step 1 of parse -> model -> render). Imports: the stdlib,
``google.protobuf`` and ``codegen.model``/``codegen.render``; no transport, no asyncio.

Use it through protoc::

    python -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. \\
        --homarpc_out=. protos/helloworld.proto

(protoc finds ``protoc-gen-homarpc`` on ``PATH``; or pass
``--plugin=protoc-gen-homarpc=/path/to/protoc-gen-homarpc``). Set
``HOMARPC_CODEGEN_DUMP=<file>`` to save the raw ``CodeGeneratorRequest`` protoc sent,
for replaying a bug report: ``protoc-gen-homarpc < <file>``.
"""

from __future__ import annotations

import os
import sys

from google.protobuf.compiler.plugin_pb2 import (
    CodeGeneratorRequest,
    CodeGeneratorResponse,
)
from google.protobuf.descriptor_pb2 import Edition
from google.protobuf.message import DecodeError

from .model import CodegenError, build_files
from .render import render

__all__ = ["DUMP_ENV_VAR", "MAXIMUM_EDITION", "MINIMUM_EDITION", "generate", "main"]

#: Environment variable naming a file to save the raw request in.
DUMP_ENV_VAR = "HOMARPC_CODEGEN_DUMP"

#: The editions protoc may send us (it refuses editions files otherwise). Stubs are
#: built from services, methods and message names, which no edition has changed;
#: mypy-protobuf declares the same range.
MINIMUM_EDITION = Edition.EDITION_PROTO2
MAXIMUM_EDITION = Edition.EDITION_2024

_FEATURES = (
    CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    | CodeGeneratorResponse.FEATURE_SUPPORTS_EDITIONS
)


def generate(request: CodeGeneratorRequest) -> CodeGeneratorResponse:
    """Build the response for ``request``: one file per requested ``.proto`` with
    services, or ``error`` set (protoc prints it and exits non-zero)."""
    response = CodeGeneratorResponse(
        supported_features=_FEATURES,
        minimum_edition=MINIMUM_EDITION,
        maximum_edition=MAXIMUM_EDITION,
    )
    if request.parameter:
        response.error = (
            f"protoc-gen-homarpc takes no options (got {request.parameter!r})"
        )
        return response
    try:
        files = build_files(request)
    except CodegenError as error:
        response.error = str(error)
        return response
    for file in files:
        response.file.add(name=file.output_name, content=render(file))
    return response


def main() -> None:
    """Entry point of ``protoc-gen-homarpc``."""
    data = sys.stdin.buffer.read()
    dump = os.environ.get(DUMP_ENV_VAR)
    if dump:
        with open(dump, "wb") as out:
            out.write(data)
    try:
        request = CodeGeneratorRequest.FromString(data)
    except DecodeError:
        sys.exit(
            "protoc-gen-homarpc: stdin is not a CodeGeneratorRequest; run me through "
            "protoc (--homarpc_out=DIR) or `python -m homarpc.codegen`"
        )
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
