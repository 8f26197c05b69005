"""Generation detection (spec §2.4) against a fake module of every generation, and
the errors users see when the module is absent or unsupported."""

from __future__ import annotations

import subprocess
import sys

import pytest

import homarpc.transport.kernel as kernel
from homarpc.transport.errors import HomaUnavailableError, UnsupportedAbiError
from homarpc.transport.kernel import HomaSocket, g4a, g8, probe
from homarpc.transport.kernel.ioctl import G8bIoctl, G8cIoctl, LegacyIoctl

from .fakekernel import FakeKernel

UDP_HINT = "transport='udp' or HOMARPC_TRANSPORT=udp"

SUPPORTED = [
    ("G8c", g8.ABI, G8cIoctl.INFO, G8cIoctl.ABORT),
    ("G8b", g8.ABI, G8bIoctl.INFO, G8bIoctl.ABORT),
    ("G8a", g8.ABI, None, LegacyIoctl.ABORT),
    ("G4a", g4a.ABI, None, LegacyIoctl.ABORT),
]


@pytest.mark.parametrize(("generation", "abi", "info", "abort"), SUPPORTED)
def test_supported_generations_are_detected_with_their_ioctls(
    generation, abi, info, abort
):
    fake = FakeKernel(generation)
    found = probe.detect(fake.system())
    assert (found.generation, found.abi, found.reason) == (generation, abi, None)
    assert (found.ioctls.info, found.ioctls.abort) == (info, abort)
    # Only G8's probe 3d names an offset, far outside the pool, which is refused.
    expected = [[0xFFFFFFFF]] if generation.startswith("G8") else []
    assert fake.handback_batches == expected and fake.corruptions == 0
    assert fake.ports == {}, "the probe socket must be closed"


def test_an_upstream_build_without_abort_is_usable_and_aborts_locally():
    found = probe.detect(FakeKernel("G8-upstream").system())
    assert found.abi is g8.ABI and found.generation == "G8c"
    assert found.ioctls.abort is None and found.ioctls.freeze is None
    assert found.ioctls.info == G8cIoctl.INFO


@pytest.mark.parametrize("generation", ["G7", "G6", "G5", "G4b", "G3"])
def test_unsupported_generations_are_named(generation):
    found = probe.detect(FakeKernel(generation).system())
    assert found.generation == generation and found.abi is None
    assert f"speaks ABI {generation} (" in found.reason
    assert "supports G8" in found.reason and UDP_HINT in found.reason


def test_an_ioctl_era_module_on_253_is_refused():
    found = probe.detect(FakeKernel("G1").system())
    assert found.generation == "G1/G2" and found.abi is None


def test_g7_is_never_sent_the_probe_that_would_free_its_bpage_0():
    fake = FakeKernel("G7")
    probe.detect(fake.system())
    assert fake.handback_batches == [] and fake.corruptions == 0


def test_absent_module_reason_names_the_call_and_the_fix():
    found = probe.detect(FakeKernel(None).system())
    assert found.generation is None and found.abi is None
    assert found.reason == (
        "the Homa kernel module is not loaded (socket(AF_INET, SOCK_DGRAM, 146) "
        f"failed with EPROTONOSUPPORT); use the embedded transport: {UDP_HINT}"
    )


def test_socket_refused_for_another_reason_says_so():
    def refuse(family, type_, proto):
        raise PermissionError(1, "Operation not permitted")

    system = kernel._ffi.System(FakeKernel(None), refuse)  # type: ignore[arg-type]
    reason = probe.detect(system).reason
    assert reason.startswith("Homa sockets cannot be opened here") and "EPERM" in reason


def test_opening_a_socket_raises_the_typed_errors():
    with pytest.raises(HomaUnavailableError, match="not loaded"):
        HomaSocket(system=FakeKernel(None).system())
    with pytest.raises(UnsupportedAbiError, match="ABI G6"):
        HomaSocket(system=FakeKernel("G6").system())


def test_this_host_without_homa_reports_it_consistently():
    reason = kernel.unavailable_reason()
    if reason is None:
        pytest.skip("a Homa module is loaded here: covered by tests/integration/kernel")
    assert not kernel.is_available() and kernel.abi_generation() is None
    assert UDP_HINT in reason
    with pytest.raises(HomaUnavailableError) as caught:
        kernel.open_kernel_transport(("127.0.0.1", 0))
    assert str(caught.value) == reason


def test_detection_is_cached_until_forgotten(monkeypatch):
    calls = []
    monkeypatch.setattr(
        probe,
        "detect",
        lambda system: (
            calls.append(1) or probe.Detection("G8c", g8.ABI, probe._NO_IOCTLS, None)
        ),
    )
    probe.forget_detection()
    try:
        assert kernel.abi_generation() == "G8" and kernel.is_available()
        assert kernel.unavailable_reason() is None
        assert calls == [1]
    finally:
        probe.forget_detection()


def test_importing_the_backend_probes_nothing():
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('probed at import')\n"
        "socket.socket = refuse\n"
        "import homarpc.transport.kernel as k\n"
        "print(sorted(k.__all__))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "open_kernel_transport" in out and "BufferPool" in out


def test_public_exports():
    assert set(kernel.__all__) >= {
        "is_available",
        "unavailable_reason",
        "abi_generation",
        "open_kernel_transport",
        "HomaSocket",
        "BufferPool",
    }


def test_describe_knows_every_generation_the_probes_can_name():
    for name in ("G1/G2", "G3", "G4a", "G4b", "G5", "G6", "G7", "G8a", "G8b", "G8c"):
        assert probe.describe(name) != "unknown"
