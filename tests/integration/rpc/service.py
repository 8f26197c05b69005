"""The service the RPC-layer integration tests call (bytes in, bytes out).

``Echo``'s behaviour is chosen by the ``x-do`` metadata key so one method covers
every status path; the streaming methods record what the server saw, so tests can
check flow control and cancellation from the server's side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import homarpc

SERVICE = "test.Rpc"


class TestService:
    __test__ = False  # not a pytest class

    def __init__(self) -> None:
        self.ended = threading.Event()  # a call's add_callback fired
        self.cancel_seen = threading.Event()  # a handler saw is_active() turn false
        self.remaining: float | None = None
        self.yielded = 0
        self.consumed = 0
        self.calls = 0
        self._lock = threading.Lock()

    def generic_handler(self) -> homarpc.GenericRpcHandler:
        return homarpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Echo": homarpc.unary_unary_rpc_method_handler(self.echo),
                "Count": homarpc.unary_stream_rpc_method_handler(self.count),
                "Collect": homarpc.stream_unary_rpc_method_handler(self.collect),
                "Bidi": homarpc.stream_stream_rpc_method_handler(self.bidi),
                "Forever": homarpc.unary_stream_rpc_method_handler(self.forever),
                "Hoard": homarpc.stream_unary_rpc_method_handler(self.hoard),
            },
        )

    # -- unary -----------------------------------------------------------------------

    def echo(self, request: bytes, context: homarpc.ServicerContext) -> Any:
        with self._lock:
            self.calls += 1
        command = dict(context.invocation_metadata()).get("x-do", "")
        name, _, argument = str(command).partition(":")
        action = getattr(self, f"_do_{name}", None)
        return request if action is None else action(request, context, argument)

    def _do_abort(self, request: bytes, context: Any, argument: str) -> Any:
        code, _, details = argument.partition(":")
        context.abort(homarpc.StatusCode[code], details)

    def _do_setcode(self, request: bytes, context: Any, argument: str) -> Any:
        context.set_code(homarpc.StatusCode.NOT_FOUND)
        context.set_details("nf")
        return b"dropped"

    def _do_raise(self, request: bytes, context: Any, argument: str) -> Any:
        raise ValueError("boom")

    def _do_none(self, request: bytes, context: Any, argument: str) -> Any:
        return None

    def _do_unimplemented(self, request: bytes, context: Any, argument: str) -> Any:
        context.set_code(homarpc.StatusCode.UNIMPLEMENTED)
        context.set_details("Method not implemented!")
        raise NotImplementedError("Method not implemented!")

    def _do_status(self, request: bytes, context: Any, argument: str) -> Any:
        context.abort_with_status(
            homarpc.Status(
                homarpc.StatusCode.PERMISSION_DENIED, "no", (("why-bin", b"\x01\x02"),)
            )
        )

    def _do_md(self, request: bytes, context: Any, argument: str) -> Any:
        echoed = [
            (k, v) for k, v in context.invocation_metadata() if k.startswith("x-")
        ]
        context.send_initial_metadata([("initial", "yes"), *echoed])
        context.set_trailing_metadata(
            [("trailing-bin", b"\xff\x00"), ("trailing", "t")]
        )
        return request

    def _do_sleep(self, request: bytes, context: Any, argument: str) -> Any:
        self.remaining = context.time_remaining()
        context.add_callback(self.ended.set)
        limit = time.monotonic() + float(argument)
        while context.is_active() and time.monotonic() < limit:
            time.sleep(0.005)
        if not context.is_active():
            self.cancel_seen.set()
        return request

    def _do_cancel(self, request: bytes, context: Any, argument: str) -> Any:
        context.cancel()
        return request

    def _do_peer(self, request: bytes, context: Any, argument: str) -> Any:
        return context.peer().encode()

    # -- streaming -------------------------------------------------------------------

    def count(self, request: bytes, context: Any) -> Iterator[bytes]:
        number, _, size = request.decode().partition(":")
        for index in range(int(number)):
            self.yielded = index + 1
            yield index.to_bytes(4, "big") * (int(size or 4) // 4)

    def collect(self, requests: Iterator[bytes], context: Any) -> bytes:
        received = list(requests)
        return b"".join(received) if received else b"none"

    def bidi(self, requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        yield from requests

    def forever(self, request: bytes, context: Any) -> Iterator[bytes]:
        context.add_callback(self.ended.set)
        limit = time.monotonic() + 10
        try:
            while context.is_active() and time.monotonic() < limit:
                self.yielded += 1
                yield b"tick"
                time.sleep(0.002)
        finally:  # also when the server stops iterating a cancelled call
            if not context.is_active():
                self.cancel_seen.set()

    def hoard(self, requests: Iterator[bytes], context: Any) -> bytes:
        """Reads one message, then stops reading until the call ends."""
        next(requests)
        self.consumed = 1
        limit = time.monotonic() + 10
        while context.is_active() and time.monotonic() < limit:
            time.sleep(0.005)
        return b"hoarded"
