"""The actors a raylet hosts: placing them, queueing their calls, and their deaths.

Seed, phase 3 steps 2-7: the raylet places each ``BatchPredictor`` on a worker process of
its own; phase 4 steps 2-3: "Raylet looks up Actor 0's location ... schedules task on
Worker #1's task queue (actors process methods serially)".

An actor needs 1 CPU free to be placed (placement, ``scheduler.placement_request``) and holds
only what it asked for once alive (0 CPU by default). Calls that arrive before the actor is
alive wait here, in order; once it is alive they are pushed to its worker as they come, and
the worker runs them one at a time. When the actor dies, calls still queued here fail, and
every caller is told (``actor_died``) so that it fails the calls already on their way.

The GCS keeps the actor table and its state machine (``actor_table.py``); this module keeps
what only the hosting node knows: which worker, and the calls waiting.

Runs in: the raylet process. Trace events: ``scheduler.decision`` (start_actor_worker),
``raylet.actor_lookup``, ``task.finished`` (creation).
"""

from __future__ import annotations

import dataclasses
from collections import deque

from raysim.runtime import scheduler
from raysim.runtime.scheduler import TaskRecord
from raysim.runtime.task_spec import TaskSpec
from raysim.runtime.worker_pool import WorkerRecord
from raysim.trace import writer as trace


@dataclasses.dataclass(eq=False)
class ActorRecord:
    actor_id: str
    creation: TaskRecord
    worker: WorkerRecord | None = None
    state: str = "PENDING"  # PENDING, ALIVE, DEAD (the GCS holds Ray's full state machine)
    pending: deque = dataclasses.field(default_factory=deque)  # calls before ALIVE
    death: str | None = None
    held: dict = dataclasses.field(default_factory=dict)  # resources held while alive




class LocalActorManager:
    def __init__(self, raylet) -> None:
        self.raylet = raylet
        self.actors: dict[str, ActorRecord] = {}

    def register(self, record: TaskRecord) -> None:
        """A creation task arrived: the GCS hears of the actor (PENDING_CREATION)."""
        spec = record.spec
        self.actors[spec.actor_id] = ActorRecord(spec.actor_id, record)
        self.raylet.gcs.send("actor_update", {
            "actor_id": spec.actor_id, "state": "PENDING_CREATION",
            "class_name": spec.name, "handle_object": spec.handle_object,
            "owner": spec.owner_holder, "name": spec.actor_name,
            "namespace": spec.namespace, "descriptor": spec.descriptor})

    def place(self, record: TaskRecord) -> None:
        spec = record.spec
        actor = self.actors[spec.actor_id]
        self.raylet.resources.acquire(record.request)
        worker = self.raylet.pool.start("actor", actor.actor_id)
        actor.worker = worker
        record.worker = worker
        trace.emit("scheduler.decision", phase=record.phase, task=record.task_id,
                   decision="start_actor_worker",
                   resources=scheduler.from_fixed(record.request),
                   available=scheduler.from_fixed(self.raylet.resources.available),
                   wid=worker.wid)

    def worker_ready(self, worker: WorkerRecord) -> None:
        actor = self.actors.get(worker.actor_id)
        if actor is None:
            return
        self.raylet.push(worker, actor.creation.spec)

    def created(self, worker: WorkerRecord, body: dict) -> None:
        actor = self.actors.get(worker.actor_id)
        if actor is None:
            return
        record = actor.creation
        # Placement resources are given back; an actor holds only what it asked for.
        self.raylet.resources.release(record.request)
        trace.emit("task.finished", phase=record.phase, task=record.task_id, ok=body["ok"])
        held = scheduler.task_request(record.spec)
        if body["ok"]:
            self.raylet.resources.acquire(held, force=True)
            actor.held = held
            actor.state = "ALIVE"
            while actor.pending:
                self.push_call(actor, actor.pending.popleft())
        else:
            actor.state = "DEAD"
            actor.death = ("The actor died because of an error raised in its creation task, "
                           f"{record.spec.name}.__init__():\n{body.get('error_text', '')}")
            self.fail_pending_calls(actor)
            self.raylet.kill_worker(worker)

    def submit_call(self, spec: TaskSpec) -> None:
        actor = self.actors.get(spec.actor_id)
        if actor is None:
            self.raylet.fail_task(spec, "ActorDiedError",
                            f"The actor {spec.actor_id} is unknown to this node; it may have "
                            f"been created by another session.")
            return
        if actor.state == "DEAD":
            self.raylet.fail_task(spec, "ActorDiedError", actor.death or "The actor is dead.")
        elif actor.state == "ALIVE":
            self.push_call(actor, spec)
        else:
            actor.pending.append(spec)

    def push_call(self, actor: ActorRecord, spec: TaskSpec) -> None:
        # Seed phase 4 step 2: find the actor's worker. This raylet created the actor, so it
        # knows; a raylet on another node would ask the GCS (and cache the answer).
        trace.emit("raylet.actor_lookup", phase=spec.phase, actor=actor.actor_id,
                   task=spec.task_id, wid=actor.worker.wid, source="local actor table")
        self.raylet.push(actor.worker, spec)

    def fail_pending_calls(self, actor: ActorRecord) -> None:
        """Calls still queued here fail; calls already pushed to the worker are failed by
        their callers, whom every client of this raylet hears from (``actor_died``)."""
        message = actor.death or "The actor died."
        for spec in list(actor.pending):
            self.raylet.fail_task(spec, "ActorDiedError", message)
        actor.pending.clear()
        for client in list(self.raylet.clients.values()):
            client.send("actor_died", {"actor_id": actor.actor_id, "message": message})

    def kill(self, actor_id: str, reason: str, graceful: bool = False) -> None:
        """``raysim.kill`` (now) or the last handle gone (``graceful``: queued calls first)."""
        actor = self.actors.get(actor_id)
        if actor is None or actor.state == "DEAD":
            return
        if graceful and actor.worker is not None and actor.worker.conn is not None:
            # Out of scope: let already-submitted calls finish, then exit (as Ray does).
            actor.death = f"The actor is dead because {reason}."
            actor.worker.conn.send("exit_worker", {"actor_id": actor.actor_id,
                                                   "reason": reason})
            return
        actor.death = f"The actor was killed: {reason}."
        actor.state = "DEAD"
        self.fail_pending_calls(actor)
        if actor.worker is not None:
            self.raylet.kill_worker(actor.worker)
        self.dead(actor, reason)

    def dead(self, actor: ActorRecord, reason: str) -> None:
        actor.state = "DEAD"
        if actor.held:
            self.raylet.resources.release(actor.held)
            actor.held = {}
        self.raylet.gcs.send("actor_update", {"actor_id": actor.actor_id, "state": "DEAD",
                                       "reason": reason})

    def worker_died(self, worker: WorkerRecord, how: str) -> None:
        actor = self.actors.get(worker.actor_id)
        reason = actor.death if actor is not None and actor.death else how
        self.raylet.gcs.send("worker_exited", {"wid": worker.wid, "actor_id": worker.actor_id,
                                               "reason": reason})
        if actor is None or actor.state == "DEAD":
            return
        if actor.state == "PENDING":
            self.raylet.resources.release(actor.creation.request)
        if not actor.death:
            actor.death = (f"The actor's worker process (pid {worker.pid}) died "
                           f"unexpectedly: {how}.")
        self.fail_pending_calls(actor)
        self.dead(actor, actor.death)

    def snapshot(self) -> dict:
        return {aid: {"state": a.state, "wid": a.worker.wid if a.worker else None,
                      "pid": a.worker.pid if a.worker else None}
                for aid, a in self.actors.items()}
