"""homarpc code generation: ``.proto`` to ``_pb2.py``, ``.pyi`` and ``_pb2_homarpc.py``.

Layer: codegen. Imports no transport, no asyncio and no RPC runtime, so the plugin
runs anywhere protoc does.

Pipeline (betterproto's shape): ``plugin`` parses a ``CodeGeneratorRequest``,
``model`` turns descriptors into dataclasses, ``render`` turns those into source text.
``protoc`` wraps grpc_tools' bundled compiler so one call writes everything;
``python -m homarpc.codegen`` and ``homarpc protoc`` are its command lines.
"""

from __future__ import annotations

from .protoc import build_protos, compile_protos

__all__ = ["build_protos", "compile_protos"]
