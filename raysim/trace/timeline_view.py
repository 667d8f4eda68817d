"""A character-cell timeline: one lane per process, the run from left to right.

Seed, phase 4: "All 3 actors execute their predict methods simultaneously on different
workers" and "actors process methods serially". In this view that reads directly: each
worker's lane shows its task or method executions as solid bars, in parallel across lanes
and one after another within a lane. Lighter bars are object work (serializing, writing to
the store, reading from it); dots are messages sent; the top row numbers the phases (as the
phase panels do) where they began.

Runs in: the reader's process (rich). A matplotlib version belongs beside it.
"""

from __future__ import annotations

from rich.panel import Panel
from rich.text import Text

from raysim.trace.index import index_of
from raysim.trace.limits import BOUNDED, Limits
from raysim.trace.overlap import execution_rows
from raysim.trace.sequence import phase_groups

_TASK, _OBJECT, _MESSAGE = "█", "▒", "·"
_OBJECT_EVENTS = ("object.serialized", "object_store.written", "object.get",
                  "task.args_resolved")


def timeline_text(trace, width: int = 100, limits: Limits = BOUNDED) -> Text:
    records = trace.records
    if not records:
        return Text("(empty trace)")
    t0, t1 = records[0]["ts"], records[-1]["ts"]
    span = max(t1 - t0, 1)

    def col(ts: int) -> int:
        return min(width - 1, max(0, (ts - t0) * width // span))

    lanes, hidden = _lanes(trace, limits)
    rows = {pid: [" "] * width for pid, _ in lanes}
    index = index_of(trace)
    for i in index.of("task.execute"):
        event = records[i]
        row = rows.get(event["pid"])
        if row is not None:
            for c in range(col(event["ts"]), col(event["ts"] + event["dur"]) + 1):
                row[c] = _TASK
    for i in index.of(*_OBJECT_EVENTS):
        event = records[i]
        row = rows.get(event["pid"])
        if row is not None:
            for c in range(col(event["ts"] - event.get("dur", 0)), col(event["ts"]) + 1):
                if row[c] != _TASK:
                    row[c] = _OBJECT
    for i in index.of("msg.send"):
        event = records[i]
        row = rows.get(event["pid"])
        if row is not None:
            c = col(event["ts"])
            if row[c] == " ":
                row[c] = _MESSAGE
    # A threaded or async actor runs calls at once: its lane says how many at most.
    _, at_once = execution_rows(records)
    lanes = [(pid, f"{name} ×{at_once[pid]}" if at_once.get(pid, 1) > 1 else name)
             for pid, name in lanes]
    label = max(len(name) for _, name in lanes) + 1
    text = Text()
    text.append(" " * label + "".join(_phase_marks(trace, width, col)) + "\n", style="dim")
    for pid, name in lanes:
        text.append(name.ljust(label), style="bold")
        text.append("".join(rows[pid]) + "\n")
    if hidden:
        text.append(" " * label + f"… and {hidden:,} more workers, less busy than these\n",
                    style="dim")
    ms = span / 1e6
    text.append(f"{' ' * label}0 ms{' ' * (width - 4 - len(f'{ms:.0f} ms'))}{ms:.0f} ms\n",
                style="dim")
    text.append(f"{_TASK} task or method running   {_OBJECT} serialize / store write / get   "
                f"{_MESSAGE} message sent   (top row: where phase N began)", style="dim")
    if any(n > 1 for n in at_once.values()):
        text.append("\n×N: up to N calls ran at once in that process (a threaded or async "
                    "actor)", style="dim")
    return text


def _lanes(trace, limits: Limits) -> tuple[list[tuple[int, str]], int]:
    """(pid, name) of each lane, and how many workers' lanes are left out: past
    ``limits.lanes`` lanes, the workers that ran tasks for the shortest time."""
    lanes = list(trace.process_names().items())
    if limits.lanes is None or len(lanes) <= limits.lanes:
        return lanes, 0
    busy: dict[int, int] = {}
    records = trace.records
    for i in index_of(trace).of("task.execute"):
        busy[records[i]["pid"]] = busy.get(records[i]["pid"], 0) + records[i]["dur"]
    workers = [pid for pid, name in lanes if name.startswith("worker#")]
    room = max(limits.lanes - (len(lanes) - len(workers)), 1)
    keep = set(sorted(workers, key=lambda pid: -busy.get(pid, 0))[:room])
    shown = [(pid, name) for pid, name in lanes if not name.startswith("worker#") or pid in keep]
    return shown, len(lanes) - len(shown)


def _phase_marks(trace, width: int, col) -> list[str]:
    """The top row: each phase's number where it began."""
    marks = [" "] * width
    calls = {p.number: p for p in trace.phases()}
    for number, group in enumerate(phase_groups(trace), 1):
        tag = str(number)
        c = col(calls[group.numbers[0]].ts_begin)
        # A blank column either side, so that neighbouring numbers do not run together.
        if all(ch == " " for ch in marks[max(0, c - 1):c + len(tag) + 1]) \
                and c + len(tag) <= width:
            marks[c:c + len(tag)] = tag
    return marks


def timeline_panel(trace, width: int = 100, limits: Limits = BOUNDED) -> Panel:
    return Panel(timeline_text(trace, width, limits), title="Timeline (one lane per process)")
