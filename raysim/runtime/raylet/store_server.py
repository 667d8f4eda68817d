"""The object store's service: what processes ask of their node's store, answered in the
raylet's event loop (Ray: the plasma store's request handlers, ``plasma/store.cc``).

Seed, phase 2 steps 1-4: a writer asks for space (``create_object``), writes the object
into the shared memory itself, and seals it (``seal_object``); sealing registers the
object's location with the GCS. Phase 5: a reader asks where objects are
(``get_objects``) and maps them, zero-copy; the answer pins them until the reader says it is
done (``release_objects``). The GCS says when an object's last reference is gone
(``free_objects``).

When the store is full, ``local_object_manager.py`` makes room: it evicts and spills objects
no reader has pinned, and restores a spilled object when a process asks for it.

A reader asking for an object the store does not have waits for it to be sealed; the store
also asks the GCS to say if it never will be (``watch_objects``): its owner died, or it was
freed before the reader's reference was counted. Then (``objects_lost``) the reader's ``get``
raises ``OwnerDiedError`` or ``ReferenceCountingAssertionError``, and a task waiting for it as
an argument fails with that error, instead of either waiting forever. Ray's raylet asks the
object's owner instead, which keeps the object's table.

Runs in: the raylet process. Trace events: ``object_store.create``, ``object_store.sealed``,
``object_store.deleted``, and those of ``local_object_manager.py``.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from raysim.runtime.common.protocol import LoopConnection
from raysim.runtime.raylet.dependency_manager import DependencyManager
from raysim.runtime.raylet.local_object_manager import LocalObjectManager
from raysim.runtime.raylet.object_store import ObjectStore, StoreFull
from raysim.runtime.raylet.worker_pool import WorkerRecord
from raysim.trace import writer as trace


class StoreServer:
    def __init__(self, store: ObjectStore, objects: LocalObjectManager, deps: DependencyManager,
                 tell_gcs: Callable[[str, dict], None],
                 lend_cpu: Callable[[WorkerRecord], bool],
                 return_cpu: Callable[[WorkerRecord], None]) -> None:
        self.store = store
        self.objects = objects  # LocalObjectManager: room, spilling, restoring
        self.deps = deps  # readers wait there for objects the store lacks
        self.tell_gcs = tell_gcs
        # A task that waits in get() lends its CPU to other tasks meanwhile (the raylet's
        # scheduler: worker_blocked/worker_unblocked).
        self.lend_cpu = lend_cpu
        self.return_cpu = return_cpu

    def handle_create_object(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """Space for an object; when the store is full, the answer waits until room is made
        (local_object_manager.py), or says there is none."""
        object_id, size = body["object_id"], body["size"]
        if self.objects.available(object_id):
            # A retried task writing a result its first attempt had sealed: keep that copy.
            existing = self.store.lookup(object_id)
            conn.reply(msg_id, {"error": "exists", "size": size,
                                "offset": existing.offset if existing else -1})
            return
        phase = trace.get_phase()

        def answer(outcome) -> None:
            if isinstance(outcome, StoreFull):
                conn.reply(msg_id, _full_reply(outcome), phase)
                return
            trace.emit("object_store.create", phase=phase, obj=object_id, size=size,
                       offset=outcome.offset, owner=conn.peer_name, used=self.store.used)
            conn.reply(msg_id, {"offset": outcome.offset}, phase)

        self.objects.create(object_id, size, conn.peer_name, answer)

    def seal(self, body: dict, primary: bool = True) -> None:
        """An object is complete: a writer's here (``primary``), or a copy pulled from
        another node (object_manager.py), which no process here has a lease on."""
        object_id = body["object_id"]
        entry = self.store.seal(object_id)
        if primary:
            entry.lease = body["owner"]  # the owner knows where it is (local_object_manager.py)
        else:
            entry.copy = True
        trace.emit("object_store.sealed", obj=object_id, size=entry.size, offset=entry.offset,
                   used=self.store.used)
        # Seed phase 2 step 4: the store registers the object's location with the GCS.
        self.tell_gcs("add_object", {"object_id": object_id, "size": entry.size,
                                     "owner": body["owner"],
                                     "contained": body.get("contained", [])})
        # (The raylet then starts the tasks that waited for it: dependency_manager.py.)

    def delete_lost(self, body: dict) -> None:
        """The GCS says objects are lost (their owner died) or were freed before a reader's
        reference counted: delete what is here. (The raylet then fails whoever waits for
        them: dependency_manager.py.)"""
        for object_id, lost in body["objects"].items():
            # One still being written stays until it is sealed (its writer must finish);
            # the GCS then hears of it, and says again that it is lost.
            if self.objects.available(object_id):
                entry, spilled = self.objects.free(object_id)
                trace.emit("object_store.deleted", obj=object_id,
                           size=(entry or spilled).size, reason=lost_reason(lost),
                           used=self.store.used)
            self.store.stop_waiting(object_id)

    def handle_get_objects(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """Where are these objects? Answered once all are sealed (in memory or on disk).

        As plasma's Get, the answer pins each object for the asker, once per time it is
        listed, until it sends release_objects; a spilled object is restored first. With
        ``pin`` false (``wait()``) the answer only says they are ready: nothing is pinned
        or restored."""
        counts = Counter(body["objects"])
        pin = body.get("pin", True)
        client = conn.peer_name
        found: dict[str, list[int]] = {}
        errors: dict[str, dict] = {}
        phase = trace.get_phase()

        def pinned(object_id: str, outcome) -> None:
            if object_id in errors:  # lost while it was restored for this reader
                if not isinstance(outcome, Exception):
                    for _ in range(counts[object_id]):
                        self.store.release(object_id, client)
                return
            if isinstance(outcome, StoreFull):
                errors[object_id] = _full_reply(outcome)
            elif isinstance(outcome, Exception):
                errors[object_id] = {"error": "lost", "message": str(outcome)}
            elif conn.closed:  # it left while the object was restored for it
                for _ in range(counts[object_id]):
                    self.store.release(object_id, client)
            else:
                found[object_id] = [outcome.offset, outcome.size, counts[object_id]]
            answer_when_complete()

        blocked = False  # the asking task's CPU is lent to others while it waits

        def answer_when_complete() -> None:
            if len(found) + len(errors) == len(counts) and not conn.closed:
                if blocked:
                    self.return_cpu(conn.state)
                conn.reply(msg_id, {"locations": found, "errors": errors, "pinned": pin},
                           phase)

        def ready(object_id: str) -> None:
            if object_id in errors:
                return  # it was reported lost first
            if not pin:
                found[object_id] = [-1, 0, 0]
                answer_when_complete()
            elif not conn.closed:
                self.objects.pin(object_id, client, counts[object_id],
                                 lambda outcome: pinned(object_id, outcome))

        def gone(object_id: str, lost: dict) -> None:
            if object_id in found or object_id in errors:
                return
            errors[object_id] = dict(lost, error="lost")
            answer_when_complete()

        for object_id in counts:
            if self.objects.available(object_id):
                ready(object_id)
            else:
                self.store.get_or_wait(object_id, lambda entry: ready(entry.object_id))
                self.deps.wait_for_object(object_id, lambda lost, oid=object_id: gone(oid, lost))
        if body.get("blocks") and len(found) + len(errors) < len(counts) and not conn.closed:
            # Not all there yet: a task's get() waits, and its CPU goes to others meanwhile
            # (Ray's raylet does the same when a worker blocks on objects it lacks).
            blocked = self.lend_cpu(conn.state)

    def handle_release_objects(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """A reader is done with objects it was told the place of: they may move again."""
        for object_id in body["objects"]:
            self.store.release(object_id, conn.peer_name)
        self.objects.progress()

    def handle_leases_returned(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """An owner answered revoke_leases: which places it will no longer read unasked."""
        self.objects.leases_returned(body["revoked"], body["kept"])

    def handle_free_objects(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        for object_id in body["objects"]:
            entry, spilled = self.objects.free(object_id)
            if entry is not None or spilled is not None:
                reason = "reference count reached zero"
                if spilled is not None:
                    reason += f"; its spill file {spilled.path} was removed"
                trace.emit("object_store.deleted", obj=object_id,
                           size=(entry or spilled).size, reason=reason, used=self.store.used)
        self.objects.progress()


# The error a reader of a lost object gets, by the GCS's cause (object_directory.py).
LOST_ERRORS = {"OWNER_DIED": "OwnerDiedError", "FREED": "ReferenceCountingAssertionError"}


def lost_reason(lost: dict) -> str:
    return {"OWNER_DIED": "lost: its owner died",
            "FREED": "freed before a reference to it was counted"}.get(lost["cause"], "lost")


def _full_reply(full: StoreFull) -> dict:
    return {"error": "full", "size": full.requested, "capacity": full.capacity,
            "used": full.used, "immovable": full.immovable,
            "largest_free": full.largest_free, "reason": full.reason}
