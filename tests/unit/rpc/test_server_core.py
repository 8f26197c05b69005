"""The server call core driven directly, without threads or a network.

Property: whatever frames arrive (any order, flags, duplicates, garbage), the server
never raises, answers each Homa request at most once while running, and exactly
once by the time every call has ended (Homa keeps state for unanswered requests).
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

import homarpc
from homarpc import _server_endpoint
from homarpc._framing import Flags, Frame, decode_frame, encode_frame
from homarpc._server_call import ServerCallCore
from homarpc._server_endpoint import ServerEndpoint
from homarpc.transport import Message

PEERS = [("127.0.0.1", 1000), ("127.0.0.1", 1001)]


class RecordingTransport:
    """Stands in for a transport: records replies, sends nothing anywhere."""

    kind = "fake"
    max_message_length = 1_000_000
    local_addr = ("127.0.0.1", 9)

    def __init__(self) -> None:
        self.replies: dict[tuple[tuple[str, int], int], list[bytes]] = {}

    def reply(self, dest: tuple[str, int], rpc_id: int, payload: bytes) -> None:
        self.replies.setdefault((dest, rpc_id), []).append(bytes(payload))

    def linger(self, timeout: float) -> bool:
        return True

    def close(self) -> None:
        pass


def _endpoint(on_call: Any) -> tuple[ServerEndpoint, RecordingTransport]:
    transport = RecordingTransport()
    endpoint = ServerEndpoint(
        transport,  # type: ignore[arg-type]
        on_call=on_call,
        max_receive_message_length=64,
    )
    return endpoint, transport


frames = st.builds(
    lambda call, seq, flags, method, payload: Frame(
        call, seq, flags, method, None, None, payload=payload
    ),
    st.integers(1, 2),
    st.integers(0, 3),
    st.one_of(
        st.sampled_from(
            [
                Flags.POLL,
                Flags.POLL | Flags.MESSAGE | Flags.MSG_END,
                Flags.EOS,
                Flags.MESSAGE,
                Flags.MESSAGE | Flags.MSG_END | Flags.EOS,
                Flags.CANCEL,
            ]
        ),
        st.integers(0, 0xFF),
    ),
    st.sampled_from([None, "/s/M", "/s/M"]),
    st.binary(max_size=80),
)
requests = st.lists(
    st.tuples(st.sampled_from(PEERS), st.one_of(frames.map(encode_frame), st.binary())),
    max_size=30,
)


@settings(max_examples=250, deadline=None)
@given(requests, st.sampled_from(["finish", "terminate", "ignore"]))
@example(  # polls that arrive before a call start that cancels the call
    [(PEERS[0], encode_frame(Frame(1, 0, Flags.POLL)))] * 3
    + [(PEERS[0], encode_frame(Frame(1, 1, Flags.CANCEL, "/s/M")))],
    "finish",
)
def test_every_request_is_answered_exactly_once(incoming, handler_does):
    started: list[ServerCallCore] = []

    def on_call(core: ServerCallCore) -> None:
        started.append(core)
        if handler_does == "finish":
            core.read()
            core.finish(homarpc.StatusCode.OK, "", (), b"done")
        elif handler_does == "terminate":
            core.terminate(homarpc.StatusCode.ABORTED, "no")

    endpoint, transport = _endpoint(on_call)
    ids = itertools.count(1, 2)
    sent = []
    for peer, data in incoming:
        rpc_id = next(ids)
        sent.append((peer, rpc_id))
        endpoint._dispatch(Message(rpc_id, 0, peer, True, data))
        assert all(len(r) == 1 for r in transport.replies.values())
    endpoint.close()
    endpoint._sweep(10**9)  # long after any orphan's time to live
    assert all(len(r) == 1 for r in transport.replies.values())
    assert set(transport.replies) == set(sent)
    for answers in transport.replies.values():
        decode_frame(answers[0])  # every answer is a well-formed frame


def test_a_unary_call_is_one_request_and_one_answer():
    served = []

    def on_call(core: ServerCallCore) -> None:
        served.append((core.method, core.read()))
        core.finish(homarpc.StatusCode.OK, "", (), b"pong")

    endpoint, transport = _endpoint(on_call)
    start = Frame(
        7,
        1,
        Flags.POLL | Flags.MESSAGE | Flags.MSG_END | Flags.EOS,
        "/s/Ping",
        2.0,
        None,
        payload=b"ping",
    )
    endpoint._dispatch(Message(1, 0, PEERS[0], True, encode_frame(start)))
    assert served == [("/s/Ping", b"ping")]
    (answer,) = transport.replies[(PEERS[0], 1)]
    frame = decode_frame(answer)
    assert frame.payload == b"pong" and frame.status == (0, "")
    assert frame.flags & Flags.EOS and frame.metadata == ()
    assert endpoint.live_calls() == []


def test_frames_before_their_call_start_wait_for_it(monkeypatch):
    monkeypatch.setattr(_server_endpoint, "_ORPHAN_TTL", 5.0)
    served = []

    def on_call(core: ServerCallCore) -> None:
        served.append(core)

    endpoint, transport = _endpoint(on_call)
    early = Frame(3, 2, Flags.MESSAGE | Flags.MSG_END, payload=b"second")
    endpoint._dispatch(Message(1, 0, PEERS[0], True, encode_frame(early)))
    assert served == [] and transport.replies == {}
    start = Frame(
        3, 1, Flags.POLL | Flags.MESSAGE | Flags.MSG_END, "/s/M", payload=b"first"
    )
    endpoint._dispatch(Message(3, 0, PEERS[0], True, encode_frame(start)))
    (core,) = served
    assert [core.read(), core.read()] == [b"first", b"second"]


def test_a_finished_call_waiting_for_a_poll_closes_on_cancel():
    cores: list[ServerCallCore] = []
    endpoint, transport = _endpoint(cores.append)
    start = Frame(5, 1, Flags.MESSAGE | Flags.MSG_END, "/s/M", payload=b"x")
    endpoint._dispatch(Message(1, 0, PEERS[0], True, encode_frame(start)))
    (core,) = cores
    assert core.read() == b"x"
    core.finish(homarpc.StatusCode.OK, "", (), b"reply")  # no poll to ride on yet
    assert endpoint.live_calls() == [core]
    cancel = Frame(5, 0, Flags.CANCEL)
    endpoint._dispatch(Message(3, 0, PEERS[0], True, encode_frame(cancel)))
    assert endpoint.live_calls() == []
    assert set(transport.replies) == {(PEERS[0], 1), (PEERS[0], 3)}
