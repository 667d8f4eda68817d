"""Small recorded runs for the model's tests, written as trace records (no runtime).

``Run(nodes)`` is a cluster of named nodes; ``put``, ``task`` and ``get`` add what a driver
did, with the events the runtime writes for it (the ones ``raysim/sim/workload.py`` reads),
each passing the schema's validation. ``records()`` is the trace.
"""

from __future__ import annotations

import itertools

from raysim.trace import schema

DRIVER = 1000
DRIVER_WID = "d0d0d0d0"
MiB = 1024 * 1024


class Run:
    def __init__(self, nodes: dict[str, dict], chunk_size: int = 5 * MiB) -> None:
        self.nodes = nodes  # node id -> resources, the head first
        self.head = next(iter(nodes))
        self.ts = 1_000_000_000
        self.phase = 0
        self.events: list[dict] = []
        self._ids = itertools.count(1)
        self._pids = itertools.count(2000)
        self._event("trace.header", "driver", self.head, DRIVER, schema=schema.SCHEMA_NAME,
                    schema_version=schema.SCHEMA_VERSION, session="s", session_dir="/tmp/s",
                    wall_time_ns=0, config={"object_manager_default_chunk_size": chunk_size},
                    mode="seed")
        self._begin("init")
        for index, (node, resources) in enumerate(nodes.items()):
            self._event("node.registered", "gcs", self.head, 1001, node_id=node,
                        raylet_pid=1100 + index, resources=resources, store_capacity=10**10)
            for n in range(int(resources.get("CPU", 1))):  # idle workers, started by init
                wid = f"{index:04x}{n:04x}"
                self._event("worker.starting", "raylet", node, 1100 + index, wid=wid,
                            role="task", actor=None)
                self._event("worker.registered", "raylet", node, 1100 + index, wid=wid,
                            worker_pid=next(self._pids), role="task")

    def _event(self, ev: str, proc: str, node: str, pid: int, **fields) -> dict:
        event = dict(fields, ts=self.ts, ev=ev, proc=proc, node=node, pid=pid,
                     phase=self.phase)
        schema.validate_event(event)
        self.events.append(event)
        return event

    def _begin(self, api: str) -> None:
        if self.events[-1]["ev"] != "trace.header":
            self.phase += 1
        self.ts += 1000
        self._event("phase.begin", "driver", self.head, DRIVER, api=api, site=f"job.py:{api}",
                    code=api, detail=None)

    def put(self, size: int) -> str:
        self._begin("put")
        obj = f"{DRIVER_WID}{next(self._ids):08x}8000"
        self._event("object_store.create", "raylet", self.head, 1100, obj=obj, size=size,
                    offset=0, owner=f"driver:{DRIVER_WID}")
        self.ts += 1000
        self._event("object_store.written", "driver", self.head, DRIVER, obj=obj, size=size,
                    dur=1000)
        self._event("object_store.sealed", "raylet", self.head, 1100, obj=obj, size=size,
                    offset=0, used=size)
        return obj

    def task(self, node: str, exec_s: float, deps=(), returns: int = 100,
             resources: dict | None = None) -> str:
        """A task that ran on ``node`` for ``exec_s``; its result's id (``returns`` bytes:
        stored if 100 KiB or more, else inline)."""
        self._begin("task_submission")
        task = f"{DRIVER_WID}{next(self._ids):08x}"
        obj = task + "0001"
        index = list(self.nodes).index(node)
        self._event("task.submitted", "driver", self.head, DRIVER, task=task,
                    task_kind="task", name="f", actor=None, returns=[obj], deps=list(deps),
                    args_size=100)
        pid = next(self._pids)
        self._event("scheduler.decision", "raylet", node, 1100 + index, task=task,
                    decision="dispatch", resources=resources or {"CPU": 1.0}, available={})
        self._event("task.execute", "worker", node, pid, task=task, name="f",
                    dur=int(exec_s * 1e9), ok=True, actor=None, attempt=0)
        if returns >= 100 * 1024:
            self._event("object_store.create", "raylet", node, 1100 + index, obj=obj,
                        size=returns, offset=0, owner=f"driver:{DRIVER_WID}")
            self._event("object_store.sealed", "raylet", node, 1100 + index, obj=obj,
                        size=returns, offset=0, used=returns)
        else:
            self._event("object.inlined", "worker", node, pid, obj=obj, size=returns,
                        threshold=100 * 1024)
        return obj

    def get(self, objects: list[str]) -> None:
        self._begin("get")
        for obj in objects:
            self._event("object.get", "driver", self.head, DRIVER, obj=obj, size=1,
                        path="local_store", zero_copy=True, dur=1000)

    def records(self) -> list[dict]:
        self._begin("shutdown")
        return list(self.events)
