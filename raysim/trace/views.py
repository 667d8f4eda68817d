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


def phase_group(trace, number: int) -> sequence.PhaseGroup:
    groups = sequence.phase_groups(trace)
    if not 1 <= number <= len(groups):
        raise ValueError(f"this trace has phases 1 to {len(groups)}; there is no phase "
                         f"{number}. Pick one of those numbers.")
    return groups[number - 1]


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
    labels = Labels(trace)
    groups = sequence.phase_groups(trace)
    if len(groups) <= max_phases:
        for number, group in enumerate(groups, 1):
            diagram = sequence.SequenceDiagram(trace, group, labels)
            yield f"sequence-phase-{number}", diagram.figure()
