"""The ``homarpc`` command line: serve, call, health, bench, doctor, protoc.

Layer: cli, the top; nothing imports it. Imports: click, the public ``homarpc``
API, ``homarpc.health`` and ``homarpc.reflection`` (serve, health),
``homarpc.transport`` (doctor) and ``homarpc.codegen`` (protoc, call).

Mistakes (a bad target, a missing module, an unknown method, bad JSON, a port in
use) end in one ``Error:`` line that says what to do, never a traceback: commands
raise ``click.ClickException`` (through ``_common.fail``) and click prints it.
"""

from __future__ import annotations

import click

from .. import __version__
from .bench import bench
from .call import call
from .doctor import doctor
from .health import health
from .protoc import protoc
from .serve import serve

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="homarpc")
def main() -> None:
    """gRPC-style RPC on the Homa transport.

    \b
    homarpc protoc -I protos protos/helloworld.proto   generate code
    homarpc serve greeter_server:Greeter --port 5051  serve a servicer
    homarpc call 127.0.0.1:5051 helloworld.Greeter/SayHello \\
        --proto protos/helloworld.proto -d '{"name": "you"}'
    homarpc health 127.0.0.1:5051                      probe (grpc_health_probe)
    homarpc bench                                      measure this machine
    homarpc doctor                                     which transports work here
    """


for command in (serve, call, health, bench, doctor, protoc):
    main.add_command(command)
