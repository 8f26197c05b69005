"""HomaSocket against the fake module: sending, receiving, bpage bookkeeping, errors.

Each test runs on G8 (current) and G4a (the seed) unless it is about one of them.
"""

from __future__ import annotations

import errno
import threading
import time

import pytest

from homarpc.transport.errors import (
    HomaError,
    LocalProtocolError,
    MessageTooLongError,
    PeerUnreachableError,
    RpcAbortedError,
    TransportClosedError,
)
from homarpc.transport.kernel import HomaSocket
from homarpc.transport.kernel.ioctl import G8cIoctl

from .fakekernel import BPAGE, FakeKernel

POOL = 4 << 20
WAIT = 5.0


@pytest.fixture(params=["G8c", "G4a"])
def fake(request):
    return FakeKernel(request.param)


@pytest.fixture
def pair(fake):
    server = HomaSocket(
        ("127.0.0.1", 0), server=True, pool_bytes=POOL, system=fake.system()
    )
    client = HomaSocket(("127.0.0.1", 0), pool_bytes=POOL, system=fake.system())
    fake.forget_history()  # the probes' calls are not the tests' business
    yield server, client
    client.close()
    server.close()


def _fake_socket(fake, sock):
    return fake.by_fd.get(sock.fileno())


def _request(server, client, payload, cookie=1):
    client.send(server.local_addr, payload, cookie)
    message = server.recv(WAIT)
    assert message is not None and message.is_request
    return message


def _handed_back(fake):
    return [offset for batch in fake.handback_batches for offset in batch]


def test_every_handback_batch_holds_at_most_16_and_each_offset_goes_back_once(
    fake, pair
):
    server, client = pair
    held = [_request(server, client, bytes(40_000)) for _ in range(40)]
    for message in held:  # 40 bpages released between two receives
        message.release()
    assert server.pool.pending_count == 40
    client.send(server.local_addr, b"small", 2)
    message = server.recv(None)  # blocking: drains the backlog first
    assert bytes(message) == b"small"  # caught by a draining receive, kept for us
    assert [len(batch) for batch in fake.handback_batches] == [16, 16]
    assert server.recv(0) is None  # the last 8 ride on the next call
    assert [len(batch) for batch in fake.handback_batches] == [16, 16, 8]
    returned = _handed_back(fake)
    assert len(set(returned)) == 40
    assert server.pool.pending_count == 0 and fake.corruptions == 0


def test_releasing_twice_hands_back_once(fake, pair):
    server, client = pair
    message = _request(server, client, b"x" * 100)
    message.release()
    message.release()
    assert server.recv(0) is None
    assert len(_handed_back(fake)) == 1 and fake.corruptions == 0
    assert server.recv(0) is None
    assert len(_handed_back(fake)) == 1


def test_eintr_consumes_the_handbacks_and_they_are_not_sent_again(fake, pair):
    server, client = pair
    first = _request(server, client, b"first")
    first.release()
    client.send(server.local_addr, b"second", 2)
    fake.interrupts = 1  # the kernel frees what we pass, then returns EINTR
    second = server.recv(None)
    assert bytes(second) == b"second"
    assert len(_handed_back(fake)) == 1 and fake.corruptions == 0
    assert server.pool.pending_count == 0
    assert fake.outstanding_bpages(_fake_socket(fake, server)) == 1  # only "second"


def test_a_rejected_receive_keeps_the_handbacks_for_the_next(fake, pair):
    server, client = pair
    first = _request(server, client, b"first")
    first.release()
    fake.reject_next_recv = errno.EINVAL  # refused before step 4: nothing freed
    with pytest.raises(LocalProtocolError, match="EINVAL"):
        server.recv(0)
    assert server.pool.pending_count == 1 and fake.handback_batches == []
    assert server.recv(0) is None
    assert len(_handed_back(fake)) == 1 and server.pool.pending_count == 0


def test_a_million_byte_message_spans_16_bpages_with_an_unaligned_tail(fake, pair):
    server, client = pair
    payload = bytes(i % 251 for i in range(1_000_000))
    message = _request(server, client, payload)
    assert bytes(message) == payload
    assert server.recv(0) is None  # hands the 16 bpages back
    (batch,) = fake.handback_batches
    assert len(batch) == 16
    assert all(offset % BPAGE == 0 for offset in batch[:15])
    assert batch[15] % BPAGE != 0  # the tail was packed into a shared bpage


def test_small_messages_are_zero_copy_views_into_the_pool(pair):
    server, client = pair
    message = _request(server, client, b"view me")
    assert isinstance(message.payload, memoryview)
    assert bytes(message.payload) == b"view me"
    payload = message.payload
    message.release()
    with pytest.raises(ValueError):
        bytes(payload)


def test_a_failed_rpc_comes_back_with_its_id_cookie_and_peer(pair):
    _, client = pair
    nobody = ("127.0.0.1", 4321)
    rpc_id = client.send(nobody, b"hello?", 99)
    failed = client.recv(WAIT)
    assert (failed.id, failed.cookie, failed.peer) == (rpc_id, 99, nobody)
    assert isinstance(failed.error, PeerUnreachableError)
    assert failed.error.errno == errno.ENOTCONN and failed.payload == b""


def test_an_unbound_g8_socket_does_not_serve_unless_asked():
    fake = FakeKernel("G8c")
    quiet = HomaSocket(("127.0.0.1", 0), pool_bytes=POOL, system=fake.system())
    client = HomaSocket(("127.0.0.1", 0), pool_bytes=POOL, system=fake.system())
    try:
        client.send(quiet.local_addr, b"x", 5)
        assert isinstance(client.recv(WAIT).error, PeerUnreachableError)
    finally:
        client.close()
        quiet.close()


def test_binding_a_port_serves_on_it_and_high_ports_are_refused(fake):
    bound = HomaSocket(("127.0.0.1", 4000), pool_bytes=POOL, system=fake.system())
    client = HomaSocket(("127.0.0.1", 0), pool_bytes=POOL, system=fake.system())
    try:
        assert bound.local_addr == ("127.0.0.1", 4000)
        assert bytes(_request(bound, client, b"to 4000")) == b"to 4000"
    finally:
        client.close()
        bound.close()
    with pytest.raises(ValueError, match=r"1\.\.32767"):
        HomaSocket(("127.0.0.1", 40000), pool_bytes=POOL, system=fake.system())
    assert fake.ports == {}, "a failed open must close its socket"


def test_ipv6_sockets_carry_ipv6_addresses(fake):
    server = HomaSocket(("::1", 0), server=True, pool_bytes=POOL, system=fake.system())
    client = HomaSocket(("::", 0), pool_bytes=POOL, system=fake.system())
    try:
        assert server.local_addr[0] == "::1" and client.local_addr[0] == "::"
        message = _request(server, client, b"six")
        assert message.peer == ("::1", client.local_addr[1])
        with pytest.raises(ValueError, match="IPv4"):
            client.send(("127.0.0.1", 1), b"x", 1)
    finally:
        client.close()
        server.close()


def test_payload_rules_are_checked_before_the_kernel(fake, pair):
    server, client = pair
    calls = len(fake.calls)
    with pytest.raises(ValueError, match="empty"):
        client.send(server.local_addr, b"", 1)
    with pytest.raises(MessageTooLongError):
        client.send(server.local_addr, memoryview(bytes(1_000_001)), 1)
    with pytest.raises(LocalProtocolError, match="client RPC id"):
        server.reply(client.local_addr, 2, b"x")
    assert len(fake.calls) == calls
    rpc_id = client.send(server.local_addr, memoryview(b"0123456789")[2:5], 3)
    assert rpc_id % 2 == 0 and bytes(server.recv(WAIT)) == b"234"


def test_replying_to_a_vanished_rpc_is_ignored(pair):
    server, client = pair
    message = _request(server, client, b"q")
    server.reply(message.peer, message.id, b"a")
    server.reply(message.peer, message.id, b"again")  # gone: silently nothing
    assert bytes(client.recv(WAIT)) == b"a"
    assert client.recv(0) is None


def test_abort_uses_the_ioctl_and_ignores_unknown_ids():
    fake = FakeKernel("G8c")
    client = HomaSocket(("127.0.0.1", 0), pool_bytes=POOL, system=fake.system())
    server = HomaSocket(
        ("127.0.0.1", 0), server=True, pool_bytes=POOL, system=fake.system()
    )
    try:
        rpc_id = client.send(server.local_addr, b"x", 8)
        client.abort(12345678, errno.ECANCELED)  # unknown: a no-op
        client.abort(rpc_id, errno.ECANCELED)
        assert f"ioctl {G8cIoctl.ABORT:#x}" in fake.calls
        failed = client.recv(WAIT)
        assert failed.cookie == 8 and isinstance(failed.error, RpcAbortedError)
        assert client.recv(0) is None
    finally:
        client.close()
        server.close()


def test_without_the_abort_ioctl_abort_works_locally():
    fake = FakeKernel("G8-upstream")
    client = HomaSocket(("127.0.0.1", 0), pool_bytes=POOL, system=fake.system())
    server = HomaSocket(
        ("127.0.0.1", 0), server=True, pool_bytes=POOL, system=fake.system()
    )
    try:
        fake.forget_history()
        rpc_id = client.send(server.local_addr, b"x", 8)
        request = server.recv(WAIT)
        client.abort(rpc_id, errno.ECANCELED)
        assert client.next_deadline() is not None  # a failure waits locally
        failed = client.recv(0)
        assert (failed.id, failed.cookie, failed.error.errno) == (rpc_id, 8, 125)
        server.reply(request.peer, request.id, b"late")
        assert client.recv(0) is None  # the late response is dropped
        assert client.stats["dropped_abandoned_responses"] == 1
        assert not any(call.startswith("ioctl 0xc0206891") for call in fake.calls)
    finally:
        client.close()
        server.close()


def test_close_wakes_a_blocked_receiver_and_closes_the_fd_after_it(fake, pair):
    _, client = pair
    kernel_socket = _fake_socket(fake, client)
    outcome = []
    waiter = threading.Thread(target=lambda: outcome.append(_catch(client.recv)))
    waiter.start()
    time.sleep(0.05)
    client.close()
    waiter.join(WAIT)
    assert isinstance(outcome[0], TransportClosedError)
    assert kernel_socket.is_closed
    with pytest.raises(TransportClosedError):
        client.send(("127.0.0.1", 1), b"x", 1)


def test_fd_stays_open_while_a_call_is_in_flight(fake, pair):
    _, client = pair
    kernel_socket = _fake_socket(fake, client)
    with client._in_use():
        client.close()
        assert not kernel_socket.is_closed  # a late syscall cannot hit a reused fd
    assert kernel_socket.is_closed


def test_info_and_freeze_where_the_module_has_them():
    fake = FakeKernel("G8c")
    sock = HomaSocket(("127.0.0.1", 0), pool_bytes=POOL, system=fake.system())
    try:
        info = sock.info()
        assert info.port == sock.local_addr[1] and info.error_msg == "ok"
        assert info.bpool_avail_bytes == POOL
        sock.freeze()
    finally:
        sock.close()
    old = HomaSocket(
        ("127.0.0.1", 0), pool_bytes=POOL, system=FakeKernel("G8-upstream").system()
    )
    try:
        with pytest.raises(HomaError, match="no HOMAIOCFREEZE"):
            old.freeze()
    finally:
        old.close()


def test_a_pool_the_module_refuses_is_a_clear_error():
    fake = FakeKernel("G8c")
    with pytest.raises(HomaError, match=r"refused the .* receive pool"):
        HomaSocket(("127.0.0.1", 0), pool_bytes=2 * BPAGE, system=fake.system())
    assert fake.ports == {}


def test_g4a_nonblocking_receive_uses_the_in_struct_flag():
    fake = FakeKernel("G4a")  # this fake ignores MSG_DONTWAIT, like pre-2024-07 G4a
    sock = HomaSocket(("127.0.0.1", 0), pool_bytes=POOL, system=fake.system())
    try:
        started = time.monotonic()
        assert sock.recv(0) is None
        assert time.monotonic() - started < WAIT
    finally:
        sock.close()


def _catch(call):
    try:
        return call()
    except BaseException as exc:
        return exc


def test_failed_local_calls_become_typed_errors_with_the_modules_text():
    fake = FakeKernel("G8c")
    sock = HomaSocket(("127.0.0.1", 0), pool_bytes=POOL, system=fake.system())
    try:
        fake.reject_next_recv = errno.EINVAL
        with pytest.raises(LocalProtocolError) as caught:
            sock.recv(0)
        assert str(caught.value) == (
            "recvmsg failed: EINVAL (Invalid argument) (the Homa module says: ok)"
        )
        assert isinstance(caught.value.__cause__, OSError)
        _fake_socket(fake, sock).shutdown(2)  # shut down behind our back
        with pytest.raises(TransportClosedError, match="ESHUTDOWN"):
            sock.send(("127.0.0.1", 1), b"x", 1)
    finally:
        sock.close()


def test_an_outcome_that_beats_send_home_is_neither_lost_nor_leaked():
    fake = FakeKernel("G8c")
    client = HomaSocket(("127.0.0.1", 0), pool_bytes=POOL, system=fake.system())
    early = []
    real_sendmsg = fake.sendmsg

    def sendmsg_then_race(fd, msg, flags):
        result = real_sendmsg(fd, msg, flags)
        early.append(client.recv(0))  # another thread takes the failure first
        return result

    fake.sendmsg = sendmsg_then_race
    try:
        rpc_id = client.send(("127.0.0.1", 4321), b"x", 31)  # nobody there: ENOTCONN
        (failed,) = early
        assert (failed.id, failed.cookie) == (rpc_id, 31)
        assert isinstance(failed.error, PeerUnreachableError)
        assert client._outgoing == {} and client._early == set()
    finally:
        client.close()
