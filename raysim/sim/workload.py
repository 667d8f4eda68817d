"""What a recorded run did, as the simulator replays it: the driver's calls, the tasks and
actors with their dependencies and costs, the objects with their sizes.

Everything here is taken from the trace, nothing is invented:

* the driver's program is its sequence of API calls (``phase.begin``), each after the gap the
  driver spent in its own code since the previous call returned; a ``put`` costs what it
  cost (serializing and writing), a ``get`` waits for its objects and then reads each for
  what the read cost (``object.get``);
* a task is its ``task.submitted`` (kind, dependencies, returns, submitter), the resources
  its raylet asked for (``scheduler.decision``), the node it ran on, and three local costs:
  *dispatch* (from the raylet's decision to run it to the start of ``task.execute``: pushing
  it to a worker, resolving arguments already in the local store, loading the function),
  *execution* (``task.execute`` dur) and *finish* (from the end of execution to its results
  being sealed in the store or sent inline);
* a task submitted by another task is started that long after its parent started;
* an object is its size (``object_store.create`` of the primary copy, or ``object.inlined``)
  and whether it went through the store or back inline.

What is left out: tasks that never ran to the end (failed, cancelled; retried ones count
once, by their last attempt), ``wait``'s partial results (a ``wait`` is replayed as the gap
only), and what a task's own ``get`` waits for (it is inside the task's recorded execution).

Runs in: the simulator. Reads a trace's records (``raysim.trace.load``); never the runtime.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import defaultdict

from raysim.trace.schema import ACTOR_TASK

_NS = 1e9
# The raylet decisions that start a task (the others: it waits, or goes elsewhere).
_STARTS = ("dispatch", "start_actor_worker")


@dataclasses.dataclass
class SimObject:
    obj: str
    size: int
    inline: bool  # went back to its owner inside a message, not through the store
    producer: str | None = None  # the task that returns it; None for a put


@dataclasses.dataclass
class SimTask:
    task_id: str
    kind: str  # normal_task, actor_creation, actor_task
    name: str
    actor: str | None
    deps: list[str]
    returns: list[str]
    submitter: str  # "driver", or the id of the task that submitted it
    phase: int | None
    resources: dict[str, float]
    node: str | None  # where it ran in the recorded run
    spread: bool  # placed by SPREAD (recorded)
    dispatch_s: float
    exec_s: float
    finish_s: float
    offset_s: float = 0.0  # for a nested task: since its parent started
    submitted: dict = dataclasses.field(default_factory=dict)  # its task.submitted event


@dataclasses.dataclass
class DriverCall:
    phase: int
    api: str
    event: dict  # its phase.begin
    gap_s: float  # the driver's own time before the call
    cost_s: float  # what the call itself cost, apart from waiting (put: the write)
    tasks: list[str] = dataclasses.field(default_factory=list)
    puts: list[str] = dataclasses.field(default_factory=list)
    reads: list[tuple[str, float, dict]] = dataclasses.field(default_factory=list)
    measured_s: float = 0.0  # from its start to the next call's start


@dataclasses.dataclass
class Workload:
    header: dict
    driver_node: str
    nodes: dict[str, dict]  # node id -> node.registered, in the order they joined
    calls: list[DriverCall]
    tasks: dict[str, SimTask]
    objects: dict[str, SimObject]
    children: dict[str, list[str]]  # task id -> tasks it submitted
    prestarted: dict[str, list[float]]  # node -> when each prestarted worker is idle (s)
    worker_start_s: float  # median start of a worker process, from the trace
    makespan_s: float  # recorded: first call after init to shutdown (or the last call)
    tail_s: float  # the driver's own time after its last call, before shutdown
    chunk_size: int

    @property
    def start_ts(self) -> int:
        return self.calls[0].event["ts"] if self.calls else 0


def from_records(records: list[dict]) -> Workload:
    """The workload of a recorded run."""
    if not records or records[0].get("ev") != "trace.header":
        raise ValueError("not a raysim trace: its first record is not trace.header. Tip: "
                         "pass the trace.jsonl that raysim trace or init(trace_path=...) wrote.")
    header = records[0]
    driver_pid, driver_node = header["pid"], header["node"]
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for event in records:
        by_kind[event["ev"]].append(event)
    nodes = {e["node_id"]: e for e in by_kind["node.registered"]}
    if not nodes:
        nodes = {driver_node: {"node_id": driver_node, "resources": {"CPU": 1.0}}}
    objects = _objects(by_kind)
    tasks, children = _tasks(by_kind, objects, driver_pid)
    calls = _driver_calls(records, by_kind, driver_pid, tasks)
    if not calls:
        raise ValueError("the trace has no driver calls after init() to replay. Tip: trace a "
                         "program that submits work (raysim trace SCRIPT).")
    start_ts = calls[0].event["ts"]
    end = next((c.event["ts"] for c in calls if c.api == "shutdown"),
               calls[-1].event["ts"] + int(calls[-1].measured_s * _NS))
    tail_s = next((c.gap_s for c in calls if c.api == "shutdown"), 0.0)
    calls = [c for c in calls if c.api != "shutdown"]
    return Workload(
        header=header, driver_node=driver_node, nodes=nodes, calls=calls, tasks=tasks,
        objects=objects, children=children,
        prestarted=_prestarted(by_kind, start_ts),
        worker_start_s=_worker_start(by_kind),
        makespan_s=max(0.0, (end - start_ts) / _NS), tail_s=tail_s,
        chunk_size=int(header.get("config", {}).get("object_manager_default_chunk_size",
                                                    5 * 1024 * 1024)))


def _objects(by_kind: dict[str, list[dict]]) -> dict[str, SimObject]:
    objects: dict[str, SimObject] = {}
    for event in by_kind["object_store.create"]:
        if not str(event.get("owner", "")).startswith("node:"):  # not a pulled copy
            objects.setdefault(event["obj"], SimObject(event["obj"], event["size"], False))
    for event in by_kind["object.inlined"]:
        objects.setdefault(event["obj"], SimObject(event["obj"], event["size"], True))
    return objects


def _tasks(by_kind: dict[str, list[dict]], objects: dict[str, SimObject],
           driver_pid: int) -> tuple[dict[str, SimTask], dict[str, list[str]]]:
    executed = {e["task"]: e for e in by_kind["task.execute"] if e.get("ok", True)}
    starts: dict[str, dict] = {}
    resources: dict[str, dict] = {}
    for event in by_kind["scheduler.decision"]:
        resources.setdefault(event["task"], event.get("resources") or {})
        if event["decision"] in _STARTS:
            starts[event["task"]] = event
    for event in by_kind["raylet.actor_lookup"]:
        if event.get("wid"):  # pushed to the actor's worker by the actor's own raylet
            starts[event["task"]] = event
    spread = {e["task"] for e in by_kind["gcs.task_placed"]
              if str(e.get("reason", "")).startswith("SPREAD")}
    finished_at: dict[str, int] = {}
    for kind in ("object_store.sealed", "object.inlined"):
        for event in by_kind[kind]:
            finished_at.setdefault(event["obj"], event["ts"])
    running: dict[int, list[dict]] = defaultdict(list)  # worker pid -> its executions
    for event in executed.values():
        running[event["pid"]].append(event)
    tasks: dict[str, SimTask] = {}
    children: dict[str, list[str]] = defaultdict(list)
    for event in by_kind["task.submitted"]:
        task_id = event["task"]
        run = executed.get(task_id)
        if run is None or task_id in tasks:
            continue  # never ran to the end, or a retry's second submission
        start = starts.get(task_id)
        run_end = run["ts"] + run["dur"]
        ends = [finished_at[o] for o in event["returns"] if o in finished_at]
        parent, offset = "driver", 0.0
        if event["pid"] != driver_pid:
            parent_run = _running_at(running.get(event["pid"], ()), event["ts"])
            if parent_run is not None:
                parent, offset = parent_run["task"], (event["ts"] - parent_run["ts"]) / _NS
        for obj in event["returns"]:
            if obj in objects:
                objects[obj].producer = task_id
        wanted = dict(resources.get(task_id) or {})
        if not wanted and event["task_kind"] != ACTOR_TASK:
            wanted = {"CPU": 1.0}
        tasks[task_id] = SimTask(
            task_id=task_id, kind=event["task_kind"], name=event["name"],
            actor=event.get("actor"), deps=list(event.get("deps") or ()),
            returns=list(event["returns"]), submitter=parent, phase=event.get("phase"),
            resources=wanted, node=run["node"], spread=task_id in spread,
            dispatch_s=max(0.0, (run["ts"] - start["ts"]) / _NS) if start else 0.0,
            exec_s=run["dur"] / _NS,
            finish_s=max(0.0, (max(ends) - run_end) / _NS) if ends else 0.0,
            offset_s=offset, submitted=event)
        if parent != "driver":
            children[parent].append(task_id)
    return tasks, dict(children)


def _running_at(runs, ts: int) -> dict | None:
    for run in runs:
        if run["ts"] <= ts <= run["ts"] + run["dur"]:
            return run
    return None


def _driver_calls(records: list[dict], by_kind: dict[str, list[dict]], driver_pid: int,
                  tasks: dict[str, SimTask]) -> list[DriverCall]:
    begins = [e for e in by_kind["phase.begin"] if e["pid"] == driver_pid]
    if begins and begins[0]["api"] == "init":
        begins = begins[1:]
    in_phase: dict[int, list[dict]] = defaultdict(list)
    for event in records:
        if event.get("pid") == driver_pid and event.get("phase") is not None:
            in_phase[event["phase"]].append(event)
    calls: list[DriverCall] = []
    previous_end = None
    for index, begin in enumerate(begins):
        phase = begin["phase"]
        own = in_phase.get(phase, [])
        call = DriverCall(phase, begin["api"], begin, 0.0, 0.0)
        end = begin["ts"]
        # The call's own events happen before the next call starts (later ones carrying its
        # phase are answers the I/O thread read afterwards).
        following = begins[index + 1]["ts"] if index + 1 < len(begins) else None
        for event in own:
            if following is not None and event["ts"] >= following:
                continue
            if event["ev"] == "task.submitted" and event["task"] in tasks:
                call.tasks.append(event["task"])
            elif event["ev"] == "object_store.written":
                call.puts.append(event["obj"])
            elif event["ev"] == "object.get":
                call.reads.append((event["obj"], event["dur"] / _NS, event))
            if event["ev"] != "phase.begin":
                end = max(end, event["ts"])  # the runtime stamps an event when it is done
        if not call.reads:  # a get's own cost is its reads
            call.cost_s = (end - begin["ts"]) / _NS
        call.gap_s = max(0.0, (begin["ts"] - previous_end) / _NS) if previous_end else 0.0
        call.measured_s = max(0.0, ((following or end) - begin["ts"]) / _NS)
        previous_end = end
        calls.append(call)
    return calls


def _prestarted(by_kind: dict[str, list[dict]], start_ts: int) -> dict[str, list[float]]:
    """The task workers each node started before the program's first call, and when each
    was ready (seconds after that call; 0 if before)."""
    starting = {e["wid"]: e for e in by_kind["worker.starting"] if e.get("role") == "task"}
    ready: dict[str, list[float]] = defaultdict(list)
    for event in by_kind["worker.registered"]:
        began = starting.get(event["wid"])
        if began is not None and began["ts"] <= start_ts:
            ready[event["node"]].append(max(0.0, (event["ts"] - start_ts) / _NS))
    return dict(ready)


def _worker_start(by_kind: dict[str, list[dict]]) -> float:
    starting = {e["wid"]: e["ts"] for e in by_kind["worker.starting"]}
    durations = [(e["ts"] - starting[e["wid"]]) / _NS for e in by_kind["worker.registered"]
                 if e["wid"] in starting]
    return statistics.median(durations) if durations else 0.2
