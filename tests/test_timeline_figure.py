"""The matplotlib timeline of the founding program: a lane per process, bars where work was
done, a band per driver call, and a line per message from its send to its receive."""

import io
import re

import pytest
from matplotlib import _pylab_helpers
from rich.console import Console
from seed_model import run_seed_program

from raysim.trace import load
from raysim.trace.loader import Trace
from raysim.trace.sequence import phase_groups
from raysim.trace.timeline_figure import MAX_ARROWS, TimelineFigure, phase_window, timeline_figure


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    """The founding program, run once for the module."""
    tmp = tmp_path_factory.mktemp("timeline")
    path = str(tmp / "trace.jsonl")
    run_seed_program(path, tmp, rows=1000)
    return load(path)


@pytest.fixture(scope="module")
def ax(trace):
    (axes,) = timeline_figure(trace).axes
    return axes


def _collection(ax, gid: str):
    found = [c for c in ax.collections if c.get_gid() == gid]
    assert len(found) <= 1, gid
    return found[0] if found else None


def _bars(ax, gid: str) -> list[tuple[float, float]]:
    """(left, right) of each bar of a broken_barh collection, in ms."""
    collection = _collection(ax, gid)
    if collection is None:
        return []
    return [(p.vertices[:, 0].min(), p.vertices[:, 0].max()) for p in collection.get_paths()]


def _ms(trace, ts: int) -> float:
    return (ts - trace.records[0]["ts"]) / 1e6


def test_one_lane_per_process_driver_first_workers_last(trace, ax):
    names = trace.process_names()
    labels = [t.get_text() for t in ax.get_yticklabels()]
    lanes = [label.split("\n")[0] for label in labels]
    assert sorted(lanes) == sorted(names.values())
    assert lanes[:4] == ["driver", "gcs", "raylet", "zygote"]
    workers = [name for name in names.values() if name.startswith("worker#")]
    assert lanes[4:] == workers, "in process_names order"
    hosts = [label.split("\n")[1] for label in labels if "\n" in label]
    assert sorted(hosts) == ["BatchPredictor#1", "BatchPredictor#2", "BatchPredictor#3"]


def test_each_actor_lane_shows_its_constructor_then_its_method(trace, ax):
    names = trace.process_names()
    for pid, name in names.items():
        runs = [e for e in trace.records if e["ev"] == "task.execute" and e["pid"] == pid]
        bars = _bars(ax, f"task.execute {name}")
        assert len(bars) == len(runs), name
        if any(e.get("actor") for e in runs):
            assert [e["name"] for e in runs] == ["BatchPredictor", "BatchPredictor.predict"]
            # task.execute's ts is its start: a bar spans ts .. ts + dur (or more: a bar is
            # never drawn narrower than a pixel or so, and __init__ takes microseconds)
            for (left, right), run in zip(bars, runs):
                assert left == pytest.approx(_ms(trace, run["ts"]))
                assert right >= _ms(trace, run["ts"] + run["dur"]) - 1e-9
            assert bars[0][0] < bars[1][0], "the constructor first"


def test_object_work_is_drawn_where_it_ended(trace, ax):
    put = next(e for e in trace.records
               if e["ev"] == "object.serialized" and e["proc"] == "driver")
    (bar,) = _bars(ax, "object.serialized driver")
    # every other span's ts is its end: the bar starts at ts - dur
    assert bar[0] == pytest.approx(_ms(trace, put["ts"] - put["dur"]))
    assert bar[1] >= _ms(trace, put["ts"]) - 1e-9
    assert len(_bars(ax, "object_store.written driver")) == 1
    for name in trace.process_names().values():
        reads = _bars(ax, f"object.get {name}")
        resolved = _bars(ax, f"task.args_resolved {name}")
        if resolved:
            assert len(reads) == len(resolved) == 1, "each actor read the model, once"


def _groups(trace):
    """(panel number, api, first ts, next phase's first ts) per phase."""
    calls = {p.number: p for p in trace.phases()}
    groups = phase_groups(trace)
    out = []
    for i, group in enumerate(groups):
        begin = calls[group.numbers[0]].ts_begin
        end = calls[groups[i + 1].numbers[0]].ts_begin if i + 1 < len(groups) \
            else calls[group.numbers[-1]].ts_end
        out.append((i + 1, group.api, begin, end))
    return out


def test_one_band_per_phase_numbered_as_the_panels(trace, ax):
    groups = _groups(trace)
    assert [api for _, api, _, _ in groups] == ["init", "put", "actor_creation",
                                                "method_call", "get", "shutdown"]
    bands = _collection(ax, "phase bands")
    assert len(bands.get_paths()) == len(groups)
    for (_, _, begin, end), path in zip(groups, bands.get_paths()):
        left, right = path.vertices[:, 0].min(), path.vertices[:, 0].max()
        assert (left, right) == pytest.approx((_ms(trace, begin), _ms(trace, end)))
    colors = bands.get_facecolors()
    assert all((colors[i] != colors[i + 1]).any() for i in range(len(colors) - 1)), \
        "neighbours alternate"
    labels = [t.get_text() for t in ax.texts if t.get_gid() == "phase label"]
    widest = max(groups[:-1], key=lambda g: g[3] - g[2])
    assert f"{widest[0]} {widest[1]}" in labels, "named where there is room"
    apis = {number: api for number, api, _, _ in groups}
    for label in labels:
        number, _, api = label.partition(" ")
        assert int(number) in apis and api in ("", apis[int(number)])


def test_every_message_is_a_tick_and_a_line_to_its_receive(trace, ax):
    sends = {e["msg"]: e for e in trace.records if e["ev"] == "msg.send"}
    paired = [(sends[e["msg"]], e) for e in trace.records
              if e["ev"] == "msg.recv" and e["msg"] in sends]
    assert len(paired) < MAX_ARROWS
    assert len(_collection(ax, "message sends").get_offsets()) == len(sends)
    segments = _collection(ax, "messages").get_segments()
    assert len(segments) == len(paired)
    lane = {label.get_text().split("\n")[0]: i for i, label in enumerate(ax.get_yticklabels())}
    names = trace.process_names()
    send, recv = next((s, r) for s, r in paired if s["kind"] == "submit_task")
    line = next(seg for seg in segments if seg[0][0] == pytest.approx(_ms(trace, send["ts"])))
    assert line.ravel().tolist() == pytest.approx([
        _ms(trace, send["ts"]), lane["driver"], _ms(trace, recv["ts"]), lane[names[recv["pid"]]]])


def test_a_phase_is_shown_until_its_last_effect(trace):
    calls = [p for p in trace.phases() if p.api == "actor_creation"]
    start, end = phase_window(trace, 3)  # phase 3 of the panels: the three creations
    assert start == calls[0].ts_begin
    inits = [e for e in trace.records if e["ev"] == "task.execute"
             and e["phase"] in {c.number for c in calls}]
    assert len(inits) == 3
    assert end >= max(e["ts"] + e["dur"] for e in inits) > calls[-1].ts_end, \
        "__init__ ran after the driver had moved on"
    init = inits[0]
    (ax,) = timeline_figure(trace, phase=3).axes
    left, right = ax.get_xlim()
    assert left <= _ms(trace, start) < _ms(trace, end) <= right
    assert right - left <= 1.05 * (_ms(trace, end) - _ms(trace, start))
    assert "phase 3 (actor_creation)" in ax.get_title()
    worker = trace.process_names()[init["pid"]]
    gids = {c.get_gid() for c in ax.collections}
    assert f"task.execute {worker}" in gids, "the call's own work, drawn in full"
    assert any(gid.endswith("(other calls)") for gid in gids), \
        "what other calls caused in the same time is drawn faded"
    with pytest.raises(ValueError, match="there is no phase 999"):
        timeline_figure(trace, phase=999)


def test_many_messages_draw_ticks_but_no_lines(trace):
    copies = MAX_ARROWS // sum(e["ev"] == "msg.recv" for e in trace.records) + 1
    span = trace.records[-1]["ts"] - trace.records[0]["ts"] + 1
    records = [trace.records[0]]
    for n in range(copies):  # the run again and again, one after the other
        records += [{**e, "ts": e["ts"] + n * span, "msg": f"{n}-{e['msg']}"} if "msg" in e
                    else {**e, "ts": e["ts"] + n * span} for e in trace.records[1:]]
    many = Trace(trace.path, records)
    (ax,) = timeline_figure(many).axes
    sends = sum(e["ev"] == "msg.send" for e in records)
    assert len(_collection(ax, "message sends").get_offsets()) == sends
    assert _collection(ax, "messages") is None


def test_png_for_jupyter_text_for_rich_and_no_pyplot(trace, tmp_path):
    view = TimelineFigure(trace)
    assert view.figure() is view.figure()
    assert view._repr_png_().startswith(b"\x89PNG\r\n\x1a\n")
    view.savefig(tmp_path / "timeline.png")
    assert (tmp_path / "timeline.png").read_bytes().startswith(b"\x89PNG")
    out = io.StringIO()
    Console(file=out, width=140, color_system=None).print(view)
    text = out.getvalue()
    assert "Timeline (one lane per process)" in text
    assert re.search(r"^│ driver ", text, re.M)
    assert _pylab_helpers.Gcf.get_num_fig_managers() == 0, "no pyplot figure was made"
    with pytest.raises(ValueError):
        TimelineFigure(trace, phase=-5)
