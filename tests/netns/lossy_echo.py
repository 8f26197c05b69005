"""Many RPCs over the embedded Homa transport, checked for exactly-once delivery.

Run inside a lossy namespace (see ``harness``): ``python -m tests.netns.lossy_echo
--count 2000``. It starts an echo server in a child process (same namespace), keeps
``--window`` RPCs in flight from this process, and prints one JSON report:

* client side: every RPC completed exactly once (by cookie), with exactly the bytes
  the server derives from the request; which failed, and with what error;
* server side (``--serve`` mode, reported when its stdin closes): how many times
  each request was executed (must be once each: Homa's at-most-once);
* both engines' counters (retransmissions, RESENDs, drops by reason).

Request ``i`` is ``i`` (8 bytes) plus filler derived from ``i``, of a size cycling
through one-datagram, unscheduled-boundary-crossing and multi-datagram messages, so
loss hits every part of the protocol: unscheduled data, grants, RESEND, acks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

from homarpc.transport import Message, Transport
from homarpc.transport.udp import UdpTransport, open_udp_transport

#: Request sizes, cycled by request number (bytes).
SIZES = (24, 1_400, 20_000, 60_000, 150_000)


def request_payload(seq: int) -> bytes:
    size = SIZES[seq % len(SIZES)]
    pattern = bytes((seq + i) & 0xFF for i in range(256))
    return seq.to_bytes(8, "big") + (pattern * (size // 256 + 1))[: size - 8]


def response_payload(request: bytes) -> bytes:
    """What the server answers: the request reversed (so echo bugs show)."""
    return request[::-1]


def engine_counters(transport: UdpTransport) -> dict[str, Any]:
    stats = dataclasses.asdict(transport.stats)
    stats["dropped"] = dict(transport.stats.dropped)
    return stats


# -- server ------------------------------------------------------------------------


def serve(host: str) -> None:
    """Echo server: print ``PORT n``, serve until stdin closes, print a JSON report."""
    transport = open_udp_transport((host, 0), server=True)
    executions: Counter[int] = Counter()
    corrupted = 0
    stop = threading.Event()

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    print(f"PORT {transport.local_addr[1]}", flush=True)
    while not stop.is_set():
        message = transport.recv(timeout=0.05)
        if message is None:
            continue
        request = bytes(message)
        seq = int.from_bytes(request[:8], "big")
        executions[seq] += 1
        if request != request_payload(seq):
            corrupted += 1
        transport.reply(message.peer, message.id, response_payload(request))
    report = {"executions": {str(k): v for k, v in executions.items()},
              "corrupted": corrupted, "engine": engine_counters(transport)}  # fmt: skip
    transport.close()
    print(json.dumps(report), flush=True)


# -- client ------------------------------------------------------------------------


@dataclasses.dataclass
class ClientTally:
    completed: Counter[int] = dataclasses.field(default_factory=Counter)
    wrong_bytes: list[int] = dataclasses.field(default_factory=list)
    failed: dict[int, str] = dataclasses.field(default_factory=dict)


def _record(message: Message, tally: ClientTally) -> None:
    seq = message.cookie
    if message.error is not None:
        tally.failed[seq] = repr(message.error)
        return
    tally.completed[seq] += 1
    if bytes(message) != response_payload(request_payload(seq)):
        tally.wrong_bytes.append(seq)


def run_client(
    transport: Transport, server: tuple[str, int], count: int, window: int,
    seconds: float,
) -> tuple[ClientTally, float]:  # fmt: skip
    """Keep ``window`` RPCs in flight until ``count`` have ended (or time is up)."""
    tally = ClientTally()
    started = time.monotonic()
    sent = ended = 0
    while ended < count and time.monotonic() - started < seconds:
        while sent < count and sent - ended < window:
            transport.send(server, request_payload(sent), cookie=sent)
            sent += 1
        message = transport.recv(timeout=1.0)
        if message is not None:
            _record(message, tally)
            ended += 1
    return tally, time.monotonic() - started


def _start_server(host: str) -> tuple[subprocess.Popen[str], int]:
    argv = [sys.executable, "-m", "tests.netns.lossy_echo", "--serve", "--host", host]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    words = proc.stdout.readline().split()
    if len(words) != 2 or words[0] != "PORT":
        proc.kill()
        raise RuntimeError("lossy_echo server did not start")
    return proc, int(words[1])


def _stop_server(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(input="", timeout=30)
    return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--serve", action="store_true", help="(internal) run the server"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=100.0, help="give up after")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.host)
        return 0
    proc, port = _start_server(args.host)
    try:
        with open_udp_transport((args.host, 0)) as client:
            tally, elapsed = run_client(
                client, (args.host, port), args.count, args.window, args.seconds
            )
            client_engine = engine_counters(client)
    finally:
        server_report = _stop_server(proc)
    print(json.dumps(_report(args.count, tally, elapsed, client_engine, server_report)))
    return 0


def _report(
    count: int, tally: ClientTally, elapsed: float, client_engine: dict[str, Any],
    server: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    executions = {int(k): v for k, v in server.get("executions", {}).items()}
    return {
        "count": count,
        "seconds": elapsed,
        "completed_once": sum(1 for n in tally.completed.values() if n == 1),
        "completed_twice": sorted(s for s, n in tally.completed.items() if n > 1),
        "missing": sorted(set(range(count)) - set(tally.completed) - set(tally.failed)),
        "failed": tally.failed,
        "wrong_bytes": tally.wrong_bytes,
        "executed_once": sum(1 for n in executions.values() if n == 1),
        "executed_twice": sorted(s for s, n in executions.items() if n > 1),
        "corrupted_requests": server.get("corrupted"),
        "client_engine": client_engine,
        "server_engine": server.get("engine", {}),
    }


if __name__ == "__main__":
    sys.exit(main())
