"""The engine in the simulator: the scenarios of spec/homa-protocol.md §6.6.

Every test ends with ``net.run_until_idle()`` (all state freed, tombstones
included) and ``net.check()`` (exact bytes, at-most-once, bytes-in-flight limit).
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable

import pytest

from homarpc.transport.engine import HomaConfig
from homarpc.transport.engine.wire import PacketType

from .sim import Packet, SimNetwork

#: Small packets and budgets so even modest messages need grants and have gaps.
SMALL = HomaConfig(max_datagram=1_200, unsched_bytes=4_000, max_incoming=16_000)
DEFAULT = HomaConfig()
T = DEFAULT.tick


def payload(index: int, size: int) -> bytes:
    body = random.Random(index).randbytes(size)
    tag = index.to_bytes(8, "big")
    return (tag + body[8:]) if size >= 8 else body


def drop_first(
    net: SimNetwork, count: int, match: Callable[[Packet], bool]
) -> list[Packet]:
    """Drop the first ``count`` packets ``match`` accepts; return them."""
    dropped: list[Packet] = []

    def rule(packet: Packet) -> bool:
        if len(dropped) < count and match(packet):
            dropped.append(packet)
            return True
        return False

    net.drop_if.append(rule)
    return dropped


def pair(
    config: HomaConfig = DEFAULT, **net_options: object
) -> tuple[SimNetwork, tuple[str, int], tuple[str, int]]:
    net = SimNetwork(**net_options)  # type: ignore[arg-type]
    client = net.add(40_001, config)
    server = net.add(5_000, config, server=True)
    return net, client, server


def finish(net: SimNetwork, **check: bool) -> None:
    net.run_until_idle()
    net.check(**check)


@pytest.mark.parametrize("config", [DEFAULT, SMALL], ids=["loopback", "small"])
def test_message_sizes_at_the_edges(config):
    net, client, server = pair(config)
    u = config.unsched_bytes
    sizes = [0, 1, 64, u - 1, u, u + 1, 3 * u + 7, 1_000_000]
    for i, size in enumerate(sizes):
        net.call(client, server, payload(i, size), at=i * 0.05)
    finish(net)
    assert len(net.completed()) == len(sizes)


@pytest.mark.parametrize("seed", range(4))
def test_lossy_duplicating_reordering_network(seed):
    net, client, server = pair(SMALL, seed=seed, loss=0.1, duplicate=0.05, reorder=0.3)
    rng = random.Random(seed)
    for i in range(60):
        size = rng.choice([0, 10, 900, 4_000, 4_001, 30_000, 120_000])
        net.call(client, server, payload(i, size), at=rng.random() * 0.05)
    finish(net)
    assert len(net.completed()) == 60
    assert net.dropped, "the network must actually have lost packets"


def request_data(packet: Packet) -> bool:
    return packet.type == PacketType.DATA and packet.from_client


def response_data(packet: Packet) -> bool:
    return packet.type == PacketType.DATA and not packet.from_client


@pytest.mark.parametrize(
    "direction", [request_data, response_data], ids=["request", "response"]
)
@pytest.mark.parametrize("which", ["first", "last", "all"])
def test_lost_packets_are_recovered(direction, which):
    net, client, server = pair(SMALL)
    size = 10_000  # 9 packets, partly scheduled
    if which == "first":
        lost = drop_first(net, 1, lambda p: direction(p) and p.offset == 0)
    elif which == "last":
        lost = drop_first(
            net, 1, lambda p: direction(p) and p.offset + p.length == size
        )
    else:
        lost = drop_first(
            net, 10**6, lambda p: direction(p) and p.src != p.dst and net.now < 0.003
        )
    net.call(client, server, payload(1, size))
    finish(net)
    assert lost and net.completed()
    client_engine, server_engine = net.nodes[client].engine, net.nodes[server].engine
    assert client_engine is not None and server_engine is not None
    if direction is request_data and which == "all":
        # The server never heard of the RPC: RESEND(0, -1) -> RPC_UNKNOWN -> restart.
        assert client_engine.stats.restarts > 0
    elif direction is request_data:
        assert server_engine.stats.resends_sent > 0
    else:
        assert client_engine.stats.resends_sent > 0


def test_lost_grant_is_replaced_by_a_resend():
    net, client, server = pair(SMALL)
    lost = drop_first(net, 2, lambda p: p.type == PacketType.GRANT)
    net.call(client, server, payload(1, 50_000))
    finish(net)
    assert len(lost) == 2 and net.completed()


@pytest.mark.parametrize("ptype", [PacketType.RESEND, PacketType.BUSY])
def test_lost_resend_or_busy_costs_only_time(ptype):
    net, client, server = pair(DEFAULT)
    net.nodes[server].service_time = 20 * T  # the client will RESEND, server BUSY
    lost = drop_first(net, 2, lambda p: p.type == ptype)
    net.call(client, server, payload(1, 100))
    finish(net)
    assert len(lost) == 2 and net.completed()


def test_lost_acks_are_asked_for_again_with_need_ack():
    net, client, server = pair(DEFAULT)
    lost = drop_first(net, 3, lambda p: p.type == PacketType.ACK)
    net.call(client, server, payload(1, 100))
    finish(net)  # run_until_idle asserts the server RPC is gone
    assert len(lost) == 3 and net.sent[PacketType.NEED_ACK] >= 2


def test_lost_need_acks_are_repeated():
    net, client, server = pair(DEFAULT)
    drop_first(net, 1, lambda p: p.type == PacketType.ACK)  # the client's own ACK
    lost = drop_first(net, 2, lambda p: p.type == PacketType.NEED_ACK)
    net.call(client, server, payload(1, 100))
    finish(net)
    assert len(lost) == 2 and net.sent[PacketType.NEED_ACK] >= 3


def test_acks_ride_on_later_requests():
    net, client, server = pair(DEFAULT)
    for i in range(20):
        net.call(client, server, payload(i, 64), at=i * 1e-4)
    finish(net)
    server_engine = net.nodes[server].engine
    assert server_engine is not None
    assert net.sent[PacketType.NEED_ACK] + net.sent[PacketType.ACK] <= 3


def test_delayed_duplicate_request_after_ack_is_not_executed_again():
    net, client, server = pair(DEFAULT)
    net.record = True
    net.call(client, server, payload(1, 64))
    net.run(0.05)
    assert net.completed()
    engine = net.nodes[server].engine
    assert engine is not None and engine.rpc_count == 0  # acked and freed
    request = next(p for p in net.delivered if request_data(p))
    net.inject(request, at=net.now + 10 * T)
    finish(net)
    assert engine.stats.dropped["stale"] == 1
    assert sum(net.nodes[server].seen.values()) == 1


def test_slow_server_is_kept_alive_by_busy():
    net, client, server = pair(DEFAULT)
    slow = 3 * DEFAULT.timeout_ticks * T
    net.nodes[server].service_time = slow
    call = net.call(client, server, payload(1, 1_000))
    finish(net)
    assert call.done_at is not None and call.done_at >= slow
    server_engine = net.nodes[server].engine
    assert server_engine is not None and server_engine.stats.busy_sent > 10
    # One RESEND per resend_interval of silence, no storm.
    client_engine = net.nodes[client].engine
    assert client_engine is not None
    slow_ticks = slow / T
    assert client_engine.stats.resends_sent <= slow_ticks / DEFAULT.resend_interval + 2


def test_incast_respects_the_receivers_limit():
    net = SimNetwork(seed=3, bandwidth=1e9)
    server = net.add(5_000, SMALL, server=True)
    clients = [net.add(40_000 + i, SMALL) for i in range(12)]
    for i, client in enumerate(clients):
        net.call(client, server, payload(i, 60_000))
    finish(net)  # the in-flight limit is asserted on every packet
    assert len(net.completed()) == 12


def test_srpt_short_rpc_overtakes_two_long_ones():
    bandwidth = 1e9  # bytes/s; each full packet occupies the link for 65 us
    roomy = HomaConfig(max_incoming=1_000_000)  # lots of granted data to queue up
    net, client, server = pair(roomy, bandwidth=bandwidth, delay=10e-6)
    longs = [net.call(client, server, payload(i, 1_000_000)) for i in range(2)]
    short = net.call(client, server, payload(9, 64), at=300e-6)
    finish(net)
    assert short.done_at is not None
    assert all(c.done_at is not None and short.done_at < c.done_at for c in longs)
    # In FIFO order the short request would wait for the long messages' granted
    # bytes (hundreds of us); with SRPT at most for the packet already on the wire.
    one_packet = roomy.max_datagram / bandwidth
    assert short.done_at - short.issued_at < one_packet + 4 * net.delay


def test_server_crash_and_restart():
    net, client, server = pair(SMALL, seed=5)
    net.nodes[server].service_time = 5 * T
    for i in range(10):
        net.call(client, server, payload(i, 20_000), at=i * 1e-3)
    net.crash(server, at=4e-3, restart_after=20 * T)
    finish(net)  # checks at most once, across the restart too
    # The calls the first incarnation had whole fail, saying the server may have
    # run them; those it never got run on the second, once.
    early = {c.index for c in net.calls if c.errno is not None}
    assert {c.errno for c in net.calls if c.errno is not None} == {errno.ECONNRESET}
    assert early == set(range(len(early))) and len(net.completed()) >= 5


def test_client_crash_frees_the_server():
    net, client, server = pair(SMALL, seed=6)
    net.nodes[server].service_time = 5 * T
    for i in range(5):
        net.call(client, server, payload(i, 20_000))
    net.crash(client, at=2 * T, restart_after=10 * T)
    finish(net)  # nothing left on the server: NEED_ACK answered, or timed out


def test_partition_longer_than_the_timeout_fails_the_call():
    net, client, server = pair(DEFAULT)
    net.partition(client, server, 0.0, 10.0)
    call = net.call(client, server, payload(1, 64))
    finish(net)
    assert call.errno == errno.ETIMEDOUT


def test_partition_shorter_than_the_timeout_only_delays():
    net, client, server = pair(DEFAULT)
    net.partition(client, server, 0.0, 50 * T)
    call = net.call(client, server, payload(1, 64))
    finish(net, allow_failures=False)
    assert call.response is not None


def test_icmp_unreachable_fails_fast():
    net = SimNetwork(icmp=True)
    client = net.add(40_001)
    call = net.call(client, ("10.0.0.1", 9), payload(1, 64))
    finish(net, allow_failures=True)
    assert call.errno == errno.ENOTCONN and call.done_at is not None
    assert call.done_at < 2 * T


def test_icmp_after_the_server_got_the_request_is_not_safe_to_retry():
    # The server took the requests and died before answering: the RESENDs that
    # ask for the responses bounce. Those calls may have run: ECONNRESET, not
    # ENOTCONN (which the layer above may retry elsewhere). A call made after
    # the crash bounces with its own request: ENOTCONN.
    net = SimNetwork(icmp=True, seed=7)
    client = net.add(40_001)
    server = net.add(5_000, server=True, service_time=50 * T)
    taken = [net.call(client, server, payload(i, 64)) for i in range(3)]
    net.crash(server, at=5 * T, restart_after=None)
    later = net.call(client, server, payload(9, 64), at=500 * T)
    finish(net, allow_failures=True)
    assert [call.errno for call in taken] == [errno.ECONNRESET] * 3
    assert later.errno == errno.ENOTCONN


def test_non_server_endpoint_drops_requests():
    net = SimNetwork()
    client = net.add(40_001)
    other = net.add(40_002)  # not a server
    call = net.call(client, other, payload(1, 64))
    finish(net, allow_failures=True)
    assert call.errno == errno.ETIMEDOUT
    engine = net.nodes[other].engine
    assert engine is not None and engine.stats.dropped["not_server"] >= 1


def test_tiny_receive_budget_still_grants():
    # max_incoming below one packet's worth: grants must shrink to the window.
    config = HomaConfig(unsched_bytes=50_000, max_incoming=3_000, overcommit=1)
    net, client, server = pair(config)
    for i in range(3):
        net.call(client, server, payload(i, 200_000))
    finish(net)
    assert len(net.completed()) == 3


def test_messages_waiting_for_grants_keep_their_senders_alive():
    # One client receives many long responses; with overcommit 1 most wait far
    # longer than the server's timeout for their turn to be granted.
    config = HomaConfig(
        unsched_bytes=5_000, max_incoming=10_000, overcommit=1, timeout_ticks=20
    )
    net = SimNetwork(bandwidth=2e7)  # 5 ms per response
    client = net.add(40_001, config)
    server = net.add(5_000, config, server=True, respond=lambda r: r * 12_500)
    for i in range(8):
        net.call(client, server, payload(i, 8))
    finish(net, allow_failures=False)
    client_engine = net.nodes[client].engine
    assert client_engine is not None and client_engine.stats.resends_sent > 0
    assert net.dropped.total() == 0  # those RESENDs were keep-alives, not repairs


def test_client_abort_mid_response_frees_the_server():
    # The response waits for grants that will never come (spec §2.7's possible
    # leak in the kernel): the server's idle timeout must free it.
    net, client, server = pair(DEFAULT, bandwidth=1e8)
    call = net.call(client, server, payload(1, 1_000_000))
    net.abort(call, at=15e-3)  # the request is in, the response under way
    finish(net, allow_failures=True)  # no state left anywhere
    server_engine = net.nodes[server].engine
    assert server_engine is not None and server_engine.stats.timeouts == 1
    assert sum(net.nodes[server].seen.values()) == 1
