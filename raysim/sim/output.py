"""The simulated run as a trace in raysim's schema, and the rows of the side-by-side.

A simulated trace has the same events the runtime writes for the same steps, so every view
(``raysim replay``, the timeline, the sequence diagrams, the data-flow graph, the Chrome
export) shows it. Times are simulated: nanoseconds from the recorded run's first call,
on the recorded clock's origin. Processes are the simulated cluster's: the recorded driver
(its pid), one GCS and one raylet per node, and a worker per simulated worker process,
with made-up pids. The header's ``mode`` is ``simulated`` and its ``simulation`` field
holds the cluster's parameters.

Runs in: the simulator.
"""

from __future__ import annotations

import dataclasses

from raysim.sim.cluster import SimNode
from raysim.sim.workload import DriverCall, SimTask
from raysim.trace import schema

_NS = 1_000_000_000


class Recorder:
    def __init__(self, header: dict, start_ts: int, simulation: dict) -> None:
        self.header = dict(header, mode="simulated", simulation=simulation,
                           schema_version=schema.SCHEMA_VERSION)
        self.start_ts = start_ts
        self.driver_pid = header["pid"]
        self.driver_node = header["node"]
        self.gcs_pid = 0
        self.events: list[dict] = []
        self._workers: set[int] = set()

    # -- low level ---------------------------------------------------------------------------

    def _emit(self, t: float, ev: str, proc: str, node: str, pid: int, phase=None,
              **fields) -> None:
        fields.update(ts=self.start_ts + int(t * _NS), ev=ev, proc=proc, node=node, pid=pid,
                      phase=phase)
        self.events.append(fields)

    def _raylet(self, t: float, node: SimNode, ev: str, phase=None, **fields) -> None:
        self._emit(t, ev, "raylet", node.node_id, node.raylet_pid, phase, **fields)

    def _worker(self, t: float, node: SimNode, pid: int, ev: str, phase=None,
                **fields) -> None:
        if pid not in self._workers:
            self._workers.add(pid)
            self._emit(t, "process.started", "worker", node.node_id, pid, phase,
                       ppid=node.raylet_pid, role="worker", wid=f"{pid:08x}"[-8:])
        self._emit(t, ev, "worker", node.node_id, pid, phase, **fields)

    def records(self) -> list[dict]:
        header = dict(self.header, ts=self.start_ts, ev="trace.header", proc="driver",
                      node=self.driver_node, pid=self.driver_pid, phase=None)
        return [header] + sorted(self.events, key=lambda e: e["ts"])

    # -- the cluster -------------------------------------------------------------------------

    def cluster(self, nodes: list[SimNode]) -> None:
        head = nodes[0]
        self.gcs_pid = head.raylet_pid + 50_000
        self._emit(0, "process.started", "driver", self.driver_node, self.driver_pid,
                   ppid=1, role="driver")
        self._emit(0, "process.started", "gcs", head.node_id, self.gcs_pid,
                   ppid=self.driver_pid, role="gcs")
        for node in nodes:
            self._emit(0, "process.started", "raylet", node.node_id, node.raylet_pid,
                       ppid=self.driver_pid, role="raylet")
            self._emit(0, "node.registered", "gcs", head.node_id, self.gcs_pid,
                       node_id=node.node_id, raylet_pid=node.raylet_pid,
                       resources=dict(node.total), store_capacity=node.store_capacity)

    # -- the driver and tasks ----------------------------------------------------------------

    def phase_begin(self, t: float, call: DriverCall) -> None:
        e = call.event
        self._emit(t, "phase.begin", "driver", self.driver_node, self.driver_pid, call.phase,
                   api=e["api"], site=e.get("site"), code=e.get("code"),
                   detail=e.get("detail"))

    def task_submitted(self, t: float, task: SimTask, node: SimNode,
                       pid: int | None) -> None:
        s = task.submitted
        fields = dict(task=task.task_id, task_kind=task.kind, name=task.name,
                      actor=task.actor, returns=task.returns, deps=task.deps,
                      args_size=s.get("args_size", 0))
        if pid is None:  # submitted by a task: from its worker (any of the node's)
            self._raylet(t, node, "task.submitted", task.phase, **fields)
        else:
            self._emit(t, "task.submitted", "driver", self.driver_node, pid, task.phase,
                       **fields)

    def decision(self, t: float, task: SimTask, node: SimNode, decision: str,
                 resources: dict, reason: str | None) -> None:
        self._raylet(t, node, "scheduler.decision", task.phase, task=task.task_id,
                     decision=decision, resources=dict(resources),
                     available=dict(node.available), reason=reason)

    def task_placed(self, t: float, task: SimTask, origin: SimNode, node: SimNode,
                    reason: str, head: SimNode) -> None:
        self._emit(t, "gcs.task_placed", "gcs", head.node_id, self.gcs_pid, task.phase,
                   task=task.task_id, from_node=origin.node_id, to_node=node.node_id,
                   reason=reason)

    def actor_lookup(self, t: float, task: SimTask, node: SimNode, pid: int) -> None:
        self._raylet(t, node, "raylet.actor_lookup", task.phase, actor=task.actor,
                     task=task.task_id, wid=f"{pid:08x}"[-8:], source="local actor table")

    def task_execute(self, t: float, task: SimTask, node: SimNode, pid: int) -> None:
        self._worker(t, node, pid, "task.execute", task.phase, task=task.task_id,
                     name=task.name, dur=int(task.exec_s * _NS), ok=True, actor=task.actor,
                     attempt=0)

    def task_finished(self, t: float, task: SimTask, node: SimNode) -> None:
        self._raylet(t, node, "task.finished", task.phase, task=task.task_id, ok=True)

    def object_get(self, t: float, event: dict, phase: int) -> None:
        self._emit(t, "object.get", "driver", self.driver_node, self.driver_pid, phase,
                   obj=event["obj"], size=event["size"], path=event.get("path", "local_store"),
                   zero_copy=bool(event.get("zero_copy")), dur=event["dur"])

    # -- objects -----------------------------------------------------------------------------

    def stored(self, t: float, obj: str, size: int, node: SimNode, phase, owner: str,
               head: SimNode, primary: bool = True) -> None:
        if primary:
            self._raylet(t, node, "object_store.create", phase, obj=obj, size=size, offset=0,
                         owner=owner)
        self._raylet(t, node, "object_store.sealed", phase, obj=obj, size=size, offset=0,
                     used=size)
        self._emit(t, "gcs.object_added", "gcs", head.node_id, self.gcs_pid, phase, obj=obj,
                   location=node.node_id, size=size, owner=owner)

    def inlined(self, t: float, obj: str, size: int, node: SimNode, task: SimTask) -> None:
        self._emit(t, "object.inlined", "raylet", node.node_id, node.raylet_pid, task.phase,
                   obj=obj, size=size, threshold=100 * 1024)

    def located(self, t: float, obj: str, node: SimNode, locations: list,
                head: SimNode) -> None:
        self._emit(t, "gcs.object_located", "gcs", head.node_id, self.gcs_pid, None, obj=obj,
                   for_node=node.node_id, locations=[n.node_id for n in locations])

    def pull_started(self, t: float, obj: str, source: SimNode, node: SimNode,
                     size: int) -> None:
        self._raylet(t, node, "object_manager.pull", None, obj=obj, from_node=source.node_id,
                     size=size)
        self._raylet(t, node, "object_store.create", None, obj=obj, size=size, offset=0,
                     owner=f"node:{source.node_id}")

    def chunk(self, start: float, end: float, obj: str, source: SimNode, node: SimNode,
              index: int, size: int) -> None:
        dur = int((end - start) * _NS)
        self._raylet(start, source, "object_manager.chunk_sent", None, obj=obj,
                     to_node=node.node_id, index=index, bytes=size, dur=dur)
        self._raylet(end, node, "object_manager.chunk_received", None, obj=obj,
                     from_node=source.node_id, index=index, bytes=size, dur=dur)

    def pulled(self, t: float, obj: str, source: SimNode, node: SimNode, size: int,
               dur: float) -> None:
        self._raylet(t, node, "object_manager.pulled", None, obj=obj,
                     from_node=source.node_id, size=size, dur=int(dur * _NS))


@dataclasses.dataclass
class Row:
    """One line of the side-by-side: a driver call, or a run of like calls."""

    what: str
    calls: int
    measured_s: float
    simulated_s: float
    bound_by: str


def bound_by(spent: dict[str, float]) -> str:
    """What bounded a stretch of time: the kind of step that took most of its critical
    path (CPU, link, store, worker start, control plane, or the driver's own code)."""
    if not spent:
        return "driver"
    return max(spent.items(), key=lambda kv: kv[1])[0]
