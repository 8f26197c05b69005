"""``homarpc bench``: a load generator in the spirit of ghz.

Layer: cli. Imports: click, the public ``homarpc`` API, ``cli._common``.

Without a target it measures this machine: it starts an echo server in-process
(127.0.0.1, a free port) and calls it with ``--payload`` bytes. With TARGET, METHOD
and ``--proto`` it calls a unary method of a running server with the ``-d`` request.
``--concurrency`` threads each make one call at a time until ``--count`` calls are
done or ``--duration`` has passed; then it prints throughput, a latency percentile
table and a text histogram (and a PNG with ``--plot``, when matplotlib is present).
"""

from __future__ import annotations

import importlib
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

import homarpc

from ._common import (
    fail,
    find_method,
    include_option,
    open_channel,
    proto_option,
    transport_option,
)
from .call import parse_requests

ECHO_SERVICE = "homarpc.bench.Echo"
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass
class Results:
    """What the workers measured: latencies of good calls, failures by code."""

    latencies_ns: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0

    @property
    def calls(self) -> int:
        return len(self.latencies_ns) + sum(self.errors.values())


@click.command()
@click.argument("target", required=False)
@click.argument("method", required=False)
@proto_option(required=False, help="The .proto declaring METHOD (with TARGET).")
@include_option("Import directory for --proto (repeatable).")
@click.option(
    "-d", "--data", default="{}", show_default=True, help="Request JSON for METHOD."
)
@click.option(
    "-c",
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Calls in flight at once.",
)
@click.option(
    "-n",
    "--count",
    default=2000,
    show_default=True,
    type=click.IntRange(1),
    help="Calls to make (unless --duration).",
)
@click.option(
    "-z",
    "--duration",
    type=click.FloatRange(min=0.1),
    help="Seconds to run for, instead of --count.",
)
@click.option(
    "--payload",
    default=64,
    show_default=True,
    type=click.IntRange(0),
    help="Echo payload in bytes (without TARGET).",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a latency histogram PNG here (needs matplotlib).",
)
@transport_option
def bench(
    target: str | None,
    method: str | None,
    proto: Path | None,
    include: tuple[Path, ...],
    data: str,
    concurrency: int,
    count: int,
    duration: float | None,
    payload: int,
    plot: Path | None,
    transport: str | None,
) -> None:
    """Measure latency and throughput of unary calls.

    \b
    homarpc bench                                  echo server in-process
    homarpc bench -c 16 -z 10 --payload 1024       more load, for 10 seconds
    homarpc bench 127.0.0.1:5051 helloworld.Greeter/SayHello \\
        --proto protos/helloworld.proto -d '{"name": "bench"}'
    """
    if plot is not None:
        _require_matplotlib()
    with _endpoint(target, method, proto, include, data, payload, transport) as (
        call_once,
        label,
    ):
        click.echo(
            f"homarpc bench: {label}, concurrency {concurrency}, "
            + (f"{duration:g} s" if duration else f"{count} calls")
        )
        results = run_load(call_once, concurrency, count, duration)
    click.echo(report(results))
    if plot is not None:
        save_plot(results, plot)
        click.echo(f"histogram written to {plot}")


@contextmanager
def _endpoint(
    target: str | None,
    method: str | None,
    proto: Path | None,
    include: tuple[Path, ...],
    data: str,
    payload: int,
    transport: str | None,
) -> Iterator[tuple[Callable[[], Any], str]]:
    """A no-argument function making one call, and what it calls, for the workers."""
    if target is None:
        with (
            _echo_server(transport) as address,
            open_channel(address, transport) as channel,
        ):
            echo = channel.unary_unary(f"/{ECHO_SERVICE}/Echo")
            body = b"x" * payload
            yield (lambda: echo(body, timeout=10)), f"echo {payload} B at {address}"
        return
    if method is None or proto is None:
        fail(
            "with TARGET, give METHOD and --proto too (or no TARGET for the echo test)"
        )
    info = find_method(proto, include, method)
    if info.cardinality != "unary_unary":
        fail(f"bench drives unary methods; {info.path} is {info.cardinality}")
    request = parse_requests(data, info)[0]
    with open_channel(target, transport) as channel:
        stub = channel.unary_unary(
            info.path,
            request_serializer=info.request_class.SerializeToString,
            response_deserializer=info.response_class.FromString,
        )
        yield (lambda: stub(request, timeout=10)), f"{info.path} at {target}"


@contextmanager
def _echo_server(transport: str | None) -> Iterator[str]:
    server = homarpc.server(max_workers=8, transport=transport)
    handler = homarpc.unary_unary_rpc_method_handler(lambda request, context: request)
    server.add_generic_rpc_handlers(
        (homarpc.method_handlers_generic_handler(ECHO_SERVICE, {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None).wait(5)


def run_load(
    call_once: Callable[[], Any], concurrency: int, count: int, duration: float | None
) -> Results:
    """Run ``concurrency`` workers until ``count`` calls or ``duration`` seconds."""
    results = Results()
    lock = threading.Lock()
    began = time.perf_counter()
    deadline = began + duration if duration else math.inf
    remaining = math.inf if duration else count

    def worker() -> None:
        nonlocal remaining
        while True:
            with lock:
                if remaining <= 0 or time.perf_counter() >= deadline:
                    return
                remaining -= 1
            start = time.perf_counter_ns()
            try:
                call_once()
            except homarpc.RpcError as error:
                code = error.code() if hasattr(error, "code") else None
                with lock:
                    results.errors[getattr(code, "name", "UNKNOWN")] += 1
                continue
            took = time.perf_counter_ns() - start
            with lock:
                results.latencies_ns.append(took)

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in workers:
        thread.start()
    _show_progress(workers, results, began)
    results.elapsed_s = time.perf_counter() - began
    return results


def _show_progress(
    workers: Sequence[threading.Thread], results: Results, began: float
) -> None:
    """Wait for the workers, redrawing one progress line on a terminal."""
    live = sys.stderr.isatty()
    for thread in workers:
        while thread.is_alive():
            thread.join(0.25)
            if live:
                elapsed = time.perf_counter() - began
                click.echo(
                    f"\r  {results.calls} calls, {results.calls / elapsed:,.0f}/s, "
                    f"{sum(results.errors.values())} errors",
                    nl=False,
                    err=True,
                )
    if live:
        click.echo("\r" + " " * 60 + "\r", nl=False, err=True)


def percentile(sorted_values: Sequence[int], percent: float) -> int:
    """Nearest-rank percentile of already sorted values (``percent`` in 0..100)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = math.ceil(percent / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def histogram(sorted_values: Sequence[int], buckets: int = 10) -> list[tuple[int, int]]:
    """``(upper bound, count)`` for ``buckets`` equal-width buckets over the values."""
    low, high = sorted_values[0], sorted_values[-1]
    width = max((high - low) / buckets, 1)
    counts = [0] * buckets
    for value in sorted_values:
        counts[min(int((value - low) / width), buckets - 1)] += 1
    return [(round(low + width * (i + 1)), n) for i, n in enumerate(counts)]


def report(results: Results) -> str:
    """The summary, percentile table and text histogram, in microseconds."""
    good = sorted(results.latencies_ns)
    rate = results.calls / results.elapsed_s if results.elapsed_s else 0.0
    errors = ", ".join(f"{code} {n}" for code, n in results.errors.most_common())
    lines = [
        "",
        f"calls       {results.calls} ({errors or 'no errors'})",
        f"duration    {results.elapsed_s:.2f} s",
        f"throughput  {rate:,.0f} calls/s",
    ]
    if not good:
        return "\n".join([*lines, "no call succeeded: nothing to measure"])
    columns = ["min", *(f"p{p:g}" for p in PERCENTILES), "max", "mean"]
    values = [good[0], *(percentile(good, p) for p in PERCENTILES), good[-1]]
    values.append(round(sum(good) / len(good)))
    lines += [
        "",
        "latency (µs)",
        "  ".join(f"{c:>8}" for c in columns),
        "  ".join(f"{v / 1000:>8.1f}" for v in values),
        "",
    ]
    peak = max(n for _, n in histogram(good))
    for bound, n in histogram(good):
        bar = "■" * round(40 * n / peak)
        lines.append(f"{bound / 1000:>10.1f} µs [{n:>7}] {bar}")
    return "\n".join(lines)


def _require_matplotlib() -> None:
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        fail("--plot needs matplotlib: pip install matplotlib (or drop --plot)")


def save_plot(results: Results, path: Path) -> None:
    """A 50-bin latency histogram as a PNG (matplotlib is optional, hence dynamic)."""
    importlib.import_module("matplotlib").use("Agg")
    pyplot = importlib.import_module("matplotlib.pyplot")

    figure, axes = pyplot.subplots(figsize=(8, 4))
    axes.hist([ns / 1000 for ns in results.latencies_ns], bins=50)
    axes.set_xlabel("latency (µs)")
    axes.set_ylabel("calls")
    axes.set_title(f"homarpc bench: {results.calls} calls")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    pyplot.close(figure)
