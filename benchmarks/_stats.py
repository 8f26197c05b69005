"""Shared helpers for homarpc's benchmarks: percentiles, summaries, targets, progress.

Layer: benchmarks (top; not shipped). Imports: stdlib, and ``matplotlib`` lazily,
only when a plot is asked for.

Generic on purpose: the transport benchmark and the RPC benchmark both use these, so
the same words ("median", "p99", "ratio", "met") mean the same numbers in every
report. Latencies are plain ``float`` seconds throughout; formatting picks the unit.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

__all__ = [
    "ChildServer",
    "Progress",
    "Summary",
    "Target",
    "format_duration",
    "format_rate",
    "median",
    "percentile",
    "plot_cdf",
    "ratio",
    "summarize",
    "table",
]


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values (a missing figure, not a crash)."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: no interpolation, so a p99 is a latency that happened."""
    if not values:
        return math.nan
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {pct}")
    ordered = sorted(values)
    rank = max(1, math.ceil(len(ordered) * pct / 100))
    return ordered[rank - 1]


@dataclasses.dataclass(frozen=True, slots=True)
class Summary:
    """Order statistics of one series of samples (seconds, or any unit)."""

    count: int
    minimum: float
    median: float
    p99: float
    maximum: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def summarize(values: Sequence[float]) -> Summary:
    """Count, min, median, p99 and max of ``values`` (NaNs when empty)."""
    if not values:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    return Summary(
        len(values), min(values), median(values), percentile(values, 99), max(values)
    )


def ratio(ours: float, baseline: float) -> float:
    """``ours / baseline``, NaN when the baseline is missing or zero."""
    if baseline == 0 or math.isnan(baseline):
        return math.nan
    return ours / baseline


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A goal such as "median within 3x of the baseline" (``"<=", 3.0``)."""

    sense: str  # "<=" or ">="
    bound: float

    def __post_init__(self) -> None:
        if self.sense not in ("<=", ">="):
            raise ValueError(f"target sense must be '<=' or '>=', not {self.sense!r}")

    def is_met(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value <= self.bound if self.sense == "<=" else value >= self.bound

    def verdict(self, value: float) -> str:
        return (
            f"{self.sense} {self.bound:g} {'met' if self.is_met(value) else 'MISSED'}"
        )


def format_duration(seconds: float) -> str:
    """A latency in the unit a reader expects: µs below 10 ms, else ms, else s."""
    if math.isnan(seconds):
        return "n/a"
    if seconds < 0.01:
        return f"{seconds * 1e6:,.1f} µs"
    if seconds < 10:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds:,.1f} s"


def format_rate(bytes_per_second: float) -> str:
    """A payload rate in MB/s (10**6 bytes, the unit the targets are written in)."""
    if math.isnan(bytes_per_second):
        return "n/a"
    return f"{bytes_per_second / 1e6:,.0f} MB/s"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: first column left-aligned, the rest right-aligned."""
    widths = [
        max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))
    ]
    lines = []
    for row in [header, *rows]:
        cells = [
            str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


class Progress:
    """One live status line on stderr: rewritten in place on a terminal, else
    printed every couple of seconds so CI logs stay short."""

    def __init__(self, *, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty()
        self._last = -math.inf

    def show(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self._tty else 2.0):
            return
        self._last = now
        prefix, end = ("\r\033[K", "") if self._tty else ("", "\n")
        print(f"{prefix}{text}", end=end, file=self._stream, flush=True)

    def done(self, text: str) -> None:
        """Show the final line of a phase (always printed, then a newline)."""
        self.show(text, force=True)
        if self._tty:
            print(file=self._stream, flush=True)


def plot_cdf(series: Mapping[str, Sequence[float]], path: str, *, xlabel: str) -> bool:
    """Write latency CDFs (one line per series, µs, log x) to ``path``.

    Returns False, writing nothing, when matplotlib is not installed.
    """
    try:
        pyplot = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return False
    figure, axes = pyplot.subplots(figsize=(7, 4))
    for name, values in series.items():
        samples = sorted(v * 1e6 for v in values)
        fractions = [(i + 1) / len(samples) for i in range(len(samples))]
        axes.plot(samples, fractions, label=name)
    axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("fraction of samples")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return True


class ChildServer:
    """A benchmark's server in a process of its own, so client and server do not
    share a GIL. The child prints ``PORT <n>`` once it listens and must exit when
    its stdin closes (which also happens if the benchmark dies)."""

    def __init__(self, argv: Sequence[str], what: str) -> None:
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        words = self.proc.stdout.readline().split()
        if len(words) != 2 or words[0] != "PORT":
            self.close()
            raise RuntimeError(f"{what} server failed to start (see stderr above)")
        self.port = int(words[1])

    def close(self) -> None:
        """Close the child's stdin and reap it (killed if it lingers 5 s)."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ChildServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
