"""A server process killed mid-stream: the aio client hears UNAVAILABLE in time.

The server runs in a child process (so it can really die, with SIGKILL, without a
chance to say goodbye); the client is waiting on a response stream when it goes.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import homarpc
from homarpc import aio

from .transports import usable

pytestmark = pytest.mark.timeout(30)

#: A blocking homarpc server streaming a tick every 50 ms; prints its port.
SERVER = """
import sys, time, homarpc
def ticks(request, context):
    for index in range(1000):
        yield str(index).encode()
        time.sleep(0.05)
server = homarpc.server(max_workers=2, transport=sys.argv[1])
handler = homarpc.unary_stream_rpc_method_handler(ticks)
server.add_generic_rpc_handlers(
    (homarpc.method_handlers_generic_handler("t.S", {"Ticks": handler}),)
)
print(server.add_insecure_port("127.0.0.1:0"), flush=True)
server.start()
sys.stdin.read()
"""


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "transport", ["udp", pytest.param("kernel", marks=pytest.mark.kernel)]
)
async def test_killed_server_mid_stream_is_unavailable_within_the_deadline(
    transport: str,
) -> None:
    usable(transport)
    with subprocess.Popen(
        [sys.executable, "-c", SERVER, transport],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        try:
            port = int(child.stdout.readline())
            target = f"127.0.0.1:{port}"
            async with aio.insecure_channel(target, transport=transport) as channel:
                call = channel.unary_stream("/t.S/Ticks")(b"", timeout=10)
                assert [await call.read(), await call.read()] == [b"0", b"1"]
                child.kill()
                child.wait()
                killed_at = time.monotonic()
                with pytest.raises(aio.AioRpcError) as caught:
                    while True:
                        await call.read()
                noticed_after = time.monotonic() - killed_at
        finally:
            child.kill()
    assert caught.value.code() == homarpc.StatusCode.UNAVAILABLE
    assert noticed_after < 9  # inside the call's 10 s deadline, not by it
