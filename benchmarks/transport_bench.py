"""Transport benchmark: the embedded Homa (UDP) transport beside plain Python UDP.

Layer: benchmarks (top; not shipped). Imports: stdlib, ``homarpc.transport``,
``benchmarks/_stats.py``, and ``tests/netns/harness.py`` for the loss run.

Everything runs in one invocation, on loopback, between two processes (this
script re-run as ``_serve`` is the echo server):

* ping-pong of 64 B and 16 KB messages through the transport and, alternating in
  blocks with it, through a plain Python UDP socket (``sendto``/``recvfrom``, no
  protocol at all): medians, p99s and transport/plain ratios;
* ping-pong of 1,000,000 B messages: median round trip and payload MB/s each way
  (a round trip carries 1 MB out and 1 MB back, so each way is 2 MB / RTT);
* SRPT: a 64 B RPC issued right after two 1,000,000 B RPCs to the same server,
  and one issued 0.5 ms into them (when the server has granted them and its socket
  holds their data): its latency against theirs, and how often it finished first;
* loss (root only, needs ``ip`` and ``nft``): 10,000 RPCs in a network namespace
  that drops a random 5% of UDP datagrams; each must complete exactly once with
  the right bytes (``tests/netns/lossy_echo.py`` does the work).

Usage::

    .venv/bin/python benchmarks/transport_bench.py            # full run, < ~60 s
    .venv/bin/python benchmarks/transport_bench.py --quick    # smoke run, < ~15 s
    .venv/bin/python benchmarks/transport_bench.py --json out.json --plot cdf.png
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from _stats import (  # noqa: E402
    ChildServer,
    Progress,
    Summary,
    Target,
    format_duration,
    format_rate,
    median,
    plot_cdf,
    ratio,
    summarize,
    table,
)

from homarpc.transport import Transport  # noqa: E402
from homarpc.transport.engine import HomaConfig  # noqa: E402
from homarpc.transport.udp import UdpTransport, open_udp_transport  # noqa: E402

HOST = "127.0.0.1"
SMALL, MEDIUM, LARGE = 64, 16_384, 1_000_000
#: Issue 3's targets, as transport/plain ratios and a rate.
LATENCY_TARGETS = {"median": Target("<=", 3.0), "p99": Target("<=", 4.0)}
RATE_TARGET = Target(">=", 300e6)
BLOCK = 500  # pings per alternation block (plain, then transport, then plain...)


@dataclasses.dataclass(frozen=True)
class Budget:
    """Work per phase; every timed phase also stops at its time cap (seconds)."""

    small: int
    medium: int
    large: int
    phase_seconds: float
    srpt_trials: int
    loss_rpcs: int


@dataclasses.dataclass(frozen=True)
class Setup:
    """How both ends are opened. The client always talks to ``HOST``.

    Attributes:
        server_host: address the echo servers bind (``0.0.0.0`` is what servers
            usually do, and what makes the datagram size a per-peer choice).
        max_incoming: ``HomaConfig.max_incoming`` for both ends (``None``: the
            transport's default).
    """

    server_host: str = HOST
    max_incoming: int | None = None

    def open(self, host: str, *, server: bool = False) -> UdpTransport:
        config = None if self.max_incoming is None else HomaConfig(
            max_incoming=self.max_incoming)  # fmt: skip
        return open_udp_transport((host, 0), server=server, config=config)

    def argv(self) -> list[str]:
        """The options that make a ``_serve`` child open its end the same way."""
        extra = ["--server-host", self.server_host]
        if self.max_incoming is not None:
            extra += ["--max-incoming", str(self.max_incoming)]
        return extra


FULL = Budget(small=20_000, medium=4_000, large=60, phase_seconds=12.0,
              srpt_trials=30, loss_rpcs=10_000)  # fmt: skip
QUICK = Budget(small=2_000, medium=500, large=10, phase_seconds=3.0,
               srpt_trials=5, loss_rpcs=1_000)  # fmt: skip


# -- echo servers (child process) ----------------------------------------------------


def _exit_when_stdin_closes() -> None:
    def watch() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def serve_plain(setup: Setup) -> None:
    """Plain UDP echo: the floor any protocol in Python is measured against."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((setup.server_host, 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    _exit_when_stdin_closes()
    while True:
        data, peer = sock.recvfrom(65_536)
        sock.sendto(data, peer)


def serve_homa(setup: Setup) -> None:
    """Transport echo: answer each request with its own bytes."""
    transport = setup.open(setup.server_host, server=True)
    print(f"PORT {transport.local_addr[1]}", flush=True)
    _exit_when_stdin_closes()
    while True:
        message = transport.recv()
        if message is not None:
            transport.reply(message.peer, message.id, message.payload)


def echo_server(kind: str, setup: Setup, cpu: int | None = None) -> ChildServer:
    """A ``_serve`` child process (pinned to ``cpu`` if given); its address is
    ``(HOST, server.port)``."""
    argv = [sys.executable, os.path.abspath(__file__), "_serve", kind, *setup.argv()]
    if cpu is not None:
        argv += ["--cpu", str(cpu)]
    return ChildServer(argv, f"{kind} echo")


# -- one ping each ---------------------------------------------------------------------


Ping = Callable[[], float]


def plain_pinger(server: tuple[str, int], size: int) -> Ping:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(server)
    sock.settimeout(5.0)
    payload = os.urandom(size)
    clock = time.perf_counter

    def ping() -> float:
        start = clock()
        sock.send(payload)
        reply = sock.recv(65_536)
        elapsed = clock() - start
        if len(reply) != size:
            raise RuntimeError(f"plain UDP echo returned {len(reply)} of {size} bytes")
        return elapsed

    return ping


def homa_pinger(transport: Transport, server: tuple[str, int], size: int) -> Ping:
    payload = os.urandom(size)
    clock = time.perf_counter

    def ping() -> float:
        start = clock()
        rpc_id = transport.send(server, payload, 1)
        message = transport.recv(timeout=10.0)
        elapsed = clock() - start
        if message is None or message.error is not None or message.id != rpc_id:
            raise RuntimeError(f"transport ping failed: {message!r}")
        if message.payload != payload:
            raise RuntimeError("transport echo returned different bytes")
        return elapsed

    return ping


def alternate(
    pingers: dict[str, Ping], count: int, seconds: float, label: str,
    progress: Progress,
) -> dict[str, list[float]]:  # fmt: skip
    """``count`` pings through each pinger, in alternating blocks (so drift in the
    machine's speed hits both alike), stopping early at ``seconds``."""
    samples: dict[str, list[float]] = {name: [] for name in pingers}
    for ping in pingers.values():  # warm-up: caches, first-call paths
        for _ in range(min(200, count)):
            ping()
    gc.collect()
    stop_at = time.perf_counter() + seconds
    done = 0
    while done < count and time.perf_counter() < stop_at:
        block = min(BLOCK, count - done)
        for name, ping in pingers.items():
            samples[name].extend(ping() for _ in range(block))
        done += block
        progress.show(f"{label}: {done}/{count} pings each")
    medians = ", ".join(f"{n} {format_duration(median(s))}" for n, s in samples.items())
    progress.done(f"{label}: {done} pings each; medians: {medians}")
    return samples


# -- SRPT --------------------------------------------------------------------------------


#: How long the big RPCs of a "mid-flight" SRPT trial run before the small one is
#: issued: by then the server has granted them and its socket holds their data.
MID_FLIGHT = 0.0005


def srpt_trials(
    transport: Transport, server: tuple[str, int], trials: int, progress: Progress,
    *, head_start: float = 0.0,
) -> dict[str, Any]:  # fmt: skip
    """Issue two 1 MB RPCs, then (after driving them for ``head_start`` seconds) a
    64 B one; time each from its own ``send``."""
    big, small = os.urandom(LARGE), os.urandom(SMALL)
    small_latency: list[float] = []
    big_latency: list[float] = []
    small_first = 0
    label = "SRPT mid-flight" if head_start else "SRPT"
    for trial in range(trials):
        issued = {1: time.perf_counter()}
        transport.send(server, big, 1)
        issued[2] = time.perf_counter()
        transport.send(server, big, 2)
        finished = _drive(transport, head_start, trial)
        issued[3] = time.perf_counter()
        transport.send(server, small, 3)
        while len(finished) < 3:
            finished += _drive(transport, 10.0, trial, stop_after_one=True)
        order = [cookie for cookie, _ in finished]
        for cookie, done_at in finished:
            latency = done_at - issued[cookie]
            (small_latency if cookie == 3 else big_latency).append(latency)
        small_first += order[0] == 3
        progress.show(f"{label}: {trial + 1}/{trials} trials")
    progress.done(f"{label}: 64 B finished first in {small_first}/{trials} trials")
    return {
        "trials": trials,
        "head_start": head_start,
        "small_first": small_first,
        "small": summarize(small_latency).as_dict(),
        "big": summarize(big_latency).as_dict(),
    }


def _drive(
    transport: Transport, seconds: float, trial: int, *, stop_after_one: bool = False
) -> list[tuple[int, float]]:
    """Receive for ``seconds`` (the transport moves data meanwhile); returns the
    ``(cookie, time)`` of each response, stopping at the first if asked."""
    done: list[tuple[int, float]] = []
    until = time.perf_counter() + seconds
    while (remaining := until - time.perf_counter()) > 0:
        message = transport.recv(timeout=remaining)
        if message is None:
            break
        if message.error is not None:
            raise RuntimeError(f"SRPT trial {trial}: {message!r}")
        done.append((message.cookie, time.perf_counter()))
        if stop_after_one:
            break
    if stop_after_one and not done:
        raise RuntimeError(f"SRPT trial {trial}: no response within {seconds} s")
    return done


# -- loss --------------------------------------------------------------------------------


def loss_run(count: int, progress: Progress) -> dict[str, Any]:
    """``count`` RPCs under 5% random datagram loss in a network namespace."""
    from tests.netns.harness import lossy_namespace, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        progress.done(f"loss run skipped: {reason}")
        return {"skipped": reason}
    progress.show(f"loss: {count:,} RPCs under 5% loss ...", force=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "tests.netns.lossy_echo", "--count", str(count)]
    with lossy_namespace(5) as namespace:
        done = namespace.run(argv, timeout=180, env=env)
        dropped = namespace.dropped_datagrams()
    if done.returncode != 0:
        raise RuntimeError(f"loss run failed:\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["datagrams_dropped_by_nft"] = dropped
    progress.done(
        f"loss: {report['completed_once']:,}/{count:,} completed exactly once in "
        f"{report['seconds']:.1f} s; {dropped:,} datagrams dropped"
    )
    return report


# -- the whole run -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where the client (this process) and the echo servers run."""

    name: str
    client_cpu: int | None
    server_cpu: int | None

    def pin_client(self) -> None:
        if self.client_cpu is not None:
            os.sched_setaffinity(0, {self.client_cpu})


def placements(choice: str) -> list[Placement]:
    """The CPU placements to measure. On this kind of machine a wake-up across CPUs
    costs more than a whole round trip on one, so the ratio to plain UDP depends on
    placement more than on anything else; both are reported, pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    separate = Placement("separate CPUs", cpus[0], cpus[-1])
    same = Placement("same CPU", cpus[0], cpus[0])
    free = Placement("unpinned", None, None)
    table = {"separate": [separate], "same": [same], "free": [free],
             "both": [separate, same] if len(cpus) > 1 else [same]}  # fmt: skip
    return table[choice]


def measure_latency(
    placement: Placement, budget: Budget, setup: Setup, progress: Progress
) -> dict[str, dict[str, list[float]]]:
    """64 B and 16 KB ping-pongs, transport and plain UDP alternating."""
    results: dict[str, dict[str, list[float]]] = {}
    placement.pin_client()
    with echo_server("plain", setup, placement.server_cpu) as plain, \
            echo_server("homa", setup, placement.server_cpu) as homa, \
            setup.open(HOST) as client:  # fmt: skip
        for label, size, count in (("64 B", SMALL, budget.small),
                                   ("16 KB", MEDIUM, budget.medium)):  # fmt: skip
            pingers = {"plain UDP": plain_pinger((HOST, plain.port), size),
                       "homarpc udp": homa_pinger(client, (HOST, homa.port), size)}  # fmt: skip
            results[label] = alternate(pingers, count, budget.phase_seconds,
                                       f"[{placement.name}] ping {label}", progress)  # fmt: skip
    return results


def measure_bulk(
    placement: Placement, budget: Budget, setup: Setup, progress: Progress
) -> dict[str, Any]:
    """1,000,000 B ping-pongs and the SRPT trials."""
    placement.pin_client()
    with echo_server("homa", setup, placement.server_cpu) as homa, \
            setup.open(HOST) as client:  # fmt: skip
        server = (HOST, homa.port)
        large = {"homarpc udp": homa_pinger(client, server, LARGE)}
        samples = alternate(large, budget.large, budget.phase_seconds,
                            f"[{placement.name}] ping 1,000,000 B", progress)  # fmt: skip
        srpt = srpt_trials(client, server, budget.srpt_trials, progress)
        mid_flight = srpt_trials(client, server, budget.srpt_trials, progress,
                                 head_start=MID_FLIGHT)  # fmt: skip
    return {"1,000,000 B": samples["homarpc udp"], "srpt": srpt,
            "srpt mid-flight": mid_flight}  # fmt: skip


def measure(
    budget: Budget, setup: Setup, progress: Progress, *, where: list[Placement],
    with_loss: bool,
) -> dict[str, Any]:  # fmt: skip
    """Every phase, in one run; returns the figures (samples included)."""
    original = os.sched_getaffinity(0)
    results: dict[str, Any] = {"latency": {}}
    try:
        for placement in where:
            results["latency"][placement.name] = measure_latency(
                placement, budget, setup, progress)  # fmt: skip
        results["bulk"] = measure_bulk(where[0], budget, setup, progress)
        results["bulk"]["placement"] = where[0].name
    finally:
        os.sched_setaffinity(0, original)
    if with_loss:
        results["loss"] = loss_run(budget.loss_rpcs, progress)
    return results


def _latency_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for placement, by_size in results["latency"].items():
        for label, series in by_size.items():
            plain = summarize(series["plain UDP"])
            ours = summarize(series["homarpc udp"])
            ratios = {"median": ratio(ours.median, plain.median),
                      "p99": ratio(ours.p99, plain.p99)}  # fmt: skip
            verdicts = "; ".join(
                f"{k} {LATENCY_TARGETS[k].verdict(v)}" for k, v in ratios.items()
            ) if label == "64 B" else ""  # fmt: skip
            rows.append([
                f"{label}, {placement}", format_duration(plain.median),
                format_duration(plain.p99), format_duration(ours.median),
                format_duration(ours.p99), f"{ratios['median']:.2f}x",
                f"{ratios['p99']:.2f}x", verdicts,
            ])  # fmt: skip
    return rows


def report(results: dict[str, Any]) -> str:
    """The human-readable summary: latency table, 1 MB rate, SRPT, loss."""
    header = ["round trip", "plain med", "plain p99", "homa med", "homa p99",
              "ratio med", "ratio p99", "target"]  # fmt: skip
    lines = [table(header, _latency_rows(results)), ""]
    bulk = results["bulk"]
    big: Summary = summarize(bulk["1,000,000 B"])
    each_way = 2 * LARGE / big.median
    met = "met" if RATE_TARGET.is_met(each_way) else "MISSED"
    lines.append(
        f"1,000,000 B ({bulk['placement']}): median {format_duration(big.median)}, "
        f"p99 {format_duration(big.p99)} = {format_rate(each_way)} each way "
        f"(>= {format_rate(RATE_TARGET.bound)} {met})"
    )
    for key, when in (("srpt", "right after"),
                      ("srpt mid-flight", f"{MID_FLIGHT * 1e3:g} ms into")):  # fmt: skip
        srpt = bulk[key]
        lines.append(
            f"SRPT: 64 B issued {when} 2 x 1,000,000 B: median "
            f"{format_duration(srpt['small']['median'])} (p99 "
            f"{format_duration(srpt['small']['p99'])}) vs the big ones' "
            f"{format_duration(srpt['big']['median'])}; 64 B first in "
            f"{srpt['small_first']}/{srpt['trials']} trials"
        )
    lines.append(_loss_line(results.get("loss")))
    return "\n".join(lines)


def _loss_line(loss: dict[str, Any] | None) -> str:
    if loss is None:
        return "loss: not run (--no-loss)"
    if "skipped" in loss:
        return f"loss: skipped ({loss['skipped']})"
    ok = (loss["completed_once"] == loss["count"] and loss["executed_once"] == loss["count"]
          and not loss["wrong_bytes"] and not loss["failed"])  # fmt: skip
    retransmitted = (loss["client_engine"].get("retransmitted_packets", 0)
                     + loss["server_engine"].get("retransmitted_packets", 0))  # fmt: skip
    return (
        f"loss 5%: {loss['completed_once']:,}/{loss['count']:,} RPCs completed exactly "
        f"once, {loss['executed_once']:,} executed exactly once, "
        f"{len(loss['wrong_bytes'])} with wrong bytes, {len(loss['failed'])} failed, in "
        f"{loss['seconds']:.1f} s; {loss['datagrams_dropped_by_nft']:,} datagrams "
        f"dropped, {retransmitted:,} packets retransmitted: {'met' if ok else 'MISSED'}"
    )


def _summary_json(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"latency": {
        placement: {label: {n: summarize(v).as_dict() for n, v in series.items()}
                    for label, series in by_size.items()}
        for placement, by_size in results["latency"].items()
    }}  # fmt: skip
    bulk = results["bulk"]
    out["bulk"] = {"placement": bulk["placement"], "srpt": bulk["srpt"],
                   "srpt mid-flight": bulk["srpt mid-flight"],
                   "1,000,000 B": summarize(bulk["1,000,000 B"]).as_dict()}  # fmt: skip
    if "loss" in results:
        out["loss"] = results["loss"]
    return out


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "_serve"])
    parser.add_argument("kind", nargs="?", choices=["plain", "homa"])
    parser.add_argument("--quick", action="store_true", help="smoke run, < ~15 s")
    parser.add_argument("--no-loss", action="store_true", help="skip the 5%% loss run")
    parser.add_argument(
        "--placement",
        choices=["both", "separate", "same", "free"],
        default="both",
        help="CPU placement of client and server",
    )
    parser.add_argument("--cpu", type=int, help="(internal) pin the echo server")
    parser.add_argument(
        "--server-host",
        default=HOST,
        metavar="ADDR",
        help="address the echo servers bind, e.g. 0.0.0.0 (the "
        "client still sends to 127.0.0.1)",
    )
    parser.add_argument(
        "--max-incoming",
        type=int,
        metavar="BYTES",
        help="HomaConfig.max_incoming for both ends",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        metavar="N",
        help="add N to this run's niceness (negative needs root): "
        "shields the figures from other work on a shared machine",
    )
    parser.add_argument("--loss-rpcs", type=int, help="RPCs in the loss run")
    parser.add_argument("--srpt-trials", type=int, help="trials of the SRPT phase")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--plot", metavar="PNG", help="64 B latency CDF (matplotlib)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    setup = Setup(args.server_host, args.max_incoming)
    if args.mode == "_serve":
        if args.cpu is not None:
            os.sched_setaffinity(0, {args.cpu})
        (serve_plain if args.kind == "plain" else serve_homa)(setup)
        return 0
    if args.nice:
        os.nice(args.nice)  # inherited by the echo servers started below
    budget = QUICK if args.quick else FULL
    if args.loss_rpcs:
        budget = dataclasses.replace(budget, loss_rpcs=args.loss_rpcs)
    if args.srpt_trials:
        budget = dataclasses.replace(budget, srpt_trials=args.srpt_trials)
    progress = Progress()
    started = time.monotonic()
    results = measure(budget, setup, progress, where=placements(args.placement),
                      with_loss=not args.no_loss)  # fmt: skip
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nmeasured in {time.monotonic() - started:.1f} s on {os.cpu_count()} CPUs "
          f"(loopback, two processes; nice {os.nice(0)}; load average {load}; "
          f"servers bound to {setup.server_host}; max_incoming "
          f"{setup.max_incoming or 'default'})\n")  # fmt: skip
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(_summary_json(results), indent=2))
    series = {f"{name}, {placement}": samples
              for placement, by_size in results["latency"].items()
              for name, samples in by_size["64 B"].items()}  # fmt: skip
    if args.plot and not plot_cdf(series, args.plot, xlabel="64 B round trip (µs)"):
        print("--plot skipped: matplotlib is not installed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
