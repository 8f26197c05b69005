"""The codegen model: what one ``_pb2_homarpc.py`` file needs, built from descriptors.

Layer: codegen (step 2 of parse -> model -> render). Imports: the stdlib and
``google.protobuf`` descriptor messages only; no transport, no asyncio, no runtime.

``build_files(request)`` turns a ``CodeGeneratorRequest`` into one ``ProtoFile`` per
requested ``.proto`` that declares at least one service (refusing files whose module
would be inside grpcio's ``grpc`` package). Everything ``render`` needs
is settled here, so rendering is plain string assembly:

* ``PythonRef`` names a message class: the Python module protoc's ``--python_out``
  writes for the message's file (``foo/bar-baz.proto`` -> ``foo.bar_baz_pb2``) and the
  attribute path inside it (nested messages: ``Outer.Inner``).
* ``Method.python_name`` is the proto name, with ``_`` appended when it is a Python
  keyword (``rpc import(...)`` becomes ``import_``); ``Method.path`` keeps the wire
  name (``/pkg.Service/import``).
* comments written before a service or method in the ``.proto`` become docstrings.
"""

from __future__ import annotations

import keyword
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from google.protobuf.compiler.plugin_pb2 import CodeGeneratorRequest
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    FileDescriptorProto,
    SourceCodeInfo,
)

__all__ = [
    "CodegenError",
    "Method",
    "ProtoFile",
    "PythonRef",
    "Service",
    "build_files",
    "module_alias",
    "module_name",
    "output_name",
    "pythonize",
]

# Field numbers inside FileDescriptorProto / ServiceDescriptorProto, used to find
# comments in SourceCodeInfo (a location's path is a list of field numbers and indexes).
_FILE_SERVICE_FIELD = 6
_SERVICE_METHOD_FIELD = 2

#: The package grpcio installs: generated modules cannot live below it.
_GRPC_PACKAGE = "grpc"


class CodegenError(Exception):
    """The request cannot be turned into Python; the message is shown to the user."""


def module_name(proto_name: str) -> str:
    """The module protoc's Python generator writes for ``proto_name``.

    ``foo/bar-baz.proto`` -> ``foo.bar_baz_pb2`` (dashes become underscores).
    """
    stem = proto_name.removesuffix(".proto").replace("-", "_")
    return stem.replace("/", ".") + "_pb2"


def module_alias(module: str) -> str:
    """grpcio-tools' import alias: ``a_b.c_pb2`` becomes ``a__b_dot_c__pb2``."""
    return module.replace("_", "__").replace(".", "_dot_")


def output_name(proto_name: str) -> str:
    """Where the stubs for ``proto_name`` go: beside its ``_pb2.py``."""
    return module_name(proto_name).replace(".", "/") + "_homarpc.py"


def pythonize(name: str) -> str:
    """``name`` as a Python identifier: keywords get a trailing underscore."""
    return name + "_" if keyword.iskeyword(name) else name


@dataclass(frozen=True, slots=True)
class PythonRef:
    """A message class: ``module`` (``foo.bar_pb2``) and the path inside it."""

    module: str
    path: tuple[str, ...]

    @property
    def alias(self) -> str:
        return module_alias(self.module)

    @property
    def is_spellable(self) -> bool:
        """False when a name is a keyword, so ``alias.path`` is not valid Python."""
        return not any(keyword.iskeyword(part) for part in self.path)


@dataclass(frozen=True, slots=True)
class Method:
    """One rpc of a service."""

    name: str
    python_name: str
    path: str
    request: PythonRef
    response: PythonRef
    client_streaming: bool
    server_streaming: bool
    comment: str

    @property
    def cardinality(self) -> str:
        """grpcio's word for the call kind: ``unary_unary`` ... ``stream_stream``."""
        request = "stream" if self.client_streaming else "unary"
        response = "stream" if self.server_streaming else "unary"
        return f"{request}_{response}"


@dataclass(frozen=True, slots=True)
class Service:
    """One service: ``name`` as declared, ``full_name`` with the package."""

    name: str
    full_name: str
    methods: tuple[Method, ...]
    comment: str


@dataclass(frozen=True, slots=True)
class ProtoFile:
    """Everything one generated ``_pb2_homarpc.py`` holds."""

    proto_name: str
    output_name: str
    services: tuple[Service, ...]
    imports: tuple[str, ...]


def build_files(request: CodeGeneratorRequest) -> list[ProtoFile]:
    """One ``ProtoFile`` per requested file that has services, in request order.

    Raises:
        CodegenError: a method names a type no file in the request declares, or two
            generated names collide.
    """
    by_name = {proto.name: proto for proto in request.proto_file}
    types = dict(_index_types(request.proto_file))
    built = []
    for name in request.file_to_generate:
        proto = by_name.get(name)
        if proto is None:
            raise CodegenError(f"{name}: not among the request's proto files")
        _check_importable(proto)
        if proto.service:
            built.append(_build_file(proto, types))
    return built


def _check_importable(proto: FileDescriptorProto) -> None:
    """Refuse a file whose messages would be generated inside grpcio's package.

    protoc puts ``grpc/health/v1/health.proto`` in ``grpc.health.v1.health_pb2``;
    the installed grpcio is the ``grpc`` package, so that import always fails.
    """
    for name in (proto.name, *proto.dependency):
        module = module_name(name)
        if module.split(".")[0] != _GRPC_PACKAGE:
            continue
        which = "its" if name == proto.name else f"it imports {name}, whose"
        raise CodegenError(
            f"{proto.name}: {which} Python module {module} would be inside package "
            "'grpc', which is grpcio's, so importing it fails. Copy the .proto into "
            "a directory with another name and compile it from there (as "
            "grpcio-health-checking ships grpc/health/v1/health.proto as "
            "grpc_health/v1/health.proto), changing the imports that name it"
        )


def _build_file(proto: FileDescriptorProto, types: dict[str, PythonRef]) -> ProtoFile:
    comments = _comments(proto.source_code_info)
    services = tuple(
        _build_service(proto, index, types, comments)
        for index in range(len(proto.service))
    )
    _check_names(proto.name, services)
    modules = {
        ref.module
        for service in services
        for method in service.methods
        for ref in (method.request, method.response)
    }
    return ProtoFile(
        proto_name=proto.name,
        output_name=output_name(proto.name),
        services=services,
        imports=tuple(sorted(modules)),
    )


def _build_service(
    proto: FileDescriptorProto,
    index: int,
    types: dict[str, PythonRef],
    comments: dict[tuple[int, ...], str],
) -> Service:
    service = proto.service[index]
    full_name = f"{proto.package}.{service.name}" if proto.package else service.name
    methods = []
    for number, method in enumerate(service.method):
        where = (_FILE_SERVICE_FIELD, index, _SERVICE_METHOD_FIELD, number)
        methods.append(
            Method(
                name=method.name,
                python_name=pythonize(method.name),
                path=f"/{full_name}/{method.name}",
                request=_lookup(types, method.input_type, proto.name),
                response=_lookup(types, method.output_type, proto.name),
                client_streaming=method.client_streaming,
                server_streaming=method.server_streaming,
                comment=comments.get(where, ""),
            )
        )
    return Service(
        name=service.name,
        full_name=full_name,
        methods=tuple(methods),
        comment=comments.get((_FILE_SERVICE_FIELD, index), ""),
    )


def _lookup(types: dict[str, PythonRef], type_name: str, proto_name: str) -> PythonRef:
    try:
        return types[type_name]
    except KeyError:
        raise CodegenError(
            f"{proto_name}: type {type_name.lstrip('.')} is not declared in any "
            "file of the request"
        ) from None


def _index_types(
    files: Iterable[FileDescriptorProto],
) -> Iterator[tuple[str, PythonRef]]:
    """Every message of every file: ``.pkg.Outer.Inner`` -> its ``PythonRef``."""
    for proto in files:
        prefix = f".{proto.package}" if proto.package else ""
        module = module_name(proto.name)
        for message in proto.message_type:
            yield from _index_message(message, prefix, (), module)


def _index_message(
    message: DescriptorProto, prefix: str, outer: tuple[str, ...], module: str
) -> Iterator[tuple[str, PythonRef]]:
    path = (*outer, message.name)
    yield f"{prefix}.{'.'.join(path)}", PythonRef(module, path)
    for nested in message.nested_type:
        yield from _index_message(nested, prefix, path, module)


def _comments(info: SourceCodeInfo) -> dict[tuple[int, ...], str]:
    """Leading (else trailing) comments by location path, tidied for a docstring."""
    found = {}
    for location in info.location:
        text = location.leading_comments or location.trailing_comments
        if text.strip():
            found[tuple(location.path)] = _tidy(text)
    return found


def _tidy(comment: str) -> str:
    lines = [
        line.removeprefix(" ").rstrip() for line in comment.strip("\n").split("\n")
    ]
    return "\n".join(lines).strip()


def _check_names(proto_name: str, services: Sequence[Service]) -> None:
    """Refuse files whose generated class names would collide (``X`` + ``XAsync``)."""
    seen: dict[str, str] = {}
    for service in services:
        for generated in _generated_names(service.name):
            if generated in seen:
                raise CodegenError(
                    f"{proto_name}: services {seen[generated]} and {service.name} "
                    f"would both generate {generated}; rename one of them"
                )
            seen[generated] = service.name


def _generated_names(service: str) -> tuple[str, ...]:
    return (
        f"{service}Stub",
        f"{service}AsyncStub",
        f"{service}Servicer",
        f"add_{service}Servicer_to_server",
    )
