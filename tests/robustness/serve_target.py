"""A homarpc server in its own process, for the robustness tests.

Run as ``python -m tests.robustness.serve_target [--workers N] [--port P]
[--record FILE]``; it prints ``PORT <n>`` once it serves and runs until killed or
its standard input closes. Methods (bytes in, bytes out, no protobuf):

* ``Echo`` (unary): the request.
* ``Record`` (unary): appends ``run <request>`` to the record file, then the request:
  how a test counts how often a call ran.
* ``Bidi`` (stream-stream): echoes each request.
* ``Sleep`` (unary-stream): sleeps the seconds the request says, then one message.
* ``Watch`` (unary-stream): sends one message, then waits until the call ends and
  appends ``ended <request>`` to the record file (from ``add_callback``).
* ``Stats`` (unary): ``server.stats()`` as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import homarpc

SERVICE = "robust.Target"


def _append(path: str | None, line: str) -> None:
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")


def _handlers(record: str | None, server_box: list[Any]) -> Any:
    def echo(request: bytes, context: Any) -> bytes:
        return request

    def recorded(request: bytes, context: Any) -> bytes:
        _append(record, f"run {request.decode()}")
        return request

    def bidi(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        yield from requests

    def sleep(request: bytes, context: Any) -> Iterator[bytes]:
        _append(record, f"sleep-start {time.monotonic():.4f}")
        time.sleep(float(request))
        _append(record, f"sleep-end {time.monotonic():.4f}")
        yield b"slept"

    def watch(request: bytes, context: Any) -> Iterator[bytes]:
        ended = threading.Event()
        context.add_callback(ended.set)
        yield b"watching"
        ended.wait(60)
        _append(record, f"ended {request.decode()} {time.monotonic():.3f}")

    def stats(request: bytes, context: Any) -> bytes:
        return json.dumps(server_box[0].stats()).encode()

    return homarpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": homarpc.unary_unary_rpc_method_handler(echo),
            "Record": homarpc.unary_unary_rpc_method_handler(recorded),
            "Bidi": homarpc.stream_stream_rpc_method_handler(bidi),
            "Sleep": homarpc.unary_stream_rpc_method_handler(sleep),
            "Watch": homarpc.unary_stream_rpc_method_handler(watch),
            "Stats": homarpc.unary_unary_rpc_method_handler(stats),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record")
    args = parser.parse_args()
    box: list[Any] = []
    server = homarpc.server(max_workers=args.workers, transport="udp")
    box.append(server)
    server.add_generic_rpc_handlers((_handlers(args.record, box),))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"PORT {port}", flush=True)
    sys.stdin.read()  # until the test closes our stdin (or kills us)
    server.stop(None).wait(5)


if __name__ == "__main__":
    main()
