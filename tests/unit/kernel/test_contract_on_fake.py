"""The transport conformance suite, run against HomaSocket over the fake kernel.

The real-module run of the same suite (``tests/conformance``) skips on hosts without
Homa; this one runs everywhere, for each supported generation and for an upstream
build without the abort ioctl (where ``abort`` works locally).
"""

from __future__ import annotations

import pytest

from homarpc.transport.kernel import HomaSocket
from tests.conformance import test_transport_contract as contract
from tests.conformance.backends import Backend

from .fakekernel import FakeKernel

# Collect the suite's tests here; the ``backend`` fixture below replaces its own.
globals().update(
    {name: value for name, value in vars(contract).items() if name.startswith("test_")}
)
pair = contract.pair


@pytest.fixture(params=["G8c", "G8b", "G8a", "G8-upstream", "G4a"])
def backend(request: pytest.FixtureRequest) -> Backend:
    kernel = FakeKernel(request.param)

    def make(local: tuple[str, int], server: bool) -> HomaSocket:
        return HomaSocket(
            local, server=server, pool_bytes=8 << 20, system=kernel.system()
        )

    return Backend(f"fake-{request.param}", make, lambda: None, supports_empty=False)
