"""Thousands of concurrent bidi streams from one asyncio client to an asyncio
server (its own process) all end OK."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter

import pytest

from homarpc import aio

from .conftest import ROOT, method

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

_STREAMS = 3000


async def _one_stream(call: aio.StreamStreamCall, i: int) -> str:
    await call.write(b"%d" % i)
    echoed = await call.read()
    await call.done_writing()
    assert echoed == b"%d" % i
    return (await call.code()).name


async def _many(target: str) -> Counter[str]:
    async with aio.insecure_channel(target) as channel:
        bidi = channel.stream_stream(method("Bidi"))
        outcomes = await asyncio.gather(
            *(_one_stream(bidi(timeout=60), i) for i in range(_STREAMS)),
            return_exceptions=True,
        )
    return Counter(o if isinstance(o, str) else repr(o)[:120] for o in outcomes)


def test_thousands_of_concurrent_streams_all_end_ok() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.robustness.aio_target"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        outcomes = asyncio.run(_many(f"127.0.0.1:{port}"))
    finally:
        server.kill()
        server.wait(5)
        if server.stdout is not None:
            server.stdout.close()
    assert outcomes == Counter({"OK": _STREAMS})
