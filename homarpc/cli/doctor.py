"""``homarpc doctor``: which transports work here, and what to do about the rest.

Layer: cli. Imports: click, ``homarpc.transport`` (public names and the kernel
backend's probes), the stdlib.

Each check prints ``ok``, ``warn`` or ``--`` (missing), a finding, and for anything
short of ok a ``fix:`` line. The exit status is 0 when at least one transport
carried a loopback round trip.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import click

from .. import __version__
from ..transport import ENV_VAR, HomaError, choose_kind, open_transport

#: Socket buffer size the embedded transport asks for; smaller caps cost throughput.
WANTED_BUFFER = 4 * 1024 * 1024
PROC_NET_CORE = Path("/proc/sys/net/core")
ROUND_TRIP_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    status: str  # "ok", "warn" or "--"
    finding: str
    fix: str = ""


@click.command()
def doctor() -> None:
    """Report which Homa transports work on this host and how to fix the rest."""
    click.echo(
        f"homarpc {__version__} on Python {platform.python_version()}, "
        f"protobuf {_version('protobuf')}, grpcio-tools {_version('grpcio-tools')}, "
        f"Linux {platform.release()}"
    )
    checks = [check_udp(), check_kernel(), check_buffers(), check_selection()]
    for check in checks:
        click.echo(f"  {check.status:<5}{check.name:<10}{check.finding}")
        if check.fix:
            click.echo(f"  {'':<15}fix: {check.fix}")
    working = [c for c in checks[:2] if c.status == "ok"]
    if not working:
        raise SystemExit(1)


def check_udp() -> Check:
    try:
        took = loopback_round_trip("udp")
    except (OSError, HomaError) as error:
        return Check(
            "udp",
            "--",
            f"embedded Homa over UDP failed: {error}",
            "check that 127.0.0.1 is up and UDP is not filtered",
        )
    return Check("udp", "ok", f"embedded Homa over UDP: loopback round trip {took}")


def check_kernel() -> Check:
    from ..transport import kernel

    reason = kernel.unavailable_reason()
    if reason is not None:
        return Check(
            "kernel",
            "--",
            reason,
            "to use it, build and load the module (github.com/PlatformLab/HomaModule: "
            "make && sudo insmod homa.ko), then run homarpc doctor again",
        )
    try:
        took = loopback_round_trip("kernel")
    except (OSError, HomaError) as error:
        return Check(
            "kernel",
            "warn",
            f"module loaded ({kernel.abi_generation()}) but "
            f"a loopback call failed: {error}",
            "see dmesg for Homa messages",
        )
    return Check(
        "kernel",
        "ok",
        f"Homa module, ABI generation "
        f"{kernel.abi_generation()}: loopback round trip {took}",
    )


def check_buffers() -> Check:
    limits = {
        name: _read_int(PROC_NET_CORE / name) for name in ("rmem_max", "wmem_max")
    }
    shown = ", ".join(
        f"net.core.{n} {v if v is not None else '?'}" for n, v in limits.items()
    )
    small = [n for n, v in limits.items() if v is not None and v < WANTED_BUFFER]
    if not small:
        return Check("buffers", "ok", shown)
    settings = " ".join(f"net.core.{n}={WANTED_BUFFER}" for n in small)
    return Check(
        "buffers",
        "warn",
        f"{shown}: UDP socket buffers are capped below 4 MiB, "
        "which limits throughput and long messages on the embedded transport",
        f"sudo sysctl -w {settings}",
    )


def check_selection() -> Check:
    requested = os.environ.get(ENV_VAR)
    source = f"{ENV_VAR}={requested}" if requested else f"{ENV_VAR} unset"
    try:
        chosen = choose_kind()
    except ValueError as error:
        return Check("auto", "warn", str(error), f"unset {ENV_VAR} or fix its value")
    return Check("auto", "ok", f"servers and channels use {chosen} ({source})")


def loopback_round_trip(kind: str) -> str:
    """Send one request from a client socket to a server socket and back."""
    server = open_transport(kind, ("127.0.0.1", 0), server=True)
    client = open_transport(kind, ("127.0.0.1", 0))
    try:
        began = time.perf_counter()
        client.send(server.local_addr, b"ping", 1)
        request = server.recv(ROUND_TRIP_TIMEOUT_S)
        if request is None:
            raise HomaError("the request did not arrive within 2 s")
        server.reply(request.peer, request.id, b"pong")
        response = client.recv(ROUND_TRIP_TIMEOUT_S)
        if response is None or response.error is not None:
            raise HomaError(
                f"no response ({response.error if response else 'timeout'})"
            )
        return f"{(time.perf_counter() - began) * 1000:.2f} ms"
    finally:
        client.close()
        server.close()


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "missing"
