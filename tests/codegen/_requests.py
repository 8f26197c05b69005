"""Build the CodeGeneratorRequest protoc would send for a directory of .proto files."""

from __future__ import annotations

import os
from pathlib import Path

from google.protobuf.compiler.plugin_pb2 import CodeGeneratorRequest
from google.protobuf.descriptor_pb2 import FileDescriptorSet
from grpc_tools import protoc

from homarpc.codegen.protoc import well_known_types_dir


def protos_in(root: Path) -> list[Path]:
    """Every .proto below ``root``, through symlinked directories too, named by the
    path below ``root`` (not the link's target)."""
    found = []
    for folder, _, names in os.walk(root, followlinks=True):
        found += [Path(folder, name) for name in names if name.endswith(".proto")]
    return sorted(found)


def request_for(root: Path, scratch: Path) -> CodeGeneratorRequest:
    """Every .proto under ``root`` (the import root), as protoc describes them."""
    descriptors = scratch / "descriptors.pb"
    protos = protos_in(root)
    status = protoc.main(
        [
            "protoc",
            f"-I{root}",
            f"-I{well_known_types_dir()}",
            f"--descriptor_set_out={descriptors}",
            "--include_imports",
            "--include_source_info",
            *map(str, protos),
        ]
    )
    assert status == 0, f"protoc rejected the protos under {root}"
    return CodeGeneratorRequest(
        file_to_generate=[p.relative_to(root).as_posix() for p in protos],
        proto_file=FileDescriptorSet.FromString(descriptors.read_bytes()).file,
    )
