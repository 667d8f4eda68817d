"""The phase panels of `raysim trace`: the founding document's walk-through, from a trace."""

import io

from rich.console import Console

import raysim
from raysim.trace import load, phases_view
from seed_model import run_seed_program


def _render(trace) -> str:
    out = io.StringIO()
    phases_view.render(trace, Console(file=out, width=140, color_system=None))
    return out.getvalue()


def test_seed_phases_are_told_panel_by_panel(trace_file, tmp_path):
    run_seed_program(trace_file, tmp_path)
    text = _render(load(trace_file))
    titles = [line for line in text.splitlines() if "Phase " in line and "─" in line]
    assert [t.split("Phase ")[1].split(" ─")[0] for t in titles] == [
        "1: init", "2: put", "3: actor_creation x3", "4: method_call x3", "5: get",
        "6: shutdown"]
    creation = text.split("Phase 3: actor_creation x3")[1].split("Phase 4")[0]
    assert "actors = [BatchPredictor.remote(model_ref) for _ in range(3)]" in creation
    assert creation.count("│ ALIVE │") == 3
    # Each actor's heap, once all three are alive (one may already have run predict:
    # calls were submitted right after, and actors run in parallel).
    assert creation.count("prediction_count=") == 3 and "prediction_count=0" in creation
    assert "driver -> raylet: submit_task" in creation
    row = next(line for line in creation.splitlines() if "│ 4 " in line)
    assert "LOCAL_REFERENCE" in row, "model_ref: count 4, driver + 3 workers"
    calls = text.split("Phase 4: method_call x3")[1].split("Phase 5")[0]
    assert calls.count("prediction_count=1") == 3
    assert "-> driver: task_done" in calls, "results come straight back"


def test_a_long_run_is_summarised(trace_file):
    raysim.init(num_cpus=1, trace_path=trace_file)
    try:
        for i in range(30):
            raysim.get(raysim.put(i))
    finally:
        raysim.shutdown()
    text = _render(load(trace_file))
    assert "(summarised)" in text and "Phase 1:" not in text
    assert "put" in text and "30" in text


def test_timeline_shows_actors_running_in_parallel(trace_file, tmp_path):
    from raysim.trace.timeline_view import timeline_text

    run_seed_program(trace_file, tmp_path, rows=300_000)
    text = timeline_text(load(trace_file), width=120).plain
    lanes = {line.split()[0]: line for line in text.splitlines()
             if line and line.split()[0] in ("driver", "gcs", "raylet") or "worker#" in line}
    assert {"driver", "gcs", "raylet"} <= set(lanes)
    busy = [line for name, line in lanes.items() if name.startswith("worker#") and "█" in line]
    assert len(busy) >= 3, "three actors' workers ran their methods"
    columns = [{i for i, ch in enumerate(line) if ch == "█"} for line in busy]
    assert any(a & b for i, a in enumerate(columns) for b in columns[i + 1:]), \
        "at least two actors ran at the same time"
