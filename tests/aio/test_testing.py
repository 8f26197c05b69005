"""``homarpc.aio.testing``: in-process channels for async servicers, no ports."""

from __future__ import annotations

from typing import Any

import pytest

import homarpc
from homarpc import aio
from homarpc.aio import testing

from .conftest import Handlers, method

pytestmark = pytest.mark.timeout(20)


class Greeter:
    """A servicer with one async method, added the way generated code adds one."""

    async def Greet(self, request: bytes, context: aio.ServicerContext) -> bytes:
        return b"hello " + request


def add_greeter_to_server(servicer: Greeter, server: aio.Server) -> None:
    handler = homarpc.unary_unary_rpc_method_handler(servicer.Greet)
    server.add_registered_method_handlers("test.Greeter", {"Greet": handler})


@pytest.mark.asyncio
async def test_channel_for_one_servicer() -> None:
    async with testing.channel_for(add_greeter_to_server, Greeter()) as channel:
        greet = channel.unary_unary("/test.Greeter/Greet")
        assert await greet(b"you", timeout=5) == b"hello you"


@pytest.mark.asyncio
async def test_channel_for_several_services_and_generic_handlers() -> None:
    services: list[Any] = [
        (add_greeter_to_server, Greeter()),
        Handlers().generic_handler(),
    ]
    async with testing.ChannelFor(services) as channel:
        assert await channel.unary_unary(method("Echo"))(b"e", timeout=5) == b"e"
        greet = channel.unary_unary("/test.Greeter/Greet")
        assert await greet(b"x", timeout=5) == b"hello x"


@pytest.mark.asyncio
async def test_two_harnesses_at_once_each_reach_their_own_server() -> None:
    echo_only = [Handlers().generic_handler()]
    greeter_only = [(add_greeter_to_server, Greeter())]
    async with (
        testing.ChannelFor(echo_only) as first,
        testing.ChannelFor(greeter_only) as second,
    ):
        assert await first.unary_unary(method("Echo"))(b"1", timeout=5) == b"1"
        with pytest.raises(aio.AioRpcError) as caught:
            await second.unary_unary(method("Echo"))(b"", timeout=5)
    assert caught.value.code() == homarpc.StatusCode.UNIMPLEMENTED
