"""The node's shared-memory object store (Ray's plasma store), the server side.

Seed, phase 1: "Object Store (one per node): shared memory region ... for zero-copy data
sharing". Phase 2: the driver writes the serialized model into it and it returns an ObjectRef.

Runs in: the raylet process, as in Ray 2.x, where plasma is a thread of the raylet.

How it works, as plasma does:

* One memory region per node: an anonymous ``memfd`` of ``object_store_memory`` bytes. Each
  process on the node receives its file descriptor (inherited by forked workers, passed to
  the driver over the Unix socket with SCM_RIGHTS) and maps it once. Because the region has
  no name in /dev/shm, the kernel frees it when the last process holding it exits: a
  SIGKILLed session cannot leak it.
* Objects are written once: ``create`` reserves space and hands the writer an offset; the
  writer copies the serialized bytes straight into shared memory; ``seal`` makes the object
  immutable and visible. Readers never see a half-written object.
* Space is managed by a first-fit allocator. Freed space is not returned to the kernel, so a
  writer that reuses it finds its pages already mapped (Ray's dlmalloc arena behaves alike).

Differences from Ray: plasma evicts and spills when full; this store reports the error
(spilling comes with fault handling). Objects are looked up by their id alone: one store per
node, shared by every process on it, so nothing is "replicated" between workers of one node,
although the founding document says so (ACCURACY.md #6).

Trace events: ``store.created``, ``object_store.create``, ``object_store.sealed``,
``object_store.deleted``.
"""

from __future__ import annotations

import bisect
import dataclasses
import mmap
import os
from typing import Callable

from raysim.runtime.errors import RaySimInternalError

_SMALL_ALIGN = 64
_PAGE = mmap.PAGESIZE


class StoreFull(Exception):
    def __init__(self, requested: int, capacity: int, used: int) -> None:
        super().__init__(requested, capacity, used)
        self.requested, self.capacity, self.used = requested, capacity, used


class Allocator:
    """First-fit over a sorted free list, coalescing neighbours on free.

    Invariant: ``_starts`` is sorted, free blocks never touch (they would have been merged),
    and every byte of [0, capacity) is either in one free block or in one allocation.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._starts: list[int] = [0]
        self._sizes: list[int] = [capacity]
        self.used = 0

    def allocate(self, size: int, align: int) -> int | None:
        size = max(size, 1)
        for i, (start, free) in enumerate(zip(self._starts, self._sizes)):
            offset = (start + align - 1) & ~(align - 1)
            pad = offset - start
            if free - pad < size:
                continue
            # Take [offset, offset+size) out of block i; keep the pad and the tail free.
            end = offset + size
            tail = start + free - end
            del self._starts[i], self._sizes[i]
            if tail:
                self._starts.insert(i, end)
                self._sizes.insert(i, tail)
            if pad:
                self._starts.insert(i, start)
                self._sizes.insert(i, pad)
            self.used += size
            return offset
        return None

    def free(self, offset: int, size: int) -> None:
        size = max(size, 1)
        i = bisect.bisect_left(self._starts, offset)
        if i < len(self._starts) and self._starts[i] < offset + size:
            raise RaySimInternalError(f"double free at offset {offset}")
        self._starts.insert(i, offset)
        self._sizes.insert(i, size)
        self.used -= size
        # Merge with the next block, then with the previous one.
        if i + 1 < len(self._starts) and offset + size == self._starts[i + 1]:
            self._sizes[i] += self._sizes.pop(i + 1)
            self._starts.pop(i + 1)
        if i > 0 and self._starts[i - 1] + self._sizes[i - 1] == offset:
            self._sizes[i - 1] += self._sizes.pop(i)
            self._starts.pop(i)

    def largest_free(self) -> int:
        return max(self._sizes, default=0)


@dataclasses.dataclass
class StoreEntry:
    object_id: str
    offset: int
    size: int
    owner: str  # the worker id of the process that created it
    sealed: bool = False


class ObjectStore:
    """The plasma-like table of objects in this node's shared memory."""

    def __init__(self, capacity: int, page_align_threshold: int) -> None:
        self.capacity = capacity
        self.page_align_threshold = page_align_threshold
        self.fd = os.memfd_create("raysim-object-store", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, capacity)
        self.allocator = Allocator(capacity)
        self.entries: dict[str, StoreEntry] = {}
        # Callbacks waiting for an object to be sealed (get before the object exists).
        self._waiters: dict[str, list[Callable[[StoreEntry], None]]] = {}

    def create(self, object_id: str, size: int, owner: str) -> StoreEntry:
        if object_id in self.entries:
            raise RaySimInternalError(f"object {object_id} created twice")
        align = _PAGE if size >= self.page_align_threshold else _SMALL_ALIGN
        offset = self.allocator.allocate(size, align)
        if offset is None:
            raise StoreFull(size, self.capacity, self.allocator.used)
        entry = StoreEntry(object_id, offset, size, owner)
        self.entries[object_id] = entry
        return entry

    def seal(self, object_id: str) -> StoreEntry:
        entry = self.entries.get(object_id)
        if entry is None:
            raise RaySimInternalError(f"seal of unknown object {object_id}")
        entry.sealed = True
        for callback in self._waiters.pop(object_id, ()):
            callback(entry)
        return entry

    def get_or_wait(self, object_id: str, callback: Callable[[StoreEntry], None]) -> None:
        """Call back now if the object is sealed here, else once it is."""
        entry = self.entries.get(object_id)
        if entry is not None and entry.sealed:
            callback(entry)
        else:
            self._waiters.setdefault(object_id, []).append(callback)

    def lookup(self, object_id: str) -> StoreEntry | None:
        entry = self.entries.get(object_id)
        return entry if entry is not None and entry.sealed else None

    def delete(self, object_id: str) -> StoreEntry | None:
        entry = self.entries.pop(object_id, None)
        if entry is not None:
            self.allocator.free(entry.offset, entry.size)
        return entry

    @property
    def used(self) -> int:
        return self.allocator.used

    def snapshot(self) -> dict:
        return {
            "capacity": self.capacity,
            "used": self.used,
            "objects": {oid: {"size": e.size, "offset": e.offset, "owner": e.owner,
                              "sealed": e.sealed}
                        for oid, e in self.entries.items()},
        }

    def close(self) -> None:
        os.close(self.fd)
