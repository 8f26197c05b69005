"""``python -m homarpc.codegen``: compile ``.proto`` files to Python in one command.

Layer: codegen. Imports: the stdlib and ``codegen.protoc``.

    python -m homarpc.codegen -I protos -o build protos/route_guide.proto

writes ``route_guide_pb2.py``, ``route_guide_pb2.pyi`` and
``route_guide_pb2_homarpc.py`` into ``build/``. ``homarpc protoc`` is the same command.
"""

from __future__ import annotations

import argparse
import sys

from .protoc import compile_protos


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m homarpc.codegen",
        description="Generate messages (_pb2.py, _pb2.pyi) and homarpc stubs "
        "(_pb2_homarpc.py) from .proto files.",
    )
    parser.add_argument(
        "-I",
        "--proto-path",
        action="append",
        default=[],
        metavar="DIR",
        help="directory to search for imports (repeatable; default: each file's "
        "directory)",
    )
    parser.add_argument(
        "-o", "--out", default=".", metavar="DIR", help="output directory (default: .)"
    )
    parser.add_argument(
        "--pyi",
        choices=["mypy-protobuf", "protoc"],
        default="mypy-protobuf",
        help="who writes _pb2.pyi: mypy-protobuf (passes mypy --strict; default) "
        "or protoc's own --pyi_out",
    )
    parser.add_argument("protos", nargs="+", metavar="FILE.proto")
    args = parser.parse_args(argv)
    return compile_protos(args.protos, args.proto_path, args.out, pyi=args.pyi)


if __name__ == "__main__":
    sys.exit(main())
