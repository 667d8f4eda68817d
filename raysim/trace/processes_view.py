"""The runtime's processes: what ``init`` started, and what ``shutdown`` changed.

Seed, phase 1: "When ``ray.init()`` is called, several processes start on your machine": a
raylet per node (scheduling, the local object store), worker processes, the GCS, and the
object store, a shared-memory region; "Workers: idle, waiting for tasks". ``InitProcesses``
lists them from the trace, with their PIDs and state: the driver, the GCS, the raylet with
its store, the zygote that forks workers (raysim's, where Ray starts each worker as a fresh
interpreter), and the task workers ``init`` asked for. Those may register after ``init``
has returned (the zygote imports what workers need first); their row says when.

The last phase, ``shutdown``, changes no table: the processes stop and what they held goes
with them. ``ShutdownChanges`` says so: each process's state before and after, the table
rows that did change while it ran, and what was still held when it began.

Runs in: the reader's process. Built from the events ``process.started``,
``process.stopping``, ``node.registered``, ``job.registered``, ``store.created``,
``worker.starting``, ``worker.registered`` and ``zygote.preloaded``.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from raysim.trace.index import index_of
from raysim.trace.labels import Labels
from raysim.trace.limits import BOUNDED, MORE, Limits
from raysim.trace.render import RichView
from raysim.trace.step_text import ms_text, size_text

# The order processes are listed in: the founding document's, then the workers.
_ORDER = {"driver": 0, "gcs": 1, "raylet": 2, "zygote": 3, "worker": 4}


def _table(title: str, columns: tuple[str, ...], rows: list[tuple], more: int = 0) -> Group:
    table = Table(show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, justify="right" if column == "pid" else "left",
                         no_wrap=column != columns[-1])
    for row in rows:
        table.add_row(*row)
    if more:
        table.add_row(MORE.format(n=more), *[""] * (len(columns) - 1), style="dim")
    return Group(Text(title, style="bold"), table)


class InitProcesses(RichView):
    """The processes ``init`` started (phase group ``group``), as they stood at its end."""

    def __init__(self, trace, group, labels: Labels | None = None,
                 limits: Limits = BOUNDED) -> None:
        self.trace, self.group, self.limits = trace, group, limits
        self.labels = labels or Labels.of(trace)

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(process, pid, state, what it is) for each process, in the founding order."""
        trace, labels = self.trace, self.labels
        state = trace.state_at(self._end())
        rows = []
        for process in sorted(state.processes.values(),
                              key=lambda p: (_ORDER.get(p["proc"], 5), p["pid"])):
            rows.append((labels.proc(process["pid"]), str(process["pid"]), process["state"],
                         self._what(process, state)))
        returned = self._returned()
        rows += self._late_control_processes(state, returned)
        up = {p["wid"] for p in state.processes.values() if p.get("wid")}
        for wid, pid, role, ts in self._asked_for_workers():
            if wid in up:
                continue
            name = labels.workers.get(wid) or labels.proc(pid)
            when = "" if ts is None else f"; up at +{ms_text(ts - trace.records[0]['ts'])}" \
                + (", after init returned" if returned is not None and ts > returned else "")
            rows.append((name, "" if pid is None else str(pid), "STARTING",
                         f"{role} worker, then idle, waiting for tasks{when}"))
        return rows

    def _late_control_processes(self, state, returned: int | None) -> list[tuple]:
        """The zygote (or another control process) whose first event came after init's
        end: started by init, not up yet when it returned (a busy machine)."""
        trace, index = self.trace, index_of(self.trace)
        rows = []
        for process in self.trace.processes():
            if process.proc not in _ORDER or process.proc in ("driver", "worker") \
                    or process.pid in state.processes:
                continue
            ts = trace.records[index.first_of_pid[process.pid]]["ts"]
            when = f"up at +{ms_text(ts - trace.records[0]['ts'])}" + (
                ", after init returned" if returned is not None and ts > returned else "")
            what = "forks the workers" if process.proc == "zygote" else process.proc
            rows.append((self.labels.proc(process.pid), str(process.pid), "STARTING",
                         f"{what}; {when}"))
        return rows

    def _end(self) -> int:
        """Where init's tables are read, as for its "What's stored where"."""
        return min(self.group.last_index, len(self.trace) - 1)

    def _returned(self) -> int | None:
        """When init returned: the driver's next call began (None: it made none)."""
        later = [p.ts_begin for p in self.trace.phases() if p.number > max(self.group.numbers)]
        return later[0] if later else None

    def _what(self, process: dict, state) -> str:
        proc = process["proc"]
        if proc == "driver":
            jobs = [job for job, row in state.gcs.jobs.items()
                    if row["driver_pid"] == process["pid"]]
            return "your script" + (f", job {jobs[0]}" if jobs else "")
        if proc == "gcs":
            gcs = state.gcs
            return (f"Global Control Store: {len(gcs.nodes)} node(s), {len(gcs.jobs)} job(s); "
                    f"{len(gcs.actors)} actors and {len(gcs.objects)} objects so far")
        if proc == "raylet":
            node = state.gcs.nodes.get(process["node"], {})
            store = state.stores.get(process["node"], {})
            resources = _resources(node.get("resources", {}))
            return (f"node {process['node'][:8]} ({resources or 'not registered yet'}): "
                    f"scheduler and worker pool; its object store, shared memory of "
                    f"{store.get('capacity', 0):,} B, holds {len(store.get('objects', {}))} "
                    f"objects")
        if proc == "zygote":
            return "forks the workers, with " + self._preloaded()
        return f"{process.get('role') or 'task'} worker, idle, waiting for tasks"

    def _preloaded(self) -> str:
        records, index = self.trace.records, index_of(self.trace)
        first = index.of("zygote.preloaded")[:1]
        if not first:
            return "nothing imported ahead yet"
        event = records[first[0]]
        modules = event["modules"]
        named = ", ".join(modules[:4]) + (", ..." if len(modules) > 4 else "")
        return f"what they import loaded ahead ({named}: {ms_text(event['dur'])})"

    def _asked_for_workers(self) -> list[tuple[str, int | None, str, int | None]]:
        """(wid, pid, role, when it registered) of each worker init asked the zygote for."""
        records, index = self.trace.records, index_of(self.trace)
        numbers = set(self.group.numbers)
        asked = {records[i]["wid"]: records[i]["role"] for i in index.of("worker.starting")
                 if records[i].get("phase") in numbers}
        found = {}
        for i in index.of("worker.registered"):
            event = records[i]
            if event["wid"] in asked and event["wid"] not in found:
                found[event["wid"]] = (event["worker_pid"], event["ts"])
        out = []
        for wid, role in asked.items():
            pid, ts = found.get(wid, (None, None))
            out.append((wid, pid, role, ts))
        return out

    def __rich__(self) -> Group:
        rows, more = self.limits.cut("processes", self.rows())
        return _table("Processes started by init", ("process", "pid", "state", "what it is"),
                      rows, more)


class ShutdownChanges(RichView):
    """What the ``shutdown`` phase group ``group`` changed: processes, and table rows."""

    def __init__(self, trace, group, labels: Labels | None = None,
                 limits: Limits = BOUNDED) -> None:
        self.trace, self.group, self.limits = trace, group, limits
        self.labels = labels or Labels.of(trace)
        first = next(p.first_index for p in trace.phases() if p.number == group.numbers[0])
        self.first = first
        self.last = len(trace) - 1 if group is _last(trace) else group.last_index

    def processes(self) -> list[tuple[str, str, str, str]]:
        """(process, pid, before, after) for each process that was running."""
        trace, labels = self.trace, self.labels
        before = trace.state_at(self.first - 1).processes if self.first > 0 else {}
        after = trace.state_at(self.last).processes
        reasons = {}
        records = trace.records
        for i in index_of(trace).of("process.stopping"):
            if self.first <= i <= self.last:
                reasons[records[i]["pid"]] = records[i]["reason"]
        rows = []
        for key, process in sorted({**before, **after}.items(), key=lambda item: (
                _ORDER.get(item[1]["proc"], 5), item[1]["pid"])):
            was = before.get(key, {}).get("state", "not started")
            now = after.get(key, {}).get("state", "")
            if now == was:
                now = f"{now} (it wrote no event as it stopped)"
            elif process["pid"] in reasons:
                now = f"{now} ({reasons[process['pid']]})"
            rows.append((labels.proc(process["pid"]), str(process["pid"]), was, now))
        return rows

    def table_changes(self) -> tuple[list[str], list[str]]:
        """The table rows shutdown removed and added (as ``raysim replay --step`` shows)."""
        from raysim.trace.stepper import row_lines
        from raysim.trace.stored_where import StoredWhere

        trace = self.trace
        before = row_lines(StoredWhere(trace, self.first - 1, self.labels)) \
            if self.first > 0 else set()
        after = row_lines(StoredWhere(trace, self.last, self.labels))
        return sorted(before - after), sorted(after - before)

    def held(self) -> str:
        """What the tables held when shutdown began: it goes away with the processes."""
        state = self.trace.state_at(self.first - 1) if self.first > 0 else None
        if state is None:
            return "nothing"
        handles = sum(1 for row in state.gcs.objects.values() if not row.get("locations"))
        parts = [f"GCS: {_count(len(state.gcs.actors), 'actor')}, "
                 f"{_count(len(state.gcs.objects) - handles, 'object')} and "
                 f"{_count(handles, 'actor handle')}"]
        for node, store in state.stores.items():
            objects = _count(len(store["objects"]), "object")
            parts.append(f"object store of node {node[:8]}: {objects}, "
                         f"{store.get('used', 0):,} B")
        parts.append(f"{_count(len(state.actors), 'actor')}' heaps" if len(state.actors) != 1
                     else "1 actor's heap")
        parts.append(f"the driver's {len(state.driver_refs):,} ObjectRef(s)")
        return "; ".join(parts)

    def __rich__(self) -> Group:
        rows, more = self.limits.cut("processes", self.processes())
        parts: list = [_table("processes", ("process", "pid", "before", "after"), rows, more)]
        removed, added = self.table_changes()
        changes = [f"- {line}" for line in removed] + [f"+ {line}" for line in added]
        if changes:
            shown, more = self.limits.cut("table_rows", changes)
            parts.append(Text("table rows it changed (- removed, + added)", style="bold"))
            parts += [Text(line) for line in shown]
            if more:
                parts.append(Text(MORE.format(n=more), style="dim"))
        else:
            parts.append(Text("No table changed: what they held went away with the processes."))
        parts.append(Text(f"held when shutdown began: {self.held()}"))
        return Group(*parts)


def _resources(resources: dict) -> str:
    """"CPU 2, memory 16.4 GB": what the node offers (not its node:<ip> markers)."""
    return ", ".join(f"{name} {size_text(int(amount)) if 'memory' in name else f'{amount:g}'}"
                     for name, amount in resources.items() if not name.startswith("node:"))


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def _last(trace):
    from raysim.trace.sequence import phase_groups

    return phase_groups(trace)[-1]
