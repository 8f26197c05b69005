"""How the UDP driver shares one socket between threads and event loops: leader and
followers in ``recv``, ``close`` waking all of them, timers with nobody in ``recv``,
and an asyncio loop driving the transport through ``fileno``/``next_deadline``."""

from __future__ import annotations

import asyncio
import os
import threading

from homarpc.transport import Message, TransportClosedError
from homarpc.transport.udp import UdpTransport, open_udp_transport

from .helpers import RECV_TIMEOUT, recv_or_fail


def _blocked_receivers(
    transport: UdpTransport, count: int
) -> tuple[list[threading.Thread], list[object]]:
    outcomes: list[object] = []

    def wait() -> None:
        try:
            outcomes.append(transport.recv(timeout=RECV_TIMEOUT))
        except TransportClosedError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=wait) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, outcomes


def test_close_wakes_the_leader_and_every_follower(client):
    threads, outcomes = _blocked_receivers(client, 4)
    deadline = threading.Event()
    deadline.wait(0.1)  # let them block: one leads in epoll, three wait as followers
    client.close()
    for thread in threads:
        thread.join(RECV_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    assert len(outcomes) == 4
    assert all(isinstance(outcome, TransportClosedError) for outcome in outcomes)


def test_fileno_stays_answerable_after_close_for_event_loops_to_unregister(client):
    number = client.fileno()
    client.close()
    assert client.fileno() == number


def test_each_message_goes_to_exactly_one_of_several_receivers(echo_server, client):
    threads, outcomes = _blocked_receivers(client, 3)
    cookies = {client.send(echo_server.address, bytes([i]), 100 + i) and 100 + i
               for i in range(3)}  # fmt: skip
    for thread in threads:
        thread.join(RECV_TIMEOUT)
    messages = [o for o in outcomes if isinstance(o, Message)]
    assert len(messages) == 3
    assert {m.cookie for m in messages} == cookies


def test_a_client_that_only_sends_still_moves_a_scheduled_request():
    # A 1 MB request needs grants from the server, which only a thread reading the
    # client's socket can act on. Nobody calls client.recv() here until the server
    # holds the whole request: the driver's timer thread must do that reading.
    with open_udp_transport(("127.0.0.1", 0), server=True) as server, \
            open_udp_transport(("127.0.0.1", 0)) as client:  # fmt: skip
        payload = os.urandom(1_000_000)
        assert len(payload) > client.config.unsched_bytes
        client.send(server.local_addr, payload, cookie=5)
        request = recv_or_fail(server)
        assert bytes(request) == payload
        server.reply(request.peer, request.id, b"got it")
        assert bytes(recv_or_fail(client)) == b"got it"


async def _call_via_event_loop(client: UdpTransport, dest: tuple[str, int],
                               payload: bytes, cookie: int) -> Message:  # fmt: skip
    """One RPC the way an asyncio adapter drives the transport: wake on ``fileno``
    readiness or at ``next_deadline()``, then ``recv(timeout=0)``."""
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(client.fileno(), readable.set)
    try:
        client.send(dest, payload, cookie)
        while True:
            message = client.recv(timeout=0)
            if message is not None:
                return message
            due = client.next_deadline()
            wait = None if due is None else max(0.0, due - loop.time())
            readable.clear()
            try:
                await asyncio.wait_for(readable.wait(), wait)
            except TimeoutError:
                pass
    finally:
        loop.remove_reader(client.fileno())


def test_an_asyncio_loop_can_drive_the_transport_through_fileno(echo_server, client):
    payloads = [b"small", os.urandom(1_000_000)]

    async def main() -> list[bytes]:
        results = []
        for cookie, payload in enumerate(payloads):
            message = await asyncio.wait_for(
                _call_via_event_loop(client, echo_server.address, payload, cookie),
                RECV_TIMEOUT,
            )
            assert message.error is None and message.cookie == cookie
            results.append(bytes(message))
        return results

    assert asyncio.run(main()) == payloads


def test_polling_lasts_longer_after_a_long_message_until_the_socket_goes_idle():
    with (
        open_udp_transport(("127.0.0.1", 0), server=True) as server,
        open_udp_transport(("127.0.0.1", 0), busy_poll=100e-6) as client,
    ):
        assert client._poll_budget() == 100e-6
        client.send(server.local_addr, bytes(1_000_000))
        assert abs(client._poll_budget() - 600e-6) < 1e-9  # +0.5 ms per MB sent
        client.send(server.local_addr, b"tail")  # a short one does not cut it
        assert abs(client._poll_budget() - 600e-6) < 1e-9
        # Idle for longer than the whole budget: the leader sleeps, back to base.
        while (message := client.recv(timeout=0.05)) is not None:
            assert message.error is None
        assert client._poll_budget() == 100e-6
    with open_udp_transport(("127.0.0.1", 0), busy_poll=0) as never:
        never._note_length(1_000_000)
        assert never._poll_budget() == 0.0  # busy_poll=0 still means never poll
