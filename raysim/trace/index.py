"""Where each kind of event is, and each phase's: one pass over a trace, kept on it.

Every view asks the same few questions of a trace: where the ``phase.begin`` events are,
which processes wrote, which events belong to driver call N, where the ``task.submitted``
are. Asked with a pass over the events each, a trace of 400,000 events costs about a tenth of
a second per question: the events are dicts spread over memory, and reading one field of
each is what costs. So one pass answers them all, the first time a view asks, and the answer
is kept on the trace (``index_of``). A database would call this a secondary index; Ray's
dashboard keeps the same kind of tables, per task and per actor, beside its event log.

Runs in: the reader's process. Standard library only.
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


class TraceIndex:
    """Event positions (indices into ``trace.records``, in time order) by kind and phase."""

    def __init__(self, records: list[Event]) -> None:
        by_kind: dict[str, list[int]] = {}
        by_phase: dict[int, list[int]] = {}
        first_of_pid: dict[int, int] = {}
        for i, event in enumerate(records):
            ev = event["ev"]
            where = by_kind.get(ev)
            if where is None:
                where = by_kind[ev] = []
            where.append(i)
            phase = event.get("phase")
            if phase is not None:
                where = by_phase.get(phase)
                if where is None:
                    where = by_phase[phase] = []
                where.append(i)
            pid = event["pid"]
            if pid not in first_of_pid:
                first_of_pid[pid] = i
        # event kind -> its events' indices
        self.by_kind = by_kind
        # phase number -> the indices of the events that carry it (not the fault events
        # filed under it afterwards: see fault_steps.fault_phases)
        self.by_phase = by_phase
        # OS pid -> the index of its first event (a pid is one process for a whole trace:
        # every process of a session runs on this machine at once)
        self.first_of_pid = first_of_pid

    def of(self, *kinds: str) -> list[int]:
        """The indices of every event of these kinds, in time order."""
        if len(kinds) == 1:
            return list(self.by_kind.get(kinds[0], ()))
        return sorted(i for kind in kinds for i in self.by_kind.get(kind, ()))

    def count(self, kind: str) -> int:
        return len(self.by_kind.get(kind, ()))

    def kinds_starting(self, prefixes: tuple[str, ...]) -> list[str]:
        """The event kinds in this trace whose names start with one of ``prefixes``."""
        return [kind for kind in self.by_kind if kind.startswith(prefixes)]


def index_of(trace) -> TraceIndex:
    """The trace's index, made on first use and kept on the trace."""
    cached = getattr(trace, "_index", None)
    if cached is None:
        cached = trace._index = TraceIndex(trace.records)
    return cached
