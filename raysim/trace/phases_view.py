"""The founding document's walk-through, rebuilt from a trace: one panel per phase.

Seed: the document tells a run in five phases, each with its "Control Flow" (numbered steps:
who does what, in which process) and its "What's stored where" (GCS tables, object store
contents, actor state in worker heaps, the driver's refs). This view prints the same for any
traced program: consecutive driver calls of the same kind from the same line (the three
``BatchPredictor.remote(...)`` of a list comprehension) form one phase; its panel shows the
code line, the messages the phase caused in order, and the tables as they stood when the
phase's last event had happened (``Trace.state_at``).

Runs in: the reader's process (``raysim trace``, a notebook). Renders with rich.
"""

from __future__ import annotations

import dataclasses

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

# Past this many phases a run is summarised (per-kind counts) instead of told panel by panel.
MAX_PANELS = 40
# Messages listed per phase panel; the rest are counted.
MAX_MESSAGES = 40


@dataclasses.dataclass
class PhaseGroup:
    """Consecutive driver calls of one kind from one line of code."""

    api: str
    site: str | None
    code: str | None
    numbers: list[int]
    last_index: int  # the group's last event (any process), where its tables are read


# Events that change the tables of "What's stored where" (messages and process bookkeeping
# do not): a group's snapshot is taken once the last of these it caused has happened.
_TABLE_EVENTS = ("gcs.", "object_store.", "actor.state", "ref.", "task.submitted")


def phase_groups(trace) -> list[PhaseGroup]:
    groups: list[PhaseGroup] = []
    last_event_of: dict[int, int] = {}
    for i, event in enumerate(trace.records):
        phase = event.get("phase")
        if phase is not None and event["ev"].startswith(_TABLE_EVENTS):
            last_event_of[phase] = i
    for phase in trace.phases():
        # At least until the driver moved on; later if the call's effects came later.
        last = max(last_event_of.get(phase.number, 0), phase.last_index)
        previous = groups[-1] if groups else None
        if previous and previous.api == phase.api and previous.site == phase.site \
                and phase.api != "init":
            previous.numbers.append(phase.number)
            previous.last_index = max(previous.last_index, last)
        else:
            groups.append(PhaseGroup(phase.api, phase.site, phase.code, [phase.number], last))
    return groups


def messages_of(trace, group: PhaseGroup, names: dict[int, str]) -> list[str]:
    """The group's messages, in the order they were sent: "driver -> raylet: submit_task"."""
    wanted = set(group.numbers)
    lines = []
    for event in trace.records:
        if event["ev"] != "msg.send" or event.get("phase") not in wanted:
            continue
        ids = [event[k][:8] for k in ("task", "obj", "actor") if event.get(k)]
        sender = names.get(event["pid"], f"{event['proc']}:{event['pid']}")
        receiver = names.get(event["to_pid"], event["to"])
        detail = f" [{', '.join(ids)}]" if ids else ""
        lines.append(f"{sender} -> {receiver}: {event['kind']}{detail} ({event['size']} B)")
    return lines


def stored_where(state, names: dict[int, str]) -> Group:
    """The founding document's "What's stored where" for one moment of the run."""
    parts = []
    actors = Table(title="GCS actor registry", show_edge=False)
    for column in ("actor", "class", "state", "worker"):
        actors.add_column(column)
    for actor_id, row in state.gcs.actors.items():
        pid = row.get("worker_pid")
        actors.add_row(actor_id[:8], row.get("class_name") or "", row.get("state") or "",
                       f"{names.get(pid, pid)} (pid {pid})" if pid else "")
    if state.gcs.actors:
        parts.append(actors)
    objects = Table(title="GCS object table and reference counts", show_edge=False)
    for column in ("object", "size", "location", "ref_count", "holders"):
        objects.add_column(column)
    for object_id, row in state.gcs.objects.items():
        if not row.get("locations"):
            continue  # actor handles: counted, but not stored anywhere
        holders = ", ".join(f"{h.split(':')[0]}:{h.split(':')[-1][:8]} {t}"
                            for h, t in sorted(row["holders"].items()))
        objects.add_row(object_id[-12:], f"{row['size']:,} B", ", ".join(row["locations"]),
                        str(row["ref_count"]), holders)
    if objects.row_count:
        parts.append(objects)
    for node, store in state.stores.items():
        table = Table(title=f"object store of node {node} ({store.get('used', 0):,} of "
                            f"{store.get('capacity', 0):,} B used)", show_edge=False)
        for column in ("object", "size", "sealed"):
            table.add_column(column)
        for object_id, row in store["objects"].items():
            table.add_row(object_id[-12:], f"{row['size']:,} B", "yes" if row["sealed"] else "no")
        if store["objects"]:
            parts.append(table)
    if state.actors:
        heaps = Table(title="actor state (in each worker's heap)", show_edge=False)
        for column in ("actor", "worker", "attributes"):
            heaps.add_column(column)
        for actor_id, row in state.actors.items():
            attrs = ", ".join(f"{k}={v}" for k, v in row["attrs"].items())
            heaps.add_row(actor_id[:8], names.get(row.get("pid"), str(row.get("pid"))), attrs)
        parts.append(heaps)
    refs = state.driver_refs
    parts.append(Text(f"driver holds {len(refs)} ref(s)" +
                      (": " + ", ".join(f"{oid[-12:]} {t}" for oid, t in sorted(refs.items()))
                       if 0 < len(refs) <= 8 else "")))
    return Group(*parts)


def render(trace, console: Console) -> None:
    """Print the run phase by phase (or a summary of a long run)."""
    names = trace.process_names()
    groups = phase_groups(trace)
    if len(groups) > MAX_PANELS:
        _summary(trace, groups, console)
        return
    for number, group in enumerate(groups, 1):
        calls = f" x{len(group.numbers)}" if len(group.numbers) > 1 else ""
        title = f"Phase {number}: {group.api}{calls}"
        header = Text(f"{group.site or ''}  {group.code or ''}".strip(), style="bold")
        lines = messages_of(trace, group, names)
        shown = [f"{i}. {line}" for i, line in enumerate(lines[:MAX_MESSAGES], 1)]
        if len(lines) > MAX_MESSAGES:
            shown.append(f"... and {len(lines) - MAX_MESSAGES} more messages")
        flow = Text("\n".join(shown) if shown else "(no messages)")
        state = trace.state_at(min(group.last_index, len(trace) - 1))
        console.print(Panel(Group(header, Text("Control flow", style="underline"), flow,
                                  Text("What's stored where", style="underline"),
                                  stored_where(state, names)), title=title))


def render_run(trace, console: Console) -> None:
    """What ``raysim trace`` prints: the phases, the reference counts of the objects the
    driver put, and a timeline."""
    from raysim.trace.refcounts import ref_count_table
    from raysim.trace.timeline_view import timeline_panel

    render(trace, console)
    puts = [e["obj"] for e in trace.records
            if e["ev"] == "object.serialized" and e["proc"] == "driver" and e.get("obj")]
    for object_id in puts[:3]:
        console.print(ref_count_table(trace, object_id,
                                      title=f"reference count of {object_id} (put by the driver)"))
    console.print(timeline_panel(trace, max(40, console.width - 20)))


def _summary(trace, groups: list[PhaseGroup], console: Console) -> None:
    table = Table(title=f"{len(trace):,} events in {len(groups)} phases (summarised)")
    for column in ("api", "calls", "first line"):
        table.add_column(column)
    counts: dict[str, list] = {}
    for group in groups:
        entry = counts.setdefault(group.api, [0, group.code or ""])
        entry[0] += len(group.numbers)
    for api, (calls, code) in counts.items():
        table.add_row(api, f"{calls:,}", code)
    console.print(table)
    state = trace.state_at(len(trace) - 1)
    console.print(Panel(stored_where(state, trace.process_names()), title="At the end"))
