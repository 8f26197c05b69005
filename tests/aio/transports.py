"""The transports the aio and grpcio-compatibility suites run over.

The kernel backend is marked ``kernel`` and skipped, with the reason, where the
Homa module is not loaded (the conformance suite's check decides).
"""

from __future__ import annotations

import pytest

from tests.conformance.backends import BACKENDS

KINDS = ["memory", "udp", pytest.param("kernel", marks=pytest.mark.kernel)]


def usable(kind: str) -> str:
    """``kind``, after skipping the test when that backend cannot run here."""
    if kind in BACKENDS:
        reason = BACKENDS[kind]().skip_reason()
        if reason is not None:
            pytest.skip(reason)
    return kind
