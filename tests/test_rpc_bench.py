"""The RPC benchmark's bookkeeping: turns share the budget, samples pool."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "rpc_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("rpc_bench_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _turn(bench, small, large, rate, failures=0):
    return {
        "name": "x",
        "unary64_samples": small,
        "unary1m_samples": large,
        "concurrent_calls_per_s": rate,
        "failures": failures,
    }


def test_rounds_share_the_budget_but_each_warms_up(bench):
    share = bench.FULL.share(3)
    assert share.warmup_calls == bench.FULL.warmup_calls
    assert 3 * share.small_calls >= bench.FULL.small_calls
    assert 3 * share.large_calls >= bench.FULL.large_calls
    assert 3 * share.concurrent_seconds == pytest.approx(bench.FULL.concurrent_seconds)
    assert bench.FULL.share(1) == bench.FULL


def test_turns_pool_their_samples_and_average_their_rates(bench):
    first = _turn(bench, [1.0, 2.0, 3.0], [10.0], 100.0, failures=1)
    second = _turn(bench, [4.0, 5.0], [30.0, 20.0], 300.0)
    pooled = bench.pooled([first, second])
    assert pooled["unary64_median"] == 3.0  # of all five, not a median of medians
    assert pooled["unary1m_median"] == 20.0
    assert pooled["unary1m_calls"] == 3
    assert pooled["concurrent_calls_per_s"] == 200.0
    assert pooled["failures"] == 1


def test_each_round_gets_its_own_ratios(bench):
    def turn(latency, rate):
        return {
            "unary64_median": latency, "unary64_p99": latency,
            "unary1m_median": latency, "concurrent_calls_per_s": rate,
        }  # fmt: skip

    turns = {
        "grpcio": [turn(4.0, 100.0), turn(2.0, 100.0)],
        "homarpc": [turn(1.0, 300.0), turn(1.0, 150.0)],
    }
    lines = bench.round_ratios(turns).splitlines()
    assert len(lines) == 2
    assert (
        lines[0].startswith("round 1:") and "0.25x" in lines[0] and "3.00x" in lines[0]
    )
    assert "0.50x" in lines[1] and "1.50x" in lines[1]
