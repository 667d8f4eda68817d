"""Short names for the ids of a run, so that every view speaks of the same things.

Ray's ids are opaque hex (raysim's too: ``82dfbf00000000008000``), and a learner reading
"82dfbf00 sent push_task [82dfbf00]" learns nothing. The founding document speaks of
``model_ref``, "the three actors" and "worker 2". Every view therefore names things the same
way, in the order the trace first shows them:

    processes  driver, gcs, raylet, zygote, worker#1, worker#2, ...  (``Trace.process_names``)
    actors     BatchPredictor#1, BatchPredictor#2, ...   (per class, in order of creation)
    tasks      predict_tip#3 for a task, BatchPredictor#2.predict for a method call (#k when
               that actor's method was called more than once), BatchPredictor#2.__init__ for
               the creation task
    objects    put#1, put#2, ... for ``put``; the task's name + ``.ret`` for a return value
               (``.ret0``, ``.ret1``... when a task returns several); BatchPredictor#1 handle

The names depend only on the order of the driver's calls, not on process ids or random
bytes, so two runs of one program read the same (apart from which worker hosts which actor,
which the operating system decides). Runs in: the reader's process.
"""

from __future__ import annotations

import collections

from raysim.trace import schema
from raysim.trace.index import TraceIndex, index_of

# An object id is its creating task's id and an index; ``put`` numbers its objects from this
# index on (the trace schema's id formats, as Ray's ObjectID does).
PUT_INDEX_BASE = schema.PUT_INDEX_BASE

# The event kinds that may name an object, in an ``obj`` field.
_KINDS_WITH_OBJ = tuple(kind for kind, spec in schema.EVENTS.items() if "obj" in spec.fields)


class Labels:
    """Names for one trace's processes, actors, tasks and objects."""

    def __init__(self, trace) -> None:
        self.processes: dict[int, str] = trace.process_names()
        self.nodes: dict[str, str] = trace.node_names()
        self.workers: dict[str, str] = {}     # wid -> process name
        self.actors: dict[str, str] = {}
        self.tasks: dict[str, str] = {}
        self.objects: dict[str, str] = {}
        # (event index, object, size) of each value a worker returned inline to the driver.
        self.inlined: list[tuple[int, str, int]] = []
        index = index_of(trace)
        records = trace.records
        self._name_actors(records, index)
        self._name_tasks(records, index)
        self._name_puts(records, index)
        for i in index.of("gcs.actor_state"):
            event = records[i]
            if event.get("handle_object"):
                self.objects.setdefault(event["handle_object"],
                                        f"{self.actor(event['actor'])} handle")

    def _name_actors(self, records, index: TraceIndex) -> None:
        """Workers by their process names, actors per class in order of creation."""
        per_class: collections.Counter = collections.Counter()
        for i in index.of("process.started", "worker.registered", "task.submitted",
                          "gcs.actor_state"):
            event = records[i]
            ev = event["ev"]
            if ev == "process.started" and event.get("wid"):
                self.workers.setdefault(event["wid"], self.processes.get(event["pid"], "?"))
            elif ev == "worker.registered":
                self.workers.setdefault(event["wid"],
                                        self.processes.get(event["worker_pid"], event["role"]))
            elif ev == "task.submitted":
                if event["task_kind"] == "actor_creation" and event["actor"] not in self.actors:
                    per_class[event["name"]] += 1
                    self.actors[event["actor"]] = f"{event['name']}#{per_class[event['name']]}"
            elif ev == "gcs.actor_state" and event["actor"] not in self.actors:
                # Created by a process whose task.submitted the trace lacks.
                per_class[event["class_name"]] += 1
                self.actors[event["actor"]] = (f"{event['class_name']}"
                                               f"#{per_class[event['class_name']]}")

    def _name_tasks(self, records, index: TraceIndex) -> None:
        """Tasks and their return values, and the values returned inline to the driver."""
        submitted = [records[i] for i in index.of("task.submitted")]
        # Calls per (actor, method): a method called once needs no number.
        calls = collections.Counter((e["actor"], e["name"]) for e in submitted
                                    if e["task_kind"] == "actor_task")
        seen: collections.Counter = collections.Counter()
        per_function: collections.Counter = collections.Counter()
        for event in submitted:
            task, name = event["task"], event["name"]
            if event["task_kind"] == "actor_creation":
                label = f"{self.actors[event['actor']]}.__init__"
            elif event["task_kind"] == "actor_task":
                method = name.rsplit(".", 1)[-1]
                actor = self.actor(event["actor"])
                key = (event["actor"], name)
                seen[key] += 1
                label = f"{actor}.{method}" + (f"#{seen[key]}" if calls[key] > 1 else "")
            else:
                per_function[name] += 1
                label = f"{name}#{per_function[name]}"
            self.tasks.setdefault(task, label)
            returns = event["returns"]
            for i, object_id in enumerate(returns):
                suffix = ".ret" if len(returns) == 1 else f".ret{i}"
                self.objects.setdefault(object_id, label + suffix)
        driver_pids = {pid for pid, name in self.processes.items() if name == "driver"}
        driver_returns = {o for e in submitted if e["pid"] in driver_pids for o in e["returns"]}
        for i in index.of("object.inlined"):
            event = records[i]
            if event["obj"] in driver_returns:
                self.inlined.append((i, event["obj"], event["size"]))

    def _name_puts(self, records, index: TraceIndex) -> None:
        """put#1, put#2, ... in the order the trace first names each put object."""
        puts = 0
        for i in index.of(*_KINDS_WITH_OBJ):
            object_id = records[i].get("obj")
            if not object_id or object_id in self.objects:
                continue
            if _index(object_id) >= PUT_INDEX_BASE:
                puts += 1
                self.objects[object_id] = f"put#{puts}"

    @classmethod
    def of(cls, trace) -> "Labels":
        """The trace's labels, made once and kept on the trace (every view asks)."""
        cached = getattr(trace, "_labels", None)
        if cached is None:
            cached = trace._labels = cls(trace)
        return cached

    def inlined_until(self, index: int) -> dict[str, int]:
        """Objects the driver holds as inline values by event ``index``: object -> size."""
        return {obj: size for i, obj, size in self.inlined if i <= index}

    def proc(self, pid: int | None) -> str:
        return self.processes.get(pid, str(pid))

    def node(self, node_id: str | None) -> str:
        """node1, node2, ... (the driver's is node1), as process names say them."""
        return self.nodes.get(node_id or "", node_id or "")

    def actor(self, actor_id: str | None) -> str:
        if not actor_id:
            return ""
        return self.actors.get(actor_id) or f"actor:{actor_id[:8]}"

    def task(self, task_id: str | None) -> str:
        if not task_id:
            return ""
        return self.tasks.get(task_id) or f"task:{task_id[-6:]}"

    def obj(self, object_id: str | None) -> str:
        if not object_id:
            return ""
        known = self.objects.get(object_id)
        if known:
            return known
        # Unnamed (an object the trace shows only in passing): its creator's name if known.
        task = self.tasks.get(object_id[:16])
        return f"{task}.obj{_index(object_id)}" if task else f"obj:{object_id[-8:]}"

    def holder(self, holder: str) -> str:
        """A reference holder as the GCS names it ("worker:<wid>", "task:<id>", "driver:<wid>")."""
        kind, _, ident = holder.partition(":")
        if kind == "task":
            return f"pending {self.task(ident)}"
        if kind in ("worker", "driver"):
            return self.workers.get(ident, kind)
        return holder

    def endpoint(self, pid: int | None, address: str) -> str:
        """A message's sender or receiver: its process name, else the address it was sent to."""
        if pid in self.processes:
            return self.processes[pid]
        return address.split(":")[0] if address else "?"


def _index(object_id: str) -> int:
    try:
        return int(object_id[16:], 16)
    except ValueError:
        return -1
