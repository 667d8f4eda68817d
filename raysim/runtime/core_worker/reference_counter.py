"""Who holds which object, as this process counts it and tells the GCS (Ray's CoreWorker
``ReferenceCounter``).

Seed, phase 2: "Driver Memory: holds model_ref variable pointing to object"; phase 3:
"Reference count for model_ref increases (driver + 3 actors = 4)". In the founding document
the GCS keeps every object's count and its holders, and so does raysim
(``runtime/gcs/object_directory.py``). This module is each process's side of that table, and
the one place in a process where references are counted:

* **Local counts.** Every ``ObjectRef`` and ``ActorHandle`` instance alive here counts
  (``add_local``/``remove_local``), and so do zero-copy views of stored values (pins:
  ``PINNED_IN_MEMORY``) and actor calls submitted and not finished (``USED_BY_PENDING_TASK``
  of the actor's handle object: as in Ray, an actor outlives its last handle until the calls
  made through it are done). A process is *one* holder in the GCS however many Python
  objects it holds, so only transitions matter: the first reference (``ref.acquired``), the
  last one going (``ref.released``), and the kind of hold changing.
* **Owned objects.** The objects this process owns (the returns of the tasks it submitted,
  the objects it put: ``owned``, with their values in ``memory_store.OwnedObject``) and the
  handle objects of the actors it created (``owned_handles``). The store's registration of a
  stored object counts its owner (``LOCAL_REFERENCE``); later changes are sent as ``add_ref``
  / ``remove_ref`` with ``owner``. An owned object nothing refers to any more is dropped.
* **Borrowed objects.** The first reference to an object another process owns is confirmed
  by the GCS (``borrow_ref``) before this process goes on, so that whoever passed it on may
  drop theirs. While a worker runs a task, changes to borrowed refs are collected and sent in
  one batch when the task ends (``begin_deferring`` / ``flush_deferred``).
* **Holds for others.** Refs inside a value that leaves this process are held for that value
  (``capture``: ``CAPTURED_IN_OBJECT``, holder ``object:<id>``) before this process can drop
  its own; a submitted task holds its arguments until it finishes (``hold_for_task``:
  ``USED_BY_PENDING_TASK``, holder ``task:<id>``).

In Ray 2.x the object's owner keeps the table, and borrowers report to it instead of to the
GCS (docs/modern-ray.md#ownership): an ownership mode would swap this module's messages to the
GCS for messages to owners, and nothing else in the process would change.

Locks: ``_lock`` guards the local counts and is taken first; ``owned_lock`` guards ``owned``,
``owned_handles`` and the flags of each ``OwnedObject`` (the core worker, the submitter and
the reader take it too). Runs in: the driver and workers, on any thread (``ObjectRef.__del__``
runs wherever the garbage collector runs it). Trace events: ``ref.acquired``,
``ref.released`` (the GCS records ``gcs.ref_added`` and ``gcs.ref_removed``).
"""

from __future__ import annotations

import threading
from typing import Callable

from raysim.runtime.core_worker.memory_store import PENDING, STORED, OwnedObject
from raysim.trace import writer as trace
from raysim.trace.schema import (CAPTURED_IN_OBJECT, LOCAL_REFERENCE, PINNED_IN_MEMORY,
                                 USED_BY_PENDING_TASK)


class ReferenceCounter:
    def __init__(self, tell_gcs: Callable[[str, dict], None],
                 ask_gcs: Callable[[str, dict], dict], closing: Callable[[], bool],
                 on_io_thread: Callable[[], bool]) -> None:
        self._tell_gcs = tell_gcs  # send a message to the GCS (no answer awaited)
        self._ask_gcs = ask_gcs  # send a request to the GCS and wait for its answer
        self._closing = closing  # the process is shutting down: nothing left to count for
        self._on_io_thread = on_io_thread  # which must never wait for an answer

        # Local counts, guarded by _lock (re-entrant: a callback may count again).
        self._lock = threading.RLock()
        self.local: dict[str, int] = {}    # ObjectRef / ActorHandle instances alive here
        self.pins: dict[str, int] = {}     # zero-copy reads whose views are alive here
        self.submitted: dict[str, int] = {}  # unfinished actor calls, per handle object
        self.kinds: dict[str, str] = {}    # LOCAL_REFERENCE or ACTOR_HANDLE per id
        # Objects whose ref.acquired said an ObjectRef holds them (not a pin): when the last
        # ref goes and a pin remains, the trace is told the hold is PINNED_IN_MEMORY now.
        self._announced: set[str] = set()

        # Owned objects, guarded by owned_lock.
        self.owned_lock = threading.RLock()
        self.owned: dict[str, OwnedObject] = {}
        # Handle objects of the actors this process created -> the reference type the GCS
        # counts for it (the actor's registration counts it as ACTOR_HANDLE).
        self.owned_handles: dict[str, str] = {}

        # Borrowed objects: what the GCS knows, and what a running task changed.
        self.reported: dict[str, str] = {}  # borrowed ids -> ref type the GCS knows
        self.deferred: set[str] | None = None  # borrowed ids changed during a task
        self._tasks_deferring = 0  # tasks running that defer (more than 1: a concurrent actor)
        self._deferring_lock = threading.Lock()
        # A put of a big object first lets the GCS catch up with releases (core_worker.put).
        self.released_since_put = False

    # -- local counts -----------------------------------------------------------------------

    def held_type(self, object_id: str) -> str | None:
        """How this process holds an object now (None: not at all)."""
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
                    self._announced.add(object_id)
                self._held_changed(object_id, kind)

    def remove_local(self, object_id: str) -> None:
        with self._lock:
            n = self.local.get(object_id, 0) - 1
            if n > 0:
                self.local[object_id] = n
                return
            self.local.pop(object_id, None)
            self.kinds.pop(object_id, None)
            # Announced as held by an ObjectRef: if a pin remains, the trace hears the change.
            self._changed(object_id, retyped=object_id in self._announced)
            self._announced.discard(object_id)

    def add_submitted(self, object_id: str) -> None:
        """An actor call through this handle object was submitted (Ray: the submitted-task
        count of the handle's reference). Never the first hold: the caller holds a handle."""
        with self._lock:
            n = self.submitted.get(object_id, 0)
            self.submitted[object_id] = n + 1
            if n == 0 and not self.local.get(object_id):
                self._held_changed(object_id, USED_BY_PENDING_TASK)

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
                self._held_changed(object_id, PINNED_IN_MEMORY)

    def remove_pin(self, object_id: str) -> None:
        with self._lock:
            n = self.pins.get(object_id, 0) - 1
            if n > 0:
                self.pins[object_id] = n
                return
            self.pins.pop(object_id, None)
            if not self.local.get(object_id):
                self._changed(object_id)

    def pinned(self, object_id: str) -> bool:
        return bool(self.pins.get(object_id))

    def _changed(self, object_id: str, retyped: bool = False) -> None:
        """``retyped``: its last ObjectRef went; if a value read from the store still pins
        it, the trace says what it is held as now (a replay's table of refs follows)."""
        held = self.held_type(object_id)
        if held is None:
            trace.emit("ref.released", obj=object_id)
        elif retyped:
            trace.emit("ref.acquired", obj=object_id, ref_type=held)
        self._held_changed(object_id, held)

    # -- what the GCS is told when a hold changes --------------------------------------------

    def _held_changed(self, object_id: str, held: str | None) -> None:
        """What this process holds of an object changed (None: nothing any more)."""
        if self._closing():
            return
        slot = self.owned.get(object_id)
        if slot is not None:
            self._owned_held_changed(object_id, slot, held)
            return
        if object_id in self.owned_handles:
            # "owner": the GCS counts this process from the actor's registration on, which
            # may reach it after these messages (they travel another way, via the raylet).
            if held is None:
                self.owned_handles.pop(object_id, None)
                self.send("remove_ref", {"objects": [object_id], "owner": True})
            elif self.owned_handles.get(object_id) != held:
                # Its handles are gone but calls made through them are not done yet
                # (USED_BY_PENDING_TASK), or a handle came back: the type changes.
                self.owned_handles[object_id] = held
                self.send("add_ref", {"objects": [object_id], "ref_type": held,
                                      "owner": True})
            return
        # A borrowed object or a handle to someone else's actor.
        if self.deferred is not None and threading.current_thread() is threading.main_thread():
            self.deferred.add(object_id)
            return
        self._report_borrow(object_id, held)

    def _owned_held_changed(self, object_id: str, slot: OwnedObject, held: str | None) -> None:
        with self.owned_lock:
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

    def owned_handle(self, handle_object: str, held: str) -> None:
        """This process created an actor: the GCS counts it as holding the actor's handle."""
        with self.owned_lock:
            self.owned_handles[handle_object] = held

    def copied_to_store(self, object_id: str, slot: OwnedObject) -> None:
        """An owned object is now in the store, whose registration counts this process
        (LOCAL_REFERENCE): tell the GCS what it holds now, which may have changed while the
        copy was made (owned_lock held)."""
        slot.reported = LOCAL_REFERENCE
        held = self.held_type(object_id)
        if held != slot.reported:
            body = {"objects": [object_id], "owner": True}
            if held is not None:
                body["ref_type"] = held
            self.send("remove_ref" if held is None else "add_ref", body)
            slot.reported = held

    def drop_owned(self, object_id: str, slot: OwnedObject) -> None:
        """Nothing here refers to an owned object any more: forget it, and with an INLINE
        value, the refs it captured (owned_lock held)."""
        if self.owned.get(object_id) is slot:
            del self.owned[object_id]
        contained, slot.contained = slot.contained, None
        if contained:
            self.release_captured(object_id, contained)

    def release_stored(self, object_ids: list[str]) -> None:
        """Owned objects in the store that this process no longer wants (their refs went
        while they were computed): the store's registration of them is undone."""
        self.send("remove_ref", {"objects": object_ids})

    # -- holds for others: values and tasks -------------------------------------------------

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
                held = self.held_type(inner)
                if held is not None:
                    self._report_borrow(inner, held, sync=False)
        self.send("remove_ref", {"objects": contained, "holder": f"object:{object_id}"})

    def hold_for_task(self, task_id: str, objects: list[str]) -> None:
        """A submitted task holds its arguments until it finishes (USED_BY_PENDING_TASK)."""
        self.send("add_ref", {"objects": objects, "holder": f"task:{task_id}",
                              "ref_type": USED_BY_PENDING_TASK})

    def release_for_task(self, task_id: str | None, objects: list[str]) -> None:
        """A task finished (or will never run): what it held is released."""
        self.send("remove_ref", {"objects": objects, "holder": f"task:{task_id}"})

    # -- borrowed objects -------------------------------------------------------------------

    def _report_borrow(self, object_id: str, held: str | None, sync: bool = True) -> None:
        known = self.reported.get(object_id)
        if held == known:
            return
        if held is None:
            self.reported.pop(object_id, None)
            self.send("remove_ref", {"objects": [object_id]})
            return
        self.reported[object_id] = held
        if known is None and sync and not self._on_io_thread():
            # The first reference must be registered before whoever passed it on can drop
            # theirs, or the object could be freed under us: wait for the GCS to confirm.
            self._ask_gcs("borrow_ref", {"objects": [object_id], "ref_type": held})
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
            held = self.held_type(object_id)
            if held is None:
                self._report_borrow(object_id, None)
            elif held != self.reported.get(object_id):
                self.reported[object_id] = held
                adds.setdefault(held, []).append(object_id)
        for ref_type, objects in adds.items():
            self._ask_gcs("borrow_ref", {"objects": objects, "ref_type": ref_type})

    def send(self, kind: str, body: dict) -> None:
        self._tell_gcs(kind, body)
        # Reference changes often happen outside any API call (a ref garbage-collected):
        # write the events now rather than at the next call.
        trace.flush()

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            ids = set(self.local) | set(self.pins) | set(self.submitted)
            return {oid: {"ref_type": self.held_type(oid), "local": self.local.get(oid, 0),
                          "pins": self.pins.get(oid, 0),
                          "submitted": self.submitted.get(oid, 0)} for oid in ids}
