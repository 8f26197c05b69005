"""``homarpc call``: call one method with JSON in and JSON out, like grpcurl.

Layer: cli. Imports: click, ``google.protobuf.json_format``, the public ``homarpc``
API, ``cli._common``.

The ``.proto`` given with ``--proto`` is compiled on the fly, so no generated code
is needed. Requests are JSON (proto3's JSON mapping); several messages for a
client stream are written one after another (JSON lines). A unary response prints
as indented JSON, a response stream as one JSON line per message.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from google.protobuf import json_format

import homarpc

from ._common import (
    MethodInfo,
    fail,
    find_method,
    include_option,
    open_channel,
    proto_option,
    transport_option,
)


@click.command()
@click.argument("target")
@click.argument("method")
@proto_option(required=True, help="The .proto file declaring the service.")
@include_option("Import directory for --proto (repeatable; default: its directory).")
@click.option(
    "-d",
    "--data",
    default="{}",
    show_default=True,
    help="Request JSON; several messages one after another for a client stream; "
    "@FILE reads a file, @- reads stdin.",
)
@click.option(
    "-H",
    "--header",
    "headers",
    multiple=True,
    help="Metadata 'key: value' sent with the call (repeatable).",
)
@click.option("--timeout", default=10.0, show_default=True, help="Deadline in seconds.")
@transport_option
def call(
    target: str,
    method: str,
    proto: Path,
    include: tuple[Path, ...],
    data: str,
    headers: tuple[str, ...],
    timeout: float,
    transport: str | None,
) -> None:
    """Call METHOD (pkg.Service/Method) on the server at TARGET (host:port).

    \b
    homarpc call 127.0.0.1:5051 helloworld.Greeter/SayHello \\
        --proto protos/helloworld.proto -d '{"name": "you"}'
    """
    info = find_method(proto, include, method)
    requests = parse_requests(_read(data), info)
    metadata = [_header(h) for h in headers]
    with open_channel(target, transport) as channel:
        try:
            pretty = not info.descriptor.server_streaming
            for response in invoke(channel, info, requests, timeout, metadata):
                click.echo(_to_json(response, pretty=pretty))
                sys.stdout.flush()  # each streamed message reaches a pipe as it comes
        except homarpc.RpcError as error:
            fail(_describe_error(error, target))


def invoke(
    channel: homarpc.Channel,
    info: MethodInfo,
    requests: list[Any],
    timeout: float,
    metadata: list[tuple[str, str]],
) -> Iterator[Any]:
    """Make the call; yield each response as it arrives."""
    codecs = {
        "request_serializer": info.request_class.SerializeToString,
        "response_deserializer": info.response_class.FromString,
    }
    kind = info.cardinality
    multicallable = getattr(channel, kind)(info.path, **codecs)
    argument = requests[0] if kind.startswith("unary") else iter(requests)
    result = multicallable(argument, timeout=timeout, metadata=metadata)
    if info.descriptor.server_streaming:
        yield from result
    else:
        yield result


def parse_requests(text: str, info: MethodInfo) -> list[Any]:
    """The request messages in ``text``: JSON values one after another."""
    decoder = json.JSONDecoder()
    values = []
    position = _skip_space(text, 0)
    while position < len(text):
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            fail(f'request is not JSON ({error}); quote it: -d \'{{"name": "x"}}\'')
        values.append(value)
        position = _skip_space(text, position)
    name = info.request_class.DESCRIPTOR.full_name
    if not info.descriptor.client_streaming and len(values) != 1:
        fail(f"{info.path} takes one {name}; -d holds {len(values)} JSON values")
    messages = []
    for value in values:
        try:
            messages.append(json_format.ParseDict(value, info.request_class()))
        except json_format.ParseError as error:
            fail(f"the JSON is not a {name}: {error}")
    return messages


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _read(data: str) -> str:
    if data == "@-":
        return sys.stdin.read()
    if data.startswith("@"):
        try:
            return Path(data[1:]).read_text()
        except OSError as error:
            fail(f"cannot read {data[1:]}: {error.strerror}")
    return data


def _header(text: str) -> tuple[str, str]:
    key, separator, value = text.partition(":")
    if not separator or not key.strip():
        fail(f"header {text!r} is not 'key: value'")
    return key.strip().lower(), value.strip()


def _to_json(message: Any, *, pretty: bool) -> str:
    as_dict = json_format.MessageToDict(message)
    if pretty:
        return json.dumps(as_dict, indent=2, ensure_ascii=False)
    return json.dumps(as_dict, separators=(",", ":"), ensure_ascii=False)


def _describe_error(error: homarpc.RpcError, target: str) -> str:
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    name = getattr(code, "name", "UNKNOWN")
    hint = ""
    if name == "UNAVAILABLE":
        hint = f"; is a server listening on {target}? (homarpc serve MODULE:SERVICER)"
    elif name == "UNIMPLEMENTED":
        hint = "; the server does not serve this method"
    return f"{name}: {details}{hint}"
