"""Backends the transport conformance suite runs against.

Each backend is a factory ``make(local, server) -> Transport`` plus a reason to skip
(``None`` when usable here). Backend owners register theirs in ``BACKENDS``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from homarpc.transport import Address, Transport
from homarpc.transport.errors import HomaError
from homarpc.transport.memory import MemoryNetwork

#: Where Homa servers can bind: 1..32767. Its automatic (client) ports are 32768 and
#: up, like the ports the system lends UDP sockets, so a "dead" port borrowed from
#: UDP may be a live Homa client socket (which G4a hands requests to), and a Homa
#: server can never bind it. Kernel tests pick dead ports from this range instead.
HOMA_SERVER_PORTS = range(20_000, 32_768)


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[[Address, bool], Transport]
    skip_reason: Callable[[], str | None]
    supports_empty: bool = True  # the kernel refuses 0-byte messages
    supports_ipv6: bool = True
    #: Ports a server of this backend may bind (None: any, 0 picks one).
    server_ports: range | None = None

    def dead_port(self, host: str = "127.0.0.1") -> int:
        """A port where nothing listens now, that a server could bind later: one a
        server of this backend bound, then released."""
        return released_port(self.make, host, self.server_ports)


def released_port(
    make: Callable[[Address, bool], Transport],
    host: str = "127.0.0.1",
    ports: range | None = None,
) -> int:
    """A port a server made by ``make`` bound and released: port 0's choice, or
    (Homa: ``HOMA_SERVER_PORTS``) a free one picked at random from ``ports``."""
    for port in random.sample(ports, min(len(ports), 200)) if ports else [0]:
        try:
            server = make((host, port), True)
        except (OSError, HomaError):  # taken (EADDRINUSE)
            continue
        found = server.local_addr[1]
        server.close()
        return found
    raise AssertionError(f"no free server port in {ports}")


def _memory() -> Backend:
    network = MemoryNetwork()
    return Backend(
        "memory",
        lambda local, server: network.open(local, server=server),
        lambda: None,
    )


def _udp() -> Backend:
    # Always available: a missing or broken udp backend must fail here, not skip.
    def make(local: Address, server: bool) -> Transport:
        from homarpc.transport.udp import open_udp_transport

        return open_udp_transport(local, server=server)

    return Backend("udp", make, lambda: None)


def _kernel() -> Backend:
    def make(local: Address, server: bool) -> Transport:
        from homarpc.transport.kernel import open_kernel_transport

        return open_kernel_transport(local, server=server)

    def skip() -> str | None:
        try:
            from homarpc.transport.kernel import unavailable_reason
        except ImportError as exc:
            return f"kernel backend not importable: {exc}"
        return unavailable_reason()

    return Backend(
        "kernel", make, skip, supports_empty=False, server_ports=HOMA_SERVER_PORTS
    )


BACKENDS: dict[str, Callable[[], Backend]] = {
    "memory": _memory,
    "udp": _udp,
    "kernel": _kernel,
}
