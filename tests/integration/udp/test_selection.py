"""Choosing the transport: explicit argument, ``HOMARPC_TRANSPORT``, ``auto``."""

from __future__ import annotations

import pytest

import homarpc.transport as transport_module
from homarpc.transport import choose_kind, kernel_available, open_transport
from homarpc.transport.udp import UdpTransport

from .helpers import recv_or_fail


def test_explicit_udp_opens_the_embedded_transport(monkeypatch):
    monkeypatch.setenv("HOMARPC_TRANSPORT", "memory")  # the argument wins
    with open_transport("udp", ("127.0.0.1", 0), server=True) as server:
        assert isinstance(server, UdpTransport)
        assert server.kind == "udp"
        with open_transport("udp", ("127.0.0.1", 0)) as client:
            client.send(server.local_addr, b"hi", 1)
            request = recv_or_fail(server)
            server.reply(request.peer, request.id, b"hello")
            assert bytes(recv_or_fail(client)) == b"hello"


@pytest.mark.parametrize("value", ["udp", " UDP ", "Udp"])
def test_environment_variable_selects_udp(monkeypatch, value):
    monkeypatch.setenv("HOMARPC_TRANSPORT", value)
    assert choose_kind() == "udp"
    with open_transport(local=("127.0.0.1", 0)) as chosen:
        assert isinstance(chosen, UdpTransport)


def test_auto_chooses_udp_when_the_kernel_module_is_unusable(monkeypatch):
    monkeypatch.delenv("HOMARPC_TRANSPORT", raising=False)
    monkeypatch.setattr(transport_module, "kernel_available", lambda: False)
    assert choose_kind() == "udp"
    assert choose_kind("auto") == "udp"
    with open_transport(local=("127.0.0.1", 0)) as chosen:
        assert chosen.kind == "udp"


def test_auto_matches_this_host(monkeypatch):
    monkeypatch.delenv("HOMARPC_TRANSPORT", raising=False)
    expected = "kernel" if kernel_available() else "udp"
    assert choose_kind("auto") == expected


def test_auto_chooses_the_kernel_when_it_is_usable(monkeypatch):
    monkeypatch.delenv("HOMARPC_TRANSPORT", raising=False)
    monkeypatch.setattr(transport_module, "kernel_available", lambda: True)
    assert choose_kind() == "kernel"


def test_a_bad_name_is_a_clear_value_error():
    with pytest.raises(
        ValueError, match=r"unknown transport 'tcp'.*auto, udp, kernel, memory"
    ):
        choose_kind("tcp")


def test_a_bad_environment_variable_names_the_variable(monkeypatch):
    monkeypatch.setenv("HOMARPC_TRANSPORT", "quic")
    with pytest.raises(ValueError, match="HOMARPC_TRANSPORT 'quic'"):
        open_transport(local=("127.0.0.1", 0))
