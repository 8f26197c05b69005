"""Backends the transport conformance suite runs against.

Each backend is a factory ``make(local, server) -> Transport`` plus a reason to skip
(``None`` when usable here). Backend owners register theirs in ``BACKENDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homarpc.transport import Address, Transport
from homarpc.transport.memory import MemoryNetwork


@dataclass(frozen=True)
class Backend:
    name: str
    make: Callable[[Address, bool], Transport]
    skip_reason: Callable[[], str | None]
    supports_empty: bool = True  # the kernel refuses 0-byte messages
    supports_ipv6: bool = True


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

    return Backend("kernel", make, skip, supports_empty=False)


BACKENDS: dict[str, Callable[[], Backend]] = {
    "memory": _memory,
    "udp": _udp,
    "kernel": _kernel,
}
