"""Over real sockets: long messages land in place (``recvmsg_into``), and whatever
else arrives meanwhile is still read whole."""

from __future__ import annotations

import os

import pytest

import homarpc
from homarpc.transport import MAX_MESSAGE_LENGTH, MessageTooLongError, Placement
from homarpc.transport.engine import HomaConfig
from homarpc.transport.udp import DEFAULT_MAX_MESSAGE, open_udp_transport
from homarpc.transport.udp import _leader as udp

from .helpers import recv_or_fail


def _echo_server_and_channel():
    server = homarpc.server(max_workers=2, transport="udp")
    handler = homarpc.unary_unary_rpc_method_handler(lambda request, context: request)
    server.add_generic_rpc_handlers(
        (homarpc.method_handlers_generic_handler("t.E", {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = homarpc.insecure_channel(f"127.0.0.1:{port}", transport="udp")
    return server, channel


def test_one_megabyte_echo_is_received_in_place_and_landed_both_ways():
    server, channel = _echo_server_and_channel()
    try:
        echo = channel.unary_unary("/t.E/Echo")
        payload = os.urandom(1_000_000)
        for _ in range(3):
            reply = echo(payload, timeout=10)
            assert reply == payload and type(reply) is bytes
        server_stats = server._endpoints[0].transport.stats
        assert server_stats.messages_placed >= 3
    finally:
        channel.close()
        server.stop(None)


def test_a_transport_lands_the_packets_of_a_placed_message():
    calls = []

    def layout(first, length):
        calls.append(length)
        return Placement(0, memoryview(bytearray(length)))

    server = open_udp_transport(("127.0.0.1", 0), server=True)
    client = open_udp_transport(("127.0.0.1", 0))
    landed = []
    real = server._engine.receive_landed

    def counting(header, body, addr, now):
        landed.append(len(body))
        real(header, body, addr, now)

    server._engine.receive_landed = counting
    try:
        assert server.set_layout(layout)
        payload = os.urandom(700_000)
        client.send(server.local_addr, payload)
        request = recv_or_fail(server)
        parts = request.payload_parts()
        assert isinstance(parts[-1], Placement) and bytes(parts[-1]) == payload
        assert calls == [len(payload)] and sum(landed) > len(payload) // 2
    finally:
        client.close()
        server.close()


def test_reassembled_puts_a_datagram_spread_over_three_buffers_back_together():
    header, zone, spill = (
        bytearray(b"HEAD"),
        memoryview(bytearray(b"zone")),
        bytearray(b"spill"),
    )
    assert udp._reassembled(header, zone, spill, 3) == b"HEA"
    assert udp._reassembled(header, zone, spill, 6) == b"HEADzo"
    assert udp._reassembled(header, zone, spill, 11) == b"HEADzonespi"


def test_udp_messages_may_exceed_the_kernel_limit_unless_configured_to_it():
    # The embedded protocol has no 1,000,000-byte limit of its own: by default a
    # UDP transport takes a gRPC message of up to 4 MiB and its head in one
    # message; a config can still ask for kernel parity.
    server = open_udp_transport(("127.0.0.1", 0), server=True)
    client = open_udp_transport(("127.0.0.1", 0))
    parity = open_udp_transport(("127.0.0.1", 0), config=HomaConfig())
    try:
        assert client.max_message_length == DEFAULT_MAX_MESSAGE > 4 * 1024 * 1024
        assert parity.max_message_length == MAX_MESSAGE_LENGTH
        payload = os.urandom(1_500_000)
        client.send(server.local_addr, payload)
        request = recv_or_fail(server)
        assert bytes(request) == payload
        with pytest.raises(MessageTooLongError):
            parity.send(server.local_addr, payload)
    finally:
        for transport in (client, server, parity):
            transport.close()
