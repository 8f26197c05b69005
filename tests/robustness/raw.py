"""A client that writes frames itself, as a buggy or hostile peer would."""

from __future__ import annotations

import time
from typing import Any

from homarpc._framing import Flags, Frame, decode_frame, encode_frame
from homarpc.transport import Transport, open_transport

from .conftest import method


class RawClient:
    """Sends hand-made frames to a server, each in a Homa RPC of its own."""

    def __init__(self, port: int) -> None:
        self.dest = ("127.0.0.1", port)
        self.transport: Transport = open_transport("udp", ("127.0.0.1", 0))

    def close(self) -> None:
        self.transport.close()

    def send(self, frame: Frame) -> int:
        return self.transport.send(self.dest, encode_frame(frame), 0)

    def start(
        self, call_id: int, name: str, payload: bytes = b"", **fields: Any
    ) -> int:
        """A call's first frame: one whole message, the client's last (EOS)."""
        flags = Flags.MESSAGE | Flags.MSG_END | fields.pop("flags", Flags.EOS)
        frame = Frame(call_id, 1, flags, method(name), 10.0, payload=payload)
        return self.send(frame._replace(**fields))

    def answers(self, count: int, timeout: float = 10.0) -> list[Frame]:
        """The next ``count`` answers (or fewer, when ``timeout`` passes first)."""
        frames: list[Frame] = []
        give_up = time.monotonic() + timeout
        while len(frames) < count and time.monotonic() < give_up:
            message = self.transport.recv(timeout=give_up - time.monotonic())
            if message is None:
                break
            if message.error is None:
                frames.append(decode_frame(message.payload))
        return frames
