"""The objects a process owns, and waiting for them (Ray's in-process memory store).

Seed, phase 4 step 5: "Small result (<100KB): sends directly back to driver's memory".
That memory is this table: for each object the process owns (the returns of the tasks it
submitted, the objects it put) it records whether the value is still being computed, is
here inline (its serialized bytes), is in the node's store (where), or failed (the error
``get`` raises). Ray's CoreWorkerMemoryStore plays the same part, with "in plasma" markers
for objects in the shared-memory store.

Runs in: the driver and workers, as part of their core worker.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from raysim.trace.schema import LOCAL_REFERENCE

# States of an object this process owns.
PENDING = 0   # the task that makes it has not finished
INLINE = 1    # small: its serialized bytes are here, in this process (Ray's memory store)
STORED = 2    # in the node's shared-memory store
FAILED = 3    # the task raised or died; get() raises



class OwnedObject:
    """An object this process owns (Ray: an entry of the owner's reference table)."""

    __slots__ = ("state", "data", "offset", "size", "waiters", "released", "dependents",
                 "promote", "reported", "leased", "readers", "contained")

    def __init__(self, state: int = PENDING) -> None:
        self.state = state
        self.data: Any = None  # bytes (INLINE) or the error entry (FAILED)
        self.offset = 0
        self.size = 0
        self.waiters: list[threading.Lock] | None = None
        self.released = False  # every local reference went away while PENDING
        self.dependents: list | None = None  # tasks waiting for this object as an argument
        self.promote = False  # copy into the store on arrival: its ref was passed on
        # What the GCS holds for this process once the object is in the store: the store's
        # registration makes the owner a LOCAL_REFERENCE holder.
        self.reported: str | None = LOCAL_REFERENCE if state == STORED else None
        # The lease on its place in the store (local_object_manager.py): True, this process
        # reads it at offset without asking the raylet; False, taken back (or never had);
        # None, not granted yet. readers: reads under the lease under way here.
        self.leased: bool | None = None
        self.readers = 0
        # An INLINE value's refs to other objects. The worker that made the value had them
        # held for it (CAPTURED_IN_OBJECT, holder ``object:<id>``) before letting go of its
        # own; this process, the value's owner, releases them when it drops the value (or
        # hands them to the GCS with the value, if it is promoted to the store).
        self.contained: list[str] | None = None


class Future:
    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value
        self._lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        return self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0))


class Callback:
    """A reply handler run on the I/O thread instead of a waiting caller."""

    __slots__ = ("set",)

    def __init__(self, fn: Callable[[dict], None]) -> None:
        self.set = fn




def complete(slot: OwnedObject, state: int, data: Any) -> None:
    """Record an object's value (or error) and wake whoever waits for it.

    Callers hold the owner's table lock."""
    slot.data = data
    slot.state = state
    if slot.waiters:
        for lock in slot.waiters:
            try:
                lock.release()
            except RuntimeError:
                pass  # already woken by another object
        slot.waiters = None
