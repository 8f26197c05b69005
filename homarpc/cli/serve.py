"""``homarpc serve module:Servicer``: run servicers without writing a server script.

Layer: cli. Imports: click, asyncio, the public ``homarpc`` and ``homarpc.aio`` API,
``homarpc.health``, ``homarpc.reflection``, ``homarpc.transport.choose_kind`` (to say
which backend serves).

The target names a servicer class (instantiated with no arguments), an instance,
or a factory function returning one servicer or a list of them. Each servicer is
registered with the ``add_<Base>_to_server`` function generated beside the
``<Base>Servicer`` class it inherits from (by homarpc's codegen or grpcio-tools').
Servicers with ``async def`` methods run on a ``homarpc.aio`` server, others on a
blocking server with ``--workers`` handler threads.
Health (``grpc.health.v1``: the server and each service SERVING) and reflection
(``v1`` and ``v1alpha``, listing the services served) are on unless ``--no-health``
or ``--no-reflection``; both are grpcio's own servicers (``homarpc.health``,
``homarpc.reflection``).
SIGINT and SIGTERM set every health status to NOT_SERVING (watchers hear it), then
stop the server, letting calls in flight finish within ``--grace`` seconds.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import click

import homarpc
import homarpc.aio

from ..health import SERVICE_NAME as HEALTH_SERVICE
from ..health import SERVING, AsyncHealthServicer, HealthServicer, add_health
from ..reflection import enable_reflection
from ..transport import ENV_VAR, choose_kind
from ._common import fail, transport_option

Registrar = Callable[[Any, Any], None]


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="MODULE:SERVICER...")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5051, show_default=True, help="Port (0 picks one).")
@transport_option
@click.option(
    "--workers",
    default=10,
    show_default=True,
    help="Handler threads (blocking servicers).",
)
@click.option(
    "--grace",
    default=5.0,
    show_default=True,
    help="Seconds calls may finish in on stop.",
)
@click.option(
    "--app-dir",
    default=".",
    show_default=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory to import the modules from.",
)
@click.option(
    "--health/--no-health",
    default=True,
    show_default=True,
    help="Serve grpc.health.v1.Health (homarpc health TARGET probes it).",
)
@click.option(
    "--reflection/--no-reflection",
    default=True,
    show_default=True,
    help="Serve reflection (grpc.reflection.v1 and v1alpha).",
)
def serve(
    targets: tuple[str, ...],
    host: str,
    port: int,
    transport: str | None,
    workers: int,
    grace: float,
    app_dir: Path,
    health: bool,
    reflection: bool,
) -> None:
    """Serve MODULE:SERVICER (a class, an instance, or a factory) until stopped.

    \b
    homarpc serve greeter_server:Greeter --port 5051
    homarpc serve app:make_servicers --host ::1 --transport udp
    """
    sys.path.insert(0, str(app_dir.resolve()))
    servicers = [servicer for target in targets for servicer in load_servicers(target)]
    transport = _resolved(transport)
    addons = Addons(health=health, reflection=reflection)
    if any(has_async_methods(servicer) for servicer in servicers):
        asyncio.run(_serve_async(servicers, host, port, transport, grace, addons))
        return
    server = homarpc.server(max_workers=workers, transport=transport)
    names = [register(servicer, addons.recorder(server)) for servicer in servicers]
    health_servicer = addons.add_to(server)
    if isinstance(health_servicer, HealthServicer):
        for service in addons.services:
            health_servicer.set(service, SERVING)
    bound = bind(server, host, port)
    stop_requested = _stop_on_signals()
    server.start()
    _announce(names, host, bound, transport, "threads")
    while not stop_requested.wait(0.5):  # a timed wait lets signal handlers run
        pass
    click.echo(f"homarpc: stopping (grace {grace:g} s)")
    if isinstance(health_servicer, HealthServicer):
        health_servicer.enter_graceful_shutdown()
    server.stop(grace).wait()
    click.echo("homarpc: stopped")


async def _serve_async(
    servicers: list[Any],
    host: str,
    port: int,
    transport: str | None,
    grace: float,
    addons: Addons,
) -> None:
    """Serve on a ``homarpc.aio`` server: some servicer methods are ``async def``."""
    server = homarpc.aio.server(transport=transport)
    names = [register(servicer, addons.recorder(server)) for servicer in servicers]
    health_servicer = addons.add_to(server)
    if isinstance(health_servicer, AsyncHealthServicer):
        for service in addons.services:
            await health_servicer.set(service, SERVING)
    bound = bind(server, host, port)
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_requested.set)
    await server.start()
    _announce(names, host, bound, transport, "asyncio")
    await stop_requested.wait()
    click.echo(f"homarpc: stopping (grace {grace:g} s)")
    if isinstance(health_servicer, AsyncHealthServicer):
        await health_servicer.enter_graceful_shutdown()
    await server.stop(grace)
    click.echo("homarpc: stopped")


def _announce(
    names: list[str], host: str, port: int, transport: str | None, runner: str
) -> None:
    click.echo(
        f"homarpc: serving {', '.join(names)} on {_join(host, port)} "
        f"(transport {transport}, {runner}); Ctrl-C stops"
    )


def _resolved(transport: str | None) -> str:
    """The backend ``transport`` (or ``$HOMARPC_TRANSPORT``, or auto) stands for."""
    try:
        return choose_kind(transport)
    except ValueError as error:
        fail(f"{error}; or leave {ENV_VAR} unset")


def has_async_methods(servicer: Any) -> bool:
    """True when a method of the servicer is ``async def`` or an async generator."""
    return any(
        inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)
        for _, member in inspect.getmembers(type(servicer), inspect.isfunction)
    )


def load_servicers(target: str) -> list[Any]:
    """Import ``module:attribute`` and return the servicer(s) it names."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        fail(f"{target!r} is not MODULE:SERVICER; e.g. greeter_server:Greeter")
    module = _import(module_name)
    found = getattr(module, attribute, None)
    if found is None:
        candidates = [
            name
            for name, value in vars(module).items()
            if isinstance(value, type) and _registrars(value)
        ]
        fail(
            f"module {module_name!r} has no {attribute!r}"
            + (f"; it has: {', '.join(sorted(candidates))}" if candidates else "")
        )
    made = _instantiate(target, found)
    return list(made) if isinstance(made, list | tuple) else [made]


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            fail(
                f"no module named {module_name!r} here; run from its directory or "
                "pass --app-dir DIR"
            )
        fail(f"importing {module_name!r} failed: {error}; install {error.name!r}")
    except Exception as error:
        fail(f"importing {module_name!r} failed: {type(error).__name__}: {error}")


def _instantiate(target: str, found: Any) -> Any:
    """A class is instantiated, a factory called; an instance is used as it is."""
    if not callable(found) or _registrars(type(found)):
        return found
    try:
        return found()
    except TypeError as error:
        fail(f"{target}() failed: {error}; give a factory that takes no arguments")


def register(servicer: Any, server: Any) -> str:
    """Add ``servicer`` to ``server`` with its generated ``add_..._to_server``."""
    registrars = _registrars(type(servicer))
    if not registrars:
        fail(
            f"{type(servicer).__name__} does not inherit a generated servicer; "
            "subclass XServicer from your *_pb2_homarpc.py (or *_pb2_grpc.py)"
        )
    for _, add in registrars:
        add(servicer, server)
    return ", ".join(name.removesuffix("Servicer") for name, _ in registrars)


def _registrars(cls: type) -> list[tuple[str, Registrar]]:
    """``(BaseName, add_BaseName_to_server)`` for each generated base of ``cls``."""
    found = []
    for base in cls.__mro__:
        module = sys.modules.get(base.__module__)
        add = getattr(module, f"add_{base.__name__}_to_server", None)
        if callable(add):
            found.append((base.__name__, add))
    return found


def bind(server: homarpc.Server | homarpc.aio.Server, host: str, port: int) -> int:
    try:
        return server.add_insecure_port(_join(host, port))
    except RuntimeError as error:
        fail(
            f"cannot listen on {_join(host, port)} ({error}); pick another --port "
            "(0 picks a free one) or stop what is using it"
        )


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _stop_on_signals() -> threading.Event:
    """An event set by the first SIGINT or SIGTERM."""
    requested = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        requested.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return requested


class Addons:
    """Health and reflection for ``homarpc serve``, over the services registered.

    ``recorder(server)`` stands in for the server while the generated
    ``add_..._to_server`` functions run, to learn the full name of each service
    they register (``pkg.Service``); ``add_to(server)`` then adds reflection
    listing them and the health servicer, which it returns (None: ``--no-health``).
    """

    def __init__(self, *, health: bool, reflection: bool) -> None:
        self.health = health
        self.reflection = reflection
        self.services: list[str] = []

    def recorder(self, server: Any) -> _Recorder:
        return _Recorder(server, self.services)

    def add_to(self, server: Any) -> HealthServicer | AsyncHealthServicer | None:
        health_servicer = add_health(server) if self.health else None
        if self.reflection:
            listed = [*self.services]
            if health_servicer is not None:
                listed.append(HEALTH_SERVICE)
            enable_reflection(listed, server)
        return health_servicer


class _Recorder:
    """The server, noting the service names that generated code registers."""

    def __init__(self, server: Any, names: list[str]) -> None:
        self._server = server
        self._names = names

    def _note(self, name: str) -> None:
        if name not in self._names:
            self._names.append(name)

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        handlers = tuple(handlers)
        for handler in handlers:
            service_name = getattr(handler, "service_name", None)
            if callable(service_name):
                self._note(service_name())
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, handlers: Any) -> None:
        self._note(service_name)
        self._server.add_registered_method_handlers(service_name, handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)
