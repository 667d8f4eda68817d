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

from raysim.trace import step_kinds
from raysim.trace.fault_steps import fault_phases
from raysim.trace.index import index_of
from raysim.trace.labels import Labels
from raysim.trace.limits import UNBOUNDED, Limits
from raysim.trace.render import RichView
from raysim.trace.step_kinds import Fold, Step, StepKind
from raysim.trace.step_text import action_text, message_text, ms_text, size_text


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
    """The trace's phases, numbered from 1 as every view numbers them. Computed once per
    trace (from its index, ``index.py``) and kept on it: every view asks."""
    cached = getattr(trace, "_phase_groups", None)
    if cached is not None:
        return cached
    groups: list[PhaseGroup] = []
    last_event_of: dict[int, int] = {}
    index, records = index_of(trace), trace.records
    for kind in index.kinds_starting(_TABLE_EVENTS):
        for i in index.by_kind[kind]:
            phase = records[i].get("phase")
            if phase is not None and i > last_event_of.get(phase, -1):
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


def group_indices(trace, group: PhaseGroup) -> list[int]:
    """The indices of the group's events, in time order: those of its phases, and the fault
    events filed under them (``fault_phases``)."""
    by_phase = _events_by_phase(trace)
    indices = [index for number in group.numbers for index in by_phase.get(number, ())]
    return sorted(indices) if len(group.numbers) > 1 else indices


def _events_by_phase(trace) -> dict[int, list[int]]:
    """Phase number -> the indices of its events and of the fault events filed under it,
    made once (kept on the trace): a run's panels then cost their own events each, not a
    pass over the trace each."""
    cached = getattr(trace, "_events_by_phase", None)
    if cached is not None:
        return cached
    by_phase = dict(index_of(trace).by_phase)
    filed: dict[int, list[int]] = {}
    for index, phase in fault_phases(trace).items():  # events without a phase of their own
        filed.setdefault(phase, []).append(index)
    for phase, indices in filed.items():
        by_phase[phase] = sorted([*by_phase.get(phase, ()), *indices])
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
    workers. Every step is drawn, unless ``limits`` (or ``max_steps``, which caps the rows
    only) bound the diagram: see ``step_kinds.py`` for what is drawn, folded and counted."""

    def __init__(self, trace, group: PhaseGroup, labels: Labels | None = None,
                 max_steps: int | None = None, limits: Limits | None = None) -> None:
        self.labels = labels or Labels.of(trace)
        if limits is None:
            limits = dataclasses.replace(UNBOUNDED, steps=max_steps)
        self.plan = step_kinds.plan(trace, group.numbers, _events_by_phase(trace),
                                    self.labels, limits)
        self.limits = limits
        self.steps = [row for row in self.plan.rows if isinstance(row, Step)]
        # A lane for every process that takes part: in the steps drawn, and in those only
        # counted, unless they are other calls' (a phase of many calls shows one).
        order = list(dict.fromkeys(self.labels.processes.values()))
        used = {r.src for r in self.plan.rows} | {r.dst for r in self.plan.rows if r.dst}
        if not self.plan.other_calls:
            for kind in self.plan.rest:
                used.update(kind.srcs, kind.dsts)
        self.lanes = [name for name in order if name in used] + \
            sorted(used - set(order))

    def __rich__(self) -> Group:
        # In a Group, so that the console keeps each row on one line (a bare Text printed
        # at top level is re-joined and wrapped).
        return Group(self.text())

    def text(self) -> Text:
        plan = self.plan
        if not plan.rows and not plan.rest:
            return Text("(no steps)")
        text = Text(no_wrap=True, overflow="ellipsis")
        if plan.rows:
            self._draw_rows(text)
        if plan.other_calls:
            calls = "call" if plan.other_calls == 1 else "calls"
            text.append(f"the other {plan.other_calls:,} {calls}: {plan.rest_count:,} steps, "
                        f"by kind\n", style="dim")
            _kinds(text, plan.rest, self.limits)
        elif plan.rest_count and (self.limits.steps is None
                                  or plan.rest_count <= self.limits.steps):
            text.append(f"... and {plan.rest_count:,} more steps\n", style="dim")
        elif plan.rest_count:
            text.append(f"... and {plan.rest_count:,} more steps, by kind\n", style="dim")
            _kinds(text, plan.rest, self.limits)
        text.rstrip()
        return text

    def _draw_rows(self, text: Text) -> None:
        width = max(len(name) for name in self.lanes) + 2
        centre = {name: i * width + width // 2 for i, name in enumerate(self.lanes)}
        total = width * len(self.lanes)
        number_width = len(str(self.plan.total)) + 2
        header = "".join(name.center(width) for name in self.lanes)
        text.append(" " * number_width + header + "\n", style="bold")
        for step in self.plan.rows:
            row = [" "] * total
            for name in self.lanes:
                row[centre[name]] = "│"
            a = centre[step.src]
            if isinstance(step, Fold):
                row[a] = "⋮"
                text.append(" " * number_width)
                text.append("".join(row))
                text.append(f" … {step.kind.count:,} more like this (to step "
                            f"{step.last:,}{_totals(step.kind)})\n", style="dim")
                continue
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

    def plain(self) -> str:
        return self.text().plain

    def figure(self):
        return sequence_figure(self.steps, self.lanes, total=self.plan.total)

    def _repr_png_(self) -> bytes:
        from raysim.trace.figures import png_bytes

        return png_bytes(self.figure())


def sequence_figure(steps: list[Step], lanes: list[str], max_steps: int = 80,
                    total: int | None = None):
    """The steps as a matplotlib figure: lifelines down, arrows across, labels beside.
    ``total``: how many steps the phase has, when ``steps`` are only some of them."""
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
    more = (len(steps) if total is None else total) - n
    if more > 0:
        ax.text(right, n + 0.6, f"... and {more:,} more steps", fontsize=8, color="0.4")
    return fig


def _totals(kind: StepKind) -> str:
    parts = [size_text(kind.nbytes)] if kind.nbytes else []
    parts += [ms_text(kind.dur)] if kind.dur else []
    return "; " + ", ".join(parts) if parts else ""


def _kinds(text: Text, kinds: list[StepKind], limits: Limits) -> None:
    """Steps counted by kind, one line each: how many, who, what, bytes and time."""
    shown = kinds if limits.step_kinds is None else kinds[:limits.step_kinds]
    who = max((len(kind.who()) for kind in shown), default=0)
    what = max((len(kind.what) for kind in shown), default=0)
    for kind in shown:
        text.append(f"{kind.count:>9,} × {kind.who():<{who}}  {kind.what:<{what}}")
        text.append(f"  {size_text(kind.nbytes) if kind.nbytes else '':>8}"
                    f"  {ms_text(kind.dur) if kind.dur else ''}".rstrip() + "\n")
    if len(shown) < len(kinds):
        more = kinds[len(shown):]
        text.append(f"… and {len(more):,} more kinds of step "
                    f"({sum(k.count for k in more):,} steps)\n", style="dim")
