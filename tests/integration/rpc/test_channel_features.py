"""Interceptors, several targets, the testing helper, and bad input on the wire."""

from __future__ import annotations

import collections
import socket
import threading
import time

import pytest

import homarpc
from homarpc import StatusCode
from homarpc.testing import ChannelFor, channel_for
from homarpc.transport import open_transport

from .conftest import Rig, method
from .service import SERVICE, TestService

TIMEOUT = 10.0


class _Details(
    collections.namedtuple(
        "_Details", "method timeout metadata credentials wait_for_ready compression"
    ),
    homarpc.ClientCallDetails,
):
    pass


class _AddMetadata(
    homarpc.UnaryUnaryClientInterceptor, homarpc.UnaryStreamClientInterceptor
):
    def __init__(self, key: str) -> None:
        self.key = key
        self.seen: list[str] = []

    def _rewrite(self, details):
        self.seen.append(details.method)
        metadata = [*(details.metadata or ()), (self.key, "1")]
        return _Details(details.method, details.timeout, metadata, None, None, None)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._rewrite(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._rewrite(client_call_details), request)


def test_client_interceptors_run_in_order_and_can_rewrite(memory_rig: Rig):
    _, channel = memory_rig.pair()
    first, second = _AddMetadata("x-first"), _AddMetadata("x-second")
    intercepted = homarpc.intercept_channel(channel, first, second)
    response, call = intercepted.unary_unary(method("Echo")).with_call(
        b"hi", timeout=TIMEOUT, metadata=[("x-do", "md")]
    )
    assert response == b"hi"
    keys = [key for key, _ in call.initial_metadata()]
    assert keys == ["initial", "x-do", "x-first", "x-second"]
    assert (
        len(list(intercepted.unary_stream(method("Count"))(b"2:4", timeout=TIMEOUT)))
        == 2
    )
    assert first.seen == second.seen == [method("Echo"), method("Count")]


def test_client_interceptors_see_failures_as_outcomes(memory_rig: Rig):
    _, channel = memory_rig.pair()
    outcomes = []

    class Observe(homarpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation, client_call_details, request):
            outcome = continuation(client_call_details, request)
            outcomes.append(outcome.code())
            return outcome

    intercepted = homarpc.intercept_channel(channel, Observe())
    with pytest.raises(homarpc.RpcError):
        intercepted.unary_unary(method("Echo"))(
            b"", timeout=TIMEOUT, metadata=[("x-do", "raise")]
        )
    assert outcomes == [StatusCode.UNKNOWN]


def test_server_interceptors_wrap_lookup_in_order(memory_rig: Rig):
    order = []

    class Gate(homarpc.ServerInterceptor):
        def __init__(self, name: str, refuse: str | None = None) -> None:
            self.name, self.refuse = name, refuse

        def intercept_service(self, continuation, handler_call_details):
            order.append(self.name)
            if handler_call_details.method == self.refuse:
                return None
            return continuation(handler_call_details)

    service = TestService()
    _, port = memory_rig.server(
        service, interceptors=[Gate("outer"), Gate("inner", refuse=method("Count"))]
    )
    channel = memory_rig.channel(port)
    assert channel.unary_unary(method("Echo"))(b"ok", timeout=TIMEOUT) == b"ok"
    assert order == ["outer", "inner"]
    with pytest.raises(homarpc.RpcError) as caught:
        list(channel.unary_stream(method("Count"))(b"1", timeout=TIMEOUT))
    assert caught.value.code() is StatusCode.UNIMPLEMENTED


def test_calls_spread_round_robin_over_several_servers(rig: Rig):
    services = [TestService(), TestService()]
    ports = [rig.server(s)[1] for s in services]
    channel = rig.channel(",".join(f"127.0.0.1:{p}" for p in ports))
    echo = channel.unary_unary(method("Echo"))
    for index in range(10):
        assert echo(b"%d" % index, timeout=TIMEOUT) == b"%d" % index
    assert [s.calls for s in services] == [5, 5]


def test_calls_fail_over_from_a_server_that_is_not_there(memory_rig: Rig):
    service = TestService()
    _, port = memory_rig.server(service)
    dead = memory_rig.network.open(("127.0.0.1", 0), server=True)
    dead_port = dead.local_addr[1]
    dead.close()
    channel = memory_rig.channel(f"127.0.0.1:{dead_port},127.0.0.1:{port}")
    echo = channel.unary_unary(method("Echo"))
    assert [echo(b"x", timeout=TIMEOUT) for _ in range(6)] == [b"x"] * 6
    assert service.calls == 6


def test_no_server_at_all_is_unavailable(rig: Rig):
    probe = open_transport(
        rig.kind, ("127.0.0.1", 0), server=True, **rig.transport_options
    )
    port = probe.local_addr[1]
    probe.close()
    channel = rig.channel(port)
    started = time.monotonic()
    with pytest.raises(homarpc.RpcError) as caught:
        channel.unary_unary(method("Echo"))(b"", timeout=5.0)
    assert caught.value.code() in (StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED)
    assert time.monotonic() - started < 6.0


def test_a_closed_channel_cancels_calls_and_fails_new_ones(memory_rig: Rig):
    """In flight: CANCELLED "Channel closed!", as grpcio (``grpcio_compat``)."""
    _, channel = memory_rig.pair()
    stream = channel.unary_stream(method("Forever"))(b"", timeout=TIMEOUT)
    assert next(stream) == b"tick"
    channel.close()
    with pytest.raises(homarpc.RpcError) as caught:
        list(stream)
    assert caught.value.code() is StatusCode.CANCELLED
    with pytest.raises(homarpc.RpcError) as caught:
        channel.unary_unary(method("Echo"))(b"", timeout=TIMEOUT)
    assert caught.value.code() is StatusCode.UNAVAILABLE


def test_malformed_requests_are_dropped_counted_and_answered(rig: Rig):
    service = TestService()
    server, port = rig.server(service)
    raw = open_transport(rig.kind, ("127.0.0.1", 0), **rig.transport_options)
    try:
        for garbage in (b"\x07" * 3, b"\x02" + b"\x00" * 30, b"\x01" * 25):
            raw.send(("127.0.0.1", port), garbage, 1)
            answer = raw.recv(TIMEOUT)
            assert (
                answer is not None and answer.error is None and len(answer.payload) > 0
            )
    finally:
        raw.close()
    assert server._endpoints[0].malformed == 3
    channel = rig.channel(port)
    assert channel.unary_unary(method("Echo"))(b"still here", timeout=TIMEOUT) == (
        b"still here"
    )


def test_channel_for_serves_a_servicer_without_ports():
    def add_to_server(servicer: TestService, server: homarpc.Server) -> None:
        server.add_generic_rpc_handlers((servicer.generic_handler(),))

    service = TestService()
    with channel_for(add_to_server, service) as channel:
        assert channel.unary_unary(method("Echo"))(b"in-process", timeout=TIMEOUT) == (
            b"in-process"
        )
    assert service.calls == 1
    with ChannelFor([TestService().generic_handler()]) as channel:
        assert list(channel.unary_stream(method("Count"))(b"2:4", timeout=TIMEOUT)) == [
            b"\x00\x00\x00\x00",
            b"\x00\x00\x00\x01",
        ]


def test_registered_method_handlers_are_served(memory_rig: Rig):
    server, port = memory_rig.server()
    server.add_registered_method_handlers(
        SERVICE, {"Echo": homarpc.unary_unary_rpc_method_handler(lambda r, c: r + b"!")}
    )
    assert memory_rig.channel(port).unary_unary(method("Echo"))(
        b"hi", timeout=TIMEOUT
    ) == (b"hi!")


def test_subscribe_reports_each_state_in_order_until_shutdown(memory_rig: Rig):
    _, channel = memory_rig.pair()
    states = []
    ready, closed = threading.Event(), threading.Event()

    def seen(state):
        states.append(state)
        if state is homarpc.ChannelConnectivity.READY:
            ready.set()
        if state is homarpc.ChannelConnectivity.SHUTDOWN:
            closed.set()

    channel.subscribe(seen, try_to_connect=True)
    assert ready.wait(TIMEOUT)
    channel.close()
    assert closed.wait(TIMEOUT)
    assert states == [
        homarpc.ChannelConnectivity.IDLE,
        homarpc.ChannelConnectivity.CONNECTING,
        homarpc.ChannelConnectivity.READY,
        homarpc.ChannelConnectivity.SHUTDOWN,
    ]


def test_a_call_that_finds_no_server_turns_ready_into_idle(memory_rig: Rig):
    server, port = memory_rig.server(TestService())
    channel = memory_rig.channel(port)
    homarpc.channel_ready_future(channel).result(timeout=TIMEOUT)
    server.stop(None)
    with pytest.raises(homarpc.RpcError) as caught:
        channel.unary_unary(method("Echo"))(b"", timeout=TIMEOUT)
    assert caught.value.code() is StatusCode.UNAVAILABLE
    states = []
    seen = threading.Event()
    channel.subscribe(lambda state: (states.append(state), seen.set()))
    assert seen.wait(TIMEOUT)
    assert states[0] in (
        homarpc.ChannelConnectivity.IDLE,
        homarpc.ChannelConnectivity.CONNECTING,  # the call asked to reconnect
        homarpc.ChannelConnectivity.TRANSIENT_FAILURE,
    )


def test_wait_for_ready_waits_for_a_late_server(memory_rig: Rig):
    port = 45_678
    channel = memory_rig.channel(port)
    echo = channel.unary_unary(method("Echo"))
    with pytest.raises(homarpc.RpcError) as caught:
        echo(b"", timeout=TIMEOUT)  # fail-fast by default
    assert caught.value.code() is StatusCode.UNAVAILABLE
    with pytest.raises(homarpc.RpcError) as caught:
        echo(b"", timeout=0.3, wait_for_ready=True)
    assert caught.value.code() is StatusCode.DEADLINE_EXCEEDED

    def start_late() -> None:
        server = homarpc.server(
            transport="memory", transport_options=memory_rig.transport_options
        )
        server.add_generic_rpc_handlers((TestService().generic_handler(),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        memory_rig.closers.append(lambda: server.stop(None).wait(5))

    timer = threading.Timer(0.3, start_late)
    timer.start()
    started = time.monotonic()
    assert echo(b"late", timeout=TIMEOUT, wait_for_ready=True) == b"late"
    assert 0.25 < time.monotonic() - started < 3.0
    timer.join()


def test_streaming_interceptors_see_and_can_wrap_the_streams(memory_rig: Rig):
    _, channel = memory_rig.pair()

    class Doubler(
        homarpc.StreamStreamClientInterceptor, homarpc.StreamUnaryClientInterceptor
    ):
        def intercept_stream_stream(self, continuation, client_call_details, requests):
            return continuation(client_call_details, (r * 2 for r in requests))

        def intercept_stream_unary(self, continuation, client_call_details, requests):
            return continuation(client_call_details, (r * 2 for r in requests))

    intercepted = homarpc.intercept_channel(channel, Doubler())
    bidi = intercepted.stream_stream(method("Bidi"))
    assert list(bidi(iter([b"a", b"b"]), timeout=TIMEOUT)) == [b"aa", b"bb"]
    collect = intercepted.stream_unary(method("Collect"))
    assert collect(iter([b"x", b"y"]), timeout=TIMEOUT) == b"xxyy"


def test_a_done_callback_may_make_a_blocking_call(memory_rig: Rig):
    _, channel = memory_rig.pair()
    echo = channel.unary_unary(method("Echo"))
    seen: list[bytes] = []
    finished = threading.Event()

    def then_call_again(future) -> None:
        seen.append(echo(future.result() + b"+", timeout=TIMEOUT))
        finished.set()

    echo.future(b"first", timeout=TIMEOUT).add_done_callback(then_call_again)
    assert echo(b"meanwhile", timeout=TIMEOUT) == b"meanwhile"
    assert finished.wait(TIMEOUT)
    assert seen == [b"first+"]


def test_a_name_dns_does_not_know_yet_is_resolved_again(
    memory_rig: Rig, monkeypatch: pytest.MonkeyPatch
):
    _, port = memory_rig.server(TestService())
    known = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host != "late.example":
            return real(host, *args, **kwargs)
        if not known.is_set():
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_DGRAM, 0, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    channel = memory_rig.channel(
        f"late.example:{port}", options=[("grpc.initial_reconnect_backoff_ms", 50)]
    )
    echo = channel.unary_unary(method("Echo"))
    with pytest.raises(homarpc.RpcError) as caught:
        echo(b"", timeout=TIMEOUT)
    assert caught.value.code() is StatusCode.UNAVAILABLE
    assert "errors resolving late.example" in caught.value.details()
    known.set()  # the name appears in DNS; the channel finds it on its own
    homarpc.channel_ready_future(channel).result(timeout=TIMEOUT)
    assert echo(b"hi", timeout=TIMEOUT) == b"hi"


class _Counting(homarpc.ServerInterceptor):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def intercept_service(self, continuation, handler_call_details):
        self.seen.append(handler_call_details.method)
        return continuation(handler_call_details)


def test_the_connectivity_probe_runs_nothing_on_the_server(memory_rig: Rig):
    counting = _Counting()
    _, port = memory_rig.server(TestService(), interceptors=[counting])
    channel = memory_rig.channel(port)
    homarpc.channel_ready_future(channel).result(timeout=TIMEOUT)
    assert counting.seen == []  # no call started: no interceptor, no handler
    assert channel.unary_unary(method("Echo"))(b"x", timeout=TIMEOUT) == b"x"
    assert counting.seen == [method("Echo")]


def test_a_channel_that_only_calls_a_live_server_never_probes(memory_rig: Rig):
    _, channel = memory_rig.pair()
    probes = []
    real = channel._connectivity._probe
    channel._connectivity._probe = lambda timeout: probes.append(1) or real(timeout)
    states = []
    ready = threading.Event()
    channel.subscribe(
        lambda state: (states.append(state), state.name == "READY" and ready.set())
    )
    assert channel.unary_unary(method("Echo"))(b"x", timeout=TIMEOUT) == b"x"
    assert ready.wait(TIMEOUT)  # the call's answer made it READY
    assert [state.name for state in states] == ["IDLE", "CONNECTING", "READY"]
    assert probes == []
