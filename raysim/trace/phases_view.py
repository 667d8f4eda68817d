"""The founding document's walk-through, rebuilt from a trace: one panel per phase.

Seed: the document tells a run in five phases, each with its "Control Flow" (numbered steps:
who does what, in which process) and its "What's stored where" (GCS tables, object store
contents, actor state in worker heaps, the driver's refs). This view prints the same for any
traced program: consecutive driver calls of the same kind from the same line (the three
``BatchPredictor.remote(...)`` of a list comprehension) form one phase; its panel shows the
code line, the phase's steps as a sequence diagram (``sequence.py``), and the tables as
they stood when the phase's last event had happened (``stored_where.py``).

A run of more than ``MAX_PANELS`` phases is summarised instead: calls per kind, the slowest
tasks and the largest objects, and the tables at the end. Calls raysim refused before they
began (``api.rejected`` without a phase) follow, in a table of their own.

Runs in: the reader's process (``raysim trace``, a notebook). Renders with rich.
"""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from raysim.trace.fault_steps import refusal
from raysim.trace.labels import Labels
from raysim.trace.render import RichView
from raysim.trace.sequence import PhaseGroup, SequenceDiagram, phase_group, phase_groups
from raysim.trace.stored_where import StoredWhere

__all__ = ["PhaseGroup", "PhaseView", "RunView", "phase_groups"]

# Past this many phases a run is summarised (per-kind counts) instead of told panel by panel.
MAX_PANELS = 40
# Steps drawn per phase panel; the rest are counted.
MAX_STEPS = 60
# Refused calls listed after the phases; the rest are counted.
MAX_REFUSED = 10


class PhaseView(RichView):
    """One phase's panel: code line, control flow, what's stored where."""

    def __init__(self, trace, number: int, labels: Labels | None = None) -> None:
        self.trace, self.number, self.group = trace, number, phase_group(trace, number)
        self.labels = labels or Labels.of(trace)

    def sequence(self) -> SequenceDiagram:
        return SequenceDiagram(self.trace, self.group, self.labels, max_steps=MAX_STEPS)

    def stored_where(self) -> StoredWhere:
        index = min(self.group.last_index, len(self.trace) - 1)
        return StoredWhere(self.trace, index, self.labels, upto_phase=max(self.group.numbers))

    def __rich__(self) -> Panel:
        group = self.group
        calls = f" x{len(group.numbers)}" if len(group.numbers) > 1 else ""
        header = Text(f"{group.site or ''}  {group.code or ''}".strip(), style="bold")
        return Panel(Group(header, Text("Control flow", style="underline"), self.sequence(),
                           Text("What's stored where", style="underline"),
                           self.stored_where()),
                     title=f"Phase {self.number}: {group.api}{calls}")


class RunView(RichView):
    """What ``raysim trace`` prints: every phase (or a summary of a long run), the reference
    counts of the objects the driver put, and a timeline. ``phase`` shows one phase only."""

    def __init__(self, trace, phase: int | None = None, width: int | None = None) -> None:
        self.trace, self.phase, self.width = trace, phase, width
        self.labels = Labels.of(trace)
        self.groups = phase_groups(trace)
        if phase is not None:
            phase_group(trace, phase)  # a bad number fails here, not when shown

    def __rich_console__(self, console, options):
        from raysim.trace.refcounts import ref_count_table
        from raysim.trace.timeline_view import timeline_panel

        trace, labels = self.trace, self.labels
        if self.phase is not None:
            yield PhaseView(trace, self.phase, labels)
            return
        if len(self.groups) > MAX_PANELS:
            yield from _summary(trace, self.groups, labels)
        else:
            for number in range(1, len(self.groups) + 1):
                yield PhaseView(trace, number, labels)
        refused = [e for e in trace.records if e["ev"] == "api.rejected" and e.get("phase") is None]
        if refused:
            yield _refused_table(refused)
        puts = [e["obj"] for e in trace.records
                if e["ev"] == "object.serialized" and e["proc"] == "driver" and e.get("obj")]
        for object_id in puts[:3]:
            yield ref_count_table(trace, object_id, labels=labels,
                                  title=f"reference count of {labels.obj(object_id)} "
                                        f"(put by the driver)")
        width = self.width or options.max_width
        yield timeline_panel(trace, max(40, width - 20))


def _refused_table(events: list[dict]) -> Table:
    """Calls refused before they began: they open no phase, so no panel shows them (those
    refused halfway are steps of their phase's diagram)."""
    table = Table(title=f"calls refused before they began ({len(events):,}, api.rejected)",
                  title_justify="left")
    for column in ("line", "call", "error", "why"):
        table.add_column(column)
    for event in events[:MAX_REFUSED]:
        table.add_row(f"{event.get('site') or ''}  {event.get('code') or ''}".strip(),
                      f"{event['api']}()", event["error"], refusal(event))
    if len(events) > MAX_REFUSED:
        table.add_row("", f"... {len(events) - MAX_REFUSED:,} more", "", "")
    return table


def _summary(trace, groups: list[PhaseGroup], labels: Labels):
    table = Table(title=f"{len(trace):,} events in {len(groups):,} phases (summarised)",
                  title_justify="left")
    for column in ("driver call", "calls", "first line"):
        table.add_column(column)
    counts: dict[str, list] = {}
    for group in groups:
        entry = counts.setdefault(group.api, [0, f"{group.site or ''}  {group.code or ''}"])
        entry[0] += len(group.numbers)
    for api, (calls, code) in counts.items():
        table.add_row(api, f"{calls:,}", code.strip())
    yield table
    slowest = sorted((e for e in trace.records if e["ev"] == "task.execute"),
                     key=lambda e: -e["dur"])[:5]
    if slowest:
        tasks = Table(title="slowest tasks", title_justify="left")
        for column in ("task", "worker", "ran for"):
            tasks.add_column(column)
        for event in slowest:
            tasks.add_row(labels.task(event["task"]), labels.proc(event["pid"]),
                          f"{event['dur'] / 1e6:.1f} ms")
        yield tasks
    largest = sorted((e for e in trace.records if e["ev"] == "object_store.sealed"),
                     key=lambda e: -e["size"])[:5]
    if largest:
        objects = Table(title="largest objects in the store", title_justify="left")
        for column in ("object", "size"):
            objects.add_column(column)
        for event in largest:
            objects.add_row(labels.obj(event["obj"]), f"{event['size']:,} B")
        yield objects
    yield Panel(StoredWhere(trace, None, labels), title="At the end")
