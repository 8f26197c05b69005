"""Randomised runs: configuration, network faults, load and crashes drawn per seed.

Each seed builds a different world (packet size, budgets, overcommit, timeouts,
loss, duplication, reordering, bandwidth, slow servers, several clients, sometimes a
crash) and must pass every invariant of ``SimNetwork.check``. Seeds 24, 77 and 143
once found real bugs (a grant threshold above the window, a server timing out on a
client that was asking for its response, double-counted duplicates).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from homarpc.transport.engine import HomaConfig

from .sim import SimNetwork
from .test_scenarios import payload

SIZES = [0, 1, 100, 1_500, 5_000, 40_000, 200_000]


def per_peer_sizes(seed: int) -> Callable[[tuple[str, int]], int]:
    """A driver's choice of datagram size that differs from peer to peer (and so
    between the two ends of one RPC), fixed per peer as a real path's would be."""
    r = random.Random(seed)
    chosen: dict[tuple[str, int], int] = {}

    def size(peer: tuple[str, int]) -> int:
        if peer not in chosen:
            chosen[peer] = r.choice([200, 1_372, 9_000, 65_000])
        return chosen[peer]

    return size


def random_world(seed: int, *, vary_sizes: bool = False) -> SimNetwork:
    r = random.Random(seed)
    config = HomaConfig(
        max_datagram=r.choice([300, 1_200, 9_000, 65_000]),
        unsched_bytes=r.choice([500, 4_000, 50_000]),
        max_incoming=r.choice([3_000, 16_000, 200_000]),
        overcommit=r.choice([1, 2, 4]),
        timeout_ticks=r.choice([50, 200]),
        max_gaps=r.choice([2, 256]),
    )
    net = SimNetwork(
        seed=seed,
        loss=r.choice([0, 0.05, 0.2]),
        duplicate=r.choice([0, 0.1]),
        reorder=r.choice([0, 0.3]),
        bandwidth=r.choice([None, 1e8, 1e9]),
    )
    service_time = r.choice([0, 0.002, 0.05])
    hook = per_peer_sizes if vary_sizes else lambda seed: None
    server = net.add(5_000, config, server=True, service_time=service_time,
                     datagram_size=hook(seed))  # fmt: skip
    clients = [net.add(40_000 + i, config, datagram_size=hook(seed + i + 1))
               for i in range(r.randint(1, 4))]  # fmt: skip
    for i in range(r.randint(1, 25)):
        request = payload(i, r.choice(SIZES))
        net.call(r.choice(clients), server, request, at=r.random() * 0.02)
    if r.random() < 0.2:
        victim = r.choice([server, *clients])
        restart = r.choice([None, 0.01, 0.5])
        net.crash(victim, at=r.random() * 0.02, restart_after=restart)
    return net


@pytest.mark.parametrize("seed", [*range(30), 77, 143])
def test_random_world_keeps_every_invariant(seed):
    net = random_world(seed)
    net.run_until_idle(limit=60)
    net.check()
    if not net.disrupted:
        assert len(net.completed()) == len(net.calls)


@pytest.mark.parametrize("seed", range(100, 112))
def test_random_world_with_datagram_sizes_chosen_per_peer(seed):
    net = random_world(seed, vary_sizes=True)
    net.run_until_idle(limit=60)
    net.check()
    if not net.disrupted:
        assert len(net.completed()) == len(net.calls)
