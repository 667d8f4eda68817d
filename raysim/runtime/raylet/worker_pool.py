"""The raylet's worker pool: which worker processes exist, and in which state.

Seed, phase 1: "Worker processes (typically one per CPU core): execute tasks and actor
methods"; "Workers: idle, waiting for tasks". Phase 3 step 3: "Scheduler selects Worker
Process #1 for Actor 0".

As in Ray, there are two kinds of worker: *task workers*, a pool reused from task to task
(about one per CPU, more while some are blocked in ``get``), and *actor workers*, one
dedicated process per actor, started on demand and gone with the actor.

How a worker process starts differs from Ray. Ray execs a fresh ``python default_worker.py``
per worker (~0.6 s on this kind of machine). raysim forks it from a *zygote*: a process the
raylet starts once, which imports cloudpickle, numpy and the modules the driver had loaded,
then forks a ready worker in a few milliseconds on request (``zygote.py``). The worker is
still a separate OS process with its own pid and heap.

A worker's death is seen at once: the zygote, its parent, is woken by SIGCHLD, reaps it and
tells the raylet its exit code or signal (Ray's raylet notices a worker's socket closing and
asks the OS the same). ``WorkerDeath`` says what that exit means, in Ray's terms
(``WorkerExitType``). Workers that die before they even connect are counted: a run of them
(a broken import, a setup hook that raises) stops the raylet from starting more forever.

Runs in: the raylet process. Trace events: ``worker.starting``, ``worker.registered``.
"""

from __future__ import annotations

import dataclasses
import itertools
import signal
from collections import deque

from raysim.runtime.common.errors import RaySimInternalError
from raysim.runtime.common.ids import random_hex
from raysim.trace import writer as trace

# Worker states.
STARTING = "STARTING"   # asked of the zygote, not yet connected
IDLE = "IDLE"           # a task worker waiting for a task
BUSY = "BUSY"           # running a task
BLOCKED = "BLOCKED"     # running a task that waits in get(); its CPU is lent out
ACTOR = "ACTOR"         # dedicated to an actor
DEAD = "DEAD"

# Every move a worker may make (WorkerRecord.move_to).
_LEGAL: dict[str, frozenset[str]] = {
    STARTING: frozenset({IDLE, ACTOR, DEAD}),
    IDLE: frozenset({BUSY, DEAD}),
    BUSY: frozenset({IDLE, BLOCKED, DEAD}),
    BLOCKED: frozenset({BUSY, IDLE, DEAD}),
    ACTOR: frozenset({DEAD}),
    DEAD: frozenset(),
}


@dataclasses.dataclass(eq=False)
class WorkerRecord:
    wid: str
    role: str  # "task" or "actor"
    state: str = STARTING
    pid: int = 0
    conn: object = None  # the LoopConnection once registered
    actor_id: str | None = None
    task: object = None  # the TaskRecord it runs (task workers)
    lent: dict | None = None  # resources lent back while blocked
    # Set when the raylet itself ends the process (raysim.kill, cancel(force=True), an actor
    # out of scope): the death is then intended, and the worker takes no new task.
    exit_reason: str | None = None
    exit_type: str | None = None
    exited: bool = False  # the zygote reported its exit: what it sent last is being read
    # The kind of its tasks: whether they use GPUs, and the environment variables their
    # runtime_env sets. Set by its first task; then only tasks of the same kind go to it.
    # Ray too keeps GPU and CPU-only tasks in separate workers (ray#22504: a GPU task leaves
    # the process's CUDA state set), and starts workers per runtime environment.
    kind: tuple | None = None
    # Tasks run, per function, for those with max_calls (Ray: the worker exits after that
    # many, which frees what a leaky function holds).
    calls: dict = dataclasses.field(default_factory=dict)

    def move_to(self, state: str) -> None:
        """The one place a worker changes state; an illegal move is a raylet bug."""
        if state not in _LEGAL[self.state]:
            raise RaySimInternalError(f"worker {self.wid} cannot go from {self.state} to "
                                      f"{state}")
        self.state = state


# Ray's WorkerExitType, for the worker.died event.
SYSTEM_ERROR = "SYSTEM_ERROR"              # crashed, or killed from outside
INTENDED_USER_EXIT = "INTENDED_USER_EXIT"  # raysim.kill, cancel(force=True), out of scope
USER_ERROR = "USER_ERROR"                  # its actor's constructor raised
INTENDED_SYSTEM_EXIT = "INTENDED_SYSTEM_EXIT"  # raysim ended it: the owner of its work died


@dataclasses.dataclass
class WorkerDeath:
    """What a worker's exit means, as the raylet tells everyone who depended on it."""

    pid: int
    exit_code: int | None  # None when it died by a signal
    signal: str | None     # "SIGKILL", ...
    exit_type: str
    starting: bool         # it died before it connected to the raylet
    cause: str             # for people: "it was killed by signal SIGKILL"

    @classmethod
    def of(cls, worker: WorkerRecord, pid: int, status: int) -> "WorkerDeath":
        """``status`` as the zygote reports it: the exit code, or minus the signal number."""
        code, sig = (status, None) if status >= 0 else (None, _signal_name(-status))
        how = (f"it was killed by signal {sig}" if sig else f"it exited with code {code}")
        if worker.conn is None:
            how += " before it connected to the raylet"
        cause = f"{worker.exit_reason} ({how})" if worker.exit_reason else how
        return cls(pid, code, sig, worker.exit_type or SYSTEM_ERROR, worker.conn is None, cause)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def task_kind(record) -> tuple:
    """The kind of worker a task needs (``WorkerRecord.kind``): one that uses GPUs or not,
    with the environment variables of its runtime_env."""
    env = record.spec.env_vars
    return (record.request.get("GPU", 0) > 0, tuple(sorted(env.items())) if env else None)


class WorkerPool:
    def __init__(self, zygote_send) -> None:
        self._zygote_send = zygote_send  # callable(kind, body)
        self.workers: dict[str, WorkerRecord] = {}
        self.by_pid: dict[int, WorkerRecord] = {}
        self.idle: deque[WorkerRecord] = deque()
        self.starting_task_workers = 0
        # Workers in a row that died before connecting; reset by every one that connects.
        self.started: set[str] = set()  # every worker id this pool ever started
        self.startup_failures = 0
        self._seq = itertools.count(1)

    def start(self, role: str, actor_id: str | None = None) -> WorkerRecord:
        wid = random_hex(8)
        self.started.add(wid)
        worker = WorkerRecord(wid, role, actor_id=actor_id)
        self.workers[wid] = worker
        if role == "task":
            self.starting_task_workers += 1
        trace.emit("worker.starting", wid=wid, role=role, actor=actor_id)
        self._zygote_send("start_worker", {"wid": wid, "role": role, "actor_id": actor_id})
        return worker

    def registered(self, wid: str, conn, pid: int) -> WorkerRecord | None:
        worker = self.workers.get(wid)
        if worker is None:
            return None
        worker.conn = conn
        worker.pid = pid
        self.by_pid[pid] = worker
        self.startup_failures = 0
        trace.emit("worker.registered", wid=wid, worker_pid=pid, role=worker.role)
        if worker.role == "task":
            self.starting_task_workers -= 1
            self.make_idle(worker)
        else:
            worker.move_to(ACTOR)
        return worker

    def make_idle(self, worker: WorkerRecord) -> None:
        worker.task = None
        if worker.exit_reason is not None or worker.exited:
            return  # ended by the raylet, or already gone: no new task for it
        worker.move_to(IDLE)
        self.idle.append(worker)

    def pop_idle(self, kind: tuple = (False, None)) -> WorkerRecord | None:
        """An idle task worker for a task of ``kind`` (uses GPUs; its environment): a fresh
        one, or one whose tasks were of the same kind. It is bound to that kind from now
        on."""
        for worker in list(self.idle):
            if worker.state != IDLE:
                self.idle.remove(worker)  # taken or ended since it went idle
            elif worker.kind is None or worker.kind == kind:
                self.idle.remove(worker)
                worker.kind = kind
                return worker
        return None

    def remove(self, worker: WorkerRecord) -> None:
        if worker.state == STARTING and worker.role == "task":
            self.starting_task_workers -= 1
        if worker.state != DEAD:
            worker.move_to(DEAD)
        self.workers.pop(worker.wid, None)
        self.by_pid.pop(worker.pid, None)

    def count(self, role: str) -> int:
        return sum(1 for w in self.workers.values() if w.role == role)

    def snapshot(self) -> list[dict]:
        return [{"wid": w.wid, "pid": w.pid, "role": w.role, "state": w.state,
                 "actor_id": w.actor_id} for w in self.workers.values()]
