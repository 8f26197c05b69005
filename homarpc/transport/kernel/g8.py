"""The current Homa ABI, generation G8 (HomaModule main since 2025-07-03; protocol 146).

Layer: transport.kernel. Imports: stdlib, ``cffi``, ``_ffi``, ``abi``, ``ioctl``.

Struct names are the kernel's own (``include/uapi/linux/homa.h``); they live in this
module's FFI namespace so the seed's same-named structs (``g4a``) cannot collide.
G8a/b/c share these layouts and differ only in ioctl numbers (``ioctl.py``).
"""

from __future__ import annotations

import cffi

from . import _ffi
from .abi import HOMA_MAX_BPAGES, IpProto, SockOpt, make_abi
from .ioctl import INFO_ARGS_SIZE

__all__ = ["ABI", "ERROR_MSG_SIZE", "EXPECTED_LAYOUT", "LAYOUT_PROBLEMS", "ffi"]

#: ``HOMA_ERROR_MSG_SIZE`` (100 before 2026-05-26: same 136-byte ``homa_info``).
ERROR_MSG_SIZE = 104

ffi = cffi.FFI()
ffi.include(_ffi.ffi)
ffi.cdef(
    f"""
    struct homa_sendmsg_args {{
        uint64_t id;
        uint64_t completion_cookie;
        uint32_t flags;
        uint32_t reserved;
    }};

    struct homa_recvmsg_args {{
        uint64_t id;
        uint64_t completion_cookie;
        uint32_t num_bpages;
        uint32_t reserved;
        uint32_t bpage_offsets[{HOMA_MAX_BPAGES}];
    }};

    struct homa_info {{
        uint64_t rpc_info;
        uint64_t rpc_info_length;
        uint64_t bpool_avail_bytes;
        uint32_t port;
        uint32_t num_rpcs;
        char error_msg[{ERROR_MSG_SIZE}];
    }};

    struct homa_rpc_info {{
        uint64_t id;
        union {{
            uint8_t storage[128];      /* __kernel_sockaddr_storage */
            uint64_t _align[16];
            struct homa_sockaddr_in in4;
            struct homa_sockaddr_in6 in6;
        }} peer;
        uint64_t completion_cookie;
        int32_t tx_length;
        uint32_t tx_sent;
        uint32_t tx_granted;
        uint32_t tx_prio;
        int32_t rx_length;
        uint32_t rx_remaining;
        uint32_t rx_gaps;
        uint32_t rx_gap_bytes;
        uint32_t rx_granted;
        uint16_t flags;
    }};
    """
)

#: Sizes and offsets from spec §1.4 (x86-64), checked at import.
EXPECTED_LAYOUT: dict[str, tuple[int, dict[str, int]]] = {
    "struct homa_sendmsg_args": (
        24,
        {"id": 0, "completion_cookie": 8, "flags": 16, "reserved": 20},
    ),
    "struct homa_recvmsg_args": (
        88,
        {
            "id": 0,
            "completion_cookie": 8,
            "num_bpages": 16,
            "reserved": 20,
            "bpage_offsets": 24,
        },
    ),
    "struct homa_info": (
        INFO_ARGS_SIZE,
        {
            "rpc_info": 0,
            "rpc_info_length": 8,
            "bpool_avail_bytes": 16,
            "port": 24,
            "num_rpcs": 28,
            "error_msg": 32,
        },
    ),
    "struct homa_rpc_info": (
        184,
        {
            "id": 0,
            "peer": 8,
            "completion_cookie": 136,
            "tx_length": 144,
            "tx_sent": 148,
            "tx_granted": 152,
            "tx_prio": 156,
            "rx_length": 160,
            "rx_remaining": 164,
            "rx_gaps": 168,
            "rx_gap_bytes": 172,
            "rx_granted": 176,
            "flags": 180,
        },
    ),
}

LAYOUT_PROBLEMS = _ffi.check_layout(ffi, EXPECTED_LAYOUT)

ABI = make_abi("G8", IpProto.HOMA, ffi, server_option=SockOpt.SERVER)
