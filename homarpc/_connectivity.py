"""A channel's connectivity state, for a transport that has no connections.

Layer: rpc. Imports: stdlib, public ``homarpc.transport`` names, rpc-layer modules
(``_framing``, ``_interfaces``, ``status``).

Homa keeps no connection to a server, so "connected" here means "a homarpc server
answered at the target lately". The states and their order are grpcio's:

* ``IDLE``: nobody asked to connect yet (a new channel), or a call found the
  server gone (grpcio goes IDLE when its connection drops). Nothing is sent.
* ``CONNECTING``: the channel is probing: it asks every address of the target
  whether a server is there (``probe``: one tiny Homa RPC each, which any
  homarpc server answers at once without running anything; see
  ``docs/wire-format.md``, "Connectivity probe").
* ``READY``: a server answered. Calls never wait for this state: they are sent
  whatever it is.
* ``TRANSIENT_FAILURE``: no server answered (port unreachable, silence, a name
  that does not resolve). The channel probes again after a backoff (grpcio's
  defaults and options: ``grpc.initial_reconnect_backoff_ms`` 1 s, x1.6, jitter
  20 %, ``grpc.max_reconnect_backoff_ms`` 120 s) and stays in TRANSIENT_FAILURE
  meanwhile ("sticky", as grpcio's pick_first) until a probe is answered (READY).
* ``SHUTDOWN``: the channel was closed.

What starts connecting: ``subscribe(..., try_to_connect=True)``,
``get_state(try_to_connect=True)`` (aio) and ``channel_ready_future`` (a probe at
once), and a call made while IDLE: that call itself is the probe (``CallWatch``):
its first answer makes the channel READY; a port found unreachable makes it
TRANSIENT_FAILURE (then probes, with backoff); an ending that tells neither (a
deadline, a cancel) leaves it to a probe. So a channel that only makes calls to a
live server never probes. A call that finds no server at its address turns READY
into IDLE. The per-call cost is one attribute check (``state is IDLE``).

Subscribers are called on a thread of their own (as grpcio's are), one state at a
time and in order: first the current state, then every change.

Differences from grpcio (intended; Homa has no connections):

* READY means "a server answered lately", not "a connection is open"; a server
  that goes away is noticed by the next call to it (READY -> IDLE), not at once.
* Calls do not wait for READY nor fail fast in TRANSIENT_FAILURE: each is sent
  (a server may have come back), and fails UNAVAILABLE by itself where none is.
* Subscribers also see SHUTDOWN when the channel closes (grpcio stops calling).
* A quick CONNECTING is always reported (grpcio may miss it when it polls).
* A target that names no address yet fails calls UNAVAILABLE ("errors resolving
  ...") even with ``wait_for_ready`` (grpcio waits for the name to resolve); a
  host name is looked up again on every probe, so a name that appears later is
  found by ``channel_ready_future`` and by the calls after it.
* The socket's address family is chosen when the channel is made: IPv4 while the
  target resolves to nothing, or to IPv4 addresses.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from ._call import ClientCallCore
from ._framing import Flags, Frame, encode_frame
from ._interfaces import ChannelConnectivity, Future
from .status import FutureCancelledError, FutureTimeoutError, StatusCode
from .transport import Transport

__all__ = ["Backoff", "CallWatch", "Connectivity", "channel_ready_future", "probe"]

Address = tuple[str, int]

log = logging.getLogger("homarpc.channel")

Callback = Callable[[ChannelConnectivity], None]
Notify = Callable[[], None]
IDLE = ChannelConnectivity.IDLE
CONNECTING = ChannelConnectivity.CONNECTING
READY = ChannelConnectivity.READY
TRANSIENT_FAILURE = ChannelConnectivity.TRANSIENT_FAILURE
SHUTDOWN = ChannelConnectivity.SHUTDOWN


class Backoff:
    """grpcio's connection backoff (``grpc.*_reconnect_backoff_ms`` options).

    ``probe_timeout`` is how long one probe may go unanswered: grpcio's connect
    timeout, at least ``grpc.min_reconnect_backoff_ms`` (20 s). A dead port
    answers at once (ICMP), and the transport gives up on a silent host long
    before that.
    """

    MULTIPLIER = 1.6
    JITTER = 0.2

    def __init__(self, options: Sequence[tuple[str, Any]] | None = None) -> None:
        given: Mapping[str, Any] = dict(options or ())
        self.initial = _seconds(given, "grpc.initial_reconnect_backoff_ms", 1.0)
        self.maximum = _seconds(given, "grpc.max_reconnect_backoff_ms", 120.0)
        self.probe_timeout = _seconds(given, "grpc.min_reconnect_backoff_ms", 20.0)
        self._next = self.initial

    def reset(self) -> None:
        self._next = self.initial

    def delay(self) -> float:
        """The wait before the next probe (it grows each time until ``reset``)."""
        current = self._next
        self._next = min(self.maximum, current * self.MULTIPLIER)
        return current * random.uniform(1 - self.JITTER, 1 + self.JITTER)


def _seconds(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name)
    if isinstance(value, int) and value > 0:
        return value / 1000.0
    return default


class Connectivity:
    """The state machine (see module docstring). ``probe(timeout)`` asks the
    target whether a server is there (True: one answered); it runs on the
    connecting thread, never on a caller's."""

    def __init__(self, probe: Callable[[float], bool], backoff: Backoff) -> None:
        #: The current state; read without the lock (one check per call).
        self.state = IDLE
        self._probe = probe
        self._backoff = backoff
        self._lock = threading.Lock()
        self._subscribers: list[Callback] = []
        self._outbox: deque[tuple[tuple[Callback, ...], ChannelConnectivity]] = deque()
        self._delivering = False
        self._probing = False  # a connecting thread runs
        self._stop = threading.Event()

    # -- asking ------------------------------------------------------------------

    def subscribe(self, callback: Callback, try_to_connect: bool = False) -> None:
        with self._lock:
            self._subscribers.append(callback)
            self._outbox.append(((callback,), self.state))
        self._deliver()
        if try_to_connect:
            self.connect()

    def unsubscribe(self, callback: Callback) -> None:
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def get_state(self, try_to_connect: bool = False) -> ChannelConnectivity:
        state = self.state
        if try_to_connect:
            self.connect()
        return state

    def connect(self) -> None:
        """Leave IDLE: probe (unless a probe is already under way)."""
        with self._lock:
            if self.state is IDLE:
                self._set(CONNECTING)
            elif self.state is not CONNECTING or self._probing:
                return
            self._start_probing(wait_first=False)
        self._deliver()

    def _start_probing(self, *, wait_first: bool) -> None:
        """(Under the lock.)"""
        self._probing = True
        threading.Thread(
            target=self._connecting,
            args=(wait_first,),
            name="homarpc-connectivity",
            daemon=True,
        ).start()

    # -- what calls learn ----------------------------------------------------------

    def watch(self, notify: Notify, alone: bool = True) -> CallWatch | None:
        """A call starts while IDLE: CONNECTING, and that call's outcome decides
        (no probe, unless it ends without telling). Returns the ``notify`` to
        give the call (set its ``core`` once the call exists), or None when the
        channel is no longer IDLE. ``alone``: the target has one address (else an
        unreachable one proves nothing about the others: a probe decides)."""
        with self._lock:
            if self.state is not IDLE:
                return None
            self._set(CONNECTING)
        self._deliver()
        return CallWatch(self, notify, alone)

    def called(self, verdict: bool | None) -> None:
        """What the watched call showed: a server answered (True), none is
        there (False), or it cannot tell (None: probe)."""
        with self._lock:
            if self.state is not CONNECTING or self._probing:
                return  # a probe decides, or the state moved on
            if verdict:
                self._backoff.reset()
                self._set(READY)
            elif verdict is False:
                self._set(TRANSIENT_FAILURE)
                self._start_probing(wait_first=True)
            else:
                self._start_probing(wait_first=False)
        self._deliver()

    def lost(self) -> None:
        """A call found no server at its address: READY becomes IDLE."""
        if self.state is not READY:
            return
        with self._lock:
            if self.state is not READY:
                return
            self._set(IDLE)
        self._deliver()

    def shutdown(self) -> None:
        with self._lock:
            if self.state is SHUTDOWN:
                return
            self._set(SHUTDOWN)
        self._stop.set()
        self._deliver()

    # -- the connecting thread -------------------------------------------------------

    def _connecting(self, wait_first: bool) -> None:
        """Probe until a server answers (READY) or the channel closes, backing off
        in TRANSIENT_FAILURE between probes."""
        try:
            if wait_first:
                self._stop.wait(self._backoff.delay())
            while not self._stop.is_set():
                answered = self._probe(self._backoff.probe_timeout)
                with self._lock:
                    if self.state is SHUTDOWN:
                        return
                    if answered:
                        self._backoff.reset()
                        self._set(READY)
                    elif self.state is not TRANSIENT_FAILURE:
                        self._set(TRANSIENT_FAILURE)
                self._deliver()
                if answered:
                    return
                self._stop.wait(self._backoff.delay())
        finally:
            with self._lock:
                self._probing = False

    # -- telling subscribers -----------------------------------------------------------

    def _set(self, state: ChannelConnectivity) -> None:
        """Change state and queue the news (under the lock)."""
        self.state = state
        if self._subscribers:
            self._outbox.append((tuple(self._subscribers), state))

    def _deliver(self) -> None:
        """Make sure a thread is delivering the queued news (one at a time, in
        order, never on the caller's thread nor under the lock)."""
        with self._lock:
            if self._delivering or not self._outbox:
                return
            self._delivering = True
        threading.Thread(
            target=self._drain, name="homarpc-connectivity-callbacks", daemon=True
        ).start()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._outbox:
                    self._delivering = False
                    return
                callbacks, state = self._outbox.popleft()
            for callback in callbacks:
                try:
                    callback(state)
                except Exception:  # a subscriber's bug must not stop the others
                    log.exception("homarpc: connectivity callback raised")


class CallWatch:
    """The ``notify`` of a call that decides a CONNECTING channel's state."""

    __slots__ = ("_alone", "_connectivity", "_notify", "core")

    def __init__(self, connectivity: Connectivity, notify: Notify, alone: bool) -> None:
        self._connectivity: Connectivity | None = connectivity
        self._notify = notify
        self._alone = alone
        self.core: ClientCallCore | None = None

    def __call__(self) -> None:
        core, connectivity = self.core, self._connectivity
        if (
            core is not None
            and connectivity is not None
            and (core.code is not None or core.initial_metadata is not None)
        ):
            self._connectivity = None  # the first sign decides
            connectivity.called(_verdict(core, self._alone))
        self._notify()


def _verdict(core: ClientCallCore, alone: bool) -> bool | None:
    """Whether ``core`` (answered or ended) shows a server at its address: True,
    False, or None (it cannot tell)."""
    code = core.code
    if code is None:
        return True  # the server's initial metadata arrived
    if code is StatusCode.UNAVAILABLE:
        return False if core.unreachable and alone else None
    if code in (StatusCode.DEADLINE_EXCEEDED, StatusCode.CANCELLED):
        return None  # maybe nobody answered: ask a probe
    return True


def probe(transport: Transport, addresses: list[Address], timeout: float) -> bool:
    """Whether a homarpc server answers at one of ``addresses`` within ``timeout``.

    Each gets a bare CANCEL for a call that never started (docs/wire-format.md,
    "Connectivity probe"), which any server answers at once with an empty ack.
    ``transport`` is the probe's own socket, never the calls' one: a probe that
    bounces (ICMP) fails every RPC of its socket to that peer, and a call's
    request would then count as maybe delivered (not failed over nor retried).
    """
    deadline = time.monotonic() + timeout
    base = time.time_ns() // 1000
    waiting = {
        transport.send(dest, encode_frame(Frame(base + n, 0, Flags.CANCEL)), 1)
        for n, dest in enumerate(addresses)
    }
    try:
        while waiting:
            left = deadline - time.monotonic()
            message = transport.recv(timeout=left) if left > 0 else None
            if message is None:
                return False
            message.release()
            if message.id in waiting:  # (not a late answer to an earlier probe)
                waiting.discard(message.id)
                if message.error is None:
                    return True
        return False
    finally:
        for rpc_id in waiting:  # a probe leaves nothing behind
            transport.abort(rpc_id)


class _ChannelReadyFuture(Future):
    """``channel_ready_future``'s result: done once the channel is READY."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel
        self._condition = threading.Condition()
        self._matured = False
        self._cancelled = False
        self._callbacks: list[Callable[[Any], Any]] = []

    def _start(self) -> None:
        self._channel.subscribe(self._on_state, try_to_connect=True)

    def _on_state(self, state: ChannelConnectivity) -> None:
        if state is READY:
            self._end(matured=True)

    def _end(self, *, matured: bool) -> bool:
        with self._condition:
            if self._matured or self._cancelled:
                return False
            self._matured, self._cancelled = matured, not matured
            self._condition.notify_all()
            callbacks, self._callbacks = self._callbacks, []
        self._channel.unsubscribe(self._on_state)
        for callback in callbacks:
            callback(self)
        return True

    def cancel(self) -> bool:
        return self._end(matured=False)

    def cancelled(self) -> bool:
        with self._condition:
            return self._cancelled

    def running(self) -> bool:
        with self._condition:
            return not self._matured and not self._cancelled

    def done(self) -> bool:
        with self._condition:
            return self._matured or self._cancelled

    def result(self, timeout: float | None = None) -> None:
        with self._condition:
            if not self._condition.wait_for(
                lambda: self._matured or self._cancelled, timeout
            ):
                raise FutureTimeoutError()
            if self._cancelled:
                raise FutureCancelledError()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self.result(timeout)
        return None

    def traceback(self, timeout: float | None = None) -> TracebackType | None:
        self.result(timeout)
        return None

    def add_done_callback(self, fn: Callable[[Any], Any]) -> None:
        with self._condition:
            if not (self._matured or self._cancelled):
                self._callbacks.append(fn)
                return
        fn(self)


def channel_ready_future(channel: Any) -> Future:
    """A ``Future`` that is done once ``channel`` is READY (as grpcio's).

    It asks the channel to connect. ``result(timeout)`` returns None once ready,
    raises ``FutureTimeoutError`` if it is not by then; ``cancel()`` stops
    watching.
    """
    future = _ChannelReadyFuture(channel)
    future._start()
    return future
