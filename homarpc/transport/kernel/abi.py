"""Homa's user-space constants and the shape of one supported ABI generation.

Layer: transport.kernel. Imports: stdlib and ``cffi`` (for the ``CType`` handles).

The numbers come from ``shared/spec/homa-kernel-abi.md`` §1.3 and §2. An ``Abi`` says
everything the socket code needs to talk to one generation: protocol number, argument
struct types, receive control length, which socket options exist and which in-struct
receive flags it wants. The generations themselves are ``g8.ABI`` and ``g4a.ABI``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

import cffi

__all__ = [
    "HOMA_BPAGE_SHIFT",
    "HOMA_BPAGE_SIZE",
    "HOMA_MAX_BPAGES",
    "HOMA_MAX_MESSAGE_LENGTH",
    "HOMA_MIN_DEFAULT_PORT",
    "Abi",
    "IpProto",
    "RecvmsgFlag",
    "SendmsgFlag",
    "SockOpt",
    "make_abi",
]

HOMA_MAX_MESSAGE_LENGTH = 1_000_000
HOMA_BPAGE_SHIFT = 16
HOMA_BPAGE_SIZE = 1 << HOMA_BPAGE_SHIFT
#: Most bpages one message spans, and most a recvmsg may hand back at once.
HOMA_MAX_BPAGES = (HOMA_MAX_MESSAGE_LENGTH + HOMA_BPAGE_SIZE - 1) >> HOMA_BPAGE_SHIFT
#: Ports the kernel assigns itself start here; ``bind`` accepts only 1..32767.
HOMA_MIN_DEFAULT_PORT = 0x8000


class IpProto(IntEnum):
    """``IPPROTO_HOMA`` over time; also the socket-option level (there is no SOL_HOMA)."""

    HOMA = 146  # IANA number, since 2024-10-25 (G4b and later)
    HOMA_PRE_2024 = 253  # 0xFD, 2022-09-13 .. 2024-10-24 (G1 .. G4a, the seed)


class SockOpt(IntEnum):
    """Socket options at level ``IpProto``."""

    RCVBUF = 10  # SO_HOMA_RCVBUF; the same number was SO_HOMA_SET_BUF in G4a
    SERVER = 11  # SO_HOMA_SERVER (G8): accept incoming requests


class SendmsgFlag(IntFlag):
    """``homa_sendmsg_args.flags`` (G6 and later)."""

    PRIVATE = 0x01


class RecvmsgFlag(IntFlag):
    """``homa_recvmsg_args.flags`` of G4a (the field is gone in G8)."""

    REQUEST = 0x01
    RESPONSE = 0x02
    NONBLOCKING = 0x04


_NO_FLAGS = RecvmsgFlag(0)


@dataclass(frozen=True, slots=True)
class Abi:
    """What the socket code needs to know about one kernel ABI generation."""

    #: "G8" or "G4a".
    name: str
    protocol: IpProto
    #: The generation's own FFI namespace (includes the shared declarations).
    ffi: cffi.FFI
    sendmsg_args: cffi.FFI.CType
    recvmsg_args: cffi.FFI.CType
    #: ``msg_controllen`` every recvmsg must carry (= sizeof recvmsg args).
    recv_controllen: int
    #: ``SO_HOMA_SERVER`` where it exists; ``None`` where every socket serves.
    server_option: SockOpt | None
    #: In-struct flags every receive sets (G4a must ask for requests and responses).
    recv_flags: RecvmsgFlag
    #: In-struct flag for a non-blocking receive; G4a-era kernels before 2024-07-16
    #: ignore ``MSG_DONTWAIT``. Empty where ``MSG_DONTWAIT`` is enough.
    nonblocking_flag: RecvmsgFlag


def make_abi(
    name: str,
    protocol: IpProto,
    ffi: cffi.FFI,
    *,
    server_option: SockOpt | None,
    recv_flags: RecvmsgFlag = _NO_FLAGS,
    nonblocking_flag: RecvmsgFlag = _NO_FLAGS,
) -> Abi:
    """An ``Abi`` whose struct types are ``ffi``'s ``homa_sendmsg_args`` and
    ``homa_recvmsg_args`` (each generation declares its own)."""
    return Abi(
        name=name,
        protocol=protocol,
        ffi=ffi,
        sendmsg_args=ffi.typeof("struct homa_sendmsg_args *"),
        recvmsg_args=ffi.typeof("struct homa_recvmsg_args *"),
        recv_controllen=ffi.sizeof("struct homa_recvmsg_args"),
        server_option=server_option,
        recv_flags=recv_flags,
        nonblocking_flag=nonblocking_flag,
    )
