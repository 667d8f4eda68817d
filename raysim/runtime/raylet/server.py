"""The raylet: one per node, owning the node's object store, scheduler and worker pool.

Seed, phase 1: "Raylet process (one per node): handles local task scheduling and manages the
local object store". Phase 3 steps 1-3: the driver submits the actor creation to the raylet,
which checks resources and selects a worker. Phase 4 steps 1-3: the driver sends the method
call to the raylet, which finds the actor's worker and queues the call there.

The raylet is one thread running one ``EventLoop``. Around it:

    driver ──┐                       ┌── GCS (node table, object table, actors)
    worker ──┼── raylet.sock ── raylet
    worker ──┘                       └── zygote (forks workers)

Where raysim follows the founding document rather than Ray 2.x (docs/modern-ray.md#task-routing,
#actor-calls): every task and every actor method call passes through the raylet. Results go
from the worker straight to the task's owner; the raylet only hears that a task's resources
are free (a task's; an actor call's, not even that).

In Ray 2.x the submitter leases a worker from the raylet and then talks to the worker
directly, and actor calls never touch the raylet. Routing everything here is slower but makes
every step of the founding document a message you can see.

Tasks wait in the raylet's queues and are dispatched to workers by the local task manager
(``local_task_manager.py``), once their arguments are in the store (``dependency_manager.py``).
When a worker dies the zygote reports its exit status at once; the raylet then fails over
what the worker was doing: the task manager (``task_manager.py``) retries or fails its task,
the actor manager (``actor_manager.py``) restarts or buries its actor. Each of these parts is
given the pieces of the raylet it uses, not the raylet.

The store's own requests (create, seal, get, release, free; objects that can never arrive)
are answered by ``store_server.py``, in this process and loop; when the store is full,
``local_object_manager.py`` makes room.

In a cluster of several nodes (``raysim.cluster_utils``) each node has a raylet of its own.
What one cannot place (a resource only another node has, ``SPREAD``, node affinity) it
forwards to the GCS, which gives it to a node that can (seed phase 3 step 2, "otherwise
forwards to Global Scheduler"); a call to an actor that lives elsewhere goes the same way;
an object another node holds is pulled into this node's store by its object manager
(``object_manager.py``, seed phase 5). A one-node session forwards nothing and listens on no
TCP port.

Runs in: its own process, started by ``raysim.init()`` (one per node); exits when the driver
disconnects, when it is stopped (a node removed), or when the GCS dies (``component.died``),
stopping its workers on the way out.
Trace events: ``store.created``, ``object_store.*``, ``scheduler.decision``,
``raylet.actor_lookup``, ``task.finished``, ``process.exited``, ``worker.died``,
``component.died``, the worker pool's, task manager's and actor manager's events, and every
message.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from typing import Callable

import orjson

from raysim.runtime.common import procutil
from raysim.runtime.common.config import Config
from raysim.runtime.common.protocol import EventLoop, LoopConnection, connect_unix
from raysim.runtime.common.task_spec import ACTOR_CREATION, ACTOR_TASK, NORMAL_TASK, TaskSpec
from raysim.runtime.raylet import scheduler, zygote
from raysim.runtime.raylet.actor_manager import LocalActorManager
from raysim.runtime.raylet.dependency_manager import DependencyManager
from raysim.runtime.raylet.local_object_manager import LocalObjectManager
from raysim.runtime.raylet.local_task_manager import LocalTaskManager
from raysim.runtime.raylet.object_manager import ObjectManager
from raysim.runtime.raylet.object_store import ObjectStore
from raysim.runtime.raylet.scheduler import TaskRecord
from raysim.runtime.raylet.store_server import LOST_ERRORS, StoreServer, lost_reason
from raysim.runtime.raylet.task_manager import TaskManager
from raysim.runtime.raylet.worker_pool import (DEAD, INTENDED_SYSTEM_EXIT, SYSTEM_ERROR,
                                               WorkerDeath, WorkerPool, WorkerRecord)
from raysim.trace import writer as trace


class Raylet:
    def __init__(self, args: dict) -> None:
        self.node_id: str = args["node_id"]
        self.session_dir: str = args["session_dir"]
        self.config = Config.from_dict(args["config"])
        self.session = dict(args)
        # The store must exist before the zygote forks, so that every worker inherits its fd.
        self.store = ObjectStore(args["store_capacity"],
                                 self.config.object_store_page_align_threshold)
        self.session["store_fd"] = self.store.fd
        self.objects = LocalObjectManager(
            self.store, self.config.spill_directory(self.session_dir, self.node_id),
            self.config.automatic_object_spilling_enabled, self._revoke_leases,
            lambda object_id: self.gcs.send("remove_location", {"object_id": object_id}))
        self.zygote_pid, zygote_sock = self._fork_zygote()
        self.loop = EventLoop()
        self.zygote = self.loop.add_socket(zygote_sock, "zygote", self.on_message,
                                           self.on_zygote_close)
        self.zygote.peer_pid = self.zygote_pid
        self.resources = scheduler.ResourceSet(args["resources"])
        self.pool = WorkerPool(self.zygote.send)
        self.clients: dict[str, LoopConnection] = {}  # by worker id: drivers and workers
        self.driver: LoopConnection | None = None
        self.deps = DependencyManager(self.objects.available, self._watch_objects)
        # The task queues and dispatch (local_task_manager.py); retries and cancellation
        # (task_manager.py); actors (actor_manager.py).
        self.queue = LocalTaskManager(self.resources, self.pool, self.deps, self.store,
                                      self.owner_of, lambda: self.actors)
        self.actors = LocalActorManager(self.queue, self.resources, self.pool, self.clients,
                                        self.owner_of, self._tell_gcs, self.kill_worker,
                                        self.fail_task)
        self.tasks = TaskManager(self.queue, self.pool, self.owner_of, self.config,
                                 self.loop.call_later, self.kill_worker, lambda: self.actors)
        self._stopping: tuple | None = None  # (driver, shutdown request, barrier) once asked
        self.store_server = StoreServer(self.store, self.objects, self.deps, self._tell_gcs,
                                        self.queue.lend_cpu, self.queue.return_cpu)
        # Connections to the owners of tasks forwarded here from other nodes, by address.
        self._owners: dict[str, LoopConnection] = {}
        # Objects this node pulls from other nodes' stores (object_manager.py): only in a
        # cluster of several nodes; a one-node session listens on no TCP port.
        self.object_manager: ObjectManager | None = None
        if args.get("object_manager"):
            self.object_manager = ObjectManager(
                self.loop, self.store, self.objects, self.node_id, args.get("token", ""),
                self.config.object_manager_default_chunk_size, self._pulled,
                self._pull_failed, port=args.get("object_manager_port") or 0)
        self.gcs = self._connect_gcs()
        self.handlers = self._handlers()
        self.path = os.path.join(self.session_dir, f"raylet-{self.node_id}.sock")
        self.loop.listen(self.path, "?", self.on_message, self.on_close)
        trace.emit("store.created", capacity=self.store.capacity, name="memfd:raysim-object-store")

    # -- startup -----------------------------------------------------------------------------

    def _fork_zygote(self) -> tuple[int, socket.socket]:
        ours, theirs = socket.socketpair()
        trace.flush()
        pid = os.fork()
        if pid == 0:
            ours.close()
            zygote.run(theirs, self.session)  # never returns
        theirs.close()
        return pid, ours

    def _connect_gcs(self) -> LoopConnection:
        # The GCS starts at the same time as the raylet; wait for its socket.
        blocking = connect_unix(os.path.join(self.session_dir, "gcs.sock"), "gcs",
                                self.config.process_startup_timeout_s)
        conn = self.loop.add_socket(blocking.sock, "gcs", self.on_message, self.on_gcs_close)
        conn.send("register_node", {"node_id": self.node_id,
                                    "resources": scheduler.from_fixed(self.resources.total),
                                    "store_capacity": self.store.capacity,
                                    "object_manager": self.object_manager and
                                    self.object_manager.address})
        return conn

    # -- dispatch of messages ----------------------------------------------------------------

    def _handlers(self) -> dict[str, Callable[[LoopConnection, int, dict], None]]:
        """Every message kind this process answers, and who answers it."""
        store = self.store_server
        return {
            # from drivers and workers: joining, tasks, actors
            "register_client": self.handle_register_client,
            "submit_task": self.handle_submit_task,
            "task_done": self.handle_task_done,
            "cancel_task": self.handle_cancel_task,
            "kill_actor": self.handle_kill_actor,
            "worker_blocked": self.handle_worker_blocked,
            "worker_unblocked": self.handle_worker_unblocked,
            # the object store's service (store_server.py)
            "create_object": store.handle_create_object,
            "seal_object": self.handle_seal_object,
            "get_objects": store.handle_get_objects,
            "release_objects": store.handle_release_objects,
            "leases_returned": store.handle_leases_returned,
            # from the GCS
            "free_objects": store.handle_free_objects,
            "objects_located": self.handle_objects_located,
            "objects_lost": self.handle_objects_lost,
            "reply": self.handle_reply,
            # from the zygote
            "worker_exited": self.handle_worker_exited,
            # from the driver (and raysim.snapshot())
            "snapshot": self.handle_snapshot,
            "shutdown": self.handle_shutdown,
        }

    def on_message(self, conn: LoopConnection, kind: str, msg_id: int, phase, body: dict) -> None:
        handler = self.handlers.get(kind)
        if handler is None:
            raise RuntimeError(f"raylet got unknown message {kind!r} from {conn.peer_name}")
        handler(conn, msg_id, body)

    def handle_reply(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        # The GCS acknowledging register_node, or the barrier of a shutdown (below).
        if self._stopping is not None and body.get("reply_to") == self._stopping[2]:
            driver, request, _ = self._stopping
            driver.reply(request, {})
            self.loop.stop()

    def handle_register_client(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        role, wid = body["role"], body["wid"]
        conn.peer_id = wid
        self.clients[wid] = conn
        if role == "driver":
            conn.peer_kind = "driver"
            self.driver = conn
            trace.emit("worker.registered", wid=wid, worker_pid=conn.peer_pid, role="driver")
            conn.send_with_fd("reply", {"reply_to": msg_id, "node_id": self.node_id,
                                        "store_capacity": self.store.capacity},
                              self.store.fd)
            prestart = self.config.num_prestart_workers
            if prestart is None:
                prestart = int(scheduler.from_fixed(self.resources.total).get("CPU", 0))
            for _ in range(max(0, prestart - self.pool.count("task"))):
                self.pool.start("task")
            return
        conn.peer_kind = "worker"
        worker = self.pool.registered(wid, conn, conn.peer_pid)
        conn.state = worker
        conn.reply(msg_id, {"node_id": self.node_id, "store_capacity": self.store.capacity})
        if worker is None:
            return
        if worker.role == "actor":
            self.actors.worker_ready(worker)
        self.queue.schedule()

    def on_close(self, conn: LoopConnection) -> None:
        if conn is self.driver:
            trace.emit("process.stopping", reason="driver disconnected")
            self.loop.stop()
            return
        if self.clients.get(conn.peer_id or "") is conn:
            del self.clients[conn.peer_id]
        # A worker's connection closing means the process is going; what that means for its
        # task or actor is decided when its zygote reports the exit status, which says how it
        # went (handle_worker_exited), a moment later.

    def on_gcs_close(self, conn: LoopConnection) -> None:
        if self._stopping is None and self.loop.running:
            # Not asked to stop, nor stopping already (its driver gone): the GCS died. A
            # raylet cannot work without it (Ray's raylet exits too): stop, and with it
            # every worker (cleanup()). The driver sees the GCS go on its own connection.
            trace.emit("component.died", component="gcs", component_pid=conn.peer_pid,
                       exit_code=None, signal=None, detected_by="raylet")
        trace.emit("process.stopping", reason="GCS disconnected")
        if self._stopping is not None:  # it went while we waited for its shutdown barrier
            self._stopping[0].reply(self._stopping[1], {})
        self.loop.stop()

    def on_zygote_close(self, conn: LoopConnection) -> None:
        if self.loop.running:
            trace.emit("process.stopping", reason="zygote died")
            self.loop.stop()

    def _tell_gcs(self, kind: str, body: dict) -> None:
        self.gcs.send(kind, body)

    def _watch_objects(self, object_ids: list[str]) -> None:
        self.gcs.send("watch_objects", {"objects": object_ids})

    def _revoke_leases(self, holder: str, object_ids: list[str]) -> bool:
        conn = self.clients.get(holder.partition(":")[2])
        if conn is None or conn.closed:
            return False
        conn.send("revoke_leases", {"objects": object_ids})
        return True

    # -- tasks -------------------------------------------------------------------------------

    def handle_submit_task(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        spec = body["spec"]
        if spec.kind == ACTOR_TASK:
            if (spec.actor_id in self.actors.actors or body.get("placed") or
                    self.object_manager is None):
                self.actors.submit_call(spec, body.get("dead"),
                                        body.get("error", "ActorDiedError"))
                return
            # Seed phase 4 step 2: "looks up Actor 0's location in GCS": not on this node,
            # the GCS hands the call to the actor's node's raylet (gcs/server.py).
            trace.emit("raylet.actor_lookup", phase=spec.phase, actor=spec.actor_id,
                       task=spec.task_id, wid=None, source="GCS: on another node")
            self.gcs.send("forward_task", {"spec": spec, "task_id": spec.task_id,
                                           "resources": {}}, spec.phase)
            return
        if spec.kind == ACTOR_CREATION:
            request = scheduler.placement_request(spec)
        else:
            request = scheduler.task_request(spec)
        if body.get("unschedulable") and spec.kind == NORMAL_TASK:
            self.fail_task(spec, "TaskUnschedulableError", (
                f"The node specified via NodeAffinitySchedulingStrategy doesn't exist any "
                f"more or is infeasible, and soft=False was specified ({body['unschedulable']}"
                f"), name={spec.name}. Tip: pass soft=True to run it elsewhere then."))
            return
        elsewhere = None if body.get("placed") else self._elsewhere(spec, request)
        if elsewhere is not None:
            # Seed phase 3 step 2: "otherwise forwards to Global Scheduler" (placement.py).
            trace.emit("scheduler.decision", phase=spec.phase, task=spec.task_id,
                       decision="forwarded", resources=scheduler.from_fixed(request),
                       available=scheduler.from_fixed(self.resources.available),
                       reason=elsewhere)
            self.gcs.send("forward_task", {"spec": spec, "task_id": spec.task_id,
                                           "resources": scheduler.from_fixed(request)},
                          spec.phase)
            return
        record = TaskRecord(spec, request, tuple(sorted(request.items())))
        if spec.kind == ACTOR_CREATION:
            self.actors.register(record, body.get("num_restarts", 0),
                                 keep_spec=self.object_manager is not None)
            if body.get("unschedulable"):
                self.actors.unschedulable(record, body["unschedulable"])
                return
        self.queue.add(record)
        self.queue.schedule()

    def _elsewhere(self, spec: TaskSpec, request: dict) -> str | None:
        """Why a task or an actor should run on another node (the GCS chooses which), or
        None."""
        if spec.kind not in (NORMAL_TASK, ACTOR_CREATION) or self.object_manager is None:
            return None  # (no object manager: a one-node session, nowhere else to go)
        strategy = spec.strategy
        if strategy == "SPREAD":
            return "scheduling_strategy SPREAD: the GCS picks the next node in turn"
        if isinstance(strategy, (list, tuple)) and strategy[1] != self.node_id:
            return f"node affinity to {strategy[1]}"
        if not self.resources.feasible(request):
            return "this node's resources can never fit it"
        return None

    def owner_of(self, spec: TaskSpec) -> LoopConnection | None:
        """The connection to a task's owner: a client of this raylet, or, for a task that
        came from another node, its owner's own socket (as a worker sends results)."""
        conn = self.clients.get(spec.owner)
        if conn is not None:
            return conn
        conn = self._owners.get(spec.owner_address)
        if conn is None or conn.closed:
            try:
                blocking = connect_unix(spec.owner_address, "owner", timeout_s=1.0)
            except OSError:
                return None  # the owner is gone: nobody to tell
            conn = self.loop.add_socket(blocking.sock, "owner", self.on_message,
                                        lambda c: None)
            conn.peer_id = spec.owner
            self._owners[spec.owner_address] = conn
        return conn

    # -- objects on other nodes (object_manager.py) ------------------------------------------

    def handle_objects_located(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """The GCS says where objects this node waits for are: pull them here."""
        for object_id, located in body["objects"].items():
            if self.object_manager is not None:
                self.object_manager.pull(object_id, located)

    def _pulled(self, object_id: str, located: dict) -> None:
        """A secondary copy arrived: seal it (the GCS hears of the new location) and start
        what waited for it."""
        self.store_server.seal({"object_id": object_id, "owner": located["owner"]},
                               primary=False)
        for record in self.deps.sealed(object_id):
            self.queue.enqueue_ready(record)
        self.queue.schedule()

    def _pull_failed(self, object_id: str, why: str) -> None:
        """Ask the GCS again in a moment: another copy, or word that the object is lost."""
        self.loop.call_later(0.1, lambda: self.gcs.send("watch_objects",
                                                        {"objects": [object_id]}))

    # -- objects sealed or lost: the tasks that waited for them ------------------------------

    def handle_seal_object(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        self.store_server.seal(body)
        for record in self.deps.sealed(body["object_id"]):
            self.queue.enqueue_ready(record)
        self.queue.schedule()

    def handle_objects_lost(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """The GCS says objects are lost (their owner died) or were freed before a reader's
        reference counted: the store deletes its copies, and whoever waits for them fails
        with that error (Ray's tasks do too) instead of waiting forever."""
        self.store_server.delete_lost(body)
        for object_id, lost in body["objects"].items():
            for record in self.deps.lost(object_id, lost):
                spec = record.spec
                message = (f"{spec.name} ({spec.task_id}) cannot run, because one of its "
                           f"arguments cannot be read. {lost['message']}")
                if spec.kind == ACTOR_CREATION:
                    self.actors.creation_failed(record, message, lost_reason(lost))
                else:
                    self.fail_task(spec, LOST_ERRORS.get(lost["cause"], "ObjectLostError"),
                                   message)
        self.objects.progress()
        self.queue.schedule()

    def handle_task_done(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """A task finished; its result already went straight to its owner."""
        worker: WorkerRecord = conn.state
        task_id = body["task_id"]
        if body["task_kind"] == ACTOR_CREATION:
            self.actors.created(worker, body)
        else:
            record = self.queue.finished(task_id)
            if record is not None:
                self.tasks.finished(record, body)
                self._count_call(worker, record.spec)
            self.pool.make_idle(worker)
        self.queue.schedule()

    def fail_task(self, spec: TaskSpec, exc_type: str, message: str) -> None:
        """The task cannot produce its result (its actor is dead, ...): see TaskManager.fail."""
        self.tasks.fail(spec, exc_type, message)

    def handle_cancel_task(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        if body.get("actor_id"):
            self.actors.cancel_call(body["actor_id"], body["task_id"])
        else:
            self.tasks.cancel(body["task_id"], body.get("force", False),
                              body.get("recursive", True))
        self.queue.schedule()

    def _count_call(self, worker: WorkerRecord, spec) -> None:
        """``max_calls``: a worker that ran that many tasks of the function exits (gently:
        it takes no new task, finishes, runs its exit handlers), as in Ray."""
        if not spec.max_calls:
            return
        count = worker.calls[spec.function_id] = worker.calls.get(spec.function_id, 0) + 1
        if count >= spec.max_calls and worker.conn is not None and not worker.conn.closed:
            worker.exit_reason = f"it ran {count} task(s) of {spec.name}, its max_calls"
            worker.exit_type = INTENDED_SYSTEM_EXIT
            worker.conn.send("exit_worker", {"reason": worker.exit_reason})

    def handle_worker_blocked(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        self.queue.lend_cpu(conn.state)

    def handle_worker_unblocked(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        self.queue.return_cpu(conn.state)

    def handle_kill_actor(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        if body["actor_id"] not in self.actors.actors and self.object_manager is not None \
                and not body.get("self_exit") and conn is not self.gcs:
            self.gcs.send("kill_actor", body)  # it lives on another node: the GCS knows which
            return
        if body.get("self_exit"):
            # The actor ends itself (exit_actor()); it waits for this answer, then exits.
            self.actors.exited(body["actor_id"], body["reason"])
            conn.reply(msg_id, {})
            return
        self.actors.kill(body["actor_id"], body.get("reason", "killed"),
                         no_restart=body.get("no_restart", True),
                         graceful=body.get("graceful", False))

    # -- worker lifecycle --------------------------------------------------------------------

    def kill_worker(self, worker: WorkerRecord, reason: str, exit_type: str) -> None:
        """End a worker on purpose; its death is handled when the zygote reports it."""
        worker.exit_reason, worker.exit_type = reason, exit_type
        if worker.pid:
            try:
                os.kill(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def handle_worker_exited(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """The zygote reaped a worker: the one place a worker's death is handled."""
        worker = self.pool.workers.get(body["wid"]) if body.get("wid") else None
        trace.emit("process.exited", child_pid=body["pid"], wid=body.get("wid"),
                   exit_code=body["exit_code"], role=worker.role if worker else None,
                   actor=worker.actor_id if worker else None)
        if worker is None or worker.state == DEAD:
            return
        worker.exited = True
        if worker.conn is not None:
            self._drain(worker.conn)
        self._worker_died(worker, WorkerDeath.of(worker, body["pid"], body["exit_code"]))

    def _drain(self, conn: LoopConnection) -> None:
        """Handle what a dead worker sent before it died (its last task_done, say) before its
        death: the zygote's report can overtake bytes still unread in the worker's socket."""
        while not conn.closed:
            try:
                conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return  # nothing more, and still open: a child of the worker holds it
            except OSError:
                pass
            conn.handle_readable()  # reads what is there, or sees the end and closes

    def _worker_died(self, worker: WorkerRecord, death: WorkerDeath) -> None:
        task = worker.task.task_id if worker.task is not None else None
        self.pool.remove(worker)
        if worker.conn is not None and self.clients.get(worker.wid) is worker.conn:
            del self.clients[worker.wid]
        trace.emit("worker.died", wid=worker.wid, worker_pid=death.pid, role=worker.role,
                   exit_code=death.exit_code, signal=death.signal, exit_type=death.exit_type,
                   task=task, actor=worker.actor_id, starting=death.starting,
                   cause=death.cause)
        for entry in self.store.abort_unsealed(f"worker:{worker.wid}"):
            trace.emit("object_store.deleted", obj=entry.object_id, size=entry.size,
                       reason="its writer died before sealing it", used=self.store.used)
        self.store.release_client(f"worker:{worker.wid}")
        self.objects.client_gone(f"worker:{worker.wid}")
        gave_up = False
        if death.starting and death.exit_type == SYSTEM_ERROR:
            self.pool.startup_failures += 1
            gave_up = self.pool.startup_failures >= self.config.max_worker_startup_failures
        # The GCS drops the references the worker held, and loses the objects it owned.
        self.gcs.send("worker_exited", {"wid": worker.wid, "actor_id": worker.actor_id,
                                        "cause": death.cause})
        if worker.actor_id is not None:
            self.actors.worker_died(worker, death, gave_up)
        else:
            self.tasks.worker_died(worker, death)
        # What it owned dies with it: the tasks it submitted and the actors it created.
        owner = f"worker {worker.wid} (pid {death.pid})"
        self.tasks.owner_died(worker.wid, owner)
        self.actors.owner_died(worker.wid, owner)
        if gave_up:
            self.tasks.give_up_starting(death)
        self.queue.schedule()

    # -- reporting and shutdown ----------------------------------------------------------------

    def handle_snapshot(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        conn.reply(msg_id, self.snapshot())

    def snapshot(self) -> dict:
        return {
            "node_id": self.node_id,
            "store": dict(self.store.snapshot(), spilled=self.objects.snapshot()),
            "resources": self.resources.snapshot(),
            "workers": self.pool.snapshot(),
            **self.queue.snapshot(),
            "retrying_after_delay": list(self.tasks.backoff),
            "actors": self.actors.snapshot(),
        }

    def handle_shutdown(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """Stop, once the GCS has handled what this raylet told it (objects registered just
        now): the driver shuts the GCS down next, on another socket, and must not overtake
        them. A ``sync`` is that barrier."""
        trace.emit("process.stopping", reason="shutdown")
        if self.gcs.closed:  # the GCS is gone already: nothing to wait for
            conn.reply(msg_id, {})
            self.loop.stop()
            return
        self._stopping = (conn, msg_id, self.gcs.send("sync", {}))

    def cleanup(self) -> None:
        """Stop every worker and the zygote; the store's memory goes with the last of them.

        Workers get SIGTERM first, so they write their last trace events; whatever is still
        running a moment later is killed."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second stop must not cut this short
        if self.object_manager is not None:
            self.object_manager.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        workers = [w.pid for w in self.pool.workers.values() if w.pid]
        for pid in workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.config.process_shutdown_timeout_s / 2
        while workers and time.monotonic() < deadline:
            workers = [pid for pid in workers if procutil.alive(pid)]
            if workers:
                time.sleep(0.005)
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.kill(self.zygote_pid, signal.SIGKILL)
            os.waitpid(self.zygote_pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        # The result sockets of this node's workers, and of its driver (the session ends
        # with the driver's node): killed processes cannot remove their own. Only those: in a
        # cluster, a node that goes away leaves the others' sockets alone.
        wids = set(self.pool.started)
        if self.driver is not None and self.driver.peer_id:
            wids.add(self.driver.peer_id)
        for wid in wids:
            try:
                os.unlink(os.path.join(self.session_dir, f"owner-{wid}.sock"))
            except FileNotFoundError:
                pass
        self.objects.cleanup()
        self.store.close()


def main() -> None:
    args = orjson.loads(sys.argv[1])
    args["token"] = sys.stdin.readline().strip()  # the cluster's token (node.py)
    procutil.die_with_parent(signal.SIGTERM)
    procutil.exit_on_sigterm()
    trace.open_trace(args["trace_path"], "raylet", args["node_id"],
                     args["config"]["trace_flush_events"])
    raylet = Raylet(args)
    trace.emit("process.started", ppid=os.getppid(), role="raylet")
    try:
        raylet.loop.run()
    finally:
        raylet.cleanup()
        trace.close_trace()
