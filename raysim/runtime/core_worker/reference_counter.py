"""A process's own count of the references it holds, and what it reports to the directory.

Seed, phase 2: "Driver Memory: holds model_ref variable pointing to object"; phase 3: the
model's ref count becomes 4. The table of counts lives in the GCS (``object_directory.py``);
this module is each process's side of it, the part Ray calls the CoreWorker's
ReferenceCounter.

Every ``ObjectRef`` and ``ActorHandle`` instance in a process counts here. A process appears
as *one* holder in the directory however many Python objects it holds, so only transitions
are reported: the first reference in this process (``ref.acquired``) and the last one going
away (``ref.released``). Zero-copy views count too (``PINNED_IN_MEMORY``), through pins, and
so do actor calls this process submitted that have not finished (``USED_BY_PENDING_TASK`` of
the actor's handle object): as in Ray, whose pending actor tasks hold the actor's handle, an
actor outlives the last ``ActorHandle`` until the calls made through it are done.

What a transition means depends on who owns the object, which the core worker decides
through the two callbacks it passes in. Borrowed references taken while a task runs are
reported in one batch when the task ends, before its result is sent: until then the task's
``USED_BY_PENDING_TASK`` reference, held by the submitter, keeps the objects alive.

Runs in: the driver and workers, on any thread (``ObjectRef.__del__`` runs wherever the
garbage collector runs it), so the counts are guarded by one re-entrant lock.
"""

from __future__ import annotations

import threading
from typing import Callable

from raysim.trace import writer as trace
from raysim.trace.schema import LOCAL_REFERENCE, PINNED_IN_MEMORY, USED_BY_PENDING_TASK


class ReferenceCounter:
    def __init__(self, on_held_changed: Callable[[str, str | None], None]) -> None:
        # on_held_changed(object_id, ref_type or None): what this process holds of an object
        # changed (None: nothing any more). The core worker decides what to tell whom.
        self._on_held_changed = on_held_changed
        self._lock = threading.RLock()
        self.local: dict[str, int] = {}    # ObjectRef / ActorHandle instances alive here
        self.pins: dict[str, int] = {}     # zero-copy reads whose views are alive here
        self.submitted: dict[str, int] = {}  # unfinished actor calls, per handle object
        self.kinds: dict[str, str] = {}    # LOCAL_REFERENCE or ACTOR_HANDLE per id

    def held_type(self, object_id: str) -> str | None:
        if self.local.get(object_id):
            return self.kinds.get(object_id, LOCAL_REFERENCE)
        if self.submitted.get(object_id):
            return USED_BY_PENDING_TASK
        if self.pins.get(object_id):
            return PINNED_IN_MEMORY
        return None

    def add_local(self, object_id: str, kind: str = LOCAL_REFERENCE,
                  announce: bool = True) -> None:
        """``announce=False``: the event that made the object already says this process holds
        it (``task.submitted`` lists the returns its submitter holds), so skip ref.acquired."""
        with self._lock:
            n = self.local.get(object_id, 0)
            self.local[object_id] = n + 1
            if n == 0:
                self.kinds[object_id] = kind
                if announce and not self.pins.get(object_id):
                    trace.emit("ref.acquired", obj=object_id, ref_type=kind)
                self._on_held_changed(object_id, kind)

    def remove_local(self, object_id: str) -> None:
        with self._lock:
            n = self.local.get(object_id, 0) - 1
            if n > 0:
                self.local[object_id] = n
                return
            self.local.pop(object_id, None)
            self.kinds.pop(object_id, None)
            self._changed(object_id)

    def add_submitted(self, object_id: str) -> None:
        """An actor call through this handle object was submitted (Ray: the submitted-task
        count of the handle's reference). Never the first hold: the caller holds a handle."""
        with self._lock:
            n = self.submitted.get(object_id, 0)
            self.submitted[object_id] = n + 1
            if n == 0 and not self.local.get(object_id):
                self._on_held_changed(object_id, USED_BY_PENDING_TASK)

    def remove_submitted(self, object_id: str) -> None:
        """An actor call submitted through this handle object finished or failed."""
        with self._lock:
            n = self.submitted.get(object_id, 0) - 1
            if n > 0:
                self.submitted[object_id] = n
                return
            self.submitted.pop(object_id, None)
            if not self.local.get(object_id):
                self._changed(object_id)

    def add_pin(self, object_id: str) -> None:
        with self._lock:
            n = self.pins.get(object_id, 0)
            self.pins[object_id] = n + 1
            if n == 0 and not self.local.get(object_id):
                trace.emit("ref.acquired", obj=object_id, ref_type=PINNED_IN_MEMORY)
                self._on_held_changed(object_id, PINNED_IN_MEMORY)

    def remove_pin(self, object_id: str) -> None:
        with self._lock:
            n = self.pins.get(object_id, 0) - 1
            if n > 0:
                self.pins[object_id] = n
                return
            self.pins.pop(object_id, None)
            if not self.local.get(object_id):
                self._changed(object_id)

    def _changed(self, object_id: str) -> None:
        held = self.held_type(object_id)
        if held is None:
            trace.emit("ref.released", obj=object_id)
        self._on_held_changed(object_id, held)

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            ids = set(self.local) | set(self.pins) | set(self.submitted)
            return {oid: {"ref_type": self.held_type(oid), "local": self.local.get(oid, 0),
                          "pins": self.pins.get(oid, 0),
                          "submitted": self.submitted.get(oid, 0)} for oid in ids}
