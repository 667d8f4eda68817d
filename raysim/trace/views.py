"""Every view of a trace, by name: what ``Trace``'s view methods and ``raysim trace`` use.

    trace.timeline()         lanes per process, spans, phases shaded  (timeline_figure.py,
                                                                       timeline_view.py)
    trace.sequence(phase)    numbered steps, sender -> receiver       (sequence.py)
    trace.refcounts(obj)     each object's count over time            (refcounts.py)
    trace.stored_where(p)    GCS tables, stores, heaps, driver refs   (stored_where.py)
    trace.dataflow()         processes and stores, objects and bytes  (dataflow.py)
    trace.phase(p)           one phase's panel: code, steps, tables   (phases_view.py)
    trace.to_chrome(path)    Perfetto / chrome://tracing JSON         (chrome.py)

Each view is an object that renders in the terminal (rich) and in Jupyter (HTML, or PNG for
the figures). Phases are numbered as the panels number them: consecutive driver calls of
one kind from one line of code are one phase. Runs in: the reader's process.
"""

from __future__ import annotations

from collections.abc import Iterator

from raysim.trace import sequence
from raysim.trace.labels import Labels

phase_group = sequence.phase_group


def sequence_diagram(trace, phase: int) -> sequence.SequenceDiagram:
    return sequence.SequenceDiagram(trace, phase_group(trace, phase))


def stored_where(trace, phase: int | None = None):
    """The tables at the end of phase ``phase`` (default: at the end of the trace)."""
    from raysim.trace.stored_where import StoredWhere

    if phase is None:
        return StoredWhere(trace)
    group = phase_group(trace, phase)
    return StoredWhere(trace, min(group.last_index, len(trace) - 1),
                       upto_phase=max(group.numbers))


def figures(trace, max_phases: int = 40) -> Iterator[tuple[str, object]]:
    """(name, matplotlib Figure) for every figure ``raysim trace --png`` writes."""
    from raysim.trace.dataflow import dataflow_figure
    from raysim.trace.timeline_figure import timeline_figure

    yield "timeline", timeline_figure(trace)
    yield "dataflow", dataflow_figure(trace)
    labels = Labels.of(trace)
    groups = sequence.phase_groups(trace)
    if len(groups) <= max_phases:
        for number, group in enumerate(groups, 1):
            diagram = sequence.SequenceDiagram(trace, group, labels)
            yield f"sequence-phase-{number}", diagram.figure()


class TraceViews:
    """The views as methods of ``Trace`` (mixed into it in ``loader.py``): each returns an
    object that shows itself in a notebook cell and in ``rich.print``."""

    def phase(self, number: int):
        """Phase ``number``'s panel: its code line, its steps, what's stored where after."""
        from raysim.trace.phases_view import PhaseView

        return PhaseView(self, number)

    def sequence(self, number: int) -> sequence.SequenceDiagram:
        """Phase ``number``'s steps as a sequence diagram (``.figure()`` for matplotlib)."""
        return sequence_diagram(self, number)

    def stored_where(self, phase: int | None = None):
        """What's stored where after phase ``phase`` (default: at the end)."""
        return stored_where(self, phase)

    def refcounts(self, obj):
        """One object's reference count over time (``.frame()`` for pandas). ``obj`` is an
        object id, or an ``ObjectRef``."""
        from raysim.trace.refcounts import RefCounts

        return RefCounts(self, obj.hex() if hasattr(obj, "hex") else obj)

    def timeline(self, phase: int | None = None):
        """Lanes per process with spans and phases (``.figure()``; text in the terminal)."""
        from raysim.trace.timeline_figure import TimelineFigure

        return TimelineFigure(self, phase)

    def dataflow(self):
        """Processes and stores, with the objects and bytes that moved (``.graph()`` is a
        networkx DiGraph)."""
        from raysim.trace.dataflow import DataFlow

        return DataFlow(self)

    def phase_table(self):
        """The phases as every view numbers them (from 1; like calls from one line of code
        are one phase), as a pandas DataFrame: phase, API call, calls, line of code.
        (``phases()`` lists the driver's calls one by one, numbered from 0, as the events'
        ``phase`` field numbers them.)"""
        import pandas as pd

        return pd.DataFrame(
            [(n, g.api, len(g.numbers), g.code) for n, g in
             enumerate(sequence.phase_groups(self), 1)],
            columns=["phase", "API call", "calls", "line of code"]).set_index("phase")

    def step(self, phase: int | None = None):
        """Step through the run event by event and phase by phase, with what each event
        changed in the tables: buttons in a live notebook, the first steps as a page
        elsewhere. ``phase`` starts there."""
        from raysim.trace.step_widget import StepView

        return StepView(self, phase)

    def labels(self) -> Labels:
        """The short names every view uses for this trace's ids."""
        return Labels.of(self)

    def to_chrome(self, path: str | None = None):
        """The trace as a Chrome/Perfetto JSON trace: written to ``path``, or returned."""
        from raysim.trace import chrome

        if path is None:
            return chrome.to_chrome(self)
        chrome.write_chrome(self, path)
        return path
