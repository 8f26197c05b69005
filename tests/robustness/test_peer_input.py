"""What a peer sends is checked as grpcio checks it, and blamed on the peer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

import homarpc
from homarpc._framing import Flags, Frame

from .conftest import SERVICE, method
from .raw import RawClient

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def grpcio_echo() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(lambda r, c: r)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def _code(channel: Any, metadata: Any) -> Any:
    try:
        channel.unary_unary(method("Echo"))(b"x", timeout=5, metadata=metadata)
    except Exception as exc:  # grpc.RpcError or homarpc.RpcError
        return exc.code().name
    return "OK"


@pytest.mark.parametrize(
    "metadata",
    [(("big", "v" * 20_000),), tuple((f"k{i}", "v" * 100) for i in range(200))],
    ids=["one-20KB-value", "200-entries"],
)
def test_metadata_over_16_kib_is_refused_as_grpcio_refuses_it(
    spawn_server: Any, open_channel: Any, grpcio_echo: str, metadata: Any
) -> None:
    server = spawn_server()
    ours = _code(open_channel(server.target), metadata)
    with grpc.insecure_channel(grpcio_echo) as channel:
        theirs = _code(channel, metadata)
    assert ours == theirs == "RESOURCE_EXHAUSTED"


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ((("Upper", "v"),), "INTERNAL"),
        ((("", "v"),), "INTERNAL"),
        ((("crlf", "a\r\nb"),), "INTERNAL"),
        ((("nul", "a\x00b"),), "INTERNAL"),
    ],
    ids=["uppercase-key", "empty-key", "crlf-value", "nul-value"],
)
def test_illegal_metadata_never_reaches_a_handler(
    spawn_server: Any, metadata: Any, code: str
) -> None:
    """A raw client skips the checks a channel makes before sending."""
    server = spawn_server()
    client = RawClient(server.port)
    try:
        client.start(3, "Record", b"bad", metadata=metadata)
        (answer,) = client.answers(1)
    finally:
        client.close()
    assert answer.flags & Flags.EOS and answer.status is not None
    assert answer.status[0] == homarpc.StatusCode[code].value[0]
    assert server.records() == []


def test_a_tiny_max_message_announcement_cannot_fail_responses(
    spawn_server: Any,
) -> None:
    """A client announcing it accepts Homa messages of 1 byte would otherwise make
    every response fail, with the error blamed on the application."""
    server = spawn_server()
    client = RawClient(server.port)
    payload = b"z" * 1_500_000
    try:
        client.start(4, "Echo", payload, max_message=1)
        client.send(Frame(4, 0, Flags.POLL))  # room for the second of two frames
        answers = sorted(client.answers(2), key=lambda frame: frame.seq)
    finally:
        client.close()
    assert answers and answers[-1].status == (0, "")
    assert b"".join(bytes(a.payload) for a in answers) == payload


def test_log_lines_a_peer_causes_are_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """50 malformed requests: each is answered and counted, a few are logged."""
    server = homarpc.server(transport="udp")
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = RawClient(port)
    try:
        with caplog.at_level(logging.DEBUG, logger="homarpc.server"):
            for _ in range(50):
                client.transport.send(client.dest, b"\xffnot a frame", 0)
            answers = client.answers(50)
    finally:
        client.close()
        server.stop(None).wait(5)
    assert len(answers) == 50
    assert all(a.status and a.status[0] == 13 for a in answers)  # INTERNAL
    assert server.stats()["malformed_requests"] == 50
    logged = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert 1 <= len(logged) <= 6
