"""Sequence diagrams: who sent what to whom, and what each process did, step by step.

Seed: every phase of the founding document has a "Control Flow": numbered steps such as
"1. Driver serializes the model object", "2. Driver writes to local Object Store shared
memory", "4. Object Store registers the location with GCS". This module rebuilds those
steps from a trace for any program: each message sent (``msg.send``) is an arrow from the
sender's lifeline to the receiver's, and each event that changes something a learner should
see (an object serialized, written, sealed, registered; a reference counted; a task
scheduled or run; an actor's state) is a step on its process's own lifeline. Steps are
numbered from 1 within each phase, in the order they happened (one clock for all processes,
``ts``). Replies are drawn, but not a message's arrival (``msg.recv``): the arrow shows both.

Faults are steps too: a worker that died, a task retried, cancelled or failed, a GCS or raylet
gone, an API call refused (worded, and filed under a phase, by ``fault_steps.py``).

Phases here are ``PhaseGroup``s: consecutive driver calls of one kind from one line of code
(the three ``BatchPredictor.remote(...)`` of a list comprehension are one phase, as in the
founding document).

Two renderings: ``SequenceDiagram`` is a rich renderable (lifelines as columns, one row per
step, arrow heads ``▶``/``◀``, ``●`` for a step within one process) and ``sequence_figure``
draws the same with matplotlib. Runs in: the reader's process.
"""

from __future__ import annotations

import dataclasses

from rich.console import Group
from rich.text import Text

from raysim.trace.fault_steps import FAULT_TEXT, fault_phases
from raysim.trace.labels import Labels
from raysim.trace.render import RichView


@dataclasses.dataclass
class PhaseGroup:
    """Consecutive driver calls of one kind from one line of code."""

    api: str
    site: str | None
    code: str | None
    numbers: list[int]
    last_index: int  # the group's last event (any process), where its tables are read


@dataclasses.dataclass(frozen=True)
class Step:
    """One numbered step of a phase: a message (``dst`` set) or an action of ``src``."""

    number: int
    index: int  # the event's position in the trace
    ts: int
    src: str
    dst: str | None
    text: str


# Events that change the tables of "What's stored where" (messages and process bookkeeping
# do not): a group's snapshot is taken once the last of these it caused has happened.
_TABLE_EVENTS = ("gcs.", "object_store.", "actor.state", "ref.", "task.submitted")


def phase_groups(trace) -> list[PhaseGroup]:
    """The trace's phases, numbered from 1 as every view numbers them. Computed once per
    trace (one pass over its events) and kept on it: every view asks."""
    cached = getattr(trace, "_phase_groups", None)
    if cached is not None:
        return cached
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
    trace._phase_groups = groups
    return groups


def phase_group(trace, number: int) -> PhaseGroup:
    """Phase ``number`` (from 1), or a ValueError naming the numbers there are."""
    groups = phase_groups(trace)
    if not 1 <= number <= len(groups):
        raise ValueError(f"this trace has phases 1 to {len(groups)}; there is no phase "
                         f"{number}. Pick one of those numbers.")
    return groups[number - 1]


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"


_GET_PATHS = {"inline": "inline, from the owner's memory",
              "local_store": "deserialized from the store"}


def action_text(event, labels: Labels) -> str | None:
    """What one event did, in words; None for events that are not steps."""
    ev = event["ev"]
    obj = labels.obj(event.get("obj"))
    if ev == "object.serialized":
        what = obj or "the arguments"
        return f"serialize {what} ({_size(event['size'])}, {_ms(event['dur'])})"
    if ev == "object_store.create":
        return f"store allocates {obj} ({_size(event['size'])})"
    if ev == "object_store.written":
        return f"write {obj} into the shared-memory store ({_ms(event['dur'])})"
    if ev == "object_store.sealed":
        return f"store seals {obj}: readers may map it"
    if ev == "object_store.deleted":
        return f"store deletes {obj} ({event['reason']})"
    if ev == "object_store.spilled":
        return f"store spills {obj} to disk to make room ({_size(event['size'])}, " \
               f"{_ms(event['dur'])})"
    if ev == "object_store.restored":
        return f"store restores {obj} from disk ({_size(event['size'])}, {_ms(event['dur'])})"
    if ev == "object_store.evicted":
        return f"store evicts {obj} to make room (its copy on disk remains)"
    if ev == "object_store.full":
        return f"store has no room for {obj} ({_size(event['size'])}): {event['reason']}"
    if ev == "gcs.object_added":
        return f"GCS object table: {obj} at node {event['location'][:8]}"
    if ev == "gcs.object_freed":
        return f"GCS: {obj} has no references left; free it"
    if ev == "gcs.object_lost":
        why = "its owner died" if event["cause"] == "OWNER_DIED" else "freed already"
        return f"GCS: {obj} is lost ({why}); readers get an error"
    if ev == "gcs.ref_added":
        return (f"GCS: {obj} ref_count={event['count']} "
                f"(+{labels.holder(event['holder'])} {event['ref_type']})")
    if ev == "gcs.ref_removed":
        return f"GCS: {obj} ref_count={event['count']} (-{labels.holder(event['holder'])})"
    if ev == "gcs.actor_state":
        where = labels.proc(event.get("worker_pid")) if event.get("worker_pid") else ""
        reason = f" ({event['reason']})" if event.get("reason") else ""
        restart = f", restart {event['num_restarts']}" \
            if event["state"] == "RESTARTING" and event.get("num_restarts") else ""
        return (f"GCS actor table: {labels.actor(event['actor'])} {event['state']}"
                + (f" on {where}" if where else "") + restart + reason)
    if ev == "scheduler.decision":
        target = labels.workers.get(event.get("wid") or "", "")
        return (f"scheduler: {labels.task(event['task'])} {event['decision']}"
                + (f" -> {target}" if target else ""))
    if ev == "raylet.actor_lookup":
        return (f"look up {labels.actor(event['actor'])}: on "
                f"{labels.workers.get(event['wid'], event['wid'])}")
    if ev == "function.loaded":
        return f"load {event['name']} from the GCS ({_size(event['size'])})"
    if ev == "task.args_resolved":
        objs = ", ".join(labels.obj(o) for o in event["objs"])
        return f"resolve arguments {objs}" if objs else None
    if ev == "task.execute":
        ok = "" if event["ok"] else ", raised"
        return f"run {labels.task(event['task'])} ({_ms(event['dur'])}{ok})"
    if ev == "actor.state":
        attrs = ", ".join(f"{k}={v}" for k, v in event["attrs"].items()
                          if len(str(v)) <= 24)
        return f"heap of {labels.actor(event['actor'])}: {attrs}" if attrs else None
    if ev == "object.inlined":
        return (f"{obj} goes back inline ({_size(event['size'])} < "
                f"{_size(event['threshold'])})")
    if ev == "object.get":
        how = "zero-copy from the store" if event["zero_copy"] else \
            _GET_PATHS.get(event["path"], event["path"])
        return f"get {obj} ({_size(event['size'])}, {how})"
    if ev == "object.promoted":
        return f"copy {obj} into the store (passed on by reference)"
    if ev in FAULT_TEXT:
        return FAULT_TEXT[ev](event, labels)
    return None


def message_text(event, labels: Labels) -> str:
    about = [labels.task(event.get("task")) or labels.obj(event.get("obj"))
             or labels.actor(event.get("actor"))]
    about = [a for a in about if a]
    return f"{event['kind']}{' ' + about[0] if about else ''} ({_size(event['size'])})"


def group_indices(trace, group: PhaseGroup) -> list[int]:
    """The indices of the group's events, in time order: those of its phases, and the fault
    events filed under them (``fault_phases``)."""
    by_phase = _events_by_phase(trace)
    indices = [index for number in group.numbers for index in by_phase.get(number, ())]
    return sorted(indices) if len(group.numbers) > 1 else indices


def _events_by_phase(trace) -> dict[int, list[int]]:
    """Phase number -> the indices of its events, from one pass over the trace (kept on it):
    a run's panels then cost their own events each, not a pass over the trace each."""
    cached = getattr(trace, "_events_by_phase", None)
    if cached is not None:
        return cached
    attributed = fault_phases(trace)  # only events without a phase of their own
    by_phase: dict[int, list[int]] = {}
    for index, event in enumerate(trace.records):
        phase = attributed.get(index, event.get("phase"))
        if phase is not None:
            by_phase.setdefault(phase, []).append(index)
    trace._events_by_phase = by_phase
    return by_phase


def steps(trace, group: PhaseGroup, labels: Labels | None = None) -> list[Step]:
    """The group's steps in the order they happened, numbered from 1."""
    labels = labels or Labels.of(trace)
    records = trace.records
    out: list[Step] = []
    for index in group_indices(trace, group):
        event = records[index]
        src = labels.proc(event["pid"])
        if event["ev"] == "msg.send":
            dst = labels.endpoint(event["to_pid"], event["to"])
            text = message_text(event, labels)
        else:
            dst = None
            text = action_text(event, labels)
            if text is None:
                continue
        out.append(Step(len(out) + 1, index, event["ts"], src, dst, text))
    return out


class SequenceDiagram(RichView):
    """A phase's steps as a text sequence diagram (a rich renderable).

    One column per process that takes part, in the order driver, gcs, raylet, zygote,
    workers; ``max_steps`` caps the rows (the rest are counted)."""

    def __init__(self, trace, group: PhaseGroup, labels: Labels | None = None,
                 max_steps: int | None = None) -> None:
        self.labels = labels or Labels.of(trace)
        self.steps = steps(trace, group, self.labels)
        self.max_steps = max_steps
        order = list(dict.fromkeys(self.labels.processes.values()))
        used = {s.src for s in self.steps} | {s.dst for s in self.steps if s.dst}
        self.lanes = [name for name in order if name in used] + \
            sorted(used - set(order))

    def __rich__(self) -> Group:
        # In a Group, so that the console keeps each row on one line (a bare Text printed
        # at top level is re-joined and wrapped).
        return Group(self.text())

    def text(self) -> Text:
        if not self.steps:
            return Text("(no steps)")
        width = max(len(name) for name in self.lanes) + 2
        centre = {name: i * width + width // 2 for i, name in enumerate(self.lanes)}
        total = width * len(self.lanes)
        number_width = len(str(len(self.steps))) + 2
        text = Text(no_wrap=True, overflow="ellipsis")
        header = "".join(name.center(width) for name in self.lanes)
        text.append(" " * number_width + header + "\n", style="bold")
        shown = self.steps if self.max_steps is None else self.steps[:self.max_steps]
        for step in shown:
            row = [" "] * total
            for name in self.lanes:
                row[centre[name]] = "│"
            a = centre[step.src]
            if step.dst is None or step.dst == step.src:
                row[a] = "●"
            else:
                b = centre[step.dst]
                lo, hi = min(a, b), max(a, b)
                for c in range(lo, hi + 1):
                    row[c] = "─"
                row[a] = "•"
                row[b] = "▶" if b > a else "◀"
            text.append(f"{step.number}.".rjust(number_width - 1) + " ", style="dim")
            text.append("".join(row))
            text.append(" " + step.text + "\n")
        if len(shown) < len(self.steps):
            text.append(f"... and {len(self.steps) - len(shown)} more steps\n", style="dim")
        text.rstrip()
        return text

    def plain(self) -> str:
        return self.text().plain

    def figure(self):
        return sequence_figure(self.steps, self.lanes)

    def _repr_png_(self) -> bytes:
        from raysim.trace.figures import png_bytes

        return png_bytes(self.figure())


def sequence_figure(steps: list[Step], lanes: list[str], max_steps: int = 80):
    """The steps as a matplotlib figure: lifelines down, arrows across, labels beside."""
    from matplotlib.figure import Figure

    shown = steps[:max_steps]
    height = 1.2 + 0.28 * max(len(shown), 1)
    fig = Figure(figsize=(2.0 + 1.3 * len(lanes) + 4.5, height))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.94))
    x = {name: i for i, name in enumerate(lanes)}
    n = len(shown)
    for name, i in x.items():
        ax.plot([i, i], [0.5, n + 0.5], color="0.75", linewidth=1, zorder=1)
        ax.text(i, 0, name, ha="center", va="bottom", fontsize=9, fontweight="bold")
    right = len(lanes) - 0.5
    for row, step in enumerate(shown, 1):
        a = x[step.src]
        if step.dst is None or step.dst == step.src:
            ax.plot([a], [row], marker="o", color="tab:orange", markersize=5, zorder=3)
        else:
            ax.annotate("", xy=(x[step.dst], row), xytext=(a, row),
                        arrowprops={"arrowstyle": "-|>", "color": "tab:blue", "lw": 1.2},
                        zorder=2)
        ax.text(right, row, f"{step.number}. {step.text}", va="center", fontsize=8)
    ax.set_xlim(-0.6, len(lanes) + 4.5)
    ax.set_ylim(n + 0.8, -0.6)
    ax.axis("off")
    if len(steps) > n:
        ax.text(right, n + 0.6, f"... and {len(steps) - n} more steps", fontsize=8,
                color="0.4")
    return fig
