"""homarpc.aio reads transports from the loop and, after activity, polls them for
the transport's ``busy_poll`` seconds instead of waiting for a wake-up."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from homarpc.aio._driver import ClientPump


class _Transport:
    def __init__(self, fd: int, busy_poll: float) -> None:
        self._fd = fd
        self.busy_poll = busy_poll

    def fileno(self) -> int:
        return self._fd


class _Endpoint:
    """Counts polls; reports a message for the first ``busy`` of them."""

    def __init__(self, transport: _Transport, busy: int = 0) -> None:
        self.transport = transport
        self.pumped = 0
        self.polls: list[float] = []
        self._busy = busy

    def pump_ready(self) -> bool:
        self.polls.append(time.monotonic())
        if len(self.polls) <= self._busy:
            self.pumped += 1
        return True


def _run(endpoint: Any, seconds: float) -> ClientPump:
    loop = asyncio.new_event_loop()
    try:
        pump = ClientPump(endpoint, loop)
        pump.kick()
        loop.run_until_complete(asyncio.sleep(seconds))
        pump.close()
        return pump
    finally:
        loop.close()


@pytest.fixture
def fd() -> Iterator[int]:
    """A descriptor that never polls readable (the read end of an idle pipe)."""
    read_end, write_end = os.pipe()
    yield read_end
    os.close(read_end)
    os.close(write_end)


def test_a_kick_polls_for_the_budget_then_stops(fd):
    endpoint = _Endpoint(_Transport(fd, busy_poll=0.002))
    _run(endpoint, 0.05)
    assert len(endpoint.polls) > 5  # polled on every loop iteration
    assert endpoint.polls[-1] - endpoint.polls[0] < 0.02  # ... for ~2 ms only


def test_activity_extends_the_polling(fd):
    quiet = _Endpoint(_Transport(fd, busy_poll=0.002))
    _run(quiet, 0.03)
    busy = _Endpoint(_Transport(fd, busy_poll=0.002), busy=10**9)
    _run(busy, 0.03)
    assert busy.polls[-1] - busy.polls[0] > 0.02  # kept going while busy
    assert len(busy.polls) > len(quiet.polls)


def test_a_transport_without_busy_poll_is_only_read_when_readable(fd):
    endpoint = _Endpoint(_Transport(fd, busy_poll=0.0))
    _run(endpoint, 0.02)
    assert endpoint.polls == []  # nothing readable, no polling
