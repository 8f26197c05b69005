"""The client call core driven directly with a recording transport (no network).

Property: whatever bytes a server answers with, handling them never raises, a call
that ends stays ended, and the flow-control counters never go negative.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import homarpc
from homarpc._call import ClientCallCore
from homarpc._client_endpoint import ClientEndpoint
from homarpc._framing import Flags, Frame, decode_frame, encode_frame
from homarpc.transport import Message

SERVER = ("127.0.0.1", 50)


class RecordingTransport:
    """Records requests; answers nothing by itself; ``recv`` finds nothing."""

    kind = "fake"
    max_message_length = 1_000_000
    local_addr = ("127.0.0.1", 9)
    closed = False

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, Frame]] = []  # (rpc id, cookie, frame)
        self._ids = itertools.count(2, 2)
        self._read_end, self._write_end = os.pipe()

    def send(self, dest: tuple[str, int], payload: bytes, cookie: int = 0) -> int:
        rpc_id = next(self._ids)
        self.sent.append((rpc_id, cookie, decode_frame(payload)))
        return rpc_id

    def recv(self, timeout: float | None = None) -> Message | None:
        return None

    def abort(self, rpc_id: int = 0, error: int = 0) -> None:
        pass

    def linger(self, timeout: float) -> bool:
        return True

    def fileno(self) -> int:
        return self._read_end

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._read_end)
            os.close(self._write_end)


@pytest.fixture
def endpoint() -> Iterator[tuple[ClientEndpoint, RecordingTransport]]:
    transport = RecordingTransport()
    made = ClientEndpoint(transport)  # type: ignore[arg-type]
    yield made, transport
    made.close()


def _start(
    endpoint: ClientEndpoint, request: bytes | None, streaming: bool
) -> ClientCallCore:
    core = endpoint.open_call(
        SERVER,
        "/s/M",
        (),
        5.0,
        request=request,
        response_streaming=streaming,
        notify=lambda: None,
        attended=True,
    )
    core.start()
    return core


def _answer(
    endpoint: ClientEndpoint, transport: RecordingTransport, index: int, payload: bytes
) -> None:
    rpc_id, cookie, _ = transport.sent[index]
    endpoint._dispatch(Message(rpc_id, cookie, SERVER, False, payload))


def test_a_unary_call_is_one_request(endpoint):
    client, transport = endpoint
    core = _start(client, b"ping", False)
    ((_, cookie, frame),) = transport.sent
    assert frame.flags == Flags.POLL | Flags.MESSAGE | Flags.MSG_END | Flags.EOS
    assert frame.method == "/s/M" and frame.payload == b"ping" and cookie & 1
    reply = Frame(
        frame.call_id,
        1,
        Flags.MESSAGE | Flags.MSG_END | Flags.EOS,
        metadata=(),
        status=(0, ""),
        trailers=(),
        payload=b"pong",
    )
    _answer(client, transport, 0, encode_frame(reply))
    assert core.code is homarpc.StatusCode.OK and core.read() == b"pong"
    assert len(transport.sent) == 1  # nothing else was sent


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.binary(max_size=60)), max_size=25),
    st.booleans(),
)
def test_any_answer_is_handled_without_raising(answers, streaming):
    transport = RecordingTransport()
    client = ClientEndpoint(transport)  # type: ignore[arg-type]
    try:
        core = _start(client, b"req", streaming)
        answered: set[int] = set()
        ended_with = None
        for pick, payload in answers:
            index = pick % len(transport.sent)
            if index in answered:
                continue  # the transport delivers each response once
            answered.add(index)
            if payload[:1] == b"\x01" and len(payload) >= 20:
                call_id = transport.sent[index][2].call_id.to_bytes(8, "big")
                payload = payload[:8] + call_id + payload[16:]  # aim it at the call
            _answer(client, transport, index, payload)
            if ended_with is not None:
                assert core.code is ended_with  # an ended call stays ended
            ended_with = core.code
            assert core._polls_out >= 0 and core._data_out >= 0
    finally:
        client.close()
