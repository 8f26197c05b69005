"""``_ratelimit.RateLimitedLog``: at most ``burst`` lines per key per window, then one
line saying how many were held back. Driven by a fake clock: no sleeps, no timing."""

from __future__ import annotations

import logging
import threading

import pytest

from homarpc._ratelimit import RateLimitedLog


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.DEBUG, logger="homarpc.test.ratelimit")
    return logging.getLogger("homarpc.test.ratelimit")


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_a_burst_passes_then_lines_are_held_back(logger, clock, caplog):
    limited = RateLimitedLog(logger, per_seconds=10, burst=3, clock=clock)
    passed = [limited.log("bad", logging.WARNING, "bad frame %d", n) for n in range(10)]
    assert passed == [True] * 3 + [False] * 7
    assert _lines(caplog) == ["bad frame 0", "bad frame 1", "bad frame 2"]


def test_after_the_window_the_count_is_logged_and_lines_pass_again(
    logger, clock, caplog
):
    limited = RateLimitedLog(logger, per_seconds=10, burst=2, clock=clock)
    for n in range(5):
        limited.log("bad", logging.WARNING, "line %d", n)
    clock.now += 9.999
    assert not limited.log("bad", logging.WARNING, "still held")
    clock.now += 0.001
    assert limited.log("bad", logging.WARNING, "new window")
    assert _lines(caplog) == [
        "line 0",
        "line 1",
        "4 more log line(s) like the above ('bad') suppressed in 10 s",
        "new window",
    ]
    assert caplog.records[2].levelno == logging.WARNING


def test_flush_reports_a_passed_window_without_a_new_line(logger, clock, caplog):
    limited = RateLimitedLog(logger, per_seconds=5, burst=1, clock=clock)
    limited.log("k", logging.ERROR, "first")
    limited.log("k", logging.ERROR, "second")
    limited.flush()
    assert _lines(caplog) == ["first"]  # the window is still open
    clock.now += 5
    limited.flush()
    limited.flush()  # reported once
    assert _lines(caplog)[1:] == [
        "1 more log line(s) like the above ('k') suppressed in 5 s"
    ]
    assert caplog.records[1].levelno == logging.ERROR


def test_a_window_without_suppressed_lines_ends_silently(logger, clock, caplog):
    limited = RateLimitedLog(logger, per_seconds=5, burst=2, clock=clock)
    limited.log("k", logging.INFO, "one")
    clock.now += 60
    limited.flush()
    assert _lines(caplog) == ["one"]


def test_keys_have_separate_budgets_and_any_line_reports_passed_windows(
    logger, clock, caplog
):
    limited = RateLimitedLog(logger, per_seconds=10, burst=1, clock=clock)
    limited.log("a", logging.WARNING, "a1")
    limited.log("a", logging.WARNING, "a2")
    clock.now += 3
    assert limited.log("b", logging.WARNING, "b1")  # a's window does not hold b back
    clock.now += 7
    limited.log("b", logging.WARNING, "b2")  # a's window has passed: reported now
    assert _lines(caplog) == [
        "a1",
        "b1",
        "1 more log line(s) like the above ('a') suppressed in 10 s",
    ]


def test_the_summary_uses_the_highest_level_held_back(logger, clock, caplog):
    limited = RateLimitedLog(logger, per_seconds=1, burst=1, clock=clock)
    limited.log("k", logging.INFO, "shown")
    limited.log("k", logging.ERROR, "held")
    limited.log("k", logging.WARNING, "held")
    clock.now += 1
    limited.flush()
    assert caplog.records[-1].levelno == logging.ERROR


def test_many_keys_are_bounded_and_an_evicted_window_reports_its_count(
    logger, clock, caplog
):
    limited = RateLimitedLog(logger, per_seconds=60, burst=1, max_keys=2, clock=clock)
    limited.log("a", logging.WARNING, "a1")
    limited.log("a", logging.WARNING, "a2")
    limited.log("b", logging.WARNING, "b1")
    limited.log("c", logging.WARNING, "c1")  # evicts a (the oldest)
    assert len(limited._windows) == 2
    assert _lines(caplog) == [
        "a1",
        "b1",
        "1 more log line(s) like the above ('a') suppressed in 0 s",
        "c1",
    ]
    for n in range(10_000):  # a peer varying the key cannot grow it
        limited.log(("peer", n), logging.WARNING, "x")
    assert len(limited._windows) == 2


def test_a_disabled_level_costs_nothing_and_is_not_counted(logger, clock, caplog):
    logger.setLevel(logging.WARNING)
    try:
        limited = RateLimitedLog(logger, per_seconds=10, burst=1, clock=clock)
        assert not limited.log("k", logging.DEBUG, "quiet")
        assert limited._windows == {}
        assert limited.log("k", logging.WARNING, "loud")
    finally:
        logger.setLevel(logging.NOTSET)


def test_a_traceback_can_be_attached(logger, clock, caplog):
    limited = RateLimitedLog(logger, clock=clock)
    try:
        raise ValueError("from a peer")
    except ValueError as error:
        limited.log("k", logging.ERROR, "handler failed", exc_info=error)
    assert caplog.records[0].exc_info is not None


def test_peer_text_in_the_key_is_escaped_in_the_summary(logger, clock, caplog):
    limited = RateLimitedLog(logger, per_seconds=1, burst=1, clock=clock)
    key = ("bad-metadata", "evil\r\nINFO forged line")
    limited.log(key, logging.WARNING, "first")
    limited.log(key, logging.WARNING, "second")
    clock.now += 1
    limited.flush()
    assert "\n" not in _lines(caplog)[-1] and "\\r\\n" in _lines(caplog)[-1]


def test_concurrent_callers_share_one_budget(logger, clock, caplog):
    limited = RateLimitedLog(logger, per_seconds=10, burst=25, clock=clock)
    results: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = [limited.log("k", logging.WARNING, "x") for _ in range(200)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 25
    clock.now += 10
    limited.flush()
    assert _lines(caplog)[-1].startswith("1575 more log line(s)")


@pytest.mark.parametrize(
    "bad", [{"per_seconds": 0}, {"burst": 0}, {"max_keys": 0}, {"per_seconds": -1}]
)
def test_nonsense_settings_are_refused(logger, bad):
    with pytest.raises(ValueError):
        RateLimitedLog(logger, **bad)
