"""Unit tests of the shared-memory object store's allocator and object table
(raysim/runtime/raylet/object_store.py). No process or socket is started: ``Allocator`` is pure
bookkeeping, and ``ObjectStore`` only opens an anonymous memfd, closed after each test."""

import mmap

import pytest

from raysim.runtime.common.errors import RaySimInternalError
from raysim.runtime.raylet.object_store import Allocator, ObjectStore, StoreFull

PAGE = mmap.PAGESIZE


# -- Allocator ---------------------------------------------------------------------------------

def test_allocate_first_fit_returns_aligned_offsets_and_counts_used():
    a = Allocator(4096)
    assert a.allocate(100, 64) == 0
    assert a.allocate(10, 64) == 128  # 100 rounded up to the next 64-byte boundary
    assert a.used == 110  # used counts requested bytes, not the alignment padding
    assert a.largest_free() == 4096 - 138


def test_allocate_zero_bytes_takes_one_byte():
    a = Allocator(256)
    assert a.allocate(0, 64) == 0
    assert a.used == 1
    assert a.allocate(1, 64) == 64


def test_alignment_padding_stays_free_for_smaller_objects():
    a = Allocator(4 * PAGE)
    assert a.allocate(10, 64) == 0
    assert a.allocate(PAGE, PAGE) == PAGE  # page-aligned: skips the rest of page 0
    assert a.allocate(100, 64) == 64  # first fit reuses the padding left before it


def test_allocate_returns_none_when_no_block_is_large_enough():
    a = Allocator(1024)
    assert a.allocate(1024, 64) == 0
    assert a.allocate(1, 64) is None
    assert a.used == 1024 and a.largest_free() == 0


def test_fragmented_space_refuses_request_larger_than_any_hole():
    a = Allocator(3 * 256)
    x, y, z = (a.allocate(256, 64) for _ in range(3))
    a.free(x, 256)
    a.free(z, 256)
    assert a.used == 256 and a.largest_free() == 256
    assert a.allocate(512, 64) is None  # 512 bytes are free, but not in one piece
    assert a.allocate(256, 64) == 0


def test_free_coalesces_with_both_neighbours():
    a = Allocator(3 * 256)
    x, y, z = (a.allocate(256, 64) for _ in range(3))
    a.free(x, 256)
    a.free(z, 256)
    a.free(y, 256)  # joins the free blocks before and after it
    assert a.used == 0
    assert a.largest_free() == 3 * 256
    assert a.allocate(3 * 256, 64) == 0


def test_freed_space_is_reused_at_the_same_offset():
    a = Allocator(4096)
    a.allocate(64, 64)
    b = a.allocate(200, 64)
    a.allocate(64, 64)
    a.free(b, 200)
    assert a.allocate(150, 64) == b


def test_double_free_of_an_allocation_raises_internal_error():
    a = Allocator(1024)
    x = a.allocate(100, 64)
    a.free(x, 100)
    with pytest.raises(RaySimInternalError, match="double free"):
        a.free(x, 100)
    assert a.used == 0


def test_free_inside_an_already_free_block_is_rejected():
    a = Allocator(1024)
    with pytest.raises(RaySimInternalError, match="double free at offset 10"):
        a.free(10, 5)  # all of [0, 1024) is free: this range was never allocated
    assert a.used == 0


# -- ObjectStore -------------------------------------------------------------------------------

@pytest.fixture
def store():
    s = ObjectStore(capacity=8 * PAGE, page_align_threshold=PAGE)
    yield s
    s.close()


def test_created_object_is_invisible_until_sealed(store):
    entry = store.create("obj1", 100, owner="w1")
    assert (entry.offset, entry.size, entry.owner, entry.sealed) == (0, 100, "w1", False)
    assert store.lookup("obj1") is None
    assert store.seal("obj1") is entry and entry.sealed
    assert store.lookup("obj1") is entry
    assert store.used == 100


def test_large_objects_are_page_aligned_small_ones_64_byte_aligned(store):
    store.create("small", 10, "w")
    big = store.create("big", PAGE, "w")
    small2 = store.create("small2", 10, "w")
    assert big.offset == PAGE
    assert small2.offset == 64


def test_create_twice_and_seal_unknown_raise_internal_error(store):
    store.create("obj1", 10, "w")
    with pytest.raises(RaySimInternalError):
        store.create("obj1", 10, "w")
    with pytest.raises(RaySimInternalError):
        store.seal("nope")


def test_store_full_reports_request_capacity_and_used(store):
    store.create("a", 6 * PAGE, "w")
    with pytest.raises(StoreFull) as info:
        store.create("b", 3 * PAGE, "w")
    err = info.value
    assert (err.requested, err.capacity, err.used) == (3 * PAGE, 8 * PAGE, 6 * PAGE)
    assert "b" not in store.entries


def test_get_or_wait_calls_back_at_seal_or_at_once_if_sealed(store):
    seen = []
    store.get_or_wait("obj1", seen.append)
    store.create("obj1", 10, "w")
    assert seen == []
    entry = store.seal("obj1")
    assert seen == [entry]
    store.get_or_wait("obj1", seen.append)
    assert seen == [entry, entry]


def test_delete_frees_memory_of_unpinned_object(store):
    store.create("a", 100, "w")
    store.seal("a")
    assert store.delete("a").object_id == "a"
    assert store.used == 0 and store.lookup("a") is None
    assert store.delete("a") is None


def test_pinned_object_deleted_keeps_its_memory_until_last_release(store):
    entry = store.create("a", 100, "w")
    store.seal("a")
    store.pin(entry, "driver:1")
    store.pin(entry, "worker:2")
    store.delete("a")
    assert store.lookup("a") is None and "a" not in store.entries
    assert store.used == 100 and store.immovable_bytes() == 100
    assert store.create("b", 10, "w").offset != entry.offset  # not reused while mapped
    store.release("a", "driver:1")
    assert store.used == 110
    store.release_client("worker:2")  # a dead client gives back what it held
    assert store.used == 10 and store.immovable_bytes() == 10  # "b" is still unsealed


def test_release_of_unknown_pin_is_ignored(store):
    entry = store.create("a", 100, "w")
    store.seal("a")
    store.pin(entry, "driver:1")
    store.release("a", "worker:9")
    store.release("zzz", "driver:1")
    assert entry.pins == 1


def test_abort_unsealed_frees_only_the_dead_writers_unsealed_objects(store):
    store.create("sealed", 10, "dead")
    store.seal("sealed")
    store.create("half", 10, "dead")
    store.create("other", 10, "alive")
    aborted = store.abort_unsealed("dead")
    assert [e.object_id for e in aborted] == ["half"]
    assert sorted(store.entries) == ["other", "sealed"]


def test_movable_lists_sealed_unpinned_objects_least_recently_used_first(store):
    for oid in ("a", "b", "c", "unsealed"):
        store.create(oid, 10, "w")
    for oid in ("a", "b", "c"):
        store.seal(oid)
    store.pin(store.entries["a"], "driver:1")  # a is used last, and pinned
    store.pin(store.entries["b"], "driver:1")
    store.release("b", "driver:1")  # b used after c, no longer pinned
    assert [e.object_id for e in store.movable()] == ["c", "b"]


def test_snapshot_and_memory_view_of_an_object(store):
    entry = store.create("a", 5, "w1")
    store.memory(entry)[:] = b"hello"
    store.seal("a")
    assert bytes(store.memory(entry)) == b"hello"
    assert store.snapshot() == {"capacity": 8 * PAGE, "used": 5, "objects": {
        "a": {"size": 5, "offset": 0, "owner": "w1", "sealed": True}}}
