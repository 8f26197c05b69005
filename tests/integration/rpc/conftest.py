"""A server and a channel over each transport backend, for the RPC-layer tests.

``rig`` is parametrised over memory, udp and kernel (marked ``kernel``, skipped with
the reason where the module is absent). Everything binds 127.0.0.1 port 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

import homarpc
from homarpc.transport.memory import MemoryNetwork

from .service import SERVICE, TestService

BACKEND_PARAMS = [
    pytest.param("memory"),
    pytest.param("udp"),
    pytest.param("kernel", marks=pytest.mark.kernel),
]


def skip_reason(kind: str) -> str | None:
    if kind == "udp":
        try:
            import homarpc.transport.udp  # noqa: F401
        except ImportError as exc:
            return f"udp backend not importable: {exc}"
    if kind == "kernel":
        try:
            from homarpc.transport.kernel import unavailable_reason
        except ImportError as exc:
            return f"kernel backend not importable: {exc}"
        return unavailable_reason()
    return None


@dataclass
class Rig:
    """Starts servers and opens channels on one backend; closes them all at the end."""

    kind: str
    network: MemoryNetwork = field(default_factory=MemoryNetwork)
    closers: list[Callable[[], Any]] = field(default_factory=list)

    @property
    def transport_options(self) -> dict[str, Any]:
        return {"network": self.network} if self.kind == "memory" else {}

    def server(
        self,
        service: TestService | None = None,
        *,
        handlers: Sequence[Any] = (),
        **kwargs: Any,
    ) -> tuple[homarpc.Server, int]:
        kwargs.setdefault("max_workers", 16)
        server = homarpc.server(
            transport=self.kind, transport_options=self.transport_options, **kwargs
        )
        if service is not None:
            server.add_generic_rpc_handlers((service.generic_handler(),))
        server.add_generic_rpc_handlers(handlers)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.closers.append(lambda: server.stop(None).wait(5))
        return server, port

    def channel(self, target: str | int, **kwargs: Any) -> homarpc.Channel:
        if isinstance(target, int):
            target = f"127.0.0.1:{target}"
        channel = homarpc.insecure_channel(
            target,
            transport=self.kind,
            transport_options=self.transport_options,
            **kwargs,
        )
        self.closers.append(channel.close)
        return channel

    def pair(
        self,
        service: TestService | None = None,
        *,
        server_kwargs: Any = None,
        **channel_kwargs: Any,
    ) -> tuple[TestService, homarpc.Channel]:
        service = service or TestService()
        _, port = self.server(service, **(server_kwargs or {}))
        return service, self.channel(port, **channel_kwargs)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


@pytest.fixture(params=BACKEND_PARAMS)
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    reason = skip_reason(request.param)
    if reason is not None:
        pytest.skip(f"{request.param} transport unavailable here: {reason}")
    made = Rig(request.param)
    yield made
    made.close()


@pytest.fixture
def memory_rig() -> Iterator[Rig]:
    made = Rig("memory")
    yield made
    made.close()


def method(name: str) -> str:
    return f"/{SERVICE}/{name}"
