"""An asyncio homarpc server in its own process: ``Bidi`` echoes each message.
Prints ``PORT <n>`` once it serves; runs until killed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import homarpc
from homarpc import aio


async def _bidi(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


async def main() -> None:
    handler = homarpc.method_handlers_generic_handler(
        "robust.Target", {"Bidi": homarpc.stream_stream_rpc_method_handler(_bidi)}
    )
    server = aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(f"PORT {port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main())
