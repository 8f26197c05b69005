"""The blocking server's receive threads (homarpc._receivers) over a fake transport.

One thread receives and handles messages itself; when a handler holds it, the
watcher takes over within a few milliseconds (at once after ``hand_off``), and at
most one thread ever waits in ``recv``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from homarpc._receivers import Receivers
from homarpc.transport import Message, TransportClosedError

PEER = ("127.0.0.1", 7)


class QueueTransport:
    """``recv`` from a queue; counts the threads inside ``recv`` at once."""

    def __init__(self) -> None:
        self.inbox: queue.Queue[Message | None] = queue.Queue()
        self.closed = False
        self._lock = threading.Lock()
        self.in_recv = 0
        self.most_in_recv = 0

    def recv(self, timeout: float | None = None) -> Message | None:
        with self._lock:
            self.in_recv += 1
            self.most_in_recv = max(self.most_in_recv, self.in_recv)
        try:
            if self.closed:
                raise TransportClosedError("closed")
            try:
                message = self.inbox.get(timeout=timeout)
            except queue.Empty:
                return None
            if message is None:  # close() wakes one reader this way
                self.inbox.put(None)
                raise TransportClosedError("closed")
            return message
        finally:
            with self._lock:
                self.in_recv -= 1

    def send_in(self, number: int) -> None:
        self.inbox.put(Message(number, 0, PEER, True, b"x"))

    def close(self) -> None:
        self.closed = True
        self.inbox.put(None)


Handler = Callable[[Message], None]


@pytest.fixture
def running() -> Iterator[Callable[[Handler], tuple[QueueTransport, Receivers]]]:
    started: list[tuple[QueueTransport, Receivers]] = []

    def start(handle: Handler) -> tuple[QueueTransport, Receivers]:
        transport = QueueTransport()
        receivers = Receivers(transport, handle, lambda now: None)  # type: ignore[arg-type]
        receivers.start()
        started.append((transport, receivers))
        return transport, receivers

    yield start
    for transport, receivers in started:
        transport.close()
        receivers.close(timeout=2.0)


def _wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.001)
    return True


def test_quick_messages_are_handled_in_order_by_one_thread(running):
    handled: list[tuple[int, str]] = []
    transport, _ = running(
        lambda m: handled.append((m.id, threading.current_thread().name))
    )
    for number in range(50):
        transport.send_in(number)
    assert _wait_until(lambda: len(handled) == 50)
    assert [n for n, _ in handled] == list(range(50))
    assert transport.most_in_recv == 1  # never two threads in recv


def test_a_stuck_handler_does_not_stop_the_next_message(running):
    release = threading.Event()
    handled: list[int] = []

    def handle(message: Message) -> None:
        handled.append(message.id)
        if message.id == 1:
            release.wait(5.0)  # holds the receiving thread

    transport, _ = running(handle)
    transport.send_in(1)
    assert _wait_until(lambda: handled == [1])
    started = time.monotonic()
    transport.send_in(2)
    assert _wait_until(lambda: handled == [1, 2], timeout=1.0)
    assert time.monotonic() - started < 0.5  # the watcher took over (~10 ms)
    release.set()
    transport.send_in(3)
    assert _wait_until(lambda: handled == [1, 2, 3])
    assert transport.most_in_recv == 1


def test_hand_off_lets_another_thread_receive_at_once(running):
    release = threading.Event()
    handled: list[int] = []
    holder: list[Receivers] = []

    def handle(message: Message) -> None:
        handled.append(message.id)
        if message.id == 1:
            holder[0].hand_off()
            release.wait(5.0)

    transport, receivers = running(handle)
    holder.append(receivers)
    transport.send_in(1)
    assert _wait_until(lambda: handled == [1])
    transport.send_in(2)
    assert _wait_until(lambda: handled == [1, 2], timeout=1.0)
    release.set()


def test_hand_off_from_a_thread_that_is_not_receiving_changes_nothing(running):
    handled: list[int] = []
    transport, receivers = running(lambda m: handled.append(m.id))
    receivers.hand_off()  # this test's thread holds no role
    transport.send_in(1)
    assert _wait_until(lambda: handled == [1])


def test_sweep_runs_while_messages_keep_the_receiver_busy():
    sweeps: list[float] = []
    transport = QueueTransport()
    receivers = Receivers(transport, lambda m: None, sweeps.append)  # type: ignore[arg-type]
    receivers.start()
    try:
        for number in range(5):
            transport.send_in(number)
        assert _wait_until(lambda: len(sweeps) >= 1)
    finally:
        transport.close()
        receivers.close()


def test_close_ends_every_thread(running):
    transport, receivers = running(lambda m: None)
    transport.send_in(1)
    threads = list(receivers._threads)
    assert threads
    transport.close()
    receivers.close(timeout=2.0)
    assert not any(thread.is_alive() for thread in threads)


def test_the_watcher_backs_off_while_the_receiver_keeps_up(running):
    # A busy server handles message after message; the watcher finds a new one at
    # each look and must not wake every _WATCH for that (each wake-up takes the
    # GIL from the receiver).
    handled: list[int] = []

    def handle(message: Message) -> None:
        time.sleep(0.0002)  # a short handler: busy, never stuck
        handled.append(message.id)

    transport, receivers = running(handle)
    waits = 0
    real_wait = receivers._watching.wait

    def counting_wait(timeout: float | None = None) -> bool:
        nonlocal waits
        waits += 1
        return real_wait(timeout)

    receivers._watching.wait = counting_wait  # type: ignore[method-assign]
    feeding = time.monotonic()
    while time.monotonic() - feeding < 0.5:
        for number in range(20):
            transport.send_in(number)
        time.sleep(0.003)
    elapsed = time.monotonic() - feeding
    assert _wait_until(lambda: transport.inbox.empty())
    assert len(handled) > 500
    # At _WATCH (1 ms) that would be ~500 looks; backed off to _MAX_WATCH, ~50.
    assert waits < elapsed / 0.004
