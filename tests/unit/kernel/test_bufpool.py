"""BufferPool: sizing, registration, and the bpage ledger (pure apart from mmap)."""

from __future__ import annotations

import struct

import pytest

from homarpc.transport.errors import LocalProtocolError, RemoteProtocolError
from homarpc.transport.kernel import BufferPool
from homarpc.transport.kernel.bufpool import (
    MAX_POOL_BYTES,
    default_pool_bytes,
    minimum_pool_bytes,
    possible_cpus,
)

BPAGE = 65_536


@pytest.fixture
def pool():
    made = BufferPool(64 * BPAGE)
    yield made
    made.close()


def test_region_is_page_aligned_and_whole_bpages(pool):
    assert pool.base % 4096 == 0
    assert pool.size == 64 * BPAGE
    odd = BufferPool(3 * BPAGE + 1)
    assert odd.size == 4 * BPAGE
    odd.close()


def test_sizes_outside_the_kernel_limits_are_refused():
    with pytest.raises(ValueError, match="out of range"):
        BufferPool(BPAGE)
    with pytest.raises(ValueError, match="4 GiB"):
        BufferPool(MAX_POOL_BYTES + BPAGE)


def test_default_size_follows_the_kernels_minimum():
    assert minimum_pool_bytes(16) == 3_048_576  # spec §1.2 examples
    assert minimum_pool_bytes(128) == 10_388_608
    assert minimum_pool_bytes(512) == 35_554_432
    assert default_pool_bytes(2) == 1000 * BPAGE
    big = default_pool_bytes(2048)
    assert big > minimum_pool_bytes(2048) and big % BPAGE == 0


def test_possible_cpus_reads_the_kernels_list(tmp_path):
    listing = tmp_path / "possible"
    listing.write_text("0-3,8-11\n")
    assert possible_cpus(listing) == 12
    listing.write_text("0\n")
    assert possible_cpus(listing) == 1
    assert possible_cpus(tmp_path / "missing") >= 1


def test_register_passes_start_and_length():
    seen = []

    class Sock:
        def setsockopt(self, level, name, value):
            seen.append((level, name, struct.unpack("<QQ", value)))

    made = BufferPool(4 * BPAGE)
    made.register(Sock(), 146)
    made.close()
    assert seen == [(146, 10, (made.base, 4 * BPAGE))]


def test_handbacks_are_taken_at_most_16_at_a_time_in_order(pool):
    offsets = [i * BPAGE for i in range(40)]
    pool.adopt(offsets)
    pool.give_back(offsets)
    batches = [pool.take_handbacks() for _ in range(3)]
    assert [len(b) for b in batches] == [16, 16, 8]
    assert [offset for batch in batches for offset in batch] == offsets
    assert pool.take_handbacks(99) == []


def test_requeued_handbacks_go_first(pool):
    pool.adopt([0, BPAGE, 2 * BPAGE])
    pool.give_back([0, BPAGE, 2 * BPAGE])
    taken = pool.take_handbacks(2)
    pool.requeue(taken)
    assert pool.take_handbacks() == [0, BPAGE, 2 * BPAGE]


def test_a_bpage_cannot_be_given_back_twice_or_unowned(pool):
    pool.adopt([24])
    pool.give_back([24])
    with pytest.raises(LocalProtocolError, match="released twice"):
        pool.give_back([24])
    assert pool.pending_count == 1


def test_adopting_an_offset_outside_the_pool_or_twice_is_a_kernel_mismatch(pool):
    with pytest.raises(RemoteProtocolError, match="outside the pool"):
        pool.adopt([pool.size])
    pool.adopt([0])
    with pytest.raises(RemoteProtocolError):
        pool.adopt([0])


def test_one_chunk_message_is_a_zero_copy_view_released_once(pool):
    pool._view[100:105] = b"hello"
    pool.adopt([100])
    payload, release = pool.read([100], 5)
    assert isinstance(payload, memoryview) and bytes(payload) == b"hello"
    pool._view[100:101] = b"j"
    assert bytes(payload) == b"jello"  # really the region, not a copy
    release()
    with pytest.raises(ValueError):
        bytes(payload)  # a released payload cannot show reused bytes
    assert pool.take_handbacks() == [100]


def test_multi_chunk_message_is_copied_and_handed_back_at_once(pool):
    length = 1_000_000
    offsets = [i * BPAGE for i in range(15)] + [20 * BPAGE + 24]  # unaligned tail
    data = bytes(range(256)) * (length // 256) + bytes(length % 256)
    for i, offset in enumerate(offsets):
        chunk = data[i * BPAGE : (i + 1) * BPAGE]
        pool._view[offset : offset + len(chunk)] = chunk
    pool.adopt(offsets)
    payload, release = pool.read(offsets, length)
    assert payload == data and release is None
    assert pool.take_handbacks() == offsets and pool.owned_count == 0


def test_chunk_count_must_match_the_length(pool):
    pool.adopt([0, BPAGE])
    with pytest.raises(RemoteProtocolError, match="cannot span"):
        pool.read([0, BPAGE], 100)


def test_close_with_a_live_view_keeps_the_mapping_until_it_dies():
    made = BufferPool(4 * BPAGE)
    made.adopt([0])
    payload, _ = made.read([0], 10)
    made.close()
    made.close()  # idempotent
    assert bytes(payload) == bytes(10)  # still mapped: no crash, no garbage
