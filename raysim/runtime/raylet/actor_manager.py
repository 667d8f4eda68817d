"""The actors a raylet hosts: placing them, queueing their calls, restarting and burying them.

Seed, phase 3 steps 2-7: the raylet places each ``BatchPredictor`` on a worker process of
its own; phase 4 steps 2-3: "Raylet looks up Actor 0's location ... schedules task on
Worker #1's task queue (actors process methods serially)".

An actor needs 1 CPU free to be placed (placement, ``scheduler.placement_request``) and holds
only what it asked for once alive (0 CPU by default). Calls that arrive before the actor is
alive wait here, in order; once it is alive they are pushed to its worker as they come, and
the worker runs them one at a time.

When the actor's process dies, as in Ray:

* if it may restart (``max_restarts``, -1 for no limit; not killed with ``no_restart``), it
  goes ``RESTARTING`` and its creation task runs again on a new worker, rebuilding its state
  with ``__init__``; calls that arrive meanwhile wait for it;
* otherwise it is ``DEAD``: calls waiting here fail with ``ActorDiedError``, and so do later
  ones;
* either way every caller is told (``actor_died``), with the last call of theirs pushed to
  the dead process. The caller retries those calls on the restarted actor if
  ``max_task_retries`` allows, or fails them (``task_submitter.py``). Calls after that one
  were never pushed, so they wait here for the new process.

A constructor that raises kills the actor for good (no restart, as in Ray), and the error of
every call carries the constructor's traceback. An actor that ends itself (``exit_actor()``,
``__ray_terminate__``: ``exited``) is dead for good too; its process then exits on its own,
running the user's clean-up. A constructor argument lost while the actor waits for it (its
owner died) kills it too: the creation task can never run.

The GCS keeps the actor table and its state machine (``actor_table.py``); this module keeps
what only the hosting node knows: which worker, and the calls waiting. Ray's GCS decides
restarts (``GcsActorManager``); in raysim the raylet, which holds the creation task and sees
the death of the process first, decides and tells the GCS. Only when the whole node dies
does the GCS decide, and restart the actor on another node (``gcs/server.py``).

Runs in: the raylet process. Trace events: ``scheduler.decision`` (start_actor_worker),
``raylet.actor_lookup``, ``task.finished`` (creation), ``task.cancelled`` (queued calls).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Callable

from raysim.runtime.common.actor_errors import death_error, interrupted_message, restarting_message
from raysim.runtime.common.protocol import LoopConnection
from raysim.runtime.common.task_spec import TaskSpec
from raysim.runtime.raylet import scheduler
from raysim.runtime.raylet.local_task_manager import LocalTaskManager
from raysim.runtime.raylet.scheduler import ResourceSet, TaskRecord
from raysim.runtime.raylet.worker_pool import (INTENDED_SYSTEM_EXIT, INTENDED_USER_EXIT, USER_ERROR,
                                               WorkerDeath, WorkerPool, WorkerRecord)
from raysim.trace import writer as trace
from raysim.trace.schema import ALIVE, DEAD, DEPENDENCIES_UNREADY, PENDING_CREATION, RESTARTING

# Why an actor died, after Ray's ActorDeathCause kinds (the ``cause`` of gcs.actor_state).
WORKER_DIED = "WORKER_DIED"
RAY_KILL = "RAY_KILL"
OUT_OF_SCOPE = "OUT_OF_SCOPE"
CREATION_TASK_ERROR = "CREATION_TASK_ERROR"
WORKER_STARTUP_FAILED = "WORKER_STARTUP_FAILED"
OWNER_DIED = "OWNER_DIED"
INTENDED_EXIT = "INTENDED_USER_EXIT"  # exit_actor(), __ray_terminate__ (Ray's exit type)
ACTOR_UNSCHEDULABLE = "ACTOR_UNSCHEDULABLE"  # no node may host it (hard node affinity)


@dataclasses.dataclass(eq=False)
class ActorRecord:
    actor_id: str
    creation: TaskRecord
    worker: WorkerRecord | None = None
    state: str = DEPENDENCIES_UNREADY  # this node's view of the GCS state
    pending: deque = dataclasses.field(default_factory=deque)  # calls before ALIVE
    death: str | None = None  # why it died, for the errors of its calls
    death_cause: str = WORKER_DIED
    held: dict = dataclasses.field(default_factory=dict)  # resources held while alive
    placed: bool = False  # holds its placement resources (1 CPU) until __init__ returns
    num_restarts: int = 0
    no_restart: bool = False  # killed, or out of scope: never restarted
    # For each caller, the send order (``seq``) of the last of its calls pushed to the
    # current process: on a death, the calls up to it were running or queued in that process.
    last_pushed: dict = dataclasses.field(default_factory=dict)
    # Callers on other nodes (by worker id), one of their calls each: how to reach them.
    remote_callers: dict = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.creation.spec.name

    def may_restart(self) -> bool:
        max_restarts = self.creation.spec.max_restarts or 0
        return not self.no_restart and (max_restarts < 0 or self.num_restarts < max_restarts)


class LocalActorManager:
    def __init__(self, queue: LocalTaskManager, resources: ResourceSet, pool: WorkerPool,
                 clients: dict[str, LoopConnection],
                 owner_of: Callable[[TaskSpec], LoopConnection | None],
                 tell_gcs: Callable[[str, dict], None],
                 kill_worker: Callable[[WorkerRecord, str, str], None],
                 fail_task: Callable[[TaskSpec, str, str], None]) -> None:
        self.queue = queue  # the raylet's task queues: creations wait there for a CPU
        self.resources = resources
        self.pool = pool  # starts each actor's dedicated worker
        self.clients = clients  # every driver and worker here: told when an actor dies
        self.owner_of = owner_of  # a caller on another node, for the same news
        self.tell_gcs = tell_gcs  # actor_update: the GCS keeps the actor table
        self.kill_worker = kill_worker
        self.fail_task = fail_task
        self.actors: dict[str, ActorRecord] = {}

    # -- creation ----------------------------------------------------------------------------

    def register(self, record: TaskRecord, num_restarts: int = 0,
                 keep_spec: bool = False) -> None:
        """A creation task arrived: the GCS hears of the actor. As in Ray, it waits in
        DEPENDENCIES_UNREADY until its arguments are in the store.

        In a cluster the GCS keeps the creation task (``keep_spec``), to restart the actor on
        another node if this one goes away; such a restart arrives here with its count
        (``num_restarts``) and stays RESTARTING until ``__init__`` returns."""
        spec = record.spec
        actor = self.actors[spec.actor_id] = ActorRecord(spec.actor_id, record,
                                                         num_restarts=num_restarts)
        body = {"actor_id": spec.actor_id, "state": DEPENDENCIES_UNREADY,
                "class_name": spec.name, "handle_object": spec.handle_object,
                "owner": spec.owner_holder, "name": spec.actor_name,
                "namespace": spec.namespace, "descriptor": spec.descriptor}
        if keep_spec:
            body["spec"] = spec
            body["resources"] = scheduler.from_fixed(record.request)
        if num_restarts:
            actor.state = body["state"] = RESTARTING
            body["num_restarts"] = num_restarts
        self.tell_gcs("actor_update", body)

    def creation_ready(self, record: TaskRecord) -> None:
        actor = self.actors.get(record.spec.actor_id)
        if actor is not None and actor.state == DEPENDENCIES_UNREADY:
            self._set_state(actor, PENDING_CREATION)

    def place(self, record: TaskRecord) -> None:
        spec = record.spec
        actor = self.actors[spec.actor_id]
        if actor.state == DEAD:
            return  # killed while it waited to be placed
        self.resources.acquire(record.request)
        actor.placed = True
        worker = self.pool.start("actor", actor.actor_id)
        actor.worker = worker
        record.worker = worker
        trace.emit("scheduler.decision", phase=record.phase, task=record.task_id,
                   decision="start_actor_worker",
                   resources=scheduler.from_fixed(record.request),
                   available=scheduler.from_fixed(self.resources.available),
                   wid=worker.wid)

    def worker_ready(self, worker: WorkerRecord) -> None:
        actor = self.actors.get(worker.actor_id)
        if actor is None or actor.worker is not worker or actor.state == DEAD:
            # Its actor died (killed, say) while the process was starting: end it.
            self.kill_worker(worker, "its actor died while it started",
                                    INTENDED_USER_EXIT)
            return
        # A restart runs the same creation task again: __init__ rebuilds the state.
        self.queue.push(worker, actor.creation.spec, actor.num_restarts)

    def created(self, worker: WorkerRecord, body: dict) -> None:
        actor = self.actors.get(worker.actor_id)
        if actor is None or actor.worker is not worker:
            return
        record = actor.creation
        # Placement resources are given back; an actor holds only what it asked for.
        self._release(actor)
        trace.emit("task.finished", phase=record.phase, task=record.task_id, ok=body["ok"])
        if actor.state == DEAD:
            return  # killed while __init__ ran
        if body["ok"]:
            held = scheduler.task_request(record.spec)
            self.resources.acquire(held, force=True)
            actor.held = held
            actor.state = ALIVE  # the worker itself tells the GCS (seed phase 3 step 8)
            waiting, actor.pending = actor.pending, deque()
            for spec in waiting:
                self.push_call(actor, spec)
            return
        actor.death = (f"The actor {actor.name} ({actor.actor_id}) died because its "
                       f"constructor raised, so none of its methods can run. Tip: fix "
                       f"{actor.name}.__init__ (its traceback follows) and create the actor "
                       f"again.\n{body.get('error_text', '').rstrip()}")
        self._die(actor, CREATION_TASK_ERROR, "its constructor raised")
        self.kill_worker(worker, "its actor's constructor raised", USER_ERROR)

    def creation_failed(self, record: TaskRecord, message: str, reason: str) -> None:
        """An argument of its constructor is lost: the creation task can never run."""
        actor = self.actors.get(record.spec.actor_id)
        if actor is not None and actor.state != DEAD:
            actor.death = (f"The actor {actor.name} ({actor.actor_id}) could not be created: "
                           f"{message}")
            self._die(actor, CREATION_TASK_ERROR, reason)

    def unschedulable(self, record: TaskRecord, why: str) -> None:
        """No node may host it (hard node affinity to a dead node): dead before it is
        placed, its calls raising ActorUnschedulableError, as in Ray."""
        actor = self.actors[record.spec.actor_id]
        actor.no_restart = True
        actor.death = (f"The node specified via NodeAffinitySchedulingStrategy doesn't exist "
                       f"any more or is infeasible, and soft=False was specified ({why}), "
                       f"actor {actor.name} ({actor.actor_id}). Tip: pass soft=True to "
                       f"place it elsewhere then.")
        self._die(actor, ACTOR_UNSCHEDULABLE, why)

    def startup_failed(self, record: TaskRecord, message: str) -> None:
        """Its worker process kept dying while starting (TaskManager.give_up_starting)."""
        actor = self.actors.get(record.spec.actor_id)
        if actor is not None and actor.state != DEAD:
            actor.death = message
            self._die(actor, WORKER_STARTUP_FAILED, "its worker process could not start")

    # -- calls ---------------------------------------------------------------------------------

    def submit_call(self, spec: TaskSpec, dead: str | None = None,
                    error: str = "ActorDiedError") -> None:
        """A call to an actor of this node (or, ``dead``: the GCS's word that the call cannot
        reach the actor, on whichever node it lived, and ``error`` the exception)."""
        actor = self.actors.get(spec.actor_id)
        if actor is None or dead:
            self.fail_task(spec, error, dead or (
                f"The actor {spec.actor_id} is unknown to this cluster; it may have been "
                f"created by another session. Tip: call methods on handles of actors created "
                f"in this session."))
            return
        if spec.owner not in self.clients:
            actor.remote_callers[spec.owner] = spec  # told of its death on their own socket
        if actor.state == DEAD:
            self.fail_task(spec, death_error(actor.death_cause),
                           actor.death or "The actor is dead.")
        elif actor.state == ALIVE:
            self.push_call(actor, spec)
        elif actor.state == RESTARTING and not spec.max_retries:
            self.fail_task(spec, "ActorUnavailableError", restarting_message(
                actor.name, actor.actor_id, actor.num_restarts,
                actor.creation.spec.max_restarts or 0))
        else:
            actor.pending.append(spec)

    def push_call(self, actor: ActorRecord, spec: TaskSpec) -> None:
        if actor.worker.conn.closed:
            # Its process is going (the zygote's report follows): keep the call for the
            # restarted actor, or to fail if there is none, rather than push it into the void.
            actor.pending.append(spec)
            return
        # Seed phase 4 step 2: find the actor's worker. This raylet created the actor, so it
        # knows; a raylet on another node would ask the GCS (and cache the answer).
        trace.emit("raylet.actor_lookup", phase=spec.phase, actor=actor.actor_id,
                   task=spec.task_id, wid=actor.worker.wid, source="local actor table")
        actor.last_pushed[spec.owner] = spec.seq
        self.queue.push(actor.worker, spec)

    def cancel_call(self, actor_id: str, task_id: str) -> None:
        """``raysim.cancel`` of an actor call. As in Ray, only a call that has not started is
        cancelled; a running method is not interrupted (the actor's state could be left half
        changed)."""
        actor = self.actors.get(actor_id)
        if actor is None:
            return
        for spec in actor.pending:
            if spec.task_id == task_id:
                actor.pending.remove(spec)
                trace.emit("task.cancelled", phase=spec.phase, task=task_id, name=spec.name,
                           how="queued", force=False)
                self.fail_task(spec, "TaskCancelledError",
                                      f"The call {spec.name} ({task_id}) was cancelled by "
                                      f"raysim.cancel() before it ran, so it has no result. "
                                      f"Tip: call the method again if you still need it.")
                return
        if actor.state == ALIVE and actor.worker is not None:
            # Pushed already: the worker skips it if it has not started yet.
            actor.worker.conn.send("cancel_task", {"task_id": task_id, "actor_id": actor_id})

    # -- ends ----------------------------------------------------------------------------------

    def kill(self, actor_id: str, reason: str, no_restart: bool = True,
             graceful: bool = False) -> None:
        """``raysim.kill`` (now), or the last handle gone (``graceful``: queued calls first)."""
        actor = self.actors.get(actor_id)
        if actor is None or actor.state == DEAD:
            return
        worker = actor.worker
        if graceful:
            actor.no_restart = True
            actor.death_cause = OUT_OF_SCOPE
            actor.death = (f"The actor {actor.name} ({actor_id}) was stopped because {reason}. "
                           f"Tip: keep a handle to an actor for as long as you call it.")
            if worker is not None and worker.conn is not None:
                # Let already-submitted calls finish, then exit (as Ray does).
                worker.exit_reason, worker.exit_type = reason, INTENDED_USER_EXIT
                worker.conn.send("exit_worker", {"actor_id": actor_id, "reason": reason})
                return
            self._die(actor, OUT_OF_SCOPE, reason)
            if worker is not None:
                self.kill_worker(worker, reason, INTENDED_USER_EXIT)
            return
        actor.death_cause = RAY_KILL
        if not no_restart and actor.may_restart() and worker is not None:
            # Ray restarts an actor killed with no_restart=False, if restarts are left.
            self.kill_worker(worker, reason, INTENDED_USER_EXIT)
            return
        actor.no_restart = True
        actor.death = (f"The actor {actor.name} ({actor_id}) was killed: {reason}. Its "
                       f"pending and later calls fail. Tip: create a new actor to go on.")
        self._die(actor, RAY_KILL, reason)
        if worker is not None:
            self.kill_worker(worker, reason, INTENDED_USER_EXIT)

    def exited(self, actor_id: str, reason: str) -> None:
        """The actor ends itself (``exit_actor()``, ``__ray_terminate__``, ``sys.exit()``):
        DEAD for good, whatever its ``max_restarts``, as in Ray. Its process exits on its
        own once told, running the user's clean-up; it is not killed."""
        actor = self.actors.get(actor_id)
        if actor is None or actor.state == DEAD:
            return
        actor.no_restart = True
        actor.death = (f"The actor {actor.name} ({actor_id}) exited on purpose: {reason} "
                       f"(exit_actor()). Its pending and later calls fail. Tip: create a "
                       f"new actor to go on.")
        if actor.worker is not None:
            actor.worker.exit_reason = reason
            actor.worker.exit_type = INTENDED_USER_EXIT
        self._die(actor, INTENDED_EXIT, reason)

    def owner_died(self, wid: str, owner: str) -> None:
        """The process that created these actors died (``owner`` names it): they die with it,
        whatever their max_restarts, unless they are detached. In Ray too an actor that is not
        detached shares its owner's fate."""
        for actor in list(self.actors.values()):
            if actor.state == DEAD or actor.creation.spec.owner != wid:
                continue
            if actor.creation.spec.descriptor.get("detached"):
                continue  # lifetime="detached": it has no owner to share the fate of
            reason = f"its owner, {owner}, died"
            actor.no_restart = True
            actor.death = (f"The actor {actor.name} ({actor.actor_id}) was stopped because "
                           f"{reason}: an actor dies with the process that created it, as "
                           f"in Ray. Tip: create actors that must outlive the task or actor "
                           f"that needs them from the driver.")
            self._die(actor, OWNER_DIED, reason)
            if actor.worker is not None:
                self.kill_worker(actor.worker, reason, INTENDED_SYSTEM_EXIT)

    def worker_died(self, worker: WorkerRecord, death: WorkerDeath, gave_up: bool) -> None:
        actor = self.actors.get(worker.actor_id)
        if actor is None or actor.worker is not worker:
            return
        actor.worker = None
        self._release(actor)
        if actor.state == DEAD:
            return  # killed, or its constructor raised: already handled
        if death.starting and not gave_up and not actor.no_restart:
            # It never ran: start another worker, without counting a restart.
            self.queue.enqueue_ready(actor.creation)
            return
        if death.starting and gave_up:
            actor.death = (f"The actor {actor.name} ({actor.actor_id}) could not start: "
                           f"worker processes keep dying before they connect to the raylet "
                           f"({death.cause}). Tip: the workers' error is printed on stderr "
                           f"above; fix it and create the actor again.")
            self._die(actor, WORKER_STARTUP_FAILED, death.cause)
            return
        if actor.may_restart():
            self._restart(actor, death)
            return
        if actor.death is None:
            max_restarts = actor.creation.spec.max_restarts or 0
            restarts = (f"after {actor.num_restarts} restart(s), its max_restarts="
                        f"{max_restarts}" if max_restarts else "max_restarts is 0")
            actor.death = (f"The actor {actor.name} ({actor.actor_id}) died unexpectedly: "
                           f"its worker process (pid {death.pid}) died: {death.cause}; it is "
                           f"not restarted ({restarts}). Tip: raise max_restarts on the actor "
                           f"to restart it after a crash (-1: always), and max_task_retries "
                           f"to retry the calls that were running.")
        self._die(actor, actor.death_cause, death.cause)

    def _restart(self, actor: ActorRecord, death: WorkerDeath) -> None:
        actor.num_restarts += 1
        message = interrupted_message(
            actor.name, actor.actor_id,
            f"its worker process (pid {death.pid}) died: {death.cause}", "",
            actor.num_restarts, actor.creation.spec.max_restarts or 0)
        self._notify_callers(actor, message, restarting=True)
        self._set_state(actor, RESTARTING, death.cause, actor.death_cause)
        actor.death_cause = WORKER_DIED
        self.queue.enqueue_ready(actor.creation)

    def _die(self, actor: ActorRecord, cause: str, reason: str) -> None:
        """DEAD for good: calls waiting here fail, every caller is told, the GCS too."""
        message = actor.death or f"The actor {actor.name} is dead."
        actor.death, actor.death_cause = message, cause
        for spec in list(actor.pending):
            self.fail_task(spec, death_error(cause), message)
        actor.pending.clear()
        self._notify_callers(actor, message, restarting=False)
        self._release(actor)
        self._set_state(actor, DEAD, reason, cause)

    def _notify_callers(self, actor: ActorRecord, message: str, restarting: bool) -> None:
        last_pushed, actor.last_pushed = actor.last_pushed, {}
        body = {"actor_id": actor.actor_id, "message": message, "restarting": restarting,
                "last_pushed": last_pushed, "error": death_error(actor.death_cause)}
        for client in list(self.clients.values()):
            client.send("actor_died", body)
        for caller, spec in list(actor.remote_callers.items()):
            if caller not in self.clients:
                conn = self.owner_of(spec)
                if conn is not None:
                    conn.send("actor_died", body)

    def _release(self, actor: ActorRecord) -> None:
        if actor.placed:
            self.resources.release(actor.creation.request)
            actor.placed = False
        if actor.held:
            self.resources.release(actor.held)
            actor.held = {}

    def _set_state(self, actor: ActorRecord, state: str, reason: str | None = None,
                   cause: str | None = None) -> None:
        actor.state = state
        self.tell_gcs("actor_update", {
            "actor_id": actor.actor_id, "state": state, "reason": reason, "cause": cause,
            "num_restarts": actor.num_restarts})

    def snapshot(self) -> dict:
        return {aid: {"state": a.state, "wid": a.worker.wid if a.worker else None,
                      "pid": a.worker.pid if a.worker else None,
                      "num_restarts": a.num_restarts, "pending_calls": len(a.pending)}
                for aid, a in self.actors.items()}
