"""All four call kinds, with empty, small and 3 MB messages, and many at once."""

from __future__ import annotations

import threading

import pytest

import homarpc

from .conftest import Rig, method

TIMEOUT = 20.0
SIZES = {"empty": 0, "small": 64, "3MB": 3_000_000}


def _payload(size: int, salt: int = 0) -> bytes:
    return bytes((i * 7 + salt) % 251 for i in range(min(size, 997))) * (
        size // 997
    ) + (b"t" * (size % 997))


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_unary_unary(rig: Rig, size: int):
    _, channel = rig.pair()
    payload = _payload(size)
    response, call = channel.unary_unary(method("Echo")).with_call(
        payload, timeout=TIMEOUT
    )
    assert response == payload
    assert call.code() is homarpc.StatusCode.OK
    assert call.details() == ""


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_unary_stream(rig: Rig, size: int):
    _, channel = rig.pair()
    count = 3 if size > 1000 else 20
    responses = list(
        channel.unary_stream(method("Count"))(
            f"{count}:{size}".encode(), timeout=TIMEOUT
        )
    )
    assert len(responses) == count
    assert [len(r) for r in responses] == [size // 4 * 4] * count
    if size:
        assert [r[:4] for r in responses] == [
            i.to_bytes(4, "big") for i in range(count)
        ]


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_stream_unary(rig: Rig, size: int):
    _, channel = rig.pair()
    parts = [_payload(size, salt) for salt in range(1 if size > 1000 else 10)]
    result = channel.stream_unary(method("Collect"))(iter(parts), timeout=TIMEOUT)
    assert result == b"".join(parts)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_stream_stream(rig: Rig, size: int):
    _, channel = rig.pair()
    parts = [_payload(size, salt) for salt in range(2 if size > 1000 else 25)]
    responses = list(
        channel.stream_stream(method("Bidi"))(iter(parts), timeout=TIMEOUT)
    )
    assert responses == parts


def test_stream_unary_with_no_requests_at_all(rig: Rig):
    _, channel = rig.pair()
    assert channel.stream_unary(method("Collect"))(iter(()), timeout=TIMEOUT) == b"none"


def test_ping_pong_interleaves_in_order(rig: Rig):
    _, channel = rig.pair()
    outgoing: list[bytes] = []
    ready = threading.Semaphore(0)

    def requests():
        for index in range(30):
            outgoing.append(b"%d" % index)
            yield outgoing[-1]
            assert ready.acquire(timeout=TIMEOUT)

    seen = []
    for response in channel.stream_stream(method("Bidi"))(requests(), timeout=TIMEOUT):
        seen.append(response)
        ready.release()
    assert seen == [b"%d" % i for i in range(30)]


def test_many_concurrent_calls_on_one_channel(rig: Rig):
    _, channel = rig.pair()
    echo = channel.unary_unary(method("Echo"))
    count = channel.unary_stream(method("Count"))
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            for round_ in range(15):
                payload = b"%d-%d" % (index, round_)
                assert echo(payload, timeout=TIMEOUT) == payload
            assert len(list(count(b"5:8", timeout=TIMEOUT))) == 5
        except BaseException as exc:  # collected and re-raised in the test thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads)
    assert failures == []


def test_futures_complete_and_call_back(rig: Rig):
    _, channel = rig.pair()
    echo = channel.unary_unary(method("Echo"))
    futures = [echo.future(b"%d" % i, timeout=TIMEOUT) for i in range(20)]
    called = threading.Event()
    futures[-1].add_done_callback(lambda f: called.set())
    assert [f.result(TIMEOUT) for f in futures] == [b"%d" % i for i in range(20)]
    assert called.wait(TIMEOUT)
    assert all(f.done() and not f.running() and f.exception() is None for f in futures)
