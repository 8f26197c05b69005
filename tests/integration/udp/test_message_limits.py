"""Between two UDP endpoints a gRPC message just over 1 MB is one Homa message,
once each end has said it accepts that (``Frame.max_message``); an end that
keeps the kernel's limit gets split messages, whatever the other allows."""

from __future__ import annotations

import os

import pytest

import homarpc
from homarpc.transport.engine import HomaConfig

PAYLOAD = 1_000_000  # with its frame head, just over the kernel's limit


def _echo_pair(server_config, client_config):
    def options(config):
        return {"config": config} if config is not None else None

    server = homarpc.server(
        max_workers=2, transport="udp", transport_options=options(server_config)
    )
    handler = homarpc.unary_unary_rpc_method_handler(lambda request, context: request)
    server.add_generic_rpc_handlers(
        (homarpc.method_handlers_generic_handler("t.E", {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = homarpc.insecure_channel(
        f"127.0.0.1:{port}", transport="udp", transport_options=options(client_config)
    )
    return server, channel


def _homa_messages(server, channel, calls: int) -> tuple[int, int]:
    """(requests the server received, responses the client received) for
    ``calls`` 1 MB echoes after one small call (which lets each side learn)."""
    echo = channel.unary_unary("/t.E/Echo")
    payload = os.urandom(PAYLOAD)
    assert echo(b"hello", timeout=10) == b"hello"
    server_stats = server._endpoints[0].transport.stats
    client_stats = channel._endpoint.transport.stats
    before = server_stats.requests_delivered, client_stats.responses_delivered
    for _ in range(calls):
        assert echo(payload, timeout=10) == payload
    return (
        server_stats.requests_delivered - before[0],
        client_stats.responses_delivered - before[1],
    )


@pytest.mark.parametrize(
    ("server_config", "client_config", "per_call"),
    [
        (None, None, 1),  # both UDP defaults: one Homa message each way
        (HomaConfig(), None, 2),  # the server keeps the kernel's limit: split
        (None, HomaConfig(), 2),  # the client does
    ],
)
def test_a_message_over_1_mb_is_one_homa_message_when_both_ends_allow_it(
    server_config, client_config, per_call
):
    server, channel = _echo_pair(server_config, client_config)
    try:
        requests, responses = _homa_messages(server, channel, calls=3)
        assert requests == 3 * per_call
        assert responses == 3 * per_call
    finally:
        channel.close()
        server.stop(None)
