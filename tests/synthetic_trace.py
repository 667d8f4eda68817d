"""Big traces for the tracer's tests, written directly as JSON lines (no runtime).

Running 20,000 real tasks in a test would take a minute; the views only read events, so a
trace of the same shape is written here in a fraction of a second: the processes ``init``
starts, ``tasks`` calls of one remote function from one line (every ``stored_every``-th
result large enough to go through the object store, the others inline), a ``get`` of them
all, then as many more phases from other lines as asked, and ``shutdown``. Every event
passes the schema's validation, as the loader checks.
"""

from __future__ import annotations

import itertools

import orjson

from raysim.trace import schema

NODE = "a1b2c3d4"
DRIVER, GCS, RAYLET, ZYGOTE = 1000, 1001, 1002, 1003
DRIVER_WID = "d0d0d0d0"


class _Writer:
    def __init__(self, f, workers: int) -> None:
        self.f, self.ts, self.phase = f, 1_000_000, 0
        self.msgs = itertools.count(1)
        self.workers = [(2000 + n, f"w{n:07d}") for n in range(workers)]

    def event(self, ev: str, proc: str, pid: int, phase=..., **fields) -> None:
        self.ts += 1000
        line = {"ts": self.ts, "ev": ev, "proc": proc, "node": NODE, "pid": pid,
                "phase": self.phase if phase is ... else phase, **fields}
        self.f.write(orjson.dumps(line) + b"\n")

    def message(self, kind: str, proc: str, pid: int, to: str, to_pid: int, size: int,
                to_proc: str, **about) -> None:
        msg = f"{pid}-{next(self.msgs)}"
        self.event("msg.send", proc, pid, msg=msg, kind=kind, to=to, to_pid=to_pid, size=size,
                   **about)
        self.event("msg.recv", to_proc, to_pid, msg=msg, kind=kind, src=proc, src_pid=pid)

    def begin(self, api: str, site: str, code: str) -> None:
        self.phase += 1 if self.phase or api != "init" else 0
        self.event("phase.begin", "driver", DRIVER, api=api, site=site, code=code, detail=None)


def _init(w: _Writer) -> None:
    w.event("trace.header", "driver", DRIVER, schema=schema.SCHEMA_NAME,
            schema_version=schema.SCHEMA_VERSION, session="session_synthetic",
            session_dir="/tmp/session_synthetic", wall_time_ns=0, config={}, mode="seed")
    w.begin("init", "job.py:3", "ray.init()")
    w.event("process.started", "driver", DRIVER, ppid=1, role="driver", wid=DRIVER_WID)
    w.event("process.started", "gcs", GCS, phase=None, ppid=DRIVER, role="gcs")
    w.event("job.registered", "gcs", GCS, job="0001", driver_pid=DRIVER, wid=DRIVER_WID)
    w.event("store.created", "raylet", RAYLET, phase=None, capacity=10**9,
            name="memfd:raysim-object-store")
    w.event("process.started", "raylet", RAYLET, phase=None, ppid=DRIVER, role="raylet")
    w.event("process.started", "zygote", ZYGOTE, phase=None, ppid=RAYLET, role="zygote")
    w.event("node.registered", "gcs", GCS, phase=None, node_id=NODE, raylet_pid=RAYLET,
            resources={"CPU": float(len(w.workers))}, store_capacity=10**9)
    for pid, wid in w.workers:
        w.event("worker.starting", "raylet", RAYLET, wid=wid, role="task", actor=None)
        w.message("start_worker", "raylet", RAYLET, "zygote", ZYGOTE, 85, "zygote")
    w.event("zygote.preloaded", "zygote", ZYGOTE, phase=None, modules=["cloudpickle"],
            dur=1_000_000)
    for pid, wid in w.workers:
        w.event("worker.registered", "raylet", RAYLET, phase=None, wid=wid, worker_pid=pid,
                role="task")
        w.event("process.started", "worker", pid, phase=None, ppid=ZYGOTE, role="task", wid=wid)


def _task(w: _Writer, n: int, stored: bool) -> str:
    """One call of ``square``; returns its result's object id."""
    task = f"{DRIVER_WID}{n:08x}"
    obj = task + "0001"
    pid, wid = w.workers[n % len(w.workers)]
    w.event("task.submitted", "driver", DRIVER, task=task, task_kind="task", name="square",
            actor=None, returns=[obj], deps=[], args_size=40)
    w.message("submit_task", "driver", DRIVER, f"raylet:{NODE}", RAYLET, 400, "raylet",
              task=task)
    w.event("scheduler.decision", "raylet", RAYLET, task=task, decision="dispatch",
            resources={"CPU": 1.0}, available={"CPU": 0.0}, wid=wid)
    w.message("push_task", "raylet", RAYLET, f"worker:{wid}", pid, 420, "worker", task=task)
    w.event("task.execute", "worker", pid, task=task, name="square", dur=50_000, ok=True,
            actor=None, attempt=0)
    size = 200_000 + n if stored else 20
    if stored:
        w.event("object_store.create", "raylet", RAYLET, obj=obj, size=size, offset=0,
                owner=DRIVER_WID, used=None)
        w.event("object_store.sealed", "raylet", RAYLET, obj=obj, size=size, offset=0, used=0)
        w.event("gcs.object_added", "gcs", GCS, obj=obj, location=NODE, size=size,
                owner=DRIVER_WID)
        w.event("gcs.ref_added", "gcs", GCS, obj=obj, holder=f"driver:{DRIVER_WID}",
                ref_type="LOCAL_REFERENCE", count=1)
    else:
        w.event("object.inlined", "worker", pid, obj=obj, size=size, threshold=102_400)
    w.message("task_done", "worker", pid, f"driver:{DRIVER_WID}", DRIVER, 250, "driver",
              task=task)
    w.event("task.finished", "raylet", RAYLET, task=task, ok=True, error=None, reason=None)
    return obj


PUT = f"{DRIVER_WID}ffffffff8001"  # put#1: the driver's first put (index 0x8001)


def _put(w: _Writer, holders: int) -> None:
    """The driver puts an object, then ``holders`` tasks take a reference to it and drop
    it again: a long reference-count history."""
    w.begin("put", "job.py:5", "ref = ray.put(data)")
    w.event("object.serialized", "driver", DRIVER, obj=PUT, size=1000, buffers=0, dur=1000,
            type="bytes")
    w.event("object_store.sealed", "raylet", RAYLET, obj=PUT, size=1000, offset=0, used=1000)
    w.event("gcs.object_added", "gcs", GCS, obj=PUT, location=NODE, size=1000,
            owner=DRIVER_WID)
    w.event("gcs.ref_added", "gcs", GCS, obj=PUT, holder=f"driver:{DRIVER_WID}",
            ref_type="LOCAL_REFERENCE", count=1)
    for n in range(holders):
        holder = f"task:{DRIVER_WID}{0x100000 + n:08x}"
        w.event("gcs.ref_added", "gcs", GCS, obj=PUT, holder=holder,
                ref_type="USED_BY_PENDING_TASK", count=2)
        w.event("gcs.ref_removed", "gcs", GCS, obj=PUT, holder=holder, count=1)


def write_trace(path: str, tasks: int = 3000, workers: int = 2, stored_every: int = 10,
                other_phases: int = 0, put_holders: int | None = None) -> None:
    """A trace of ``tasks`` calls of one function from one line, and their ``get``; a put
    with ``put_holders`` reference holders first, if asked."""
    with open(path, "wb") as f:
        w = _Writer(f, workers)
        _init(w)
        if put_holders is not None:
            _put(w, put_holders)
        objects = []
        for n in range(1, tasks + 1):
            w.begin("task_submission", "job.py:9", "refs = [square.remote(i) for i in range(N)]")
            objects.append((_task(w, n, stored=n % stored_every == 0), n % stored_every == 0))
        w.begin("get", "job.py:10", "ray.get(refs)")
        for obj, stored in objects:
            w.event("object.get", "driver", DRIVER, obj=obj, size=200_000 if stored else 20,
                    path="local_store" if stored else "inline", zero_copy=stored, dur=2000)
        for n in range(other_phases):  # calls from other lines: one phase each
            w.begin("task_submission", f"job.py:{20 + n}", f"square.remote({n})")
            _task(w, tasks + 1 + n, stored=False)
        w.begin("shutdown", "job.py:end", "(the script ended)")
        for pid in (RAYLET, *(pid for pid, _ in w.workers), GCS, DRIVER):
            proc = {RAYLET: "raylet", GCS: "gcs", DRIVER: "driver"}.get(pid, "worker")
            w.event("process.stopping", proc, pid, reason="shutdown")
