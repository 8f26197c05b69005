"""The transport conformance suite, run against HomaSocket over the fake kernel.

The real-module run of the same suite (``tests/conformance``) skips on hosts without
Homa; this one runs everywhere, for each supported generation and for an upstream
build without the abort ioctl (where ``abort`` works locally), and for two of them
with the loopback loss real modules showed (issue 12).
"""

from __future__ import annotations

import pytest

from homarpc.transport.kernel import HomaSocket
from tests.conformance import test_transport_contract as contract
from tests.conformance.backends import HOMA_SERVER_PORTS, Backend

from .fakekernel import FakeKernel

# Collect the suite's tests here; the ``backend`` fixture below replaces its own.
globals().update(
    {name: value for name, value in vars(contract).items() if name.startswith("test_")}
)
pair = contract.pair


#: "+loss": the module's loopback behaviour, the first packet of a one-packet message
#: lost and sent again on RESEND a few milliseconds later.
GENERATIONS = ["G8c", "G8b", "G8a", "G8-upstream", "G4a", "G8c+loss", "G4a+loss"]


@pytest.fixture(params=GENERATIONS)
def backend(request: pytest.FixtureRequest) -> Backend:
    generation, lossy = request.param.removesuffix("+loss"), "+loss" in request.param
    kernel = FakeKernel(generation, resend_delay=0.003 if lossy else 0.0)

    def make(local: tuple[str, int], server: bool) -> HomaSocket:
        return HomaSocket(
            local, server=server, pool_bytes=8 << 20, system=kernel.system()
        )

    return Backend(
        f"fake-{request.param}",
        make,
        lambda: None,
        supports_empty=False,
        server_ports=HOMA_SERVER_PORTS,
    )
