"""The phase panels of `raysim trace`: the founding document's walk-through, from a trace.

Rendered into a fixed-width console and compared as text, with what differs between runs
(node ids, times, message sizes, addresses) normalised (``traceutil.normalise``).
"""

import re

import pytest
from seed_model import run_seed_program
from traceutil import normalise

import raysim
from raysim.trace import load
from raysim.trace.phases_view import PhaseView, RunView
from raysim.trace.render import to_text
from raysim.trace.views import sequence_diagram


@pytest.fixture(scope="module")
def seed_trace(tmp_path_factory):
    """The founding program once: file 1 big enough that its result is stored (200,000
    rows, about 200 KB), files 2 and 3 small enough that theirs come back inline."""
    data = tmp_path_factory.mktemp("seed")
    path = str(data / "trace.jsonl")
    run_seed_program(path, data, rows=(200_000, 1000, 1000))
    return load(path)


def _phase(trace, number: int) -> str:
    return normalise(to_text(PhaseView(trace, number), width=120))


def _size(trace, ev: str, proc: str) -> int:
    return next(e["size"] for e in trace.records if e["ev"] == ev and e["proc"] == proc)


def test_the_run_is_told_in_the_founding_documents_phases(seed_trace):
    text = normalise(to_text(RunView(seed_trace), width=120))
    titles = re.findall(r"Phase (\d+: [a-z_]+(?: x\d)?)", text)
    assert titles == ["1: init", "2: put", "3: actor_creation x3", "4: method_call x3",
                      "5: get", "6: shutdown"]
    assert "reference count of put#1 (put by the driver)" in text
    assert "Timeline (one lane per process)" in text


def test_put_phase_reads_like_the_founding_document(seed_trace):
    size = _size(seed_trace, "object.serialized", "driver")
    width = len(f"{size:,} B")
    expected = f"""\
╭──────────────────────────────────────────────────── Phase 2: put ────────────────────────────────────────────────────╮
│ seed_model.py:41  model_ref = ray.put(load_trained_model())
│ Control flow
│      driver   gcs    raylet
│  1.     ●       │       │    serialize put#1 ({size} B, T ms)
│  2.     •───────────────▶    create_object put#1 (n B)
│  3.     │       │       ●    store allocates put#1 (n B)
│  4.     ◀───────────────•    reply (n B)
│  5.     ●       │       │    write put#1 into the shared-memory store (T ms)
│  6.     •───────────────▶    seal_object put#1 (n B)
│  7.     │       │       ●    store seals put#1: readers may map it
│  8.     │       ◀───────•    add_object put#1 (n B)
│  9.     │       ●       │    GCS object table: put#1 at node NNNNNNNN
│ 10.     │       ●       │    GCS: put#1 ref_count=1 (+driver LOCAL_REFERENCE)
│ What's stored where
│ GCS object table
│ object ┃ {"size".rjust(width)} ┃ location      ┃ ref_count ┃ holders
│ ━━━━━━━╇━{"━" * width}━╇━━━━━━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━
│ put#1  │ {size:,} B │ node NNNNNNNN │         1 │ driver LOCAL_REFERENCE
│ object store of node NNNNNNNN: {size:,} of C B used
│ object ┃ {"size".rjust(width)} ┃ sealed
│ ━━━━━━━╇━{"━" * width}━╇━━━━━━━
│ put#1  │ {size:,} B │ yes
│ driver holds 1 ObjectRef(s): put#1 (LOCAL_REFERENCE)
╰──────────────────────────────────────────────────────────────────────────────────────────────────────────────────────╯"""
    assert _phase(seed_trace, 2) == expected


def test_actor_creation_phase_counts_four_references_and_three_live_actors(seed_trace):
    text = _phase(seed_trace, 3)
    assert "seed_model.py:42  actors = [BatchPredictor.remote(model_ref) for _ in range(3)]" \
        in text
    # ref count 1 -> 4, step by step: the creation tasks' pending references, then each
    # actor's worker, then the tasks' references going.
    steps = sequence_diagram(seed_trace, 3).plain()  # every step (the panel shows 60)
    counts = [int(c) for c in re.findall(r"GCS: put#1 ref_count=(\d)", steps)]
    # Each worker takes its reference before its creation task's is dropped, so the count
    # passes 5 (6 or 7 when workers overlap) on its way back to 4.
    assert counts[:3] == [2, 3, 4] and counts[-1] == 4 and 5 <= max(counts) <= 7, steps
    row = re.search(r"│ put#1  │ +[\d,]+ B │ node N+ │ +(\d) │ (.*)\n.*│ +│ +│ +│ +│ (.*)",
                    text)
    assert row and row.group(1) == "4", text
    holders = (row.group(2) + " " + row.group(3)).split("; ")
    assert holders[0] == "driver LOCAL_REFERENCE"
    assert sorted(h.split()[1] for h in holders[1:]) == ["LOCAL_REFERENCE"] * 3
    # Three actors ALIVE, on three different workers.
    alive = re.findall(r"│ (BatchPredictor#\d) │ BatchPredictor │ ALIVE │ (worker#\d)", text)
    assert [a for a, _ in alive] == ["BatchPredictor#1", "BatchPredictor#2",
                                     "BatchPredictor#3"], text
    assert len({w for _, w in alive}) == 3, text
    tables = text.split("What's stored where")[1]
    assert len(re.findall(r"prediction_count=[01]", tables)) == 3, text


def test_method_call_phase_shows_prediction_count_and_where_results_went(seed_trace):
    text = _phase(seed_trace, 4)
    flow, tables = text.split("What's stored where")
    assert len(re.findall(r"heap of BatchPredictor#\d: prediction_count=1\b", flow)) == 3
    assert len(re.findall(r"prediction_count=1\b", tables)) == 3
    stored = next(
        e["size"] for e in seed_trace.records
        if e["ev"] == "object_store.sealed" and e["obj"].endswith("0001"))
    assert stored > 100 * 1024
    assert re.search(rf"│ BatchPredictor#1\.predict\.ret │ {stored:,} B │ yes", text), \
        "the big result is in the object store"
    inline = re.findall(r"│ (BatchPredictor#\d\.predict\.ret) │ ([\d,]+) B\n", text)
    assert [name for name, _ in inline] == ["BatchPredictor#2.predict.ret",
                                            "BatchPredictor#3.predict.ret"]
    assert all(int(size.replace(",", "")) < 100 * 1024 for _, size in inline)
    assert "in the driver's memory (small results, returned inline)" in text
    assert re.search(r"BatchPredictor#\d\.predict\.ret goes back inline", text)


def test_get_phase_reads_stored_results_zero_copy_and_small_ones_inline(seed_trace):
    text = _phase(seed_trace, 5)
    steps = re.findall(r"│ +\d\. +● .* (get .*)", text)
    assert steps == [
        "get BatchPredictor#1.predict.ret (200.9 KB, zero-copy from the store)",
        "get BatchPredictor#2.predict.ret (1.9 KB, inline, from the owner's memory)",
        "get BatchPredictor#3.predict.ret (1.9 KB, inline, from the owner's memory)"]


def test_a_phase_that_does_not_exist_is_named(seed_trace):
    with pytest.raises(ValueError, match=r"phases 1 to 6; there is no phase 7"):
        PhaseView(seed_trace, 7)


def test_views_render_in_jupyter(seed_trace):
    html = PhaseView(seed_trace, 2)._repr_html_()
    assert html.startswith("<!DOCTYPE html>") and "put#1" in html


def test_a_long_run_is_summarised(trace_file):
    @raysim.remote
    def square(x):
        return x * x

    raysim.init(num_cpus=1, trace_path=trace_file)
    try:
        for i in range(30):
            raysim.get(raysim.put(i))
        raysim.get([square.remote(i) for i in range(5)])
    finally:
        raysim.shutdown()
    text = normalise(to_text(RunView(load(trace_file)), width=120))
    assert "(summarised)" in text and "Phase 1:" not in text
    assert re.search(r"│ put +│ 30 +│ test_phases_view\.py:\d+  raysim\.get\(raysim\.put\(i\)\)",
                     text)
    assert "slowest tasks" in text and "square#" in text
    assert "At the end" in text


def test_calls_refused_before_they_began_are_listed_after_the_phases(trace_file):
    raysim.init(num_cpus=1, trace_path=trace_file)
    try:
        with pytest.raises(ValueError):
            raysim.get(42)
        assert raysim.get(raysim.put(1)) == 1
    finally:
        raysim.shutdown()
    text = normalise(to_text(RunView(load(trace_file)), width=140))
    assert "calls refused before they began (1, api.rejected)" in text
    assert re.search(r"test_phases_view\.py:\d+  raysim\.get\(42\) +│ get\(\) +│ ValueError +│ "
                     r"get\(\) expects an ObjectRef or a list of ObjectRefs, got int 42", text)
    # It began no phase: the phases are init, put, get, shutdown.
    assert [line.split(": ")[1].split()[0] for line in re.findall(r"Phase \d+: \w+", text)] \
        == ["init", "put", "get", "shutdown"]


def test_timeline_shows_actors_running_in_parallel(tmp_path_factory):
    from raysim.trace.timeline_view import timeline_text

    data = tmp_path_factory.mktemp("parallel")
    path = str(data / "trace.jsonl")
    run_seed_program(path, data, rows=300_000)
    text = timeline_text(load(path), width=120).plain
    lanes = {line.split()[0]: line for line in text.splitlines()
             if line and line.split()[0] in ("driver", "gcs", "raylet") or "worker#" in line}
    assert {"driver", "gcs", "raylet"} <= set(lanes)
    busy = [line for name, line in lanes.items() if name.startswith("worker#") and "█" in line]
    assert len(busy) >= 3, "three actors' workers ran their methods"
    columns = [{i for i, ch in enumerate(line) if ch == "█"} for line in busy]
    assert any(a & b for i, a in enumerate(columns) for b in columns[i + 1:]), \
        "at least two actors ran at the same time"


def test_init_panel_lists_the_processes_it_started_with_their_pids(seed_trace):
    text = to_text(PhaseView(seed_trace, 1), width=120)
    assert "Processes started by init" in text
    pids = {p.proc: p.pid for p in seed_trace.processes() if p.proc != "worker"}
    for proc in ("driver", "gcs", "raylet"):
        assert re.search(rf"│ {proc} +│ +{pids[proc]} │ RUNNING", text), (proc, text)
    # init does not wait for the zygote: on a busy machine it is up only after init returned.
    zygote = re.search(rf"│ zygote +│ +{pids['zygote']} │ (RUNNING|STARTING)", text)
    assert zygote, text
    flat = " ".join(re.sub(r"[│┃]", " ", text).split())  # table cells wrap across lines
    assert "scheduler and worker pool; its object store, shared memory of" in flat
    assert ("forks the workers, with " if zygote.group(1) == "RUNNING"
            else "forks the workers; up at +") in flat
    # num_cpus=2: two task workers, idle once up (which may be after init returned).
    workers = re.findall(r"│ (worker#\d) +│ +\d+ │ (RUNNING|STARTING) +│ task worker", text)
    assert len(workers) == 2, text
    assert text.index("Processes started by init") < text.index("What's stored where")


def test_shutdown_panel_says_what_shutdown_changed_instead_of_the_tables(seed_trace):
    text = to_text(PhaseView(seed_trace, 6), width=120)
    assert "What shutdown changed" in text and "What's stored where" not in text
    assert "┃ ref_count ┃" not in text and "driver holds" not in text, "no tables repeated"
    for proc in ("driver", "gcs", "raylet"):
        assert re.search(rf"│ {proc} +│ +\d+ │ RUNNING │ STOPPING \(shutdown\)", text), text
    assert len(re.findall(r"│ worker#\d +│ +\d+ │ RUNNING │ STOPPING", text)) == 5, text
    held = " ".join(text.split("held when shutdown began: ")[1].split())
    assert re.match(r"GCS: 3 actors, \d objects? and 3 actor handles; object store of node",
                    held), held
    assert re.search(r"3 actors' heaps; the driver's \d ObjectRef\(s\)", held.replace("│ ", ""))
