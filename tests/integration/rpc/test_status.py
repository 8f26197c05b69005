"""Every status path and metadata, with grpcio's strings."""

from __future__ import annotations

import logging
import time

import pytest

import homarpc
from homarpc import StatusCode

from .conftest import Rig, method
from .service import TestService

TIMEOUT = 10.0


def _fail(channel: homarpc.Channel, do: str, payload: bytes = b"x") -> homarpc.RpcError:
    with pytest.raises(homarpc.RpcError) as caught:
        channel.unary_unary(method("Echo"))(
            payload, timeout=TIMEOUT, metadata=[("x-do", do)]
        )
    return caught.value


@pytest.mark.parametrize(
    "code", [c for c in StatusCode if c is not StatusCode.OK], ids=lambda c: c.name
)
def test_abort_carries_every_code_and_its_details(memory_rig: Rig, code: StatusCode):
    _, channel = memory_rig.pair()
    error = _fail(channel, f"abort:{code.name}:because {code.value[1]}")
    assert error.code() is code
    assert error.details() == f"because {code.value[1]}"


def test_abort_over_a_real_transport(rig: Rig):
    _, channel = rig.pair()
    error = _fail(channel, "abort:INVALID_ARGUMENT:bad lat")
    assert (error.code(), error.details()) == (StatusCode.INVALID_ARGUMENT, "bad lat")


def test_set_code_and_details_without_raising(rig: Rig):
    _, channel = rig.pair()
    error = _fail(channel, "setcode")
    assert (error.code(), error.details()) == (StatusCode.NOT_FOUND, "nf")


def test_a_handler_exception_is_unknown_and_logged(rig: Rig, caplog):
    _, channel = rig.pair()
    with caplog.at_level(logging.ERROR, logger="homarpc.server"):
        error = _fail(channel, "raise")
    assert (error.code(), error.details()) == (
        StatusCode.UNKNOWN,
        "Exception calling application: boom",
    )
    assert any("boom" in record.getMessage() for record in caplog.records)


def test_the_generated_servicer_default_reads_method_not_implemented(memory_rig: Rig):
    _, channel = memory_rig.pair()
    error = _fail(channel, "unimplemented")
    assert (error.code(), error.details()) == (
        StatusCode.UNIMPLEMENTED,
        "Method not implemented!",
    )


def test_returning_none_from_a_unary_handler_is_internal(memory_rig: Rig):
    _, channel = memory_rig.pair()
    error = _fail(channel, "none")
    assert (error.code(), error.details()) == (
        StatusCode.INTERNAL,
        "Failed to serialize response!",
    )


@pytest.mark.parametrize("path", ["/test.Rpc/Nope", "/no.Such/Echo", "garbage"])
def test_unknown_methods_and_services_are_unimplemented(rig: Rig, path: str):
    _, channel = rig.pair()
    with pytest.raises(homarpc.RpcError) as caught:
        channel.unary_unary(path)(b"", timeout=TIMEOUT)
    assert caught.value.code() is StatusCode.UNIMPLEMENTED
    assert caught.value.details() == "Method not found!"


def test_abort_with_status_sends_its_trailing_metadata(memory_rig: Rig):
    _, channel = memory_rig.pair()
    error = _fail(channel, "status")
    assert (error.code(), error.details()) == (StatusCode.PERMISSION_DENIED, "no")
    assert ("why-bin", b"\x01\x02") in error.trailing_metadata()


def test_metadata_travels_both_ways_with_binary_values(rig: Rig):
    _, channel = rig.pair()
    sent = [
        ("x-do", "md"),
        ("x-text", "hello"),
        ("x-raw-bin", bytes(range(256))),
        ("x-text", "again"),
    ]
    response, call = channel.unary_unary(method("Echo")).with_call(
        b"payload", timeout=TIMEOUT, metadata=sent
    )
    assert response == b"payload"
    assert call.initial_metadata() == (("initial", "yes"), *sent)
    assert call.trailing_metadata() == (
        ("trailing-bin", b"\xff\x00"),
        ("trailing", "t"),
    )
    assert all(isinstance(m, homarpc.Metadatum) for m in call.initial_metadata())


def test_bad_metadata_is_refused_before_sending(memory_rig: Rig):
    service, channel = memory_rig.pair()
    echo = channel.unary_unary(method("Echo"))
    with pytest.raises(homarpc.RpcError, match="Invalid metadata"):
        echo(b"", timeout=TIMEOUT, metadata=[("Upper", "x")])
    with pytest.raises(TypeError):
        echo(b"", timeout=TIMEOUT, metadata=[("k-bin", "not bytes")])
    assert service.calls == 0


def test_the_server_sees_the_peer_in_grpcio_form(rig: Rig):
    _, channel = rig.pair()
    peer = channel.unary_unary(method("Echo"))(
        b"", timeout=TIMEOUT, metadata=[("x-do", "peer")]
    )
    assert peer.startswith(b"ipv4:127.0.0.1:")
    assert int(peer.rsplit(b":", 1)[1]) > 0


def test_serializer_failures_are_internal(memory_rig: Rig):
    _, channel = memory_rig.pair()

    def explode(_: object) -> bytes:
        raise ValueError("no")

    with pytest.raises(homarpc.RpcError) as caught:
        channel.unary_unary(method("Echo"), request_serializer=explode)(
            1, timeout=TIMEOUT
        )
    assert caught.value.details() == "Exception serializing request!"
    with pytest.raises(homarpc.RpcError) as caught:
        channel.unary_unary(method("Echo"), response_deserializer=explode)(
            b"x", timeout=TIMEOUT
        )
    assert caught.value.details() == "Exception deserializing response!"


def test_maximum_concurrent_rpcs_gives_resource_exhausted(memory_rig: Rig):
    service, channel = memory_rig.pair(server_kwargs={"maximum_concurrent_rpcs": 1})
    slow = channel.unary_unary(method("Echo")).future(
        b"", timeout=TIMEOUT, metadata=[("x-do", "sleep:0.5")]
    )
    limit = time.monotonic() + TIMEOUT
    while service.remaining is None and time.monotonic() < limit:
        time.sleep(0.002)  # until the slow call is being served
    error = _fail(channel, "")
    assert (error.code(), error.details()) == (
        StatusCode.RESOURCE_EXHAUSTED,
        "Concurrent RPC limit exceeded!",
    )
    assert slow.result(TIMEOUT) == b""


def test_a_port_that_cannot_be_bound_is_a_runtime_error(memory_rig: Rig):
    _, port = memory_rig.server(TestService())
    server = homarpc.server(
        transport="memory", transport_options=memory_rig.transport_options
    )
    with pytest.raises(
        RuntimeError, match=f"Failed to bind to address 127.0.0.1:{port}"
    ):
        server.add_insecure_port(f"127.0.0.1:{port}")
    with pytest.raises(RuntimeError, match="port must be a number"):
        server.add_insecure_port("localhost:http")
