"""What a peer's call start may carry, checked as grpcio checks it: metadata
(``metadata.check_incoming``, ``for_application``, ``metadata_size_limit``) and the
largest Homa message it announces (``_stream.send_limit``'s floor).

Everything here is a remote's input: a refusal must name the problem, come with
grpcio's status code, stay short, and never carry a raw CR/LF back or into a log.
"""

from __future__ import annotations

import pytest

from homarpc._framing import Flags, Frame, decode_frame, encode_frame
from homarpc._stream import message_frames, send_limit
from homarpc.metadata import (
    DEFAULT_MAX_METADATA_SIZE,
    Metadatum,
    check_incoming,
    for_application,
    metadata_size,
    metadata_size_limit,
)
from homarpc.status import StatusCode
from homarpc.transport import MAX_MESSAGE_LENGTH

BIG = 4 * 1024 * 1024 + 64 * 1024


def _through_the_wire(metadata: tuple[Metadatum, ...]) -> tuple[Metadatum, ...]:
    """``metadata`` as a server finds it in a decoded call start."""
    start = Frame(1, 1, Flags.POLL, "/s.S/M", 1.0, metadata)
    decoded = decode_frame(encode_frame(start)).metadata
    assert decoded is not None
    return decoded


# --- what passes ----------------------------------------------------------------------


def test_no_metadata_and_ordinary_metadata_pass():
    assert check_incoming(None) is None
    assert check_incoming(()) is None
    ordinary = (
        Metadatum("authorization", "Bearer abc.def-ghi_jkl"),
        Metadatum("x-request-id", "7f3a"),
        Metadatum("trace-bin", b"\x00\r\n\xff"),  # -bin: any bytes at all
        Metadatum("x-request-id", "duplicate keys are kept"),
    )
    assert check_incoming(_through_the_wire(ordinary)) is None


def test_every_printable_ascii_character_is_a_legal_text_value():
    printable = "".join(map(chr, range(0x20, 0x7F)))
    assert check_incoming([("k", printable)]) is None


def test_key_characters_are_exactly_grpcs():
    assert check_incoming([("az09-_.", "v")]) is None
    for char in map(chr, range(128)):
        legal = char in "abcdefghijklmnopqrstuvwxyz0123456789-_."
        assert (check_incoming([(f"k{char}", "v")]) is None) == legal, repr(char)


# --- illegal keys and values: INTERNAL, like grpcio -----------------------------------


@pytest.mark.parametrize(
    ("key", "details"),
    [
        ("", "Metadata keys cannot be zero length"),
        ("X-Upper", "Illegal header key: X-Upper"),
        (":path", "Illegal header key: :path"),  # pseudo-headers are HTTP/2's alone
        ("with space", "Illegal header key: with space"),
        ("a/b", "Illegal header key: a/b"),
        ("nul\x00key", "Illegal header key: nul\\x00key"),
        ("split\r\nx-evil: 1", "Illegal header key: split\\r\\nx-evil: 1"),
    ],
)
def test_an_illegal_key_is_refused_internal_and_named_escaped(key, details):
    refusal = check_incoming([("fine", "v"), (key, "v")])
    assert refusal is not None
    assert refusal.code is StatusCode.INTERNAL
    assert refusal.details == details


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\x00b", "tab\there", "del\x7f"])
def test_a_text_value_with_control_characters_is_refused(value):
    refusal = check_incoming(_through_the_wire((Metadatum("x-k", value),)))
    assert refusal is not None
    assert refusal.code is StatusCode.INTERNAL
    assert refusal.details == "Illegal header value: x-k"


def test_a_long_illegal_key_is_cut_short_in_the_details():
    refusal = check_incoming([("K" * 5000, "v")])
    assert refusal is not None
    assert len(refusal.details) < 100
    assert refusal.details.endswith("...")


# --- size: RESOURCE_EXHAUSTED at gRPC's hard limit ------------------------------------


def test_size_counts_key_value_and_32_per_entry_as_grpc_does():
    # grpc/grpc#37852 shows grpcio counting "grpc-status: 0" as 44 B (11 + 1 + 32).
    assert metadata_size([("grpc-status", "0")]) == 44
    assert metadata_size([("a", b"xyz"), ("bb", "")]) == (1 + 3 + 32) + (2 + 0 + 32)


def test_metadata_one_byte_under_the_limit_passes_and_at_the_limit_is_refused():
    value_for = DEFAULT_MAX_METADATA_SIZE - 32 - len("k")  # total == the limit
    assert check_incoming([("k", "v" * (value_for - 1))]) is None
    refusal = check_incoming([("k", "v" * value_for)])
    assert refusal is not None
    assert refusal.code is StatusCode.RESOURCE_EXHAUSTED
    assert refusal.details.startswith(
        "received metadata size exceeds hard limit (16384 vs. 16384)"
    )


def test_a_one_megabyte_value_is_refused_naming_its_key():
    huge = _through_the_wire((Metadatum("x-blob-bin", bytes(1_000_000)),))
    refusal = check_incoming(huge)
    assert refusal is not None
    assert refusal.code is StatusCode.RESOURCE_EXHAUSTED
    assert "(1000042 vs. 16384)" in refusal.details
    assert "x-blob-bin:1000042B" in refusal.details


def test_fifty_thousand_entries_are_refused_with_short_details():
    many = [(f"k{i}", "") for i in range(50_000)]
    refusal = check_incoming(many)
    assert refusal is not None
    assert refusal.code is StatusCode.RESOURCE_EXHAUSTED
    assert "50000 entries" in refusal.details
    assert len(refusal.details) < 300  # it travels back as status details


def test_size_is_judged_before_keys_so_a_flood_of_bad_keys_costs_one_pass():
    refusal = check_incoming([("BAD", "")] * 1000)
    assert refusal is not None
    assert refusal.code is StatusCode.RESOURCE_EXHAUSTED


def test_the_limit_is_a_parameter():
    assert check_incoming([("k", "v" * 100)], limit=134) is None
    refusal = check_incoming([("k", "v" * 100)], limit=133)
    assert refusal is not None and "(133 vs. 133)" in refusal.details


@pytest.mark.parametrize(
    ("options", "limit"),
    [
        (None, 16384),  # gRPC core's default hard limit
        ([("grpc.max_metadata_size", 8192)], 16384),  # 1.25 x soft, at least 16 KiB
        ([("grpc.max_metadata_size", 40_000)], 50_000),
        ([("grpc.absolute_max_metadata_size", 4096)], 4096),
        (
            [
                ("grpc.max_metadata_size", 40_000),
                ("grpc.absolute_max_metadata_size", 9),
            ],
            9,
        ),
        ([("grpc.unrelated", "x")], 16384),
    ],
)
def test_the_limit_follows_grpcs_options(options, limit):
    assert metadata_size_limit(options) == limit


def test_a_limit_option_that_is_not_an_integer_is_an_error():
    with pytest.raises(ValueError, match="max_metadata_size"):
        metadata_size_limit([("grpc.max_metadata_size", "16k")])


# --- reserved keys: gRPC keeps them, the handler never sees them ----------------------


def test_keys_grpc_keeps_to_itself_do_not_reach_the_application():
    sent = (
        Metadatum("grpc-timeout", "1S"),
        Metadatum("x-mine", "1"),
        Metadatum("grpc-status", "0"),
        Metadatum("content-type", "application/grpc"),
        Metadatum("te", "trailers"),
        Metadatum("grpc-message", "hi"),
        Metadatum("grpc-encoding", "gzip"),
        Metadatum("grpc-accept-encoding", "gzip"),
        Metadatum("grpc-trace-bin", b"\x00"),
        Metadatum("user-agent", "grpc-python/1.60"),  # grpcio shows this one
        Metadatum("grpc-previous-rpc-attempts", "1"),  # ... and this one
        Metadatum("grpc-status-details-bin", b"\x08\x05"),  # ... and this one
        Metadatum("grpc-custom", "unknown grpc- keys pass, as in grpcio"),
    )
    assert check_incoming(sent) is None
    assert [key for key, _ in for_application(sent)] == [
        "x-mine",
        "user-agent",
        "grpc-previous-rpc-attempts",
        "grpc-status-details-bin",
        "grpc-custom",
    ]


def test_metadata_without_reserved_keys_is_handed_on_as_is():
    entries = (Metadatum("a", "1"), Metadatum("b-bin", b"2"))
    assert for_application(entries) is entries
    assert for_application(()) == ()


# --- MAX_MESSAGE: an announcement below the kernel's limit counts as none --------------


@pytest.mark.parametrize("announced", [0, 1, 64, 999_999])
def test_a_tiny_max_message_announcement_is_raised_to_the_kernels_limit(announced):
    assert send_limit(BIG, announced) == MAX_MESSAGE_LENGTH
    assert send_limit(500_000, announced) == 500_000  # still never more than ours


def test_a_call_start_announcing_one_byte_cannot_make_responses_unsendable():
    start = Frame(7, 1, Flags.POLL, "/s.S/M", 1.0, (), max_message=1)
    announced = decode_frame(encode_frame(start)).max_message
    assert announced == 1  # decoded faithfully; the sender decides what it means
    limit = send_limit(BIG, announced)
    assert limit == MAX_MESSAGE_LENGTH
    response = Frame(7, 0, 0, metadata=(Metadatum("x", "y"),), status=(0, ""))
    frames = message_frames(response, bytes(64 * 1024), 1, limit, Flags.EOS)
    assert len(frames) == 1  # 64 KiB goes in one message, as for any peer


def test_announcements_above_the_kernels_limit_still_count():
    assert send_limit(BIG, 2_000_000) == 2_000_000
    assert send_limit(BIG, MAX_MESSAGE_LENGTH) == MAX_MESSAGE_LENGTH
    assert send_limit(BIG, None) == MAX_MESSAGE_LENGTH
