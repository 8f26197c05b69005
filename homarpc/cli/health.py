"""``homarpc health TARGET``: one ``grpc.health.v1`` Check, grpc_health_probe's exits.

Layer: cli. Imports: click, the public ``homarpc`` API, ``homarpc.health`` (the
messages and stub of grpcio-health-checking), ``cli._common``.

For exec probes (Kubernetes, Docker HEALTHCHECK, systemd): the exit status is
grpc_health_probe's, so a probe written for it keeps its meaning:

* 0: the server answered SERVING (``status: SERVING`` on stdout);
* 1: the command line is wrong (grpc_health_probe's "invalid arguments"), the
  target included: no port, or a host that does not resolve (the probe's 2);
* 2: cannot connect: nothing answers at TARGET (UNAVAILABLE: no server there,
  the host unreachable);
* 3: the RPC failed: any other status (NOT_FOUND for a service the server does
  not know, UNIMPLEMENTED when it serves no health service, DEADLINE_EXCEEDED);
* 4: the server answered, but not SERVING (NOT_SERVING, UNKNOWN, ...).

Homa has no connection to set up, so "cannot connect" is what the transport
reports when the peer cannot be reached; a server that stays silent until the
deadline is an RPC failure (3), as grpc_health_probe's "health rpc did not
complete" is.
"""

from __future__ import annotations

from typing import Any

import click

import homarpc

from ..health import health_pb2, health_pb2_grpc
from ._common import open_channel, transport_option

SERVING_EXIT = 0
USAGE_EXIT = 1
CONNECT_EXIT = 2
RPC_EXIT = 3
NOT_SERVING_EXIT = 4


class CannotConnect(click.ClickException):
    """Nothing answers at the target: one ``Error:`` line, exit status 2."""

    exit_code = CONNECT_EXIT


class RpcFailed(click.ClickException):
    """The Check ended with a status other than OK: exit status 3."""

    exit_code = RPC_EXIT


class NotServing(click.ClickException):
    """The server answered, with a status other than SERVING: exit status 4."""

    exit_code = NOT_SERVING_EXIT


class _UsageError(click.UsageError):
    exit_code = USAGE_EXIT


class _ProbeCommand(click.Command):
    """A command whose usage mistakes exit 1, not click's 2 ("cannot connect")."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            raise _UsageError(error.message, error.ctx) from None


@click.command(cls=_ProbeCommand)
@click.argument("target")
@click.option(
    "--service",
    default="",
    help="Service to check, e.g. helloworld.Greeter (default: the whole server).",
)
@click.option(
    "--timeout",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Deadline of the check in seconds.",
)
@transport_option
def health(target: str, service: str, timeout: float, transport: str | None) -> None:
    """Check the health of the server at TARGET (host:port), as grpc_health_probe.

    \b
    Exit status: 0 SERVING, 1 bad arguments, 2 cannot connect,
    3 the RPC failed (e.g. unknown --service), 4 not SERVING.
    \b
    homarpc health 127.0.0.1:5051
    homarpc health 127.0.0.1:5051 --service helloworld.Greeter --timeout 2
    """
    with open_channel(target, transport) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # type: ignore[arg-type]
        request = health_pb2.HealthCheckRequest(service=service)
        try:
            response = stub.Check(request, timeout=timeout)
        except homarpc.RpcError as error:
            raise _failure(error, target, service, timeout) from None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        raise NotServing(f"{_what(service)} at {target} is {status}, not SERVING")
    click.echo(f"status: {status}")


def _failure(
    error: homarpc.RpcError, target: str, service: str, timeout: float
) -> click.ClickException:
    """The one line and exit status for a Check that ended with ``error``."""
    code = error.code() if hasattr(error, "code") else homarpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    said = f"{code.name}: {details}" if details else code.name
    if code is homarpc.StatusCode.UNAVAILABLE:
        return CannotConnect(
            f"cannot connect to {target} ({said}); is a server listening there?"
        )
    if code is homarpc.StatusCode.NOT_FOUND:
        hint = f"the server does not know service {service!r} (check --service)"
    elif code is homarpc.StatusCode.UNIMPLEMENTED:
        hint = (
            "the server does not serve grpc.health.v1.Health; homarpc serve does "
            "unless --no-health, in code: homarpc.health.add_health(server)"
        )
    elif code is homarpc.StatusCode.DEADLINE_EXCEEDED:
        hint = f"no answer within {timeout:g} s (--timeout)"
    else:
        hint = "the health check failed"
    return RpcFailed(f"health rpc failed: {said}; {hint}")


def _what(service: str) -> str:
    return f"service {service!r}" if service else "the server"
