"""The founding document's example runs unchanged and its trace tells the five phases."""

import os
import subprocess
import sys

from seed_model import holders
from traceutil import load, of

_EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "seed_example.py")


def test_seed_example_runs_and_its_trace_shows_every_phase(tmp_path):
    trace_file = tmp_path / "trace.jsonl"
    env = dict(os.environ, RAYSIM_TRACE=str(trace_file))
    out = subprocess.run([sys.executable, _EXAMPLE], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "data1.parquet: 1,000,000 predictions" in out.stdout
    assert out.stdout.count("prediction_count=1") == 3
    events = load(str(trace_file))

    apis = [e["api"] for e in of(events, "phase.begin")]
    assert apis[:2] == ["init", "put"]
    assert apis[2:5] == ["actor_creation"] * 3 and apis[5:8] == ["method_call"] * 3
    assert apis[8] == "get" and apis[-1] == "shutdown"
    creation = [e for e in of(events, "phase.begin") if e["api"] == "actor_creation"]
    assert creation[0]["code"].startswith("actors = [BatchPredictor.remote(model_ref)")

    (put,) = of(events, "object_store.sealed", phase=1)
    model = put["obj"]
    alive = of(events, "gcs.actor_state", state="ALIVE")
    assert len({e["worker_pid"] for e in alive}) == 3
    assert max(e["count"] for e in of(events, "gcs.ref_added", obj=model)) >= 4
    held_after_creation = holders([e for e in events if e["ts"] <= max(a["ts"] for a in alive)
                                   or e["ev"] != "gcs.ref_removed"], model)
    assert len(held_after_creation) >= 4
    counts = [e["attrs"]["prediction_count"] for e in of(events, "actor.state")]
    assert sorted(counts) == ["0", "0", "0", "1", "1", "1"]
    # data1 and data2 results were stored, data3's came back inline.
    assert len(of(events, "object.inlined")) == 1
    stored = [e for e in of(events, "object_store.sealed") if e["proc"] == "raylet"
              and e["obj"] != model]
    assert len(stored) == 2 and min(e["size"] for e in stored) > 102_400
