"""The founding document's walk-through, rebuilt from a trace: one panel per phase.

Seed: the document tells a run in five phases, each with its "Control Flow" (numbered steps:
who does what, in which process) and its "What's stored where" (GCS tables, object store
contents, actor state in worker heaps, the driver's refs). This view prints the same for any
traced program: consecutive driver calls of the same kind from the same line (the three
``BatchPredictor.remote(...)`` of a list comprehension) form one phase; its panel shows the
code line, the phase's steps as a sequence diagram (``sequence.py``), and the tables as
they stood when the phase's last event had happened (``stored_where.py``).

Phase 1 (``init``) also lists the processes it started; the last (``shutdown``) says what
it changed rather than repeat the tables (``processes_view.py``).

Every view is bounded (``limits.py``): panels are told until the run's text is about 300
lines long, and the phases after that are listed in one table, with the tables at the end;
a run of more than ``Limits.panels`` phases is summarised without panels: calls per kind,
the slowest tasks and the largest objects, and the tables at the end. Calls raysim refused
before they began (``api.rejected`` without a phase) follow, in a table of their own.

Runs in: the reader's process (``raysim trace``, a notebook). Renders with rich.
"""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from raysim.trace.fault_steps import refusal
from raysim.trace.index import index_of
from raysim.trace.labels import Labels
from raysim.trace.limits import BOUNDED, MORE, Limits
from raysim.trace.render import TEXT_WIDTH, RichView
from raysim.trace.sequence import PhaseGroup, SequenceDiagram, phase_group, phase_groups
from raysim.trace.stored_where import StoredWhere

__all__ = ["PhaseGroup", "PhaseView", "RunView", "phase_groups"]


class PhaseView(RichView):
    """One phase's panel: code line, control flow, what's stored where (for ``init``, the
    processes it started first; for ``shutdown``, what it changed instead)."""

    def __init__(self, trace, number: int, labels: Labels | None = None,
                 limits: Limits = BOUNDED) -> None:
        self.trace, self.number, self.group = trace, number, phase_group(trace, number)
        self.labels = labels or Labels.of(trace)
        self.limits = limits

    def sequence(self) -> SequenceDiagram:
        return SequenceDiagram(self.trace, self.group, self.labels, limits=self.limits)

    def stored_where(self) -> StoredWhere:
        index = min(self.group.last_index, len(self.trace) - 1)
        return StoredWhere(self.trace, index, self.labels, upto_phase=max(self.group.numbers),
                           limits=self.limits)

    def __rich__(self) -> Panel:
        from raysim.trace.processes_view import InitProcesses, ShutdownChanges

        group = self.group
        calls = f" x{len(group.numbers)}" if len(group.numbers) > 1 else ""
        header = Text(f"{group.site or ''}  {group.code or ''}".strip(), style="bold")
        parts = [header, Text("Control flow", style="underline"), self.sequence()]
        if group.api == "shutdown":
            parts += [Text("What shutdown changed", style="underline"),
                      ShutdownChanges(self.trace, group, self.labels, self.limits)]
        else:
            if group.api == "init":
                parts.append(InitProcesses(self.trace, group, self.labels, self.limits))
            parts += [Text("What's stored where", style="underline"), self.stored_where()]
        return Panel(Group(*parts), title=f"Phase {self.number}: {group.api}{calls}")


class RunView(RichView):
    """What ``raysim trace`` prints: every phase (or a summary of a long run), the reference
    counts of the objects the driver put, and a timeline. ``phase`` shows one phase only.

    Bounded by ``limits`` (see ``limits.py``): panels are shown until the text is
    ``run_lines`` long, the later phases are summarised in a table; ``UNBOUNDED`` shows
    every panel and every row. ``on_panel(done, total)``, if given, is called as panels are
    rendered (``raysim trace`` shows it as progress)."""

    def __init__(self, trace, phase: int | None = None, width: int | None = None,
                 limits: Limits = BOUNDED, on_panel=None) -> None:
        self.trace, self.phase, self.width = trace, phase, width
        self.limits, self.on_panel = limits, on_panel
        self.labels = Labels.of(trace)
        self.groups = phase_groups(trace)
        if phase is not None:
            phase_group(trace, phase)  # a bad number fails here, not when shown

    def __rich_console__(self, console, options):
        from raysim.trace.refcounts import ref_count_table
        from raysim.trace.timeline_view import timeline_panel

        trace, labels, limits = self.trace, self.labels, self.limits
        if self.phase is not None:
            yield PhaseView(trace, self.phase, labels, limits)
            return
        if limits.panels is not None and len(self.groups) > limits.panels:
            yield from _summary(trace, self.groups, labels, limits)
        else:
            yield from self._panels(console, options)
        records, index = trace.records, index_of(trace)
        refused = [records[i] for i in index.of("api.rejected")
                   if records[i].get("phase") is None]
        if refused:
            yield _refused_table(refused, limits)
        puts = [records[i]["obj"] for i in index.of("object.serialized")
                if records[i]["proc"] == "driver" and records[i].get("obj")]
        for object_id in puts[:3]:
            yield ref_count_table(trace, object_id, labels=labels, limits=limits,
                                  title=f"reference count of {labels.obj(object_id)} "
                                        f"(put by the driver)")
        width = self.width or options.max_width
        yield timeline_panel(trace, max(40, width - 20), limits)

    def _panels(self, console, options):
        """Each phase's panel while the text is within ``limits.run_lines``; then the
        phases left, in one table, and the tables at the end of the run."""
        budget, used = self.limits.run_lines, 0
        if budget is not None:  # lines of 120 columns: a narrower terminal wraps more
            budget = budget * max(1.0, TEXT_WIDTH / max(options.max_width, 1))
        for number in range(1, len(self.groups) + 1):
            if self.on_panel is not None:
                self.on_panel(number - 1, len(self.groups))
            if budget is not None and used >= budget:
                yield _later_phases(self.trace, self.groups, number, self.limits)
                yield Panel(StoredWhere(self.trace, None, self.labels, limits=self.limits),
                            title="At the end")
                return
            view = PhaseView(self.trace, number, self.labels, self.limits)
            if budget is None:
                yield view
                continue
            # Rendered here, to count its lines; then printed as rendered.
            lines = console.render_lines(view, options)
            used += len(lines)
            for line in lines:
                yield from line
                yield Segment.line()


def _later_phases(trace, groups: list[PhaseGroup], first: int, limits: Limits) -> Group:
    """The phases after the ones shown in full, one row each: the first of them and the
    last few (the end of the run), and how many between."""
    rows = list(enumerate(groups[first - 1:], first))
    last: list = []
    limit = limits.summary_rows
    if limit is not None and len(rows) > limit:
        rows, last = rows[:limit - 3], rows[len(rows) - 3:]
    table = Table(show_edge=False, pad_edge=False)
    for column in ("phase", "driver call", "calls", "line"):
        table.add_column(column, justify="right" if column in ("phase", "calls") else "left")
    for number, group in rows:
        table.add_row(str(number), group.api, f"{len(group.numbers):,}",
                      f"{group.site or ''}  {group.code or ''}".strip())
    if last:
        table.add_row("", MORE.format(n=last[0][0] - rows[-1][0] - 1), "", "", style="dim")
    for number, group in last:
        table.add_row(str(number), group.api, f"{len(group.numbers):,}",
                      f"{group.site or ''}  {group.code or ''}".strip())
    title = Text(f"Phases {first} to {len(groups)}, not shown in full (raysim replay TRACE "
                 f"--phase N shows one, --all every one)", style="bold")
    return Group(title, table)


def _refused_table(events: list[dict], limits: Limits) -> Table:
    """Calls refused before they began: they open no phase, so no panel shows them (those
    refused halfway are steps of their phase's diagram)."""
    table = Table(title=f"calls refused before they began ({len(events):,}, api.rejected)",
                  title_justify="left")
    for column in ("line", "call", "error", "why"):
        table.add_column(column)
    shown, more = limits.cut("refused", events)
    for event in shown:
        table.add_row(f"{event.get('site') or ''}  {event.get('code') or ''}".strip(),
                      f"{event['api']}()", event["error"], refusal(event))
    if more:
        table.add_row("", f"... {more:,} more", "", "")
    return table


def _summary(trace, groups: list[PhaseGroup], labels: Labels, limits: Limits):
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
    records, index = trace.records, index_of(trace)
    slowest = sorted((records[i] for i in index.of("task.execute")),
                     key=lambda e: -e["dur"])[:5]
    if slowest:
        tasks = Table(title="slowest tasks", title_justify="left")
        for column in ("task", "worker", "ran for"):
            tasks.add_column(column)
        for event in slowest:
            tasks.add_row(labels.task(event["task"]), labels.proc(event["pid"]),
                          f"{event['dur'] / 1e6:.1f} ms")
        yield tasks
    largest = sorted((records[i] for i in index.of("object_store.sealed")),
                     key=lambda e: -e["size"])[:5]
    if largest:
        objects = Table(title="largest objects in the store", title_justify="left")
        for column in ("object", "size"):
            objects.add_column(column)
        for event in largest:
            objects.add_row(labels.obj(event["obj"]), f"{event['size']:,} B")
        yield objects
    yield Panel(StoredWhere(trace, None, labels, limits=limits), title="At the end")
