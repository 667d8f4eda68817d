"""Who waits for objects this node's store lacks (Ray's raylet ``DependencyManager``).

Seed, phase 4: a task can run only once its arguments are in the store, and phase 5: a
``get`` returns only once its objects are. Both wait here:

* a queued task whose arguments are still being computed (``wait_for_arguments``) becomes
  ready when the last of them is sealed (``sealed`` returns it, for the raylet to queue);
* a reader's ``get_objects`` (``wait_for_object``) waits for one object at a time; the store
  calls it back when the object is sealed, this module when it is lost.

For every object waited for, the GCS is asked once (``watch_objects``) to say if it can never
arrive: its owner died, or it was freed before the waiter's reference was counted. Then
(``lost``) the readers are told and the waiting tasks are handed back to fail with that
error, instead of waiting forever. Ray's dependency manager asks the object's owner, which
keeps the object's table in Ray 2.x (docs/modern-ray.md#ownership).

Invariant: a task is listed under exactly the objects in its ``missing`` set; an object is
in ``_watched`` from its first waiter until it is sealed or lost (the GCS is asked once).

Runs in: the raylet (its event loop only: no lock). Trace events: none of its own (the
raylet records ``scheduler.decision`` waiting_for_dependencies).
"""

from __future__ import annotations

from typing import Callable, Iterator

from raysim.runtime.raylet.scheduler import TaskRecord


class DependencyManager:
    def __init__(self, available: Callable[[str], bool],
                 ask_gcs: Callable[[list[str]], None]) -> None:
        self._available = available  # the store has it, sealed (in memory or spilled)
        self._ask_gcs = ask_gcs  # sends watch_objects
        self._tasks: dict[str, list[TaskRecord]] = {}  # object id -> tasks waiting for it
        self._readers: dict[str, list[Callable[[dict], None]]] = {}  # object id -> on_lost
        self._watched: set[str] = set()  # objects the GCS was asked about

    # -- waiting -----------------------------------------------------------------------------

    def missing(self, record: TaskRecord) -> set[str]:
        """The arguments of a task that this store does not have yet."""
        return {oid for oid, inline in record.spec.deps
                if inline is None and not self._available(oid)}

    def wait_for_arguments(self, record: TaskRecord, missing: set[str]) -> None:
        record.missing = missing
        for object_id in missing:
            self._watch(object_id)
            self._tasks.setdefault(object_id, []).append(record)

    def wait_for_object(self, object_id: str, on_lost: Callable[[dict], None]) -> None:
        """A reader waits for an object: ``on_lost(why)`` if the GCS says it never comes."""
        self._watch(object_id)
        self._readers.setdefault(object_id, []).append(on_lost)

    def _watch(self, object_id: str) -> None:
        if object_id not in self._watched:
            self._watched.add(object_id)
            self._ask_gcs([object_id])

    # -- what happened to an object ----------------------------------------------------------

    def sealed(self, object_id: str) -> list[TaskRecord]:
        """An object arrived in the store: the tasks that now have all their arguments."""
        self._watched.discard(object_id)
        self._readers.pop(object_id, None)  # the store hands it to them (get_or_wait)
        ready = []
        for record in self._tasks.pop(object_id, ()):
            record.missing.discard(object_id)
            if not record.missing:
                ready.append(record)
        return ready

    def lost(self, object_id: str, lost: dict) -> list[TaskRecord]:
        """An object can never arrive (``lost``: the GCS's cause and message). Its readers
        are told; the tasks that waited for it are returned, waiting for nothing any more."""
        self._watched.discard(object_id)
        for on_lost in self._readers.pop(object_id, ()):
            on_lost(lost)
        failed = self._tasks.pop(object_id, [])
        for record in failed:
            self._forget(record)
        return failed

    # -- tasks that leave before their arguments came ----------------------------------------

    def take(self, task_id: str) -> TaskRecord | None:
        """Stop waiting for a task's arguments (it was cancelled); the task, if it waited."""
        for waiting in self._tasks.values():
            for record in waiting:
                if record.task_id == task_id:
                    self._forget(record)
                    return record
        return None

    def _forget(self, record: TaskRecord) -> None:
        for object_id in record.missing or ():
            waiting = self._tasks.get(object_id)
            if waiting is not None and record in waiting:
                waiting.remove(record)
                if not waiting:
                    del self._tasks[object_id]

    def waiting_tasks(self) -> Iterator[TaskRecord]:
        """Each task that waits for arguments, once."""
        seen: set[str] = set()
        for waiting in self._tasks.values():
            for record in waiting:
                if record.task_id not in seen:
                    seen.add(record.task_id)
                    yield record

    def objects_tasks_wait_for(self) -> int:
        return len(self._tasks)
