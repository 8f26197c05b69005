"""Struct layouts, ioctl numbers and constants against the spec's literal tables.

Every expected number here is typed in from ``shared/spec/homa-kernel-abi.md``
(§0, §1.3, §1.4, §1.5, §3.1, §3.2), not taken from the package, so a wrong number
in the package fails a test.
"""

from __future__ import annotations

import pytest

from homarpc.transport.kernel import _ffi, abi, g4a, g8, ioctl

# (ffi, cdecl, size, {field: offset})
LAYOUTS = [
    (
        g8.ffi,
        "struct homa_sendmsg_args",
        24,
        {"id": 0, "completion_cookie": 8, "flags": 16, "reserved": 20},
    ),
    (
        g8.ffi,
        "struct homa_recvmsg_args",
        88,
        {
            "id": 0,
            "completion_cookie": 8,
            "num_bpages": 16,
            "reserved": 20,
            "bpage_offsets": 24,
        },
    ),
    (
        g8.ffi,
        "struct homa_info",
        136,
        {
            "rpc_info": 0,
            "rpc_info_length": 8,
            "bpool_avail_bytes": 16,
            "port": 24,
            "num_rpcs": 28,
            "error_msg": 32,
        },
    ),
    (
        g8.ffi,
        "struct homa_rpc_info",
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
    (g4a.ffi, "struct homa_sendmsg_args", 16, {"id": 0, "completion_cookie": 8}),
    (
        g4a.ffi,
        "struct homa_recvmsg_args",
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
    (g4a.ffi, "union sockaddr_in_union", 28, {"in4": 0, "in6": 0}),
    (_ffi.ffi, "struct homa_rcvbuf_args", 16, {"start": 0, "length": 8}),
    (
        _ffi.ffi,
        "struct homa_abort_args",
        32,
        {"id": 0, "error": 8, "_pad1": 12, "_pad2": 16},
    ),
    (
        _ffi.ffi,
        "struct homa_sockaddr_in",
        16,
        {"sin_family": 0, "sin_port": 2, "sin_addr": 4, "sin_zero": 8},
    ),
    (
        _ffi.ffi,
        "struct homa_sockaddr_in6",
        28,
        {
            "sin6_family": 0,
            "sin6_port": 2,
            "sin6_flowinfo": 4,
            "sin6_addr": 8,
            "sin6_scope_id": 24,
        },
    ),
    (_ffi.ffi, "struct iovec", 16, {"iov_base": 0, "iov_len": 8}),
    (
        _ffi.ffi,
        "struct msghdr",
        56,
        {
            "msg_name": 0,
            "msg_namelen": 8,
            "msg_iov": 16,
            "msg_iovlen": 24,
            "msg_control": 32,
            "msg_controllen": 40,
            "msg_flags": 48,
        },
    ),
]


@pytest.mark.parametrize(
    ("which", "cdecl", "size", "fields"),
    LAYOUTS,
    ids=[f"{(row[0] is g4a.ffi and 'G4a ') or ''}{row[1]}" for row in LAYOUTS],
)
def test_struct_size_and_every_field_offset(which, cdecl, size, fields):
    assert which.sizeof(cdecl) == size
    declared = {name for name, _ in which.typeof(cdecl).fields}
    assert declared == set(fields), "a field is missing from the test or the struct"
    for name, offset in fields.items():
        assert which.offsetof(cdecl, name) == offset, name


def _field_size(which, cdecl, name):
    return which.sizeof(dict(which.typeof(cdecl).fields)[name].type)


def test_array_fields_have_the_kernel_lengths():
    assert _field_size(g8.ffi, "struct homa_recvmsg_args", "bpage_offsets") == 64
    assert _field_size(g4a.ffi, "struct homa_recvmsg_args", "bpage_offsets") == 64
    assert _field_size(g4a.ffi, "struct homa_recvmsg_args", "peer_addr") == 28
    assert _field_size(g8.ffi, "struct homa_info", "error_msg") == 104
    assert _field_size(g8.ffi, "struct homa_rpc_info", "peer") == 128


def test_import_time_checks_found_no_problem():
    assert _ffi.LAYOUT_PROBLEMS == g8.LAYOUT_PROBLEMS == g4a.LAYOUT_PROBLEMS == []


def test_layout_check_reports_a_wrong_table():
    wrong = {"struct homa_sendmsg_args": (24, {"id": 0, "flags": 20})}
    (problem,) = _ffi.check_layout(g8.ffi, wrong)
    assert "homa_sendmsg_args" in problem and "'flags': 16" in problem


# (enum member, literal from spec §3.1, (dir, type, nr, size) for the _IOC helper)
IOCTLS = [
    (ioctl.G8cIoctl.INFO, 0xC0886890, (3, ord("h"), 0x90, 136)),
    (ioctl.G8cIoctl.ABORT, 0xC0206891, (3, ord("h"), 0x91, 32)),
    (ioctl.G8cIoctl.FREEZE, 0x6892, (0, ord("h"), 0x92, 0)),
    (ioctl.G8bIoctl.INFO, 0xC0886801, (3, ord("h"), 0x01, 136)),
    (ioctl.G8bIoctl.ABORT, 0xC0206802, (3, ord("h"), 0x02, 32)),
    (ioctl.G8bIoctl.FREEZE, 0x6803, (0, ord("h"), 0x03, 0)),
    (ioctl.LegacyIoctl.ABORT, 0xC02089E3, (3, 0x89, 0xE3, 32)),
    (ioctl.LegacyIoctl.FREEZE, 0x89EF, (0, 0x89, 0xEF, 0)),
]


@pytest.mark.parametrize(
    ("number", "literal", "parts"),
    IOCTLS,
    ids=[f"{type(n).__name__}.{n.name}" for n, _, _ in IOCTLS],
)
def test_ioctl_numbers_match_spec_literals_and_ioc_arithmetic(number, literal, parts):
    direction, type_, nr, size = parts
    assert number == literal
    assert ioctl.ioc(ioctl.IocDir(direction), type_, nr, size) == literal
    # and the same arithmetic written out, as <linux/ioctl.h> does it
    assert (direction << 30) | (size << 16) | (type_ << 8) | nr == literal


def test_ioctl_signed_and_unsigned_decimal_forms():
    assert ioctl.G8cIoctl.INFO == 3_230_165_136
    assert ioctl.G8cIoctl.INFO - (1 << 32) == -1_064_802_160
    assert ioctl.LegacyIoctl.ABORT == 3_223_357_923


def test_argument_sizes_used_in_ioctl_numbers_match_the_structs():
    assert _ffi.ffi.sizeof("struct homa_abort_args") == ioctl.ABORT_ARGS_SIZE
    assert g8.ffi.sizeof("struct homa_info") == ioctl.INFO_ARGS_SIZE


def test_no_homaiocreply_constant_exists():
    # go-homa's HOMAIOCREPLY (0xC01089E2) was never handled by any kernel.
    names = {
        m.name for e in (ioctl.LegacyIoctl, ioctl.G8bIoctl, ioctl.G8cIoctl) for m in e
    }
    assert "REPLY" not in names
    assert 0xC01089E2 not in {int(m) for e in (ioctl.LegacyIoctl,) for m in e}


def test_ioc_rejects_out_of_range_fields():
    with pytest.raises(ValueError, match="out of range"):
        ioctl.ioc(ioctl.IocDir.READ_WRITE, 0x68, 0x90, 1 << 14)


def test_constants():
    assert abi.HOMA_MAX_MESSAGE_LENGTH == 1_000_000
    assert abi.HOMA_BPAGE_SIZE == 65_536 and abi.HOMA_BPAGE_SHIFT == 16
    assert abi.HOMA_MAX_BPAGES == 16
    assert abi.HOMA_MIN_DEFAULT_PORT == 32_768
    assert abi.IpProto.HOMA == 146 and abi.IpProto.HOMA_PRE_2024 == 253
    assert abi.SockOpt.RCVBUF == 10 and abi.SockOpt.SERVER == 11
    assert abi.SendmsgFlag.PRIVATE == 1
    assert (
        abi.RecvmsgFlag.REQUEST,
        abi.RecvmsgFlag.RESPONSE,
        abi.RecvmsgFlag.NONBLOCKING,
    ) == (1, 2, 4)


def test_generation_namespaces():
    assert (g8.ABI.name, g8.ABI.protocol, g8.ABI.recv_controllen) == ("G8", 146, 88)
    assert (g4a.ABI.name, g4a.ABI.protocol, g4a.ABI.recv_controllen) == (
        "G4a",
        253,
        120,
    )
    assert g8.ABI.server_option == 11 and g4a.ABI.server_option is None
    assert g4a.ABI.recv_flags == 3 and g4a.ABI.nonblocking_flag == 4
    assert not g8.ABI.recv_flags and not g8.ABI.nonblocking_flag
    # same struct name, different namespaces, different layouts
    assert g8.ffi.sizeof("struct homa_recvmsg_args") != g4a.ffi.sizeof(
        "struct homa_recvmsg_args"
    )
