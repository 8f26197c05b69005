"""Closing a server endpoint or a client endpoint loses nothing it just sent, over
the fake kernel module that drops the first packet of every one-packet message
and recovers it by RESEND from the sending socket (issue 12): the socket must
stay open until the kernel is done with it."""

from __future__ import annotations

import threading

import pytest

from homarpc._client_endpoint import ClientEndpoint
from homarpc._framing import Flags, Frame, decode_frame, encode_frame
from homarpc._server_call import ServerCallCore
from homarpc._server_endpoint import ServerEndpoint
from homarpc.status import StatusCode
from homarpc.transport.kernel import HomaSocket
from tests.unit.kernel.fakekernel import FakeKernel

DELAY = 0.02


@pytest.mark.parametrize("generation", ["G8c", "G4a"])
def test_a_reply_sent_just_before_close_still_arrives(generation: str) -> None:
    fake = FakeKernel(generation, resend_delay=DELAY)
    server = HomaSocket(("127.0.0.1", 0), server=True, system=fake.system())
    client = HomaSocket(("127.0.0.1", 0), system=fake.system())
    answered = threading.Event()

    def on_call(core: ServerCallCore) -> None:
        core.finish(StatusCode.OK, "", message=core.read())
        answered.set()

    endpoint = ServerEndpoint(server, on_call=on_call)
    endpoint.start()
    try:
        start = Frame(
            1, 1, Flags.POLL | Flags.MESSAGE | Flags.MSG_END | Flags.EOS, "/s/M",
            payload=b"ping",
        )  # fmt: skip
        client.send(server.local_addr, encode_frame(start), 0)
        assert answered.wait(5)
        endpoint.close()  # at once: the reply's first packet is still to be re-sent
        reply = client.recv(5)
    finally:
        client.close()
        server.close()
    assert reply is not None and reply.error is None
    frame = decode_frame(bytes(reply.payload))
    assert frame.status == (0, "") and bytes(frame.payload) == b"ping"


@pytest.mark.parametrize("generation", ["G8c", "G4a"])
def test_closing_a_channel_right_after_its_calls_cancels_them_on_the_server(
    generation: str,
) -> None:
    """The CANCEL a closing channel sends must reach the server, whose handler
    then sees the call end (the fake loses its first packet, as on loopback)."""
    fake = FakeKernel(generation, resend_delay=DELAY)
    server = HomaSocket(("127.0.0.1", 0), server=True, system=fake.system())
    started, ended = threading.Event(), threading.Event()

    def on_call(core: ServerCallCore) -> None:
        core.add_done_callback(ended.set)
        started.set()

    endpoint = ServerEndpoint(server, on_call=on_call)
    endpoint.start()
    client = ClientEndpoint(HomaSocket(("127.0.0.1", 0), system=fake.system()))
    try:
        call = client.open_call(
            server.local_addr, "/s/Stream", (), 10.0, request=b"go",
            response_streaming=True, notify=lambda: None, attended=True,
        )  # fmt: skip
        call.start()
        assert started.wait(5)
        client.close()  # cancels the call, then closes its socket
        assert ended.wait(5), "the server never heard of the cancel"
    finally:
        client.close()
        endpoint.close()
