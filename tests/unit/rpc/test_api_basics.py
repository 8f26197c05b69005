"""Status codes, errors, metadata checks, targets and options: no traffic."""

from __future__ import annotations

import grpc
import pytest

import homarpc
from homarpc._options import message_limits
from homarpc._targets import TargetError, parse_bind, parse_target
from homarpc.metadata import check_metadata, format_peer


def test_status_codes_match_grpcio_exactly():
    ours = {code.name: code.value for code in homarpc.StatusCode}
    theirs = {code.name: code.value for code in grpc.StatusCode}
    assert ours == theirs
    assert homarpc.StatusCode.NOT_FOUND.value == (5, "not found")


def test_rpc_error_reads_like_grpcios():
    error = homarpc.RpcError(
        homarpc.StatusCode.DEADLINE_EXCEEDED,
        "Deadline Exceeded",
        trailing_metadata=(("k", "v"),),
    )
    text = str(error)
    assert text.startswith("<_InactiveRpcError of RPC that terminated with:")
    assert "status = StatusCode.DEADLINE_EXCEEDED" in text
    assert 'details = "Deadline Exceeded"' in text
    assert error.code() is homarpc.StatusCode.DEADLINE_EXCEEDED
    assert error.trailing_metadata() == (("k", "v"),)
    assert isinstance(error, Exception)


def test_metadata_checks_follow_grpcio():
    assert check_metadata([("a", "1"), ("k-bin", b"\x00"), ("a", b"2")]) == [
        ("a", "1"),
        ("k-bin", b"\x00"),
        ("a", "2"),
    ]
    with pytest.raises(homarpc.RpcError, match="Invalid metadata"):
        check_metadata([("Upper", "x")])
    with pytest.raises(homarpc.RpcError, match="Invalid metadata"):
        check_metadata([("k", "é")])
    with pytest.raises(TypeError, match="-bin"):
        check_metadata([("k-bin", "text")])


def test_peer_strings_have_grpcios_shape():
    assert format_peer(("127.0.0.1", 5)) == "ipv4:127.0.0.1:5"
    assert format_peer(("::1", 5)) == "ipv6:[::1]:5"


@pytest.mark.parametrize(
    ("target", "kind", "addresses"),
    [
        ("localhost:50051", None, [("127.0.0.1", 50051)]),
        ("homa://10.0.0.1:7", "kernel", [("10.0.0.1", 7)]),
        ("homa+udp://[::1]:7", "udp", [("::1", 7)]),
        ("ipv4:10.0.0.1:1,10.0.0.2:2", None, [("10.0.0.1", 1), ("10.0.0.2", 2)]),
        ("dns:///127.0.0.1:9", None, [("127.0.0.1", 9)]),
    ],
)
def test_targets_parse(target, kind, addresses):
    assert parse_target(target) == (kind, addresses)


def test_bad_targets_say_how_to_fix_them():
    with pytest.raises(TargetError, match="host:port"):
        parse_target("localhost")
    with pytest.raises(TargetError, match="port must be a number"):
        parse_target("localhost:http")


def test_bind_addresses_map_any_to_ipv4_any():
    assert parse_bind("[::]:50051") == (None, ("0.0.0.0", 50051))
    assert parse_bind("localhost:0") == (None, ("127.0.0.1", 0))
    assert parse_bind("homa+udp://127.0.0.1:5") == ("udp", ("127.0.0.1", 5))


def test_options_give_grpcios_default_limits_and_honour_overrides():
    assert message_limits(None) == (4 * 1024 * 1024, -1)
    assert message_limits(
        [
            ("grpc.max_receive_message_length", 10),
            ("grpc.max_send_message_length", 20),
            ("grpc.unknown", "ignored"),
        ]
    ) == (10, 20)
    assert message_limits([("grpc.max_receive_message_length", -1)]) == (-1, -1)


def test_the_public_api_has_the_grpcio_names_generated_code_uses():
    for name in (
        "unary_unary_rpc_method_handler",
        "stream_stream_rpc_method_handler",
        "method_handlers_generic_handler",
        "insecure_channel",
        "server",
        "StatusCode",
        "RpcError",
        "ServicerContext",
        "intercept_channel",
        "ChannelConnectivity",
        "HandlerCallDetails",
        "RpcMethodHandler",
    ):
        assert hasattr(homarpc, name) and hasattr(grpc, name), name
    assert set(homarpc.__all__) <= set(dir(homarpc))


def test_aio_is_reachable_from_a_plain_import_like_grpc_aio():
    import subprocess
    import sys

    code = (
        "import sys, homarpc\n"
        "assert 'homarpc.aio' not in sys.modules\n"
        "print(homarpc.aio.insecure_channel.__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("homarpc.aio")


@pytest.mark.parametrize("request_value", ["text", 12345, {"a": 1}])
def test_a_non_bytes_request_without_a_serializer_is_an_internal_rpc_error(
    request_value,
):
    with homarpc.insecure_channel("127.0.0.1:1", transport="memory") as channel:
        call = channel.unary_unary("/pkg.Service/Method")
        with pytest.raises(homarpc.RpcError) as caught:
            call(request_value, timeout=1)
    assert caught.value.code() is homarpc.StatusCode.INTERNAL
    assert caught.value.details() == "Exception serializing request!"


def test_a_failing_serializer_is_an_internal_rpc_error():
    def broken(_: object) -> bytes:
        raise ValueError("cannot encode")

    with homarpc.insecure_channel("127.0.0.1:1", transport="memory") as channel:
        call = channel.unary_unary("/pkg.Service/Method", request_serializer=broken)
        with pytest.raises(homarpc.RpcError) as caught:
            call(object(), timeout=1)
    assert caught.value.code() is homarpc.StatusCode.INTERNAL
