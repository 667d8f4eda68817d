"""Walking a trace one event at a time (``raysim replay --step``).

A debugger for the run rather than for one process: each step shows one event (who did
what, in the words of the sequence diagrams) and what it changed in the founding document's
tables, as rows that appeared (``+``) or went (``-``) in "What's stored where". Watching
``put#1 ref_count=1`` become ``ref_count=4`` one ``gcs.ref_added`` at a time is the point.

Runs in: the reader's process. Each step costs two ``Trace.state_at`` calls (milliseconds).
"""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Group
from rich.text import Text

from raysim.trace import sequence
from raysim.trace.labels import Labels
from raysim.trace.stored_where import StoredWhere

_TABLE_NAMES = {"actors": "GCS actor registry", "objects": "GCS object table",
                "store": "object store", "spilled": "spilled to disk",
                "inline": "driver's memory",
                "heaps": "actor state", "driver_refs": "driver's refs"}


def describe(event: dict, labels: Labels) -> str:
    """One event in words: a sequence-diagram step where it is one, else its fields."""
    if event["ev"] == "msg.send":
        return (f"-> {labels.endpoint(event['to_pid'], event['to'])}: "
                f"{sequence.message_text(event, labels)}")
    ev = event["ev"]
    if ev == "msg.recv":
        return f"<- {labels.endpoint(event['src_pid'], event['src'])}: {event['kind']}"
    if ev == "phase.begin":
        return (f"driver call {event['api']} at {event.get('site') or '?'}"
                + (f": {event['code']}" if event.get("code") else ""))
    if ev == "ref.acquired":
        return f"takes a reference to {labels.obj(event['obj'])} ({event['ref_type']})"
    if ev == "ref.released":
        return f"drops its last reference to {labels.obj(event['obj'])}"
    text = sequence.action_text(event, labels)
    if text is not None:
        return text
    skip = {"ts", "ev", "proc", "node", "pid", "phase"}
    fields = ", ".join(f"{k}={v}" for k, v in event.items() if k not in skip and v is not None)
    return f"{event['ev']}" + (f" ({fields})" if fields else "")


def row_lines(view: StoredWhere) -> set[str]:
    """Every row of every table, one line each (what a step adds or removes)."""
    lines = set()
    for table, rows in view.rows().items():
        for row in rows:
            lines.add(f"{_TABLE_NAMES[table]}: " + ", ".join(f"{k}={v}" for k, v in row.items()))
    return lines


def render_step(position: str, event: dict, t0: int, labels: Labels, before: set[str],
                after: set[str], quiet: str | None = None) -> Group:
    """One step: where it is, when, who did what, and the table rows it removed (-) and
    added (+); ``quiet``, if given, is said when it changed none."""
    head = Text()
    head.append(f"{position} ", style="dim")
    head.append(f"+{(event['ts'] - t0) / 1e6:.3f} ms ", style="dim")
    head.append(labels.proc(event["pid"]), style="bold")
    head.append(f": {describe(event, labels)}")
    changes = [Text(f"  - {line}", style="red") for line in sorted(before - after)]
    changes += [Text(f"  + {line}", style="green") for line in sorted(after - before)]
    if not changes and quiet:
        changes = [Text(f"  {quiet}", style="dim")]
    return Group(head, *changes)


class Stepper:
    """The events of a trace (or of one phase), each with what it changed."""

    def __init__(self, trace, phase: int | None = None) -> None:
        self.trace = trace
        self.labels = Labels.of(trace)
        self.title = "the whole run"
        if phase is None:
            self.indices = list(range(len(trace)))
        else:
            group = sequence.phase_group(trace, phase)
            self.indices = sequence.group_indices(trace, group)
            self.title = f"phase {phase} ({group.api})"

    def __len__(self) -> int:
        return len(self.indices)

    def intro(self) -> Text:
        return Text(f"{len(self):,} events in {self.title}. Each step shows one event and "
                    f"what it changed in the tables (+ added, - removed).")

    def __iter__(self) -> Iterator[Group]:
        records = self.trace.records
        t0 = records[0]["ts"]
        previous: tuple[int, set[str]] | None = None  # the last step's index and tables
        for n, index in enumerate(self.indices, 1):
            event = records[index]
            if previous is not None and previous[0] == index - 1:
                before = previous[1]  # consecutive events: no need to rebuild the tables
            else:
                before = row_lines(StoredWhere(self.trace, index - 1, self.labels)) \
                    if index > 0 else set()
            after = row_lines(StoredWhere(self.trace, index, self.labels))
            previous = (index, after)
            yield render_step(f"{n}/{len(self)}", event, t0, self.labels, before, after)
