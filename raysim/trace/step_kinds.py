"""How a phase of 20,000 calls fits on a screen: steps drawn, folded, and counted by kind.

Seed: the founding document tells "the control flow for EACH actor" once, although there are
three actors: the steps of one call are the lesson, and the other calls repeat them. A traced
program that submits 20,000 tasks from one line has a phase of 20,000 calls and some 140,000
steps; drawn one per line they are unreadable. So a bounded sequence diagram (``plan``):

* shows the first call's steps in full when the phase has many calls (more than
  ``Limits.calls_in_full``), and counts the other calls' steps by kind;
* folds a run of consecutive steps of one kind (the driver's ``get`` of 20,000 results)
  into one row after its first ``Limits.same_steps``: "… 19,997 more like this";
* draws at most ``Limits.steps`` rows; the steps after them are counted by kind too.

A kind of step is what it did without its particulars (``step_text.step_kind``: "run
noop", "submit_task") and between which processes; task workers are one process kind here
("2 workers"), since which worker ran which task is the scheduler's choice, not the lesson.
Each kind is listed with how many steps, bytes and how much time it stands for, in the order
the phase first shows it, which reads like one call's steps again.

Runs in: the reader's process.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from raysim.trace.labels import Labels
from raysim.trace.limits import Limits
from raysim.trace.step_text import action_text, is_step, message_text, step_kind


@dataclasses.dataclass(frozen=True)
class Step:
    """One numbered step of a phase: a message (``dst`` set) or an action of ``src``."""

    number: int
    index: int  # the event's position in the trace
    ts: int
    src: str
    dst: str | None
    text: str


@dataclasses.dataclass
class StepKind:
    """Steps of one kind between the same kinds of process, counted."""

    what: str
    srcs: dict[str, None] = dataclasses.field(default_factory=dict)  # process names, in order
    dsts: dict[str, None] = dataclasses.field(default_factory=dict)
    count: int = 0
    nbytes: int = 0
    dur: int = 0  # nanoseconds

    def add_processes(self, src: str, dst: str | None) -> None:
        self.srcs[src] = None
        if dst is not None:
            self.dsts[dst] = None

    def add(self, event: dict) -> None:
        self.count += 1
        self.nbytes += event.get("size") or 0
        self.dur += event.get("dur") or 0

    def who(self) -> str:
        """"driver → raylet", "2 workers → raylet", "worker#1"."""
        def name(processes: dict[str, None]) -> str:
            return next(iter(processes)) if len(processes) == 1 else \
                f"{len(processes)} workers"
        return name(self.srcs) + (f" → {name(self.dsts)}" if self.dsts else "")


@dataclasses.dataclass
class Fold:
    """A run of consecutive steps of one kind after its first few, drawn as one row."""

    first: int  # the number of its first step
    index: int  # the trace index of its first step's event
    src: str
    dst: str | None
    kind: StepKind

    @property
    def last(self) -> int:
        return self.first + self.kind.count - 1


@dataclasses.dataclass
class Plan:
    """What a sequence diagram draws (``rows``), and what it only counts (``rest``)."""

    rows: list[Step | Fold]
    total: int  # steps in the phase (drawn, folded and counted)
    rest: list[StepKind]  # the steps not drawn, by kind, in order of first appearance
    rest_count: int
    other_calls: int  # calls whose steps are all in ``rest`` (0: none)


def _kind_key(src: str, dst: str | None, what: str) -> tuple:
    # Task workers are counted as one kind of process (see the module docstring).
    return (_worker_kind(src), _worker_kind(dst), what)


def _worker_kind(name: str | None) -> str | None:
    return "worker" if name is not None and name.startswith("worker#") else name


class _Planner:
    """Walks the events of a phase once, filling a ``Plan`` as the limits allow."""

    def __init__(self, records: list[dict], labels: Labels, limits: Limits) -> None:
        self.records, self.labels, self.limits = records, labels, limits
        self.rows: list[Step | Fold] = []
        self.kinds: dict[tuple, StepKind] = {}
        # (pid, to_pid, kind of step) -> its StepKind: the names of a step's processes are
        # looked up once per such triple, not once per step (140,000 steps, a few triples).
        self.kind_of: dict[tuple, StepKind] = {}
        self.number = 0  # steps seen
        self.counted = 0  # steps in self.kinds
        self.run: tuple[Any, int] = (None, 0)  # the current run's (kind, length)

    def full(self) -> bool:
        return self.limits.steps is not None and len(self.rows) >= self.limits.steps

    def walk(self, indices, draw: bool = True) -> None:
        labels, records = self.labels, self.records
        for index in indices:
            event = records[index]
            if not is_step(event, labels):
                continue
            self.number += 1
            if not draw or self.full():
                self._count(event)
                continue
            src = labels.proc(event["pid"])
            dst = labels.endpoint(event["to_pid"], event["to"]) \
                if event["ev"] == "msg.send" else None
            self._draw(index, event, src, dst)

    def _count(self, event: dict) -> None:
        what = step_kind(event)
        raw = (event["pid"], event.get("to_pid"), what)
        kind = self.kind_of.get(raw)
        if kind is None:
            src = self.labels.proc(event["pid"])
            dst = self.labels.endpoint(event["to_pid"], event["to"]) \
                if event["ev"] == "msg.send" else None
            key = _kind_key(src, dst, what)
            kind = self.kinds.get(key)
            if kind is None:
                kind = self.kinds[key] = StepKind(what)
            kind.add_processes(src, dst)
            self.kind_of[raw] = kind
        kind.add(event)
        self.counted += 1

    def _draw(self, index: int, event: dict, src: str, dst: str | None) -> None:
        same = self.limits.same_steps
        if same is not None:
            key = (src, dst, step_kind(event))
            run = self.run[1] + 1 if key == self.run[0] else 1
            self.run = (key, run)
            if run > same:
                last = self.rows[-1] if self.rows else None
                if run == same + 1 or not isinstance(last, Fold):
                    last = Fold(self.number, index, src, dst, StepKind(key[2]))
                    last.kind.add_processes(src, dst)
                    self.rows.append(last)
                last.kind.add(event)
                return
        text = message_text(event, self.labels) if dst is not None \
            else action_text(event, self.labels)
        self.rows.append(Step(self.number, index, event["ts"], src, dst, text))

    def finish(self, other_calls: int) -> Plan:
        # A fold of one step takes a row as the step would: draw the step instead.
        rows = [self._unfold(row) if isinstance(row, Fold) and row.kind.count == 1 else row
                for row in self.rows]
        return Plan(rows, self.number, list(self.kinds.values()), self.counted, other_calls)

    def _unfold(self, fold: Fold) -> Step:
        event = self.records[fold.index]
        text = message_text(event, self.labels) if fold.dst is not None \
            else action_text(event, self.labels)
        return Step(fold.first, fold.index, event["ts"], fold.src, fold.dst, text)


def plan(trace, numbers: list[int], events_of: dict[int, list[int]], labels: Labels,
         limits: Limits) -> Plan:
    """The bounded diagram of the calls ``numbers`` (a phase group), whose events are
    ``events_of[number]`` (indices in time order)."""
    planner = _Planner(trace.records, labels, limits)
    many = limits.calls_in_full is not None and len(numbers) > limits.calls_in_full
    if many:
        planner.walk(events_of.get(numbers[0], ()))
        for number in numbers[1:]:
            planner.walk(events_of.get(number, ()), draw=False)
        return planner.finish(other_calls=len(numbers) - 1)
    if len(numbers) == 1:
        planner.walk(events_of.get(numbers[0], ()))
    else:
        planner.walk(sorted(i for number in numbers for i in events_of.get(number, ())))
    return planner.finish(other_calls=0)
