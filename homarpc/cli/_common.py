"""Helpers shared by the cli commands: one-line failures, options, descriptors.

Layer: cli. Imports: click, ``google.protobuf``, ``homarpc.codegen`` (to compile
a ``.proto`` given on the command line), ``homarpc._targets.parse_target`` (the
strict target check, for tools).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor

import homarpc

from .._targets import parse_target
from ..codegen.protoc import describe_protos

TRANSPORTS = ("auto", "udp", "kernel")

F = TypeVar("F", bound=Callable[..., Any])

transport_option = click.option(
    "--transport",
    type=click.Choice(TRANSPORTS),
    default=None,
    help="Homa backend (default: $HOMARPC_TRANSPORT, else auto: the kernel "
    "module when loaded, else embedded UDP).",
)


def include_option(help: str) -> Callable[[F], F]:
    """``-I/--proto-path DIR`` (repeatable), passed as ``include``."""
    return click.option(
        "-I",
        "--proto-path",
        "include",
        multiple=True,
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        help=help,
    )


def proto_option(*, required: bool, help: str) -> Callable[[F], F]:
    """``--proto FILE``: the ``.proto`` declaring the method called."""
    return click.option(
        "--proto",
        required=required,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=help,
    )


def fail(message: str) -> NoReturn:
    """Stop the command with one ``Error: message`` line and exit status 1."""
    raise click.ClickException(message)


def open_channel(target: str, transport: str | None) -> homarpc.Channel:
    """``homarpc.insecure_channel``, with a malformed target as a one-line error.

    Channels take any target and fail its calls later, as grpcio's do (a host
    without a port means port 443); a command line is checked at once instead, so
    a forgotten port or a mistyped host is named before anything is sent.
    """
    try:
        parse_target(target)
        return homarpc.insecure_channel(target, transport=transport)
    except ValueError as error:  # homarpc's TargetError is a ValueError
        fail(f"bad target {target!r}: {error} (e.g. 127.0.0.1:5051)")


@dataclass(frozen=True)
class MethodInfo:
    """A method found in a ``.proto``: its wire path and message classes."""

    path: str
    descriptor: MethodDescriptor
    request_class: type[Any]
    response_class: type[Any]

    @property
    def cardinality(self) -> str:
        request = "stream" if self.descriptor.client_streaming else "unary"
        response = "stream" if self.descriptor.server_streaming else "unary"
        return f"{request}_{response}"


def find_method(proto: Path, include: tuple[Path, ...], method: str) -> MethodInfo:
    """Compile ``proto`` and look ``method`` (``pkg.Service/Method``) up in it."""
    pool, services = _load_pool(proto, include)
    service_name, _, method_name = method.lstrip("/").replace("/", ".").rpartition(".")
    if not service_name:
        fail(f"method {method!r} needs its service: write pkg.Service/Method")
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        fail(f"{proto} has no service {service_name}; it has: {services}")
    found = service.methods_by_name.get(method_name)
    if found is None:
        known = ", ".join(sorted(service.methods_by_name)) or "none"
        fail(f"{service_name} has no method {method_name}; it has: {known}")
    return MethodInfo(
        path=f"/{service.full_name}/{found.name}",
        descriptor=found,
        request_class=message_factory.GetMessageClass(found.input_type),
        response_class=message_factory.GetMessageClass(found.output_type),
    )


def _load_pool(
    proto: Path, include: tuple[Path, ...]
) -> tuple[descriptor_pool.DescriptorPool, str]:
    """A pool holding ``proto`` and its imports, and the names of its services."""
    descriptors = describe_protos([proto], include or (proto.parent,))
    if isinstance(descriptors, int):
        fail(f"protoc could not compile {proto} (its message is above)")
    pool = descriptor_pool.DescriptorPool()
    names = []
    for file in descriptors.file:
        pool.Add(file)
        prefix = f"{file.package}." if file.package else ""
        names += [prefix + service.name for service in file.service]
    return pool, ", ".join(sorted(names)) or "no services"
