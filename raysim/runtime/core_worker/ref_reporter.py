"""What this process tells the GCS about the references it holds.

Seed, phase 3: "Reference count for model_ref increases (driver + 3 actors = 4)". In the
founding document the GCS keeps every object's count and its holders; so does raysim
(``object_directory.py``). This process counts its own references (``reference_counter.py``)
and, each time the kind of reference it holds to an object changes (a first ref, the last
one gone, a ref now only held by a pending task), reports that here: ``add_ref``,
``borrow_ref`` (the first ref to an object another process owns, confirmed before that
process may drop its own), ``remove_ref``. In Ray 2.x the object's owner keeps this table
instead, and borrowers report to it (docs/modern-ray.md#ownership).

Refs inside a value that leaves this process are held for the value (``capture``:
``CAPTURED_IN_OBJECT``, holder ``object:<id>``) before this process can drop its own. While
a worker runs a task, changes to borrowed refs are collected and reported in one batch when
the task ends (``begin_deferring`` / ``flush_deferred``), so that a task that makes and drops
many refs does not send a message for each.

Runs in: the driver and every worker, on the thread that changed the reference (the user's,
or the I/O thread). Trace events: none of its own (the GCS records ``gcs.ref_added`` and
``gcs.ref_removed``).
"""

from __future__ import annotations

import threading

from raysim.runtime.common.protocol import ConnectionClosed
from raysim.runtime.core_worker.memory_store import PENDING, STORED, OwnedObject
from raysim.trace import writer as trace
from raysim.trace.schema import CAPTURED_IN_OBJECT


class GcsRefReporter:
    def __init__(self, core) -> None:
        self.core = core  # the CoreWorker: its owned objects, its connection to the GCS
        self.reported: dict[str, str] = {}  # borrowed ids -> ref type the GCS knows
        self.deferred: set[str] | None = None  # borrowed ids changed during a task
        self._tasks_deferring = 0  # tasks running that defer (more than 1: a concurrent actor)
        self._deferring_lock = threading.Lock()
        # A put of a big object first lets the GCS catch up with releases (core_worker.put).
        self.released_since_put = False

    def held_changed(self, object_id: str, held: str | None) -> None:
        if self.core.closing:
            return
        slot = self.core.owned.get(object_id)
        if slot is not None:
            self._owned_held_changed(object_id, slot, held)
            return
        if object_id in self.core.owned_handles:
            # "owner": the GCS counts this process from the actor's registration on, which
            # may reach it after these messages (they travel another way, via the raylet).
            if held is None:
                self.core.owned_handles.pop(object_id, None)
                self.send("remove_ref", {"objects": [object_id], "owner": True})
            elif self.core.owned_handles.get(object_id) != held:
                # Its handles are gone but calls made through them are not done yet
                # (USED_BY_PENDING_TASK), or a handle came back: the type changes.
                self.core.owned_handles[object_id] = held
                self.send("add_ref", {"objects": [object_id], "ref_type": held,
                                      "owner": True})
            return
        # A borrowed object or a handle to someone else's actor.
        if self.deferred is not None and threading.current_thread() is threading.main_thread():
            self.deferred.add(object_id)
            return
        self._report_borrow(object_id, held)

    def _owned_held_changed(self, object_id: str, slot: OwnedObject, held: str | None) -> None:
        with self.core.owned_lock:
            # In the GCS's table: stored, or a failed one whose error was stored (promote).
            if (slot.state == STORED or slot.reported is not None) and held != slot.reported:
                # "owner": the store's registration of the object, which counts this process,
                # may reach the GCS after these (it travels via the raylet).
                if held is None:
                    self.send("remove_ref", {"objects": [object_id], "owner": True})
                    self.released_since_put = True
                else:
                    self.send("add_ref", {"objects": [object_id], "ref_type": held,
                                          "owner": True})
                slot.reported = held
            if held is None:
                if slot.state == PENDING:
                    slot.released = True
                elif not slot.dependents:
                    self.drop_owned(object_id, slot)

    def drop_owned(self, object_id: str, slot: OwnedObject) -> None:
        """Nothing here refers to an owned object any more: forget it, and with an INLINE
        value, the refs it captured (called with owned_lock held)."""
        if self.core.owned.get(object_id) is slot:
            del self.core.owned[object_id]
        contained, slot.contained = slot.contained, None
        if contained:
            self.release_captured(object_id, contained)

    def capture(self, object_id: str, contained: list[str]) -> None:
        """A value about to leave this process (a put, a task's result) holds refs to other
        objects: have the GCS count the value as holding them (CAPTURED_IN_OBJECT) before
        this process can drop its own references.

        This message and this process's later releases travel on the same socket, so the
        GCS sees the value's hold first, and the objects outlive this process's refs until
        the value's owner (the caller, for a result) has counted its own. Ray's owner does
        the same in its reference table (``AddNestedObjectIds``): a returned ref stays alive
        while the value containing it does."""
        self.send("add_ref", {"objects": contained, "holder": f"object:{object_id}",
                              "ref_type": CAPTURED_IN_OBJECT})

    def release_captured(self, object_id: str, contained: list[str]) -> None:
        """The INLINE value ``object_id`` is gone: drop the holds it had on ``contained``.

        Refs to them deserialized from the value during the running task may not be counted
        yet (borrows are reported when the task ends): report those first, on this same
        socket, so that the GCS counts them before the value's holds go."""
        deferred = self.deferred
        for inner in contained:
            if deferred is not None and inner in deferred:
                deferred.discard(inner)
                held = self.core.refs.held_type(inner)
                if held is not None:
                    self._report_borrow(inner, held, sync=False)
        self.send("remove_ref", {"objects": contained, "holder": f"object:{object_id}"})

    def _report_borrow(self, object_id: str, held: str | None, sync: bool = True) -> None:
        known = self.reported.get(object_id)
        if held == known:
            return
        if held is None:
            self.reported.pop(object_id, None)
            self.send("remove_ref", {"objects": [object_id]})
            return
        self.reported[object_id] = held
        on_receiver = threading.current_thread() is self.core.io_thread
        if known is None and sync and not on_receiver:
            # The first reference must be registered before whoever passed it on can drop
            # theirs, or the object could be freed under us: wait for the GCS to confirm.
            self.core.request(self.core.gcs, "borrow_ref",
                              {"objects": [object_id], "ref_type": held})
        else:
            self.send("add_ref", {"objects": [object_id], "ref_type": held})

    def begin_deferring(self) -> None:
        """A task begins. A threaded or async actor runs several at once: deferring goes on
        until the last of them ends."""
        with self._deferring_lock:
            self._tasks_deferring += 1
            if self.deferred is None:
                self.deferred = set()

    def flush_deferred(self) -> None:
        """End of a task: register what it still holds, in one batch, before its result goes."""
        with self._deferring_lock:
            self._tasks_deferring -= 1
            deferred = self.deferred
            self.deferred = set() if self._tasks_deferring else None
        if not deferred:
            return
        adds: dict[str, list[str]] = {}
        for object_id in list(deferred):  # release_captured may discard from it meanwhile
            held = self.core.refs.held_type(object_id)
            if held is None:
                self._report_borrow(object_id, None)
            elif held != self.reported.get(object_id):
                self.reported[object_id] = held
                adds.setdefault(held, []).append(object_id)
        for ref_type, objects in adds.items():
            self.core.request(self.core.gcs, "borrow_ref",
                              {"objects": objects, "ref_type": ref_type})

    def send(self, kind: str, body: dict) -> None:
        try:
            self.core.gcs.send(kind, body)
        except ConnectionClosed:
            pass  # the session is going away; nothing left to count for
        # Reference changes often happen outside any API call (a ref garbage-collected):
        # write the events now rather than at the next call.
        trace.flush()
