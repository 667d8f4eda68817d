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

from raysim.runtime.common.errors import RaySimInternalError
from raysim.trace.schema import LOCAL_REFERENCE

# States of an object this process owns. Ray's memory store keeps the same facts: no entry
# yet, the value's bytes, an OBJECT_IN_PLASMA marker, or the error.
PENDING = "PENDING"  # the task that makes it has not finished (or the put not sealed it)
INLINE = "INLINE"    # small: its serialized bytes are here, in this process
STORED = "STORED"    # in the node's shared-memory store (Ray: OBJECT_IN_PLASMA)
FAILED = "FAILED"    # the task raised or died; get() raises

# Every move an owned object may make (move_to). An INLINE value moves into the store when
# its ref is passed to another process (core_worker.promote); a FAILED one's error is copied
# there too, but the object stays FAILED here.
_LEGAL: dict[str, frozenset[str]] = {
    PENDING: frozenset({INLINE, STORED, FAILED}),
    INLINE: frozenset({STORED}),
    STORED: frozenset({PENDING}),  # its only copy was lost with a node: the task runs again
    FAILED: frozenset(),
}


class OwnedObject:
    """An object this process owns (Ray: an entry of the owner's reference table)."""

    __slots__ = ("state", "data", "offset", "size", "waiters", "released", "dependents",
                 "promote", "reported", "leased", "readers", "contained", "lineage")

    def __init__(self, state: str = PENDING) -> None:
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
        # The spec of the task that makes it, kept while the object lives, so that it can be
        # made again if its only copy is lost with a node (Ray's lineage reconstruction).
        self.lineage = None

    def move_to(self, state: str, data: Any = None) -> None:
        """The one place an owned object changes state: record its value (or error) and
        wake whoever waits for it. Callers hold the owner's table lock (owned_lock)."""
        if state not in _LEGAL[self.state]:
            raise RaySimInternalError(f"an owned object cannot go from {self.state} to {state}")
        self.data = data
        self.state = state
        waiters, self.waiters = self.waiters, None
        for lock in waiters or ():
            try:
                lock.release()
            except RuntimeError:
                pass  # already woken by another object


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
