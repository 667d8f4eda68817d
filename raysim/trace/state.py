"""The cluster's tables at any moment of a trace, rebuilt by replaying its events.

Seed: the founding document tells the run through its tables: "GCS: Empty initially", the
object table's ``{object_id, location, size, ref_count}``, "ref_count now = 4 (driver + 3
actors)", "Actor Registry: actor_id, location: worker_1, class: BatchPredictor",
"prediction_count 0 -> 1". ``Trace.state_at(i)`` shows those tables as they stood after event
``i``, from the trace alone: no live runtime, no process to ask.

Each table is rebuilt from the events its live component emits, into the shape of that
component's ``snapshot()``, so a replayed state and ``raysim.snapshot()`` compare directly:

    gcs.nodes       node.registered                  GcsServer.nodes
    gcs.jobs        job.registered                   GcsServer.jobs
    gcs.actors      gcs.actor_state                  ActorTable (actor_table.py)
    gcs.objects     gcs.object_added, gcs.ref_added, ObjectDirectory (object_directory.py)
                    gcs.ref_removed, gcs.object_freed,
                    gcs.object_lost
    stores          store.created, object_store.*    each node's ObjectStore (object_store.py),
                                                     spilled: its LocalObjectManager
    actors          actor.state                      the actor instance, in its worker
    refs            ref.acquired, ref.released,      each process's ReferenceCounter
                    task.submitted
    processes       process.started, .stopping, .exited

The one table that differs from its snapshot: an actor row holds what ``gcs.actor_state``
carries (``worker_pid``, ``node``, ``reason`` of the last change), not ``ActorTable.row()``'s
``pid``, ``namespace``, ``num_restarts`` and ``death_cause``, which the event lacks.

Replay is one pure function per event kind (``APPLY``), each changing the state the way the
live component changed its table when it emitted that event. It starts from the nearest
saved state rather than from the first event, as a database recovers from its last
checkpoint plus the log written since: a copy of the state is saved every
``CHECKPOINT_EVERY`` events, on the first call, so any state is at most that many events
away.

Runs in: the reader's process. Standard library only.
"""

from __future__ import annotations

import dataclasses
from itertools import islice
from typing import Any, Callable

from raysim.trace.schema import ACTOR_HANDLE, LOCAL_REFERENCE

Event = dict[str, Any]

# One saved state per this many events: a state_at() replays at most this many events
# after copying one saved state. Smaller is faster per call and costs more memory.
CHECKPOINT_EVERY = 8192



@dataclasses.dataclass
class GcsState:
    """The GCS's tables. Rows are dicts shaped like ``GcsServer.snapshot()``'s."""

    nodes: dict[str, dict] = dataclasses.field(default_factory=dict)
    jobs: dict[str, dict] = dataclasses.field(default_factory=dict)
    # actor_id -> actor_id, class_name, state, name, node, wid, worker_pid, reason
    actors: dict[str, dict] = dataclasses.field(default_factory=dict)
    # object_id -> size, owner, locations (sorted), ref_count, holders {holder: ref_type};
    # registered objects only, as ObjectDirectory.snapshot() lists them.
    objects: dict[str, dict] = dataclasses.field(default_factory=dict)
    # object_id -> holders, for objects whose references reached the GCS before the store's
    # registration did (the directory keeps such entries hidden until registered).
    unregistered: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)

    def copy(self) -> GcsState:
        return GcsState(
            nodes={k: dict(v) for k, v in self.nodes.items()},
            jobs={k: dict(v) for k, v in self.jobs.items()},
            actors={k: dict(v) for k, v in self.actors.items()},
            objects={k: {**v, "locations": list(v["locations"]), "holders": dict(v["holders"])}
                     for k, v in self.objects.items()},
            unregistered={k: dict(v) for k, v in self.unregistered.items()},
        )


@dataclasses.dataclass
class ClusterState:
    """Every table of the cluster after event ``index`` of a trace (-1: before any)."""

    index: int = -1
    ts: int | None = None
    gcs: GcsState = dataclasses.field(default_factory=GcsState)
    # node -> capacity, used, objects {object_id: size, offset, owner, sealed},
    # spilled {object_id: size, owner, path} (on disk; maybe in memory again too)
    stores: dict[str, dict] = dataclasses.field(default_factory=dict)
    # actor_id -> attrs (short reprs), calls, pid: the instance after its latest call
    actors: dict[str, dict] = dataclasses.field(default_factory=dict)
    # "proc:pid" -> {object_id: ref_type}: what each process holds, by its own count
    refs: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    # "proc:pid" -> proc, node, pid, ppid, role, wid, state (RUNNING, STOPPING, EXITED)
    processes: dict[str, dict] = dataclasses.field(default_factory=dict)
    driver: str | None = None  # the driver's "proc:pid" key, from the trace header

    @property
    def driver_refs(self) -> dict[str, str]:
        return self.refs.get(self.driver, {}) if self.driver else {}

    def copy(self) -> ClusterState:
        """A copy sharing nothing that replay changes (values such as ``attrs`` dicts are
        replaced by replay, never changed in place, so they are shared)."""
        return ClusterState(
            index=self.index, ts=self.ts, gcs=self.gcs.copy(),
            stores={node: {**store, "objects": {k: dict(v) for k, v in store["objects"].items()},
                           "spilled": {k: dict(v) for k, v in store["spilled"].items()}}
                    for node, store in self.stores.items()},
            actors={k: dict(v) for k, v in self.actors.items()},
            refs={k: dict(v) for k, v in self.refs.items()},
            processes={k: dict(v) for k, v in self.processes.items()},
            driver=self.driver,
        )


# --------------------------------------------------------------------------------------------
# Replay: one function per event kind


def _key(event: Event) -> str:
    """How the tracer names a process: its kind and OS pid, e.g. ``worker:4242``. (The GCS
    names holders by worker id instead, ``worker:1842a441``; processes[key]["wid"] links
    the two.)"""
    return f"{event['proc']}:{event['pid']}"


def _header(state: ClusterState, event: Event) -> None:
    state.driver = _key(event)


def _process_started(state: ClusterState, event: Event) -> None:
    state.processes[_key(event)] = {
        "proc": event["proc"], "node": event["node"], "pid": event["pid"],
        "ppid": event["ppid"], "role": event.get("role"), "wid": event.get("wid"),
        "state": "RUNNING"}


def _process_stopping(state: ClusterState, event: Event) -> None:
    process = state.processes.get(_key(event))
    if process is not None:
        process["state"] = "STOPPING"


def _process_exited(state: ClusterState, event: Event) -> None:
    """The raylet saw one of its worker processes go: it holds nothing any more (the GCS
    drops its references too, with gcs.ref_removed events of its own)."""
    for key, process in state.processes.items():
        if process["pid"] == event["child_pid"] and process["node"] == event["node"]:
            process["state"] = "EXITED"
            process["exit_code"] = event.get("exit_code")
            state.refs.pop(key, None)
            return


def _node_registered(state: ClusterState, event: Event) -> None:
    state.gcs.nodes[event["node_id"]] = {
        "raylet_pid": event["raylet_pid"], "resources": event["resources"],
        "store_capacity": event["store_capacity"], "alive": True,
        "object_manager": event.get("object_manager")}


def _location_removed(state: ClusterState, event: Event) -> None:
    row = state.gcs.objects.get(event["obj"])
    if row is not None and event["location"] in row["locations"]:
        row["locations"] = [n for n in row["locations"] if n != event["location"]]


def _node_removed(state: ClusterState, event: Event) -> None:
    """A node went away, and its store with it (the GCS forgets the copies that were
    there)."""
    node_id = event["node_id"]
    node = state.gcs.nodes.get(node_id)
    if node is not None:
        node["alive"] = False
    state.stores.pop(node_id, None)
    for row in state.gcs.objects.values():
        if node_id in row["locations"]:
            row["locations"] = [n for n in row["locations"] if n != node_id]


def _job_registered(state: ClusterState, event: Event) -> None:
    # The event lacks the driver's worker id; its process.started (earlier) has it.
    driver = state.processes.get(f"driver:{event['driver_pid']}", {})
    state.gcs.jobs[event["job"]] = {"driver_pid": event["driver_pid"],
                                    "wid": driver.get("wid")}


def _actor_state(state: ClusterState, event: Event) -> None:
    """ActorTable.transition() emits the whole row after each change, so the row is the
    event's fields."""
    state.gcs.actors[event["actor"]] = {
        "actor_id": event["actor"], "class_name": event["class_name"],
        "state": event["state"], "name": event.get("name"), "node": event.get("actor_node"),
        "wid": event.get("wid"), "worker_pid": event.get("worker_pid"),
        "reason": event.get("reason")}


# -- the GCS object table (ObjectDirectory) ---------------------------------------------------


def _object_added(state: ClusterState, event: Event) -> None:
    """A store sealed the object and registered it; references that came first join it."""
    gcs = state.gcs
    oid = event["obj"]
    row = gcs.objects.get(oid)
    if row is None:
        holders = gcs.unregistered.pop(oid, {})
        row = gcs.objects[oid] = {"size": 0, "owner": "", "locations": [],
                                  "ref_count": len(holders), "holders": holders}
    row["size"] = event["size"]
    row["owner"] = event["owner"]
    if event["location"] not in row["locations"]:
        row["locations"] = sorted([*row["locations"], event["location"]])
    if not row.get("primary") or row["primary"] not in row["locations"]:
        row["primary"] = event["location"]  # the first copy sealed; the others are copies


def _ref_added(state: ClusterState, event: Event) -> None:
    gcs = state.gcs
    oid, holder, ref_type = event["obj"], event["holder"], event["ref_type"]
    row = gcs.objects.get(oid)
    if row is None and ref_type == ACTOR_HANDLE:
        # An actor's handle object: registered by its first handle, with no store involved
        # (ObjectDirectory.add_handle_object). Its holder is the actor's creator.
        holders = gcs.unregistered.pop(oid, {})
        row = gcs.objects[oid] = {"size": 0, "owner": holder, "locations": [],
                                  "ref_count": 0, "holders": holders}
    if row is None:
        gcs.unregistered.setdefault(oid, {})[holder] = ref_type
        return
    row["holders"][holder] = ref_type
    row["ref_count"] = len(row["holders"])


def _ref_removed(state: ClusterState, event: Event) -> None:
    gcs = state.gcs
    oid, holder = event["obj"], event["holder"]
    row = gcs.objects.get(oid)
    if row is not None:
        row["holders"].pop(holder, None)
        row["ref_count"] = len(row["holders"])
        return
    early = gcs.unregistered.get(oid)
    if early is not None:
        early.pop(holder, None)
        if not early:
            del gcs.unregistered[oid]


def _object_freed(state: ClusterState, event: Event) -> None:
    state.gcs.objects.pop(event["obj"], None)
    state.gcs.unregistered.pop(event["obj"], None)


def _object_lost(state: ClusterState, event: Event) -> None:
    """Its owner died (or a reference came after it was freed): the row goes, holders and
    all, as ObjectDirectory._lose drops it; the stores' deletions follow as their own
    events. Lost with its node (NODE_DIED), the row stays, with no location: its holders
    still hold it, and its owner may make it again."""
    if event.get("cause") == "NODE_DIED":
        return
    state.gcs.objects.pop(event["obj"], None)
    state.gcs.unregistered.pop(event["obj"], None)


# -- each node's object store (ObjectStore) ----------------------------------------------------


def _store(state: ClusterState, node: str) -> dict:
    store = state.stores.get(node)
    if store is None:  # a trace that lost its store.created (a crashed raylet's last batch)
        store = state.stores[node] = {"capacity": 0, "used": 0, "objects": {}, "spilled": {}}
    return store


def _store_created(state: ClusterState, event: Event) -> None:
    state.stores[event["node"]] = {"capacity": event["capacity"], "used": 0, "objects": {},
                                   "spilled": {}}


def _store_create(state: ClusterState, event: Event) -> None:
    store = _store(state, event["node"])
    store["objects"][event["obj"]] = {"size": event["size"], "offset": event["offset"],
                                      "owner": event["owner"], "sealed": False}
    # The event does not carry the store's usage; the allocator counts at least one byte
    # per object (Allocator.allocate), and the next sealed/deleted event says it exactly.
    store["used"] += max(event["size"], 1)


def _store_sealed(state: ClusterState, event: Event) -> None:
    store = _store(state, event["node"])
    entry = store["objects"].get(event["obj"])
    if entry is not None:
        entry["sealed"] = True
    store["used"] = event["used"]


def _store_deleted(state: ClusterState, event: Event) -> None:
    """Freed: gone from memory, and from disk if it had been spilled."""
    store = _store(state, event["node"])
    store["objects"].pop(event["obj"], None)
    store["spilled"].pop(event["obj"], None)
    store["used"] = event["used"]


def _store_spilled(state: ClusterState, event: Event) -> None:
    """Out of memory, into a file: still alive, no longer counted in ``used``."""
    store = _store(state, event["node"])
    entry = store["objects"].pop(event["obj"], None) or {}
    store["spilled"][event["obj"]] = {"size": event["size"], "owner": entry.get("owner", ""),
                                      "path": event["path"]}
    store["used"] = event["used"]


def _store_evicted(state: ClusterState, event: Event) -> None:
    """An in-memory copy dropped; its file (``spilled``) remains."""
    store = _store(state, event["node"])
    store["objects"].pop(event["obj"], None)
    store["used"] = event["used"]


def _store_restored(state: ClusterState, event: Event) -> None:
    """Back in memory, sealed, at a new offset; the file stays until the object is freed."""
    store = _store(state, event["node"])
    spilled = store["spilled"].get(event["obj"], {})
    store["objects"][event["obj"]] = {"size": event["size"], "offset": event["offset"],
                                      "owner": spilled.get("owner", ""), "sealed": True}
    store["used"] = event["used"]


# -- actors and each process's references ------------------------------------------------------


def _actor_instance(state: ClusterState, event: Event) -> None:
    state.actors[event["actor"]] = {"attrs": event["attrs"], "calls": event["calls"],
                                    "pid": event["pid"]}


def _ref_acquired(state: ClusterState, event: Event) -> None:
    state.refs.setdefault(_key(event), {})[event["obj"]] = event["ref_type"]


def _ref_released(state: ClusterState, event: Event) -> None:
    key = _key(event)
    held = state.refs.get(key)
    if held is not None:
        held.pop(event["obj"], None)
        if not held:
            del state.refs[key]


def _task_submitted(state: ClusterState, event: Event) -> None:
    """The submitter holds the task's return refs from now on; no ref.acquired says so."""
    if event["returns"]:
        held = state.refs.setdefault(_key(event), {})
        for oid in event["returns"]:
            held[oid] = LOCAL_REFERENCE


APPLY: dict[str, Callable[[ClusterState, Event], None]] = {
    "trace.header": _header,
    "process.started": _process_started,
    "process.stopping": _process_stopping,
    "process.exited": _process_exited,
    "node.registered": _node_registered,
    "node.removed": _node_removed,
    "gcs.location_removed": _location_removed,
    "job.registered": _job_registered,
    "gcs.actor_state": _actor_state,
    "gcs.object_added": _object_added,
    "gcs.ref_added": _ref_added,
    "gcs.ref_removed": _ref_removed,
    "gcs.object_freed": _object_freed,
    "gcs.object_lost": _object_lost,
    "store.created": _store_created,
    "object_store.create": _store_create,
    "object_store.sealed": _store_sealed,
    "object_store.deleted": _store_deleted,
    "object_store.spilled": _store_spilled,
    "object_store.evicted": _store_evicted,
    "object_store.restored": _store_restored,
    "actor.state": _actor_instance,
    "ref.acquired": _ref_acquired,
    "ref.released": _ref_released,
    "task.submitted": _task_submitted,
}


def apply(state: ClusterState, records: list[Event], start: int, stop: int) -> ClusterState:
    """Replay events ``start`` to ``stop - 1`` onto ``state``. Kinds that change no table
    (messages, object.get, task.execute, ...) are skipped."""
    handlers = APPLY
    for event in islice(records, start, stop):
        handler = handlers.get(event["ev"])
        if handler is not None:
            handler(state, event)
    if stop > start:
        state.index = stop - 1
        state.ts = records[stop - 1]["ts"]
    return state


def replay(records: list[Event], index: int) -> ClusterState:
    """The state after event ``index``, replayed from the very first event (no
    checkpoints: the reference that ``History`` must agree with)."""
    return apply(ClusterState(), records, 0, index + 1)


# --------------------------------------------------------------------------------------------
# Checkpoints


class History:
    """Fast ``state_at`` over one trace's events: saved states plus a short replay."""

    def __init__(self, records: list[Event], every: int = CHECKPOINT_EVERY) -> None:
        if every < 1:
            raise ValueError(f"a checkpoint every {every!r} events: it must be at least 1")
        self.records = records
        self.every = every
        # Invariant, once built: checkpoints[j] is the state after events [0, (j+1)*every).
        self.checkpoints: list[ClusterState] | None = None

    def build(self) -> None:
        """Replay the whole trace once, saving a copy of the state every ``every`` events."""
        state = ClusterState()
        checkpoints = []
        for stop in range(self.every, len(self.records) + 1, self.every):
            apply(state, self.records, stop - self.every, stop)
            checkpoints.append(state.copy())
        self.checkpoints = checkpoints

    def state_at(self, index: int) -> ClusterState:
        n = len(self.records)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"event index {index} is out of range: the trace has {n} events")
        if self.checkpoints is None:
            self.build()
        blocks = (index + 1) // self.every  # whole blocks of events up to index
        if blocks == 0:
            return apply(ClusterState(), self.records, 0, index + 1)
        state = self.checkpoints[blocks - 1].copy()
        return apply(state, self.records, blocks * self.every, index + 1)
