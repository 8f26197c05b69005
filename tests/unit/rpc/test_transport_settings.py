"""The transport settings channels and servers open their transports with."""

from __future__ import annotations

import pytest

import homarpc
from homarpc._options import RPC_BUSY_POLL, transport_settings
from homarpc.transport import Transport
from homarpc.transport.udp import UdpTransport


@pytest.fixture(autouse=True)
def _no_busy_poll_env(monkeypatch):
    monkeypatch.delenv("HOMARPC_UDP_BUSY_POLL", raising=False)


def test_udp_gets_the_rpc_busy_poll_unless_the_user_chose_one():
    assert transport_settings("udp", None) == ("udp", {"busy_poll": RPC_BUSY_POLL})
    chosen = transport_settings("udp", {"busy_poll": 0.0, "socket_buffer": 1 << 20})
    assert chosen == ("udp", {"busy_poll": 0.0, "socket_buffer": 1 << 20})


def test_the_environment_variable_keeps_the_transports_own_default(monkeypatch):
    monkeypatch.setenv("HOMARPC_UDP_BUSY_POLL", "1e-5")
    assert transport_settings("udp", None) == ("udp", {})


def test_other_backends_get_the_options_unchanged():
    network = object()
    assert transport_settings("memory", {"network": network}) == (
        "memory",
        {"network": network},
    )


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown transport 'carrier-pigeon'"):
        transport_settings("carrier-pigeon", None)


def _udp(transport: Transport) -> UdpTransport:
    assert isinstance(transport, UdpTransport)
    return transport


def test_a_channel_and_a_server_on_udp_poll_for_the_rpc_busy_poll():
    server = homarpc.server(transport="udp")
    try:
        server.add_insecure_port("127.0.0.1:0")
        assert _udp(server._endpoints[0].transport).busy_poll == RPC_BUSY_POLL
    finally:
        server.stop(None)
    with homarpc.insecure_channel("homa+udp://127.0.0.1:9") as channel:
        assert _udp(channel._endpoint.transport).busy_poll == RPC_BUSY_POLL
    options = {"busy_poll": 1e-5}
    with homarpc.insecure_channel(
        "homa+udp://127.0.0.1:9", transport_options=options
    ) as channel:
        assert _udp(channel._endpoint.transport).busy_poll == 1e-5


def test_an_unknown_transport_for_a_server_is_a_bind_error():
    server = homarpc.server(transport="carrier-pigeon")
    with pytest.raises(RuntimeError, match="Failed to bind"):
        server.add_insecure_port("127.0.0.1:0")
