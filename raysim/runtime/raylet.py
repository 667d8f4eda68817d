"""The raylet: one per node, owning the node's object store, scheduler and worker pool.

Seed, phase 1: "Raylet process (one per node): handles local task scheduling and manages the
local object store". Phase 3 steps 1-3: the driver submits the actor creation to the raylet,
which checks resources and selects a worker. Phase 4 steps 1-3: the driver sends the method
call to the raylet, which finds the actor's worker and queues the call there.

The raylet is one thread running one ``EventLoop``. Around it:

    driver ──┐                       ┌── GCS (node table, object table, actors)
    worker ──┼── raylet.sock ── raylet
    worker ──┘                       └── zygote (forks workers)

Where raysim follows the founding document rather than Ray 2.x (ACCURACY.md #2-#4): every
task and every actor method call passes through the raylet, and results come back through it.
In Ray 2.x the submitter leases a worker from the raylet and then talks to the worker
directly, and actor calls never touch the raylet. Routing everything here is slower but makes
every step of the founding document a message you can see.

Runs in: its own process, started by ``raysim.init()``; exits when the driver disconnects.
Trace events: ``store.created``, ``object_store.*``, ``scheduler.decision``,
``raylet.actor_lookup``, ``task.finished``, ``process.exited``, the worker pool's events, and
every message.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections import deque

import orjson

from raysim.runtime import procutil, scheduler, zygote
from raysim.runtime.config import Config
from raysim.runtime.object_store import ObjectStore, StoreFull
from raysim.runtime.protocol import EventLoop, LoopConnection, connect_unix
from raysim.runtime.actor_manager import LocalActorManager
from raysim.runtime.task_spec import ACTOR_CREATION, ACTOR_TASK, TaskSpec
from raysim.runtime.scheduler import TaskRecord
from raysim.runtime.worker_pool import BLOCKED, BUSY, WorkerPool, WorkerRecord
from raysim.trace import writer as trace


def _error_result(exc_type: str, message: str) -> list:
    return ["raised", exc_type, message]


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
        self.zygote_pid, zygote_sock = self._fork_zygote()
        self.loop = EventLoop()
        self.zygote = self.loop.add_socket(zygote_sock, "zygote", self.on_message,
                                           self.on_zygote_close)
        self.zygote.peer_pid = self.zygote_pid
        self.resources = scheduler.ResourceSet(args["resources"])
        self.pool = WorkerPool(self.zygote.send)
        self.clients: dict[str, LoopConnection] = {}  # by worker id: drivers and workers
        self.driver: LoopConnection | None = None
        self.ready: dict[tuple, deque[TaskRecord]] = {}  # by shape, dependencies ready
        self.waiting_deps: dict[str, list[TaskRecord]] = {}  # object id -> tasks
        self.running: dict[str, TaskRecord] = {}
        self.actors = LocalActorManager(self)
        self.infeasible: list[TaskRecord] = []
        self._stopping: tuple | None = None  # (driver, shutdown request, barrier) once asked
        self.gcs = self._connect_gcs()
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
                                    "store_capacity": self.store.capacity})
        return conn

    # -- dispatch of messages ----------------------------------------------------------------

    def on_message(self, conn: LoopConnection, kind: str, msg_id: int, phase, body: dict) -> None:
        handler = getattr(self, "handle_" + kind, None)
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
        self.schedule()

    def on_close(self, conn: LoopConnection) -> None:
        if conn is self.driver:
            trace.emit("process.stopping", reason="driver disconnected")
            self.loop.stop()
            return
        self.clients.pop(conn.peer_id or "", None)
        worker = conn.state
        if isinstance(worker, WorkerRecord):
            self._worker_died(worker, "its connection to the raylet closed")

    def on_gcs_close(self, conn: LoopConnection) -> None:
        trace.emit("process.stopping", reason="GCS disconnected")
        if self._stopping is not None:  # it went while we waited for its shutdown barrier
            self._stopping[0].reply(self._stopping[1], {})
        self.loop.stop()

    def on_zygote_close(self, conn: LoopConnection) -> None:
        if self.loop.running:
            trace.emit("process.stopping", reason="zygote died")
            self.loop.stop()

    # -- the object store --------------------------------------------------------------------

    def handle_create_object(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        object_id, size = body["object_id"], body["size"]
        try:
            entry = self.store.create(object_id, size, conn.peer_name)
        except StoreFull as full:
            conn.reply(msg_id, {"error": "full", "capacity": full.capacity, "used": full.used,
                                "largest_free": self.store.allocator.largest_free()})
            return
        trace.emit("object_store.create", obj=object_id, size=size, offset=entry.offset,
                   owner=conn.peer_name, used=self.store.used)
        conn.reply(msg_id, {"offset": entry.offset})

    def handle_seal_object(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        object_id = body["object_id"]
        entry = self.store.seal(object_id)
        trace.emit("object_store.sealed", obj=object_id, size=entry.size, offset=entry.offset,
                   used=self.store.used)
        # Seed phase 2 step 4: the store registers the object's location with the GCS.
        self.gcs.send("add_object", {"object_id": object_id, "size": entry.size,
                                     "owner": body["owner"],
                                     "contained": body.get("contained", [])})
        for record in self.waiting_deps.pop(object_id, ()):
            record.missing.discard(object_id)
            if not record.missing:
                self._enqueue_ready(record)
        self.schedule()

    def handle_get_objects(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        wanted = list(body["objects"])
        found: dict[str, list[int]] = {}
        phase = trace.get_phase()

        def on_sealed(entry) -> None:
            found[entry.object_id] = [entry.offset, entry.size]
            if len(found) == len(wanted):
                conn.reply(msg_id, {"locations": found}, phase)

        for object_id in wanted:
            self.store.get_or_wait(object_id, on_sealed)

    def handle_free_objects(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        for object_id in body["objects"]:
            entry = self.store.delete(object_id)
            if entry is not None:
                trace.emit("object_store.deleted", obj=object_id, size=entry.size,
                           reason="reference count reached zero", used=self.store.used)

    # -- tasks -------------------------------------------------------------------------------

    def handle_submit_task(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        spec = body["spec"]
        if spec.kind == ACTOR_TASK:
            self.actors.submit_call(spec)
            return
        if spec.kind == ACTOR_CREATION:
            request = scheduler.placement_request(spec)
        else:
            request = scheduler.task_request(spec)
        record = TaskRecord(spec, request, tuple(sorted(request.items())))
        if spec.kind == ACTOR_CREATION:
            self.actors.register(record)
        self._add_task(record)
        self.schedule()

    def _add_task(self, record: TaskRecord) -> None:
        if not self.resources.feasible(record.request):
            self._infeasible(record)
            return
        missing = {oid for oid, inline in record.spec.deps
                   if inline is None and self.store.lookup(oid) is None}
        if missing:
            record.missing = missing
            for oid in missing:
                self.waiting_deps.setdefault(oid, []).append(record)
            trace.emit("scheduler.decision", phase=record.phase, task=record.task_id,
                       decision="waiting_for_dependencies",
                       resources=scheduler.from_fixed(record.request),
                       available=scheduler.from_fixed(self.resources.available),
                       reason=f"{len(missing)} argument(s) not yet in the store")
            return
        self._enqueue_ready(record)

    def _enqueue_ready(self, record: TaskRecord) -> None:
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
        owner = self.clients.get(record.spec.owner)
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
                    self.actors.place(record)
                    continue
                worker = self.pool.pop_idle()
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
        worker.state = BUSY
        worker.task = record
        record.worker = worker
        self.running[record.task_id] = record
        trace.emit("scheduler.decision", phase=record.phase, task=record.task_id,
                   decision="dispatch", resources=scheduler.from_fixed(record.request),
                   available=scheduler.from_fixed(self.resources.available), wid=worker.wid)
        self.push(worker, record.spec, record.attempt)

    def push(self, worker: WorkerRecord, spec: TaskSpec, attempt: int = 0) -> None:
        locations = {}
        for oid, inline in spec.deps:
            if inline is None:
                entry = self.store.lookup(oid)
                if entry is not None:
                    locations[oid] = [entry.offset, entry.size]
        worker.conn.send("push_task", {"spec": spec, "task_id": spec.task_id,
                                       "locations": locations, "attempt": attempt},
                         spec.phase)

    def handle_task_done(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """A task finished; its result already went straight to its owner."""
        worker: WorkerRecord = conn.state
        task_id = body["task_id"]
        if body["task_kind"] == ACTOR_CREATION:
            self.actors.created(worker, body)
        else:
            record = self.running.pop(task_id, None)
            if record is not None:
                self.resources.release(record.request)
                trace.emit("task.finished", task=task_id, ok=body["ok"])
            self.pool.make_idle(worker)
        self.schedule()

    def fail_task(self, spec: TaskSpec, exc_type: str, message: str) -> None:
        """The task cannot produce its result (its worker died, its actor is dead): tell the
        owner, through this raylet, with the error its get() will raise."""
        trace.emit("task.finished", phase=spec.phase, task=spec.task_id, ok=False)
        owner = self.clients.get(spec.owner)
        if owner is not None:
            owner.send("task_done", {"task_id": spec.task_id, "ok": False,
                                     "returns": spec.returns, "actor_id": spec.actor_id,
                                     "results": [_error_result(exc_type, message)
                                                 for _ in spec.returns]}, spec.phase)

    def handle_worker_blocked(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        worker: WorkerRecord = conn.state
        if worker.state == BUSY and worker.task is not None:
            worker.state = BLOCKED
            worker.lent = worker.task.request
            self.resources.release(worker.lent)
            self.schedule()

    def handle_worker_unblocked(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        worker: WorkerRecord = conn.state
        if worker.state == BLOCKED:
            worker.state = BUSY
            self.resources.acquire(worker.lent, force=True)
            worker.lent = None

    def handle_kill_actor(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        self.actors.kill(body["actor_id"], body.get("reason", "killed"),
                         graceful=body.get("graceful", False))

    # -- worker lifecycle --------------------------------------------------------------------

    def kill_worker(self, worker: WorkerRecord) -> None:
        if worker.pid:
            try:
                os.kill(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _worker_died(self, worker: WorkerRecord, how: str) -> None:
        self.pool.remove(worker)
        if worker.actor_id is not None:
            self.actors.worker_died(worker, how)
            return
        self.gcs.send("worker_exited", {"wid": worker.wid, "reason": how})
        record = worker.task
        if record is None:
            return
        self.running.pop(record.task_id, None)
        if worker.lent is None:
            self.resources.release(record.request)
        max_retries = record.spec.max_retries
        if max_retries < 0 or record.attempt < max_retries:
            record.attempt += 1
            record.worker = None
            trace.emit("scheduler.decision", phase=record.phase, task=record.task_id,
                       decision="retry", resources=scheduler.from_fixed(record.request),
                       available=scheduler.from_fixed(self.resources.available),
                       reason=f"worker {worker.wid} died ({how}); attempt {record.attempt + 1}")
            self._enqueue_ready(record)
        else:
            self.fail_task(record.spec, "WorkerCrashedError",
                            f"The worker died unexpectedly while executing task "
                            f"{record.spec.name} ({how}), after {record.attempt + 1} "
                            f"attempt(s). Tip: see process.exited in the trace for its exit "
                            f"code; raise max_retries if the crash is transient.")
        self.schedule()

    def handle_worker_exited(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        worker = self.pool.workers.get(body["wid"]) if body.get("wid") else None
        trace.emit("process.exited", child_pid=body["pid"], wid=body.get("wid"),
                   exit_code=body["exit_code"], role=worker.role if worker else None,
                   actor=worker.actor_id if worker else None)
        if worker is not None and worker.conn is None:
            self._worker_died(worker, f"it exited with code {body['exit_code']} before "
                                      f"connecting")

    # -- reporting and shutdown ----------------------------------------------------------------

    def handle_snapshot(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        conn.reply(msg_id, self.snapshot())

    def snapshot(self) -> dict:
        return {
            "node_id": self.node_id,
            "store": self.store.snapshot(),
            "resources": self.resources.snapshot(),
            "workers": self.pool.snapshot(),
            "queued": sum(len(q) for q in self.ready.values()),
            "waiting_for_dependencies": len(self.waiting_deps),
            "infeasible": [r.task_id for r in self.infeasible],
            "running": list(self.running),
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
        # Owners' result sockets: the session is over, and killed processes cannot remove
        # their own.
        for name in os.listdir(self.session_dir):
            if name.startswith("owner-") and name.endswith(".sock"):
                try:
                    os.unlink(os.path.join(self.session_dir, name))
                except FileNotFoundError:
                    pass
        self.store.close()


def main() -> None:
    args = orjson.loads(sys.argv[1])
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


if __name__ == "__main__":
    main()
