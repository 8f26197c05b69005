"""Network namespaces with real, kernel-level datagram loss, for loss tests.

A namespace gets its own loopback and an nftables input chain whose rule drops a
random share of UDP datagrams (``meta l4proto udp numgen random mod 100 < N``) and
counts what it dropped, so a test can prove that loss really happened. ``tc netem``
is not built into these kernels; nftables is (Debian package ``nftables``).

Used by ``tests/netns`` and by ``benchmarks/transport_bench.py`` (the 10,000-RPC
loss run). Needs root, ``ip`` and ``nft``; ``unavailable_reason()`` says what is
missing so callers can skip with a reason instead of failing.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

__all__ = ["LossyNamespace", "lossy_namespace", "unavailable_reason"]

_TABLE = "homarpc_loss"
_PACKAGES = {"ip": "iproute2", "nft": "nftables"}


def unavailable_reason() -> str | None:
    """Why namespaces with nftables loss cannot be made here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root, as CI does)"
    for tool, package in _PACKAGES.items():
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (Debian: apt-get install {package})"
    return None


class LossyNamespace:
    """A live namespace: run commands inside it, read how many datagrams it dropped."""

    def __init__(self, name: str) -> None:
        self.name = name

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so that it runs inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, argv: Sequence[str], *, timeout: float, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace; output captured, bounded by ``timeout``."""
        return subprocess.run(
            self.command(argv), capture_output=True, text=True, timeout=timeout,
            env=env, check=False,
        )  # fmt: skip

    def dropped_datagrams(self) -> int:
        """Datagrams the loss rule has dropped so far (0 when there is no rule)."""
        listing = _ip(["netns", "exec", self.name, "nft", "list", "table", "inet", _TABLE],
                      check=False)  # fmt: skip
        found = re.search(r"counter packets (\d+)", listing.stdout)
        return int(found.group(1)) if found else 0


@contextmanager
def lossy_namespace(loss_percent: int) -> Iterator[LossyNamespace]:
    """A fresh namespace with loopback up and ``loss_percent`` % of UDP dropped on
    input; always deleted afterwards, whatever happens inside.

    Raises:
        RuntimeError: the namespace or the rule could not be set up (with the
            tool's own message).
    """
    if not 0 <= loss_percent <= 100:
        raise ValueError(f"loss_percent must be 0..100, not {loss_percent}")
    name = f"homarpc-{os.getpid()}-{secrets.token_hex(3)}"
    _ip(["netns", "add", name])
    try:
        _ip(["netns", "exec", name, "ip", "link", "set", "lo", "up"])
        if loss_percent:
            _nft(name, _loss_ruleset(loss_percent))
        yield LossyNamespace(name)
    finally:
        _ip(["netns", "del", name], check=False)


def _loss_ruleset(loss_percent: int) -> str:
    return (
        f"table inet {_TABLE} {{\n"
        "  chain input {\n"
        "    type filter hook input priority 0; policy accept;\n"
        f"    meta l4proto udp numgen random mod 100 < {loss_percent} counter drop\n"
        "  }\n"
        "}\n"
    )


def _ip(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def _nft(namespace: str, ruleset: str) -> None:
    argv = ["ip", "netns", "exec", namespace, "nft", "-f", "-"]
    done = subprocess.run(
        argv, input=ruleset, capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise RuntimeError(f"nft could not load the loss rule: {done.stderr.strip()}")
