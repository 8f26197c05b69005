"""RPC benchmark: homarpc against grpcio, in one run, on this machine.

Layer: benchmarks (top; not shipped). Imports: stdlib, ``grpc``, ``homarpc``, and
``matplotlib`` only if it is installed and ``--plot`` is given.

Each framework gets its own server process (this script re-run as ``_serve``), fed
by a client in this process. The same three workloads run against both:

* ``unary64``: one caller, sequential unary echo of 64 bytes: median and p99.
* ``unary1m``: one caller, sequential unary echo of 1,000,000 bytes: median.
* ``concurrent``: 8 threads share one channel, unary echo of 64 bytes: calls/s.

Both servers run the same generic echo handler on raw bytes (no protobuf, so only
the RPC stack is measured) with the same 8-worker thread pool. The two frameworks
take the same code, by design: homarpc's API is grpcio's (``import homarpc as grpc``).

The frameworks take turns: the run is ``--rounds`` rounds (3 by default), each
measuring both frameworks (a fresh server each, with its own warm-up) on a share
of the budget, first one, then the other, in alternating order. The table pools
each framework's samples over the rounds (medians and p99s of all samples, the
mean of the call rates); the ratios of every round are printed too. On a shared
machine whose speed drifts over tens of seconds, taking turns keeps one framework
from having all the quiet minutes (``transport_bench.py`` alternates the same way).

With ``--api aio`` both sides use the asyncio API instead (``grpc.aio`` against
``homarpc.aio``: aio servers with an ``async def`` echo, and 8 tasks instead of 8
threads in the concurrent workload).

Usage::

    .venv/bin/python benchmarks/rpc_bench.py            # full run, < 90 s
    .venv/bin/python benchmarks/rpc_bench.py --quick    # smoke run, < 20 s
    .venv/bin/python benchmarks/rpc_bench.py --api aio  # grpc.aio vs homarpc.aio
    .venv/bin/python benchmarks/rpc_bench.py --transport kernel --plot lat.png
    .venv/bin/python benchmarks/rpc_bench.py --pin      # client, server on own CPUs
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import gc
import importlib
import inspect
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent import futures
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from _stats import (  # noqa: E402
    ChildServer,
    Progress,
    Target,
    format_duration,
    median,
    percentile,
    plot_cdf,
    ratio,
    table,
)

from homarpc.transport import tune_malloc  # noqa: E402

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"
SMALL = 64
LARGE = 1_000_000
CALLERS = 8
#: Every call gets this deadline, so a lost call costs seconds, not the run.
CALL_TIMEOUT = 5.0
FRAMEWORKS = ("grpcio", "homarpc")
#: The targets from issue 4: homarpc / grpcio must be at most (or, for calls/s,
#: at least) these ratios.
TARGETS = {
    "unary64_median": Target("<=", 0.25),
    "unary64_p99": Target("<=", 0.25),
    "unary1m_median": Target("<=", 0.5),
    "concurrent_calls_per_s": Target(">=", 2.0),
}


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much work each phase does; every phase also stops at its time cap."""

    warmup_calls: int
    small_calls: int
    small_seconds: float
    large_calls: int
    large_seconds: float
    concurrent_seconds: float

    def share(self, rounds: int) -> Budget:
        """One round's part of this budget (the warm-up is not shared: every
        round starts a fresh server)."""
        return Budget(
            self.warmup_calls,
            -(-self.small_calls // rounds),
            self.small_seconds / rounds,
            -(-self.large_calls // rounds),
            self.large_seconds / rounds,
            self.concurrent_seconds / rounds,
        )


#: Totals over all rounds.
FULL = Budget(300, 20000, 12.0, 300, 8.0, 6.0)
QUICK = Budget(100, 1000, 2.0, 10, 1.5, 1.5)
#: Rounds of a full run (a quick one is a single round).
ROUNDS = 3


# -- server process ----------------------------------------------------------------


def _echo(request: bytes, context: Any) -> bytes:
    return request


async def _async_echo(request: bytes, context: Any) -> bytes:
    return request


def _module(framework: str, api: str) -> Any:
    """``grpc``/``homarpc``, or their ``.aio`` for ``--api aio``."""
    name = "grpc" if framework == "grpcio" else framework
    return importlib.import_module(f"{name}.aio" if api == "aio" else name)


def _server_kwargs(framework: str, transport: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "options": [("grpc.max_receive_message_length", 4 * LARGE)]
    }
    if framework == "homarpc":
        kwargs["transport"] = transport
    return kwargs


def _add_echo(rpc: Any, server: Any, behavior: Callable[..., Any]) -> int:
    base = importlib.import_module(rpc.__name__.removesuffix(".aio"))
    handler = base.unary_unary_rpc_method_handler(behavior)
    generic = base.method_handlers_generic_handler(SERVICE, {"Echo": handler})
    server.add_generic_rpc_handlers((generic,))
    return int(server.add_insecure_port("127.0.0.1:0"))


def serve(framework: str, transport: str, api: str) -> None:
    """Run an echo server, print ``PORT <n>``, and stop when stdin closes."""
    rpc = _module(framework, api)
    kwargs = _server_kwargs(framework, transport)
    if api == "aio":
        asyncio.run(_serve_aio(rpc, kwargs))
        return
    server = rpc.server(futures.ThreadPoolExecutor(max_workers=CALLERS), **kwargs)
    port = _add_echo(rpc, server, _echo)
    server.start()
    print(f"PORT {port}", flush=True)
    sys.stdin.read()  # the parent closes our stdin when it is done (or dies)
    server.stop(None)


async def _serve_aio(aio: Any, kwargs: dict[str, Any]) -> None:
    server = aio.server(**kwargs)
    port = _add_echo(aio, server, _async_echo)
    await server.start()
    print(f"PORT {port}", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await server.stop(None)


def start_server(
    framework: str, transport: str, api: str, cpu: int | None, malloc: str
) -> ChildServer:
    """A ``serve()`` child process for ``framework`` (pinned to ``cpu`` if given)."""
    argv = [sys.executable, os.path.abspath(__file__), "_serve", framework]
    argv += ["--transport", transport, "--api", api, "--malloc", malloc]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    return ChildServer(argv, framework)


def placement(pin: bool) -> tuple[int | None, int | None]:
    """(client CPU, server CPU): separate CPUs when pinning and there are two."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return cpus[0], cpus[-1]


# -- client workloads ----------------------------------------------------------------


#: One call of the echo method: returns the reply, or (``--api aio``) an awaitable.
Echo = Callable[[bytes], Any]


async def _reply(echo: Echo, payload: bytes) -> bytes:
    reply = echo(payload)
    return bytes(await reply if inspect.isawaitable(reply) else reply)


@dataclasses.dataclass
class Outcome:
    """What one phase measured: latencies (or completed calls) and failures."""

    samples: list[float] = dataclasses.field(default_factory=list)
    completed: int = 0
    failures: int = 0
    first_error: str = ""

    def fail(self, exc: BaseException) -> None:
        self.failures += 1
        if not self.first_error:
            code, details = getattr(exc, "code", None), getattr(exc, "details", None)
            if callable(code) and callable(details):  # an RpcError: say its status
                self.first_error = f"{code().name}: {details()}"
            else:
                self.first_error = f"{type(exc).__name__}: {exc}"[:300]

    def summary(self) -> str:
        if not self.failures:
            return ""
        return f", {self.failures} FAILED (first: {self.first_error.splitlines()[0]})"


async def sequential_latencies(
    call: Echo, size: int, count: int, seconds: float, label: str, progress: Progress
) -> Outcome:
    """Time ``count`` back-to-back calls (or as many as fit in ``seconds``)."""
    payload = os.urandom(size)
    outcome = Outcome()
    stop_at = time.perf_counter() + seconds
    while (
        outcome.completed + outcome.failures < count and time.perf_counter() < stop_at
    ):
        start = time.perf_counter()
        try:
            reply = await _reply(call, payload)
        except Exception as exc:  # a failed call is counted and reported, not fatal
            outcome.fail(exc)
            continue
        outcome.samples.append(time.perf_counter() - start)
        outcome.completed += 1
        if len(reply) != size:
            outcome.fail(RuntimeError(f"echo returned {len(reply)} of {size} bytes"))
        progress.show(f"{label}: {outcome.completed}/{count} calls")
    progress.done(
        f"{label}: {outcome.completed} calls, median "
        f"{format_duration(median(outcome.samples))}{outcome.summary()}"
    )
    return outcome


async def concurrent_rate(
    call: Echo, api: str, seconds: float, label: str, progress: Progress
) -> Outcome:
    """Calls completed by ``CALLERS`` callers sharing one channel (threads, or tasks
    for ``--api aio``); ``samples`` holds the one figure, calls per second."""
    payload = os.urandom(SMALL)
    outcomes = [Outcome() for _ in range(CALLERS)]
    stop = threading.Event()
    start = time.perf_counter()
    if api == "aio":
        tasks = [
            asyncio.create_task(_async_caller(call, payload, o, stop)) for o in outcomes
        ]
    else:
        threads = [_thread_caller(call, payload, o, stop) for o in outcomes]
    while time.perf_counter() - start < seconds:
        progress.show(f"{label}: {sum(o.completed for o in outcomes)} calls")
        await asyncio.sleep(0.1)
    stop.set()
    if api == "aio":
        await asyncio.wait(tasks, timeout=CALL_TIMEOUT + 5)
    else:
        for thread in threads:
            thread.join(timeout=CALL_TIMEOUT + 5)
    elapsed = time.perf_counter() - start
    total = Outcome(completed=sum(o.completed for o in outcomes))
    for outcome in outcomes:
        for _ in range(outcome.failures):
            total.fail(RuntimeError(outcome.first_error))
    total.samples.append(total.completed / elapsed)
    progress.done(
        f"{label}: {total.completed} calls in {elapsed:.1f} s = "
        f"{total.samples[0]:,.0f}/s{total.summary()}"
    )
    return total


def _thread_caller(
    call: Echo, payload: bytes, outcome: Outcome, stop: threading.Event
) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            try:
                call(payload)
            except Exception as exc:
                outcome.fail(exc)
            else:
                outcome.completed += 1

    thread = threading.Thread(target=run)
    thread.start()
    return thread


async def _async_caller(
    call: Echo, payload: bytes, outcome: Outcome, stop: threading.Event
) -> None:
    while not stop.is_set():
        try:
            await call(payload)
        except Exception as exc:
            outcome.fail(exc)
        else:
            outcome.completed += 1


def _open_channel(framework: str, port: int, transport: str, api: str) -> Any:
    rpc = _module(framework, api)
    if framework == "grpcio":
        options = [("grpc.max_receive_message_length", 4 * LARGE)]
        return rpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    scheme = "homa" if transport == "kernel" else "homa+udp"
    return rpc.insecure_channel(f"{scheme}://127.0.0.1:{port}")


async def measure(
    framework: str,
    transport: str,
    api: str,
    budget: Budget,
    progress: Progress,
    server_cpu: int | None,
    malloc: str = "same",
) -> dict[str, Any]:
    """Run the three workloads against a fresh server of ``framework``."""
    name = framework if framework == "grpcio" else f"homarpc/{transport}"
    name += ".aio" if api == "aio" else ""
    with start_server(framework, transport, api, server_cpu, malloc) as server:
        channel = _open_channel(framework, server.port, transport, api)
        try:
            echo = functools.partial(channel.unary_unary(METHOD), timeout=CALL_TIMEOUT)
            phases = [
                (SMALL, budget.warmup_calls, 30.0, "warm-up"),
                (SMALL, budget.small_calls, budget.small_seconds, "unary 64 B"),
                (LARGE, budget.large_calls, budget.large_seconds, "unary 1,000,000 B"),
            ]
            _, small, large = [
                await _phase(sequential_latencies, echo, size, count, seconds,
                             f"[{name}] {title}", progress)
                for size, count, seconds, title in phases
            ]  # fmt: skip
            rate = await _phase(
                concurrent_rate, echo, api, budget.concurrent_seconds,
                f"[{name}] {CALLERS} callers", progress,
            )  # fmt: skip
        finally:
            closed = channel.close()
            if inspect.isawaitable(closed):
                await closed
    return {
        "name": name,
        "unary64_median": median(small.samples),
        "unary64_p99": percentile(small.samples, 99),
        "unary64_samples": small.samples,
        "unary1m_median": median(large.samples),
        "unary1m_samples": large.samples,
        "unary1m_calls": large.completed,
        "concurrent_calls_per_s": rate.samples[0],
        "failures": small.failures + large.failures + rate.failures,
    }


async def _phase(run: Callable[..., Awaitable[Outcome]], *args: Any) -> Outcome:
    """One workload, after a garbage collection so no phase pays for another's."""
    gc.collect()
    return await run(*args)


# -- reporting ---------------------------------------------------------------------


def _rate(value: float) -> str:
    return f"{value:,.0f}/s"


ROWS = [
    ("unary 64 B median", "unary64_median", format_duration),
    ("unary 64 B p99", "unary64_p99", format_duration),
    ("unary 1,000,000 B median", "unary1m_median", format_duration),
    (f"{CALLERS} callers, 64 B", "concurrent_calls_per_s", _rate),
]


def pooled(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """One framework's figures over all its turns: medians and p99s of the pooled
    samples, the mean call rate, every failure."""
    small = [x for turn in turns for x in turn["unary64_samples"]]
    large = [x for turn in turns for x in turn["unary1m_samples"]]
    rates = [turn["concurrent_calls_per_s"] for turn in turns]
    return {
        "name": turns[0]["name"],
        "unary64_median": median(small),
        "unary64_p99": percentile(small, 99),
        "unary64_samples": small,
        "unary1m_median": median(large),
        "unary1m_samples": large,
        "unary1m_calls": len(large),
        "concurrent_calls_per_s": sum(rates) / len(rates),
        "failures": sum(turn["failures"] for turn in turns),
    }


def round_ratios(turns: dict[str, list[dict[str, Any]]]) -> str:
    """Each round's own ratios, one line per round."""
    lines = []
    pairs = zip(turns["grpcio"], turns["homarpc"], strict=True)
    for number, pair in enumerate(pairs, 1):
        found = ratios({"grpcio": pair[0], "homarpc": pair[1]})
        figures = ", ".join(f"{title} {found[key]:.2f}x" for title, key, _ in ROWS)
        lines.append(f"round {number}: {figures}")
    return "\n".join(lines)


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """homarpc / grpcio for every target metric."""
    ours, theirs = results["homarpc"], results["grpcio"]
    return {key: ratio(ours[key], theirs[key]) for key in TARGETS}


def report(results: dict[str, dict[str, Any]]) -> str:
    """The result table, with the ratio and verdict for each target."""
    found = ratios(results)
    rows = [
        [
            title,
            fmt(results["grpcio"][key]),
            fmt(results["homarpc"][key]),
            f"{found[key]:.2f}x",
            TARGETS[key].verdict(found[key]),
        ]
        for title, key, fmt in ROWS
    ]
    rows.append(
        [
            "failed calls",
            *(str(results[f]["failures"]) for f in FRAMEWORKS),
            "",
            "0 expected",
        ]
    )
    names = [results[f]["name"] for f in FRAMEWORKS]
    header = ["metric", *names, "ratio", "target"]
    return table(header, rows)


# -- command line --------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "_serve"])
    parser.add_argument("framework", nargs="?", choices=FRAMEWORKS)
    parser.add_argument("--quick", action="store_true", help="smoke run, < 20 s")
    parser.add_argument(
        "--transport",
        choices=["udp", "kernel"],
        default="udp",
        help="homarpc transport (default: udp, the embedded Homa)",
    )
    parser.add_argument(
        "--api",
        choices=["sync", "aio"],
        default="sync",
        help="blocking API (default) or asyncio (grpc.aio vs homarpc.aio)",
    )
    parser.add_argument("--only", choices=FRAMEWORKS, help="measure one framework")
    parser.add_argument(
        "--rounds",
        type=int,
        help=f"turns each framework takes (default: {ROUNDS}, 1 with --quick)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin client and server to separate CPUs (default: the scheduler places)",
    )
    parser.add_argument(
        "--malloc",
        choices=["same", "own"],
        default="same",
        help="same (default): grpcio's processes get the glibc malloc thresholds "
        "homarpc sets for itself, so the ratios compare RPC stacks, not allocator "
        "settings; own: each framework as it comes",
    )
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)  # for _serve
    parser.add_argument("--plot", metavar="PNG", help="latency CDF (needs matplotlib)")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.malloc == "same":
        tune_malloc()  # homarpc does this itself; grpcio's processes get it here
    if args.mode == "_serve":
        if args.cpu is not None:
            os.sched_setaffinity(0, {args.cpu})
        try:
            serve(args.framework, args.transport, args.api)
        except Exception as exc:  # e.g. no kernel Homa here: say it in one line
            print(f"rpc_bench server: {exc}", file=sys.stderr)
            return 1
        return 0
    rounds = args.rounds or (1 if args.quick else ROUNDS)
    if rounds < 1:
        print("rpc_bench: --rounds must be at least 1", file=sys.stderr)
        return 2
    budget = (QUICK if args.quick else FULL).share(rounds)
    progress = Progress()
    frameworks = [args.only] if args.only else list(FRAMEWORKS)
    started = time.monotonic()
    client_cpu, server_cpu = placement(args.pin)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    turns: dict[str, list[dict[str, Any]]] = {f: [] for f in frameworks}
    try:
        for number in range(rounds):
            order = frameworks if number % 2 == 0 else frameworks[::-1]
            for f in order:
                turns[f].append(
                    asyncio.run(
                        measure(
                            f,
                            args.transport,
                            args.api,
                            budget,
                            progress,
                            server_cpu,
                            args.malloc,
                        )
                    )
                )
    except RuntimeError as exc:  # a server that did not start said why above
        print(f"rpc_bench: {exc}", file=sys.stderr)
        return 1
    results = {f: pooled(turns[f]) for f in frameworks}
    print(
        f"\n{len(frameworks)} framework(s) measured in "
        f"{time.monotonic() - started:.1f} s on {os.cpu_count()} CPUs\n"
    )
    if len(results) == 2:
        if rounds > 1:
            print(round_ratios(turns) + "\n")
        print(report(results))
    else:
        for key, value in results[frameworks[0]].items():
            if not key.endswith("_samples"):
                print(f"{key}: {value}")
    if args.json:
        _write_json(args.json, results)
    series = {r["name"]: r["unary64_samples"] for r in results.values()}
    xlabel = "unary 64 B echo latency (µs)"
    if args.plot and not plot_cdf(series, args.plot, xlabel=xlabel):
        print("--plot skipped: matplotlib is not installed", file=sys.stderr)
    return 0


def _write_json(path: str, results: dict[str, dict[str, Any]]) -> None:
    summary = {
        name: {k: v for k, v in r.items() if not k.endswith("_samples")}
        for name, r in results.items()
    }
    if len(results) == 2:
        summary["ratios"] = ratios(results)
    with open(path, "w") as out:
        json.dump(summary, out, indent=2)


if __name__ == "__main__":
    sys.exit(main())
