"""A timeline figure: one lane per process, the run drawn to scale from left to right.

Seed, phase 4: "All 3 actors execute their predict methods simultaneously on different
workers" and "actors process methods serially". Drawn to scale, that is three worker lanes
whose method bars overlap in time, and in each of them the constructor's short bar before
the method's long one. This is the picture ``timeline_view`` draws in characters, with more
in it:

    bars    task and method executions (``task.execute``, whose ``ts`` is its start) in the
            upper half of a lane; object work in the lower half, each event's ``ts`` being
            its end and ``dur`` its length: argument resolution (``task.args_resolved``),
            serialization (``object.serialized``), store writes (``object_store.written``),
            reads (``object.get``); the zygote's module preload (``zygote.preloaded``)
    ticks   every message sent (``msg.send``); while few enough are in view, a line from
            each send to its receive, paired by message id as ``chrome.py`` pairs them
    bands   the phases (consecutive driver calls of one kind from one line, numbered as the
            phase panels number them), shaded alternately

Ray's counterpart is ``ray timeline``: a Chrome trace of task spans only. There is no lane
for the object store: it has no process of its own (in Ray, plasma runs inside the raylet;
in raysim it is a shared-memory file that the raylet creates and every process on the node
maps), so its writes and reads are drawn in the lanes of the processes doing them.

Runs in: the reader's process. Figures are ``matplotlib.figure.Figure`` objects on an Agg
canvas, never pyplot's: made in a loop or a test, they neither pop up nor pile up.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import NamedTuple

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from raysim.trace import timeline_view
from raysim.trace.figures import png_bytes
from raysim.trace.labels import Labels
from raysim.trace.overlap import execution_rows
from raysim.trace.sequence import phase_group, phase_groups

_MS = 1_000_000  # trace timestamps are nanoseconds; the x axis is in milliseconds

# Lines from send to receive are drawn only while fewer messages than this are in view:
# past it they hide the bars they cross, and each costs a segment to draw.
MAX_ARROWS = 500

# A bar is drawn at least this fraction of the view wide, so that a 20 µs store write in a
# one-second run still shows (Perfetto does the same when zoomed out).
_MIN_BAR = 1 / 1500


class _Kind(NamedTuple):
    label: str  # in the legend
    color: str
    y: float  # top of the bar, from the lane's centre (the y axis points down)
    height: float


_UPPER = (-0.40, 0.36)  # executions
_LOWER = (0.04, 0.36)  # argument resolution, behind the object work inside it
_INNER = (0.10, 0.24)  # serialize, write, get

# Every event that records a span, and how it is drawn; the one place to add a new one.
_SPANS: dict[str, _Kind] = {
    "task.execute": _Kind("task or method running", "tab:blue", *_UPPER),
    "zygote.preloaded": _Kind("zygote importing modules", "0.65", *_UPPER),
    "task.args_resolved": _Kind("resolving arguments", "#cfdc9c", *_LOWER),
    "object.serialized": _Kind("serialize", "tab:orange", *_INNER),
    "object_store.written": _Kind("write to store", "tab:purple", *_INNER),
    "object.get": _Kind("get (read an object)", "tab:green", *_INNER),
}
_FAILED = "task.failed"  # a task.execute with ok=False: drawn as a bar of its own colour
_KINDS = {**_SPANS, _FAILED: _Kind("task or method failed", "tab:red", *_UPPER)}
_BAND_COLORS = ("#eef2f8", "#fbf5ea")
_FADED = 0.25  # the opacity of what other driver calls caused, when one call is shown


class _Lane(NamedTuple):
    pid: int
    name: str
    label: str  # the name, and the actor the worker hosts


def timeline_figure(trace, phase: int | None = None) -> Figure:
    """The trace as a timeline figure; ``phase=N`` shows driver call N only, from its
    start until the last event it caused (see ``phase_window``)."""
    records = trace.records
    t0 = records[0]["ts"]
    lo, hi = phase_window(trace, phase) if phase is not None else (t0, records[-1]["ts"])
    lanes = _lanes(trace)
    lane_of = {lane.pid: i for i, lane in enumerate(lanes)}
    focus = set(phase_group(trace, phase).numbers) if phase is not None else None
    spans, sends, messages = _collect(records, lane_of, lo, hi, focus)

    figure = Figure(figsize=(12, 1.8 + 0.55 * len(lanes)), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    x0, x1 = (lo - t0) / _MS, (hi - t0) / _MS
    margin = max(x1 - x0, 1e-3) * 0.01
    ax.set_xlim(x0 - margin, x1 + margin)
    ax.set_ylim(len(lanes) - 0.5, -1.1)  # lane 0 on top, a strip above it for phase labels
    bands = _draw_phases(ax, trace, lo, hi, t0)
    drawn = _draw_spans(ax, spans, lanes, (x1 - x0) * _MIN_BAR)
    arrows = len(messages) < MAX_ARROWS
    _draw_messages(ax, sends, messages if arrows else [])
    ax.set_yticks(range(len(lanes)), [lane.label for lane in lanes])
    ax.tick_params(axis="y", length=0)
    for i in range(len(lanes) - 1):
        ax.axhline(i + 0.5, color="0.85", linewidth=0.6, zorder=0.5)
    ax.set_xlabel("time since the trace began (ms)")
    title = f"{os.path.basename(trace.path)}: one lane per process"
    if phase is not None:
        title += f", phase {phase} ({phase_group(trace, phase).api})"
    ax.set_title(title)
    _legend(figure, drawn, bool(sends), arrows and bool(messages), bands)
    return figure


def phase_window(trace, number: int) -> tuple[int, int]:
    """The times (ns) phase ``number`` spans (numbered as the phase panels number them:
    consecutive calls of one kind from one line are one phase): from its first
    ``phase.begin`` until the later of its last event before the next phase and the end of
    the last event that carries one of its calls' numbers (a worker may run the call's task
    long after the driver moved on: ``actors = [...remote()]`` returns at once, ``__init__``
    runs once the worker has started)."""
    group = phase_group(trace, number)
    calls = {p.number: p for p in trace.phases()}
    numbers = set(group.numbers)
    end = max(calls[n].ts_end for n in numbers)
    for event in trace.records:
        if event.get("phase") in numbers:
            stop = event["ts"] + event["dur"] if event["ev"] == "task.execute" else event["ts"]
            end = max(end, stop)
    return calls[group.numbers[0]].ts_begin, end


def _lanes(trace) -> list[_Lane]:
    """driver, gcs, raylet, zygote, any other process, then the workers, each group in the
    order of ``process_names``; an actor's worker is labelled with the actor it hosts."""
    order = {"driver": 0, "gcs": 1, "raylet": 2, "zygote": 3, "worker": 5}
    kinds = {p.pid: p.proc for p in trace.processes()}
    hosted = {pid: ", ".join(actors) for pid, actors in hosted_actors(trace).items()}
    names = list(trace.process_names().items())
    names.sort(key=lambda item: order.get(kinds.get(item[0], ""), 4))  # stable
    return [_Lane(pid, name, f"{name}\n{hosted[pid]}" if pid in hosted else name)
            for pid, name in names]


def hosted_actors(trace) -> dict[int, list[str]]:
    """worker pid -> the actors it hosted, named as every view names them
    ("BatchPredictor#1": numbered per class in the order they were created)."""
    labels = Labels.of(trace)
    hosted: dict[int, list[str]] = defaultdict(list)
    for event in trace.records:
        if event["ev"] == "gcs.actor_state" and event.get("worker_pid") is not None:
            actor = labels.actor(event["actor"])
            if actor not in hosted[event["worker_pid"]]:
                hosted[event["worker_pid"]].append(actor)
    return dict(hosted)


class _Message(NamedTuple):
    sent: float  # ms
    sender: int  # lane
    received: float
    receiver: int


def _collect(records: list[dict], lane_of: dict[int, int], lo: int, hi: int,
             focus: set[int] | None):
    """One pass over the trace. Returns the bars in view, per (lane, kind, faded), as
    (start, width) in ms; the sends in view as (x, lane, faded); the messages with an end
    in view, paired by id. With a ``focus`` phase, what another call caused is faded and
    only the focus call's messages are joined to their receives."""
    t0 = records[0]["ts"]
    spans: dict[tuple, list[tuple[float, float]]] = defaultdict(list)  # (lane, kind, faded, row)
    sends: list[tuple[float, int, bool]] = []
    sent: dict[str, tuple[int, int]] = {}  # message id -> (ts, lane) of its send
    messages: list[_Message] = []
    # Calls running at once in one process (a threaded or async actor) each get a row of
    # the lane's execution band.
    rows, rows_used = execution_rows(records)
    for i, event in enumerate(records):
        ev = event["ev"]
        faded = focus is not None and event.get("phase") not in focus
        if ev in _SPANS:
            row = (0, 1)
            if ev == "task.execute":
                start, end = event["ts"], event["ts"] + event["dur"]
                row = (rows[i], rows_used[event["pid"]])
                if not event["ok"]:
                    ev = _FAILED
            else:
                start, end = event["ts"] - event["dur"], event["ts"]
            if end >= lo and start <= hi:
                spans[(lane_of[event["pid"]], ev, faded, row)].append(
                    ((start - t0) / _MS, (end - start) / _MS))
        elif ev == "msg.send":
            ts, lane = event["ts"], lane_of[event["pid"]]
            if not faded:
                sent[event["msg"]] = (ts, lane)
            if lo <= ts <= hi:
                sends.append(((ts - t0) / _MS, lane, faded))
        elif ev == "msg.recv":
            # A message whose sender died before writing its send has no pair: no line.
            send = sent.pop(event["msg"], None)
            ts = event["ts"]
            if send is not None and (lo <= send[0] <= hi or lo <= ts <= hi):
                messages.append(_Message((send[0] - t0) / _MS, send[1], (ts - t0) / _MS,
                                         lane_of[event["pid"]]))
    return spans, sends, messages


def _draw_spans(ax, spans: dict, lanes: list[_Lane], min_width: float) -> set[str]:
    """One collection per (lane, kind), however many bars: a trace of 100,000 events
    draws a few dozen artists, not 100,000. Returns the kinds drawn."""
    for (lane, ev, faded, (row, rows)), bars in spans.items():
        kind = _KINDS[ev]
        bars = [(start, max(width, min_width)) for start, width in bars]
        height = kind.height / rows  # concurrent calls share the band, a row each
        collection = ax.broken_barh(bars, (lane + kind.y + row * height, height),
                                    facecolors=kind.color, edgecolors="none",
                                    alpha=_FADED if faded else None,
                                    zorder=3 if kind.y == _INNER[0] else 2)
        collection.set_gid(f"{ev} {lanes[lane].name}{' (other calls)' if faded else ''}")
    return {ev for _, ev, _, _ in spans}


def _draw_messages(ax, sends: list[tuple[float, int, bool]],
                   messages: list[_Message]) -> None:
    for faded in (False, True):
        xs = [x for x, _, f in sends if f == faded]
        if xs:
            ys = [lane for _, lane, f in sends if f == faded]
            ticks = ax.scatter(xs, ys, marker="|", s=40, color="black", linewidths=0.8,
                               alpha=_FADED if faded else None, zorder=4)
            ticks.set_gid("message sends (other calls)" if faded else "message sends")
    if messages:
        lines = LineCollection([((m.sent, m.sender), (m.received, m.receiver))
                                for m in messages],
                               colors="0.3", linewidths=0.5, alpha=0.4, zorder=5)
        lines.set_gid("messages")
        ax.add_collection(lines, autolim=False)
        ends = ax.scatter([m.received for m in messages], [m.receiver for m in messages],
                          marker="o", s=5, color="0.3", zorder=5)
        ends.set_gid("message receives")


def _draw_phases(ax, trace, lo: int, hi: int, t0: int) -> int:
    """The driver's calls as alternating bands behind the lanes, one collection for all of
    them (a run of 10,000 puts has 10,000), numbered where there is room. Returns how many
    bands are in view."""
    calls = {p.number: p for p in trace.phases()}
    groups = phase_groups(trace)
    bands, colors, labels = [], [], []
    for i, group in enumerate(groups):
        begin = calls[group.numbers[0]].ts_begin
        end = calls[groups[i + 1].numbers[0]].ts_begin if i + 1 < len(groups) \
            else calls[group.numbers[-1]].ts_end
        if end <= lo or begin > hi:
            continue
        x0, x1 = (max(begin, lo) - t0) / _MS, (min(end, hi) - t0) / _MS
        bands.append([(x0, 0), (x0, 1), (x1, 1), (x1, 0)])
        colors.append(_BAND_COLORS[i % 2])
        labels.append((x0, x1, i + 1, group.api))
    if not bands:
        return 0
    collection = PolyCollection(bands, facecolors=colors, edgecolors="none", zorder=0,
                                transform=ax.get_xaxis_transform())
    collection.set_gid("phase bands")
    ax.add_collection(collection, autolim=False)
    _label_phases(ax, labels)
    return len(bands)


def _label_phases(ax, labels: list) -> None:
    """Each band's number and API call, in the strip above the lanes: at the band's left
    edge, or further right inside the band if an earlier label is in the way; just the
    number where the name does not fit, nothing where even that would overlap."""
    left, right = ax.get_xlim()
    axes_inches = ax.figure.get_figwidth() * 0.82
    char = (right - left) / axes_inches * (7 * 0.62 / 72)  # one 7-pt character, in ms
    free = left
    for x0, x1, number, api in labels:
        for text in (f"{number} {api}", str(number)):
            width = char * (len(text) + 1)
            at = max(x0, free)
            if at + width <= x1 or (at == x0 and len(text) <= 2):
                ax.text(at + char * 0.3, -0.8, text, fontsize=7, va="center", color="0.25",
                        gid="phase label", clip_on=True)
                free = at + width
                break


def _legend(figure: Figure, drawn: set[str], sends: bool, arrows: bool, bands: int) -> None:
    handles = [Patch(color=kind.color, label=kind.label)
               for ev, kind in _KINDS.items() if ev in drawn]
    if sends:
        handles.append(Line2D([], [], color="black", marker="|", linestyle="none",
                              markersize=8, label="message sent"))
    if arrows:
        handles.append(Line2D([], [], color="0.3", marker="o", markersize=3, linewidth=0.6,
                              markevery=[1], label="message, send to receive"))
    if bands:
        handles.append(Patch(facecolor=_BAND_COLORS[0], edgecolor="0.7",
                             label="phase N (numbered as the phase panels are)"))
    if handles:
        figure.legend(handles=handles, loc="outside lower center", frameon=False,
                      fontsize=8, ncols=min(len(handles), 5))


class TimelineFigure:
    """A trace's timeline, shown as a picture in Jupyter (``_repr_png_``) and as the
    character-cell timeline in a rich console (``__rich__``)."""

    def __init__(self, trace, phase: int | None = None) -> None:
        if phase is not None:
            phase_window(trace, phase)  # a bad phase fails here, not when first shown
        self.trace = trace
        self.phase = phase
        self._figure: Figure | None = None

    def __repr__(self) -> str:
        where = "" if self.phase is None else f", phase {self.phase}"
        return f"<TimelineFigure of {self.trace.path!r}{where}>"

    def figure(self) -> Figure:
        if self._figure is None:
            self._figure = timeline_figure(self.trace, self.phase)
        return self._figure

    def savefig(self, path: str | os.PathLike, **kwargs) -> None:
        self.figure().savefig(path, **kwargs)

    def _repr_png_(self) -> bytes:
        return png_bytes(self.figure())

    def __rich__(self):
        return timeline_view.timeline_panel(self.trace)
