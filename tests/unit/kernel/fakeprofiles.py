"""The ABI generations the fake Homa module (``fakekernel.py``) can behave like.

Each ``Profile`` says how one generation lays out and checks its calls, and which of
the module behaviours seen on real hosts (spec §8, issue 12) it has.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from homarpc.transport.kernel.bufpool import minimum_pool_bytes, possible_cpus
from homarpc.transport.kernel.ioctl import G8bIoctl, G8cIoctl, LegacyIoctl

BPAGE = 1 << 16


@dataclass(frozen=True)
class Profile:
    """How one ABI generation lays out and checks its calls."""

    name: str
    protocol: int
    recv_size: int  # required msg_controllen (0: recvmsg is not supported)
    num_off: int
    offsets_off: int
    flags_off: int | None = None  # in-struct recvmsg flags
    reserved_off: int | None = None
    filters_kind: bool = False  # G3/G4: REQUEST (1) / RESPONSE (2) select messages
    nonblock_flag: int = 0  # in-struct NONBLOCKING bit
    honours_dontwait: bool = True
    send_size: int = 24
    has_rcvbuf: bool = True
    #: SO_HOMA_SERVER exists and unbound sockets don't serve; without it (G4a) every
    #: socket accepts requests, a homarpc client's too.
    server_option: bool = True
    ioctls: dict[int, str] = field(default_factory=dict)
    peer_off: int | None = None  # G4a copies the peer into the args
    double_free_einval: bool = True
    min_pool: int = 2 * BPAGE
    #: poll() reports a shut-down socket readable. G4a's does not (only threads
    #: blocked in recvmsg are woken), so a waiter in poll sleeps on.
    poll_reports_shutdown: bool = True


_LEGACY = {LegacyIoctl.ABORT: "abort", LegacyIoctl.FREEZE: "freeze"}
_G4 = dict(  # noqa: C408 (keyword form mirrors Profile's fields)
    protocol=253, recv_size=120, num_off=48, offsets_off=56, flags_off=16,
    filters_kind=True, nonblock_flag=4, send_size=16, server_option=False,
    ioctls=_LEGACY, peer_off=20, double_free_einval=False,
    poll_reports_shutdown=False,
)  # fmt: skip
_G8 = dict(protocol=146, recv_size=88, num_off=16, offsets_off=24, reserved_off=20)  # noqa: C408

PROFILES: dict[str, Profile] = {
    "G1": Profile(
        "G1",
        253,
        0,
        0,
        0,
        has_rcvbuf=False,
        server_option=False,
        send_size=16,
        ioctls=_LEGACY,
    ),
    "G3": Profile(
        "G3",
        253,
        96,
        20,
        32,
        flags_off=16,
        filters_kind=True,
        nonblock_flag=4,
        send_size=16,
        server_option=False,
        ioctls=_LEGACY,
    ),
    "G4a": Profile("G4a", **_G4, honours_dontwait=False),  # type: ignore[arg-type]
    "G4b": Profile("G4b", **{**_G4, "protocol": 146}),  # type: ignore[arg-type]
    "G5": Profile(
        "G5",
        146,
        88,
        20,
        24,
        flags_off=16,
        nonblock_flag=4,
        send_size=16,
        ioctls=_LEGACY,
    ),
    "G6": Profile("G6", 146, 88, 20, 24, flags_off=16, nonblock_flag=1, ioctls=_LEGACY),
    "G7": Profile("G7", 146, 88, 16, 20, ioctls=_LEGACY),
    "G8a": Profile("G8a", **_G8, ioctls=_LEGACY),  # type: ignore[arg-type]
    "G8b": Profile(
        "G8b",
        **_G8,
        ioctls={  # type: ignore[arg-type]
            G8bIoctl.INFO: "info",
            G8bIoctl.ABORT: "abort",
            G8bIoctl.FREEZE: "freeze",
        },
    ),
    "G8c": Profile(
        "G8c",
        **_G8,
        ioctls={  # type: ignore[arg-type]
            G8cIoctl.INFO: "info",
            G8cIoctl.ABORT: "abort",
            G8cIoctl.FREEZE: "freeze",
        },
        min_pool=minimum_pool_bytes(possible_cpus()),
    ),
}
#: An upstream ("net: homa") build: G8c numbering for INFO, no abort, no freeze.
PROFILES["G8-upstream"] = replace(
    PROFILES["G8c"], name="G8-upstream", ioctls={G8cIoctl.INFO: "info"}
)
