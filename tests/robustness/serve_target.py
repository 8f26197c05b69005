"""A homarpc server in its own process, for the robustness tests.

Run as ``python -m tests.robustness.serve_target [--workers N] [--port P]
[--record FILE]``; it prints ``PORT <n>`` once it serves and runs until killed or
its standard input closes; a line ``restart FILE`` on its input crashes the
server and starts a new one on the same port within milliseconds. Methods (bytes
in, bytes out, no protobuf):

* ``Echo`` (unary): the request.
* ``Record`` (unary): appends ``run <request>`` to the record file, then the request:
  how a test counts how often a call ran.
* ``RecordSlowly`` (unary): as ``Record``, then sleeps 3 s before answering.
* ``Stall`` (stream-unary): sleeps 5 s without reading, then counts the requests.
* ``Bidi`` (stream-stream): echoes each request.
* ``Sleep`` (unary-stream): sleeps the seconds the request says, then one message.
* ``Watch`` (unary-stream): sends one message, then waits until the call ends and
  appends ``ended <request>`` to the record file (from ``add_callback``).
* ``Ticker`` (unary-stream): a message every 0.1 s for a minute; appends
  ``ended <request> <monotonic time>`` to the record file when the call ends.
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

    def recorded_slowly(request: bytes, context: Any) -> bytes:
        _append(record, f"run {request.decode()}")
        time.sleep(3)
        return request

    def stall(requests: Iterator[bytes], context: Any) -> bytes:
        time.sleep(5)  # reads nothing meanwhile
        return b"%d" % sum(1 for _ in requests)

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

    def ticker(request: bytes, context: Any) -> Iterator[bytes]:
        context.add_callback(
            lambda: _append(record, f"ended {request.decode()} {time.monotonic():.3f}")
        )
        for _ in range(600):
            if not context.is_active():
                return
            yield b"tick"
            time.sleep(0.1)

    def stats(request: bytes, context: Any) -> bytes:
        return json.dumps(server_box[0].stats()).encode()

    return homarpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": homarpc.unary_unary_rpc_method_handler(echo),
            "Record": homarpc.unary_unary_rpc_method_handler(recorded),
            "RecordSlowly": homarpc.unary_unary_rpc_method_handler(recorded_slowly),
            "Stall": homarpc.stream_unary_rpc_method_handler(stall),
            "Bidi": homarpc.stream_stream_rpc_method_handler(bidi),
            "Sleep": homarpc.unary_stream_rpc_method_handler(sleep),
            "Watch": homarpc.unary_stream_rpc_method_handler(watch),
            "Ticker": homarpc.unary_stream_rpc_method_handler(ticker),
            "Stats": homarpc.unary_unary_rpc_method_handler(stats),
        },
    )


def _serve(workers: int, port: int, record: str | None) -> tuple[Any, int]:
    box: list[Any] = []
    server = homarpc.server(max_workers=workers, transport="udp")
    box.append(server)
    server.add_generic_rpc_handlers((_handlers(record, box),))
    port = _bind(server, port)
    server.start()
    print(f"PORT {port}", flush=True)
    return server, port


def _bind(server: Any, port: int) -> int:
    """Bind ``port``, waiting a moment for a crashed server's socket to close (its
    reader thread lets go of it as it wakes)."""
    for _ in range(200):
        try:
            return int(server.add_insecure_port(f"127.0.0.1:{port}"))
        except RuntimeError:
            if port == 0:
                raise
            time.sleep(0.005)
    return int(server.add_insecure_port(f"127.0.0.1:{port}"))


def _crash(server: Any) -> None:
    """Close the server's sockets as a crash would: nobody is told anything."""
    for endpoint in server._endpoints:
        endpoint.transport.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record")
    args = parser.parse_args()
    server, port = _serve(args.workers, args.port, args.record)
    # Each line "restart FILE" crashes the server and starts a new one on the
    # same port at once (recording to FILE); end of input stops it.
    for line in sys.stdin:
        command, _, record = line.strip().partition(" ")
        if command == "restart":
            _crash(server)
            server, port = _serve(args.workers, port, record)
    server.stop(None).wait(5)


if __name__ == "__main__":
    main()
