"""The seed's Homa ABI, generation G4a (HomaModule 2023-10-18 .. 2024-10-24; proto 253).

Layer: transport.kernel. Imports: stdlib, ``cffi``, ``_ffi``, ``abi``.

This is what go-homa speaks (branch ``linux_6.1.38`` of HomaModule): 16-byte sendmsg
arguments, 120-byte recvmsg arguments with in-struct REQUEST/RESPONSE/NONBLOCKING flags
and a ``peer_addr`` copy, and ``SO_HOMA_SET_BUF``. Struct names are the kernel's own,
kept in this module's FFI namespace apart from G8's.
"""

from __future__ import annotations

import cffi

from . import _ffi
from .abi import HOMA_MAX_BPAGES, IpProto, RecvmsgFlag, make_abi

__all__ = ["ABI", "EXPECTED_LAYOUT", "LAYOUT_PROBLEMS", "ffi"]

ffi = cffi.FFI()
ffi.include(_ffi.ffi)
ffi.cdef(
    f"""
    struct homa_sendmsg_args {{
        uint64_t id;
        uint64_t completion_cookie;
    }};

    union sockaddr_in_union {{
        struct homa_sockaddr_in in4;
        struct homa_sockaddr_in6 in6;
    }};

    struct homa_recvmsg_args {{
        uint64_t id;
        uint64_t completion_cookie;
        int32_t flags;
        union sockaddr_in_union peer_addr;
        uint32_t num_bpages;
        uint32_t _pad[1];
        uint32_t bpage_offsets[{HOMA_MAX_BPAGES}];
    }};
    """
)

#: Sizes and offsets from spec §3.2 (x86-64), checked at import.
EXPECTED_LAYOUT: dict[str, tuple[int, dict[str, int]]] = {
    "struct homa_sendmsg_args": (16, {"id": 0, "completion_cookie": 8}),
    "union sockaddr_in_union": (28, {"in4": 0, "in6": 0}),
    "struct homa_recvmsg_args": (
        120,
        {
            "id": 0,
            "completion_cookie": 8,
            "flags": 16,
            "peer_addr": 20,
            "num_bpages": 48,
            "_pad": 52,
            "bpage_offsets": 56,
        },
    ),
}

LAYOUT_PROBLEMS = _ffi.check_layout(ffi, EXPECTED_LAYOUT)

ABI = make_abi(
    "G4a",
    IpProto.HOMA_PRE_2024,
    ffi,
    server_option=None,  # every G4a socket accepts requests
    recv_flags=RecvmsgFlag.REQUEST | RecvmsgFlag.RESPONSE,
    nonblocking_flag=RecvmsgFlag.NONBLOCKING,
)
