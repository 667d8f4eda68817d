"""The raylet's task queues: which tasks wait, which run, and dispatching them to workers
(Ray's raylet ``LocalTaskManager``).

Seed, phase 3 steps 2-3 and phase 4 steps 2-3: "Scheduler checks resource availability",
"selects Worker Process #1". A task the raylet receives is queued here (``add``): waiting
for its arguments (``dependency_manager.py``), infeasible (no node could ever run it), or
ready. ``schedule`` then starts every ready task that fits the node's free resources, on an
idle worker of the right kind, asking the pool for more workers where none is idle; each
decision is a ``scheduler.decision`` event. Ready tasks are queued per *shape* (the resources
they ask for), so one big task waiting for its CPU does not hold back small ones.

A task's ``get()`` that waits lends its CPU to other tasks (``lend_cpu``/``return_cpu``), as
Ray's raylet does when a worker blocks on objects it lacks.

This module owns the queues: ``ready`` (by shape), ``running`` (by task id) and
``infeasible``; retries and cancellation (``task_manager.py``) go through its methods.

Runs in: the raylet (its event loop only: no lock). Trace events: ``scheduler.decision``.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Protocol

from raysim.runtime.common.protocol import LoopConnection
from raysim.runtime.common.task_spec import ACTOR_CREATION, TaskSpec
from raysim.runtime.raylet import scheduler
from raysim.runtime.raylet.dependency_manager import DependencyManager
from raysim.runtime.raylet.object_store import ObjectStore
from raysim.runtime.raylet.scheduler import ResourceSet, TaskRecord
from raysim.runtime.raylet.worker_pool import BLOCKED, BUSY, WorkerPool, WorkerRecord, task_kind
from raysim.trace import writer as trace


class ActorPlacement(Protocol):
    """What the queues need of the actor manager (actor_manager.py): an actor's creation
    task is ready to be placed, and it is placed once its resources fit."""

    def creation_ready(self, record: TaskRecord) -> None: ...
    def place(self, record: TaskRecord) -> None: ...


class LocalTaskManager:
    def __init__(self, resources: ResourceSet, pool: WorkerPool, deps: DependencyManager,
                 store: ObjectStore, owner_of: Callable[[TaskSpec], LoopConnection | None],
                 actors: Callable[[], ActorPlacement]) -> None:
        self.resources = resources
        self.pool = pool
        self.deps = deps
        self.store = store  # pins a task's arguments for its worker (push)
        self.owner_of = owner_of  # a task's owner (on any node): told it is infeasible
        self.actors = actors  # the actor manager, which places actor creations
        self.ready: dict[tuple, deque[TaskRecord]] = {}  # by shape, dependencies ready
        self.running: dict[str, TaskRecord] = {}  # by task id
        self.infeasible: list[TaskRecord] = []

    def add(self, record: TaskRecord) -> None:
        """A new task (or actor creation): ready, waiting for its arguments, or infeasible."""
        if not self.resources.feasible(record.request):
            self._infeasible(record)
            return
        missing = self.deps.missing(record)
        if missing:
            self.deps.wait_for_arguments(record, missing)
            trace.emit("scheduler.decision", phase=record.phase, task=record.task_id,
                       decision="waiting_for_dependencies",
                       resources=scheduler.from_fixed(record.request),
                       available=scheduler.from_fixed(self.resources.available),
                       reason=f"{len(missing)} argument(s) not yet in the store")
            return
        self.enqueue_ready(record)

    def enqueue_ready(self, record: TaskRecord) -> None:
        if record.spec.kind == ACTOR_CREATION:
            self.actors().creation_ready(record)
        queue = self.ready.get(record.shape)
        if queue is None:
            queue = self.ready[record.shape] = deque()
        queue.append(record)

    def _infeasible(self, record: TaskRecord) -> None:
        self.infeasible.append(record)
        total = scheduler.from_fixed(self.resources.total)
        wanted = scheduler.from_fixed(record.request)
        reason = (f"it requires {wanted} but this cluster has only {total} in total; it will "
                  f"wait until a node that can run it joins")
        trace.emit("scheduler.decision", phase=record.phase, task=record.task_id,
                   decision="infeasible", resources=wanted, available=total, reason=reason)
        owner = self.owner_of(record.spec)
        if owner is not None:
            owner.send("task_infeasible", {"task_id": record.task_id, "name": record.spec.name,
                                           "reason": reason}, record.phase)

    def schedule(self) -> None:
        """Start every ready task that fits, starting workers where none is idle."""
        wanted_workers = 0
        for shape, queue in self.ready.items():
            while queue:
                record = queue[0]
                if not self.resources.fits(record.request):
                    break
                if record.spec.kind == ACTOR_CREATION:
                    queue.popleft()
                    self.actors().place(record)
                    continue
                worker = self.pool.pop_idle(task_kind(record))
                if worker is None:
                    # Count how many more of this class could run, to start that many workers.
                    wanted_workers += self._count_fitting(queue)
                    break
                queue.popleft()
                self._dispatch(record, worker)
        missing = wanted_workers - self.pool.starting_task_workers
        for _ in range(missing):
            self.pool.start("task")

    def _count_fitting(self, queue: deque) -> int:
        available = dict(self.resources.available)
        count = 0
        for record in queue:
            if count >= 8 or any(available.get(k, 0) < v for k, v in record.request.items()):
                break
            for k, v in record.request.items():
                available[k] = available.get(k, 0) - v
            count += 1
        return count

    def _dispatch(self, record: TaskRecord, worker: WorkerRecord) -> None:
        self.resources.acquire(record.request)
        worker.move_to(BUSY)
        worker.task = record
        record.worker = worker
        self.running[record.task_id] = record
        trace.emit("scheduler.decision", phase=record.phase, task=record.task_id,
                   decision="dispatch", resources=scheduler.from_fixed(record.request),
                   available=scheduler.from_fixed(self.resources.available), wid=worker.wid)
        self.push(worker, record.spec, record.attempt)

    def push(self, worker: WorkerRecord, spec: TaskSpec, attempt: int = 0) -> None:
        """Send a task to its worker, with the places of its arguments in the store, each
        pinned for the worker until it has read it. An argument spilled to disk has no place:
        the worker asks for it (get_objects), which restores it."""
        locations = {}
        for oid, inline in spec.deps:
            if inline is None:
                entry = self.store.lookup(oid)
                if entry is not None:
                    self.store.pin(entry, worker.conn.peer_name)
                    locations[oid] = [entry.offset, entry.size]
        worker.conn.send("push_task", {"spec": spec, "task_id": spec.task_id,
                                       "locations": locations, "attempt": attempt},
                         spec.phase)

    # -- a task waiting in get() lends its CPU ---------------------------------------------

    def lend_cpu(self, worker: WorkerRecord) -> bool:
        """A task's get() waits: its CPU is lent to other tasks. Whether it was lent."""
        if worker is None or worker.state != BUSY or worker.task is None:
            return False
        worker.move_to(BLOCKED)
        worker.lent = worker.task.request
        self.resources.release(worker.lent)
        self.schedule()
        return True

    def return_cpu(self, worker: WorkerRecord) -> None:
        if worker is not None and worker.state == BLOCKED:
            worker.move_to(BUSY)
            self.resources.acquire(worker.lent, force=True)
            worker.lent = None

    # -- the end of a task, and tasks taken out of the queues ------------------------------

    def finished(self, task_id: str) -> TaskRecord | None:
        """A task ended on its worker: its resources are free again."""
        record = self.running.pop(task_id, None)
        if record is not None:
            self.resources.release(record.request)
        return record

    def stopped(self, record: TaskRecord, worker: WorkerRecord) -> None:
        """A running task's worker died: its resources are free (unless lent out already)."""
        self.running.pop(record.task_id, None)
        if worker.lent is None:  # a blocked worker had already lent its resources out
            self.resources.release(record.request)

    def take_queued(self, task_id: str) -> TaskRecord | None:
        """Remove a task that has not started from whichever queue holds it."""
        for queue in self.ready.values():
            for record in queue:
                if record.task_id == task_id:
                    queue.remove(record)
                    return record
        for record in self.infeasible:
            if record.task_id == task_id:
                self.infeasible.remove(record)
                return record
        return self.deps.take(task_id)

    def records(self, also=()) -> list[TaskRecord]:
        """Every task here: ready, running, infeasible or waiting for its arguments (and
        ``also``, tasks kept elsewhere, listed after the running ones)."""
        records = [r for q in self.ready.values() for r in q]
        records += list(self.running.values()) + list(also) + self.infeasible
        return records + list(self.deps.waiting_tasks())

    def drain_ready(self) -> list[TaskRecord]:
        """Every ready task, taken out of the queues (no worker can start to run them)."""
        records = [r for q in self.ready.values() for r in q]
        for queue in self.ready.values():
            queue.clear()
        return records

    def snapshot(self) -> dict:
        return {"queued": sum(len(q) for q in self.ready.values()),
                "waiting_for_dependencies": self.deps.objects_tasks_wait_for(),
                "infeasible": [r.task_id for r in self.infeasible],
                "running": list(self.running)}
