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
* Readers *pin* what they map, as plasma counts each client's ``Get`` until its ``Release``:
  an object is pinned from the raylet's answer saying where it is (``get_objects``, or an
  argument's location in ``push_task``) until the reader sends ``release_objects`` (at once
  for a value it copied, when the last zero-copy view is garbage otherwise). A pinned object
  never moves; what a dead client held is released with it. An object freed (or lost)
  while pinned leaves the table at once, but its memory is reused only once the last pin
  is released: a zero-copy view must never see another object's bytes. An object's owner
  reads it without asking, at the place it learned when the object was stored: the entry
  records that *lease*, which the raylet takes back before moving the object.

When the store is full, the raylet evicts and spills unpinned objects to disk and restores
them when read (``local_object_manager.py``); this module only keeps the table, the pins, the
leases and the least-recently-used order that chooses what goes first. Objects are looked up
by their id alone: one store per node, shared by every process on it, so nothing is
"replicated" between workers of one node, although the founding document says so
(docs/modern-ray.md#no-replication).

A task that runs again after its worker died may write a return value its first attempt
had already sealed: the store then answers that the object exists, and the writer keeps the
sealed copy (plasma's ObjectExists). What a dead writer left unsealed is freed.

Trace events: ``store.created``, ``object_store.create``, ``object_store.sealed``,
``object_store.deleted``.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import mmap
import os
from typing import Callable

from raysim.runtime.common.errors import RaySimInternalError

_SMALL_ALIGN = 64
_PAGE = mmap.PAGESIZE


class StoreFull(Exception):
    """No room for ``requested`` bytes. ``immovable`` counts the bytes of objects that can be
    neither evicted nor spilled (pinned by readers or still being written); ``reason`` says
    why no room could be made, once eviction and spilling have been tried."""

    def __init__(self, requested: int, capacity: int, used: int, immovable: int = 0,
                 largest_free: int = 0, reason: str = "") -> None:
        super().__init__(requested, capacity, used)
        self.requested, self.capacity, self.used = requested, capacity, used
        self.immovable, self.largest_free, self.reason = immovable, largest_free, reason


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
        # Invariant: free blocks never overlap. The range must end before the next free
        # block starts and begin after the previous one ends, or it was (partly) free.
        if (i < len(self._starts) and self._starts[i] < offset + size) or \
                (i > 0 and self._starts[i - 1] + self._sizes[i - 1] > offset):
            raise RaySimInternalError(f"double free at offset {offset} (size {size})")
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
    pins: int = 0  # readers that may have it mapped now; a pinned object never moves
    last_used: int = 0  # when it was created or last handed to a reader (for LRU order)
    # The owner that knows its place and reads it without asking (local_object_manager.py);
    # lease_kept: the owner refused to give the lease back (it has the object mapped).
    lease: str | None = None
    lease_kept: bool = False
    # A secondary copy, pulled from another node (object_manager.py): the first to go when
    # room is needed, since the primary is still there.
    copy: bool = False


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
        # Pins by client ("driver:<id>", "worker:<id>") -> {object id: count}, so that a
        # client that dies can give back what it held (plasma keeps the same per client).
        self._pins: dict[str, dict[str, int]] = {}
        # Objects discarded while pinned: their memory is freed with their last pin.
        self._discarded: dict[str, StoreEntry] = {}
        self._clock = itertools.count(1)
        # The raylet's own mapping of the store, made on first use: only spilling and
        # restoring read or write object bytes in this process.
        self._map: mmap.mmap | None = None
        self._view: memoryview | None = None

    def create(self, object_id: str, size: int, owner: str) -> StoreEntry:
        if object_id in self.entries:
            raise RaySimInternalError(f"object {object_id} created twice")
        align = _PAGE if size >= self.page_align_threshold else _SMALL_ALIGN
        offset = self.allocator.allocate(size, align)
        if offset is None:
            raise StoreFull(size, self.capacity, self.allocator.used)
        entry = StoreEntry(object_id, offset, size, owner, last_used=next(self._clock))
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

    def stop_waiting(self, object_id: str) -> None:
        """Nobody will call back for this object: it can never be sealed (it is lost)."""
        self._waiters.pop(object_id, None)

    def lookup(self, object_id: str) -> StoreEntry | None:
        entry = self.entries.get(object_id)
        return entry if entry is not None and entry.sealed else None

    def abort_unsealed(self, owner: str) -> list[StoreEntry]:
        """Free what a dead writer created but never sealed (plasma aborts a disconnected
        client's unsealed objects too), so that a retry of its task can create them again."""
        dead = [e for e in self.entries.values() if e.owner == owner and not e.sealed]
        for entry in dead:
            self.delete(entry.object_id)
        return dead

    def abort_unsealed_object(self, object_id: str) -> list[StoreEntry]:
        """Free one object created but never sealed (a pull from another node that failed)."""
        entry = self.entries.get(object_id)
        if entry is None or entry.sealed:
            return []
        self.delete(object_id)
        return [entry]

    def delete(self, object_id: str) -> StoreEntry | None:
        """Remove an object no reader has pinned (evicted, spilled, aborted) and free its
        memory; a pinned one is discarded instead (``discard``)."""
        entry = self.entries.get(object_id)
        if entry is not None and entry.pins:
            return self.discard(object_id)
        entry = self.entries.pop(object_id, None)
        if entry is not None:
            self.allocator.free(entry.offset, entry.size)
        return entry

    def discard(self, object_id: str) -> StoreEntry | None:
        """The object is freed or lost: nobody can find it from now on. Its memory goes now
        if no reader has it pinned, else with the last pin (a reader may still have it
        mapped: its owner died under it, say)."""
        entry = self.entries.pop(object_id, None)
        if entry is None:
            return None
        if entry.pins:
            self._discarded[object_id] = entry
        else:
            self.allocator.free(entry.offset, entry.size)
        return entry

    def _unpinned(self, object_id: str, count: int) -> None:
        entry = self.entries.get(object_id)
        if entry is not None:
            entry.pins -= count
            return
        entry = self._discarded.get(object_id)
        if entry is not None:
            entry.pins -= count
            if entry.pins <= 0:
                del self._discarded[object_id]
                self.allocator.free(entry.offset, entry.size)

    # -- pins ----------------------------------------------------------------------------------

    def pin(self, entry: StoreEntry, client: str, count: int = 1) -> None:
        entry.pins += count
        entry.last_used = next(self._clock)
        held = self._pins.setdefault(client, {})
        held[entry.object_id] = held.get(entry.object_id, 0) + count

    def release(self, object_id: str, client: str) -> None:
        held = self._pins.get(client)
        if not held or object_id not in held:
            return  # freed since, or already released with its client
        held[object_id] -= 1
        if not held[object_id]:
            del held[object_id]
        self._unpinned(object_id, 1)

    def release_client(self, client: str) -> None:
        """A client went away: nothing it mapped is pinned by it any more."""
        for object_id, count in self._pins.pop(client, {}).items():
            self._unpinned(object_id, count)

    def movable(self) -> list[StoreEntry]:
        """Sealed objects no reader has mapped, least recently used first."""
        return sorted((e for e in self.entries.values() if e.sealed and not e.pins),
                      key=lambda e: e.last_used)

    def immovable_bytes(self) -> int:
        return sum(e.size for e in self.entries.values()
                   if e.pins or not e.sealed or (e.lease and e.lease_kept)) + \
            sum(e.size for e in self._discarded.values())

    def memory(self, entry: StoreEntry) -> memoryview:
        """The bytes of an object, seen from the raylet (for spilling and restoring)."""
        if self._view is None:
            self._map = mmap.mmap(self.fd, self.capacity)
            self._view = memoryview(self._map)
        return self._view[entry.offset:entry.offset + entry.size]

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
        if self._view is not None:
            self._view.release()
            self._map.close()
        os.close(self.fd)
