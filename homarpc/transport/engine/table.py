"""The per-endpoint table of live RPCs and how packets find them.

Layer: transport.engine. Imports: the stdlib only.

Client RPCs are found by id alone (ids are ours: even, step 2, from a random
62-bit start per engine so a restarted endpoint does not reuse recent ids). Server
RPCs are found by (client address, client id) -- stricter than the kernel's
(client host, id), because several user-space endpoints share one host. The
address is the datagram's UDP source, whatever the Homa header's ports say: behind
a NAT it is the NAT's address, the same for every packet of the RPC. The low
bit of a packet's ``sender_id`` says which table to look in: 0 = sent by a client
(the RPC is one of our server RPCs), 1 = sent by a server (one of our client RPCs).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from .events import Address
from .ledger import ServerKey
from .rpc import Rpc

__all__ = ["RpcTable"]

_ID_MASK = (1 << 64) - 1


class RpcTable:
    """Live RPCs of one engine, by every key the protocol needs.

    Args:
        rng: source of the random first id and of ids that would collide.
        packet_data_for: message bytes per DATA packet to a peer (asked once for
            each new RPC, which keeps its answer).
    """

    __slots__ = ("_next_id", "_packet_data_for", "_rng", "_wheel", "active",
                 "clients", "moves", "server_ids", "servers")  # fmt: skip

    def __init__(
        self, rng: random.Random, packet_data_for: Callable[[Address], int]
    ) -> None:
        self._rng = rng
        self._packet_data_for = packet_data_for
        self._next_id = (rng.getrandbits(62) << 1) or 2
        self.clients: dict[int, Rpc] = {}
        self.servers: dict[ServerKey, Rpc] = {}
        self.server_ids: dict[int, Rpc] = {}  # by the opaque id the application sees
        self.moves = 0  # client RPCs whose server answered from a new address
        #: RPCs the timer visits every tick (insertion-ordered set); the others
        #: are parked: in ``_wheel`` under the tick they wake at, or nowhere
        #: until an event wakes them.
        self.active: dict[Rpc, None] = {}
        self._wheel: dict[int, list[Rpc]] = {}

    def __len__(self) -> int:
        return len(self.clients) + len(self.servers)

    def snapshot(self) -> list[Rpc]:
        """Every live RPC, in a list that stays valid while RPCs are removed."""
        return [*self.clients.values(), *self.servers.values()]

    def new_client(self, peer: Address, cookie: int) -> Rpc:
        rpc_id = self._next_id
        self._next_id = (rpc_id + 2) & _ID_MASK or 2  # 2**62 ids before a wrap
        seg = self._packet_data_for(peer)
        rpc = Rpc(rpc_id, rpc_id, peer, seg, is_client=True, cookie=cookie)
        self.clients[rpc_id] = rpc
        self.active[rpc] = None
        return rpc

    def new_server(self, peer: Address, client_id: int) -> Rpc:
        """A server RPC, local id ``client_id | 1`` unless another peer's RPC has it."""
        local_id = client_id | 1
        while local_id in self.server_ids:
            local_id = self._rng.getrandbits(63) | 1
        seg = self._packet_data_for(peer)
        rpc = Rpc(local_id, client_id, peer, seg, is_client=False)
        self.servers[peer, client_id] = rpc
        self.server_ids[local_id] = rpc
        self.active[rpc] = None
        return rpc

    def lookup(self, addr: Address, sender_id: int) -> Rpc | None:
        """The RPC a packet from ``addr`` with ``sender_id`` is about, if any.

        One of our client RPCs is found by its id alone, as in the kernel (the
        id is ours and random), and its peer becomes ``addr``: what we send
        for it next goes where the server's packets now come from (a server
        behind a load balancer that answers from its own address, a NAT whose
        mapping changed), and it is marked ``reached``. A server RPC is found
        by (address, client id).
        """
        if sender_id & 1:  # from a server: one of our client RPCs
            rpc = self.clients.get(sender_id ^ 1)
            if rpc is not None:
                rpc.reached = True  # the server knows of it (see Rpc.reached)
                if rpc.peer != addr:
                    self.move(rpc, addr)
            return rpc
        return self.servers.get((addr, sender_id))

    def move(self, rpc: Rpc, addr: Address) -> None:
        """Our client RPC ``rpc`` now hears from its server at ``addr``."""
        rpc.peer = addr
        self.moves += 1

    def park(self, rpc: Rpc, wake: int) -> None:
        """Stop visiting ``rpc`` every tick: until tick ``wake``, or (-1) until
        ``activate``. The timer's work then grows with the RPCs that are due, not
        with every RPC held (thousands of unacknowledged responses, say)."""
        del self.active[rpc]
        rpc.wake = wake
        if wake > 0:
            self._wheel.setdefault(wake, []).append(rpc)

    def activate(self, rpc: Rpc) -> None:
        """Visit ``rpc`` every tick again (an event changed what it waits for)."""
        if rpc.wake:
            rpc.wake = 0
            self.active[rpc] = None

    def due(self, tick: int) -> list[Rpc]:
        """The parked RPCs that wake at ``tick`` (now active again)."""
        woken = []
        for rpc in self._wheel.pop(tick, ()):
            if rpc.wake == tick:  # else woken meanwhile, or parked again
                rpc.wake = 0
                self.active[rpc] = None
                woken.append(rpc)
        return woken

    def remove(self, rpc: Rpc) -> None:
        self.active.pop(rpc, None)
        rpc.wake = 0
        if rpc.is_client:
            del self.clients[rpc.id]
        else:
            del self.servers[rpc.peer, rpc.client_id]
            del self.server_ids[rpc.id]
