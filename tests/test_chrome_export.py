"""The Chrome/Perfetto export is well formed: slices nest, flows pair, counters count."""

import json
from collections import defaultdict

from seed_model import run_seed_program

import raysim
from raysim.trace import chrome, load


def _check_structure(doc: dict) -> None:
    events = doc["traceEvents"]
    lanes = defaultdict(list)
    for e in events:
        assert "ph" in e and "pid" in e
        if e["ph"] == "X":
            assert e["dur"] >= 0, f"slice {e['name']} has a negative duration"
            lanes[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"], e["name"]))
    for lane, slices in lanes.items():
        stack = []  # end times of the open slices
        for start, end, name in sorted(slices, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1] + 1e-6, \
                f"slice {name} in {lane} overlaps its parent without nesting in it"
            stack.append(end)
    starts = {e["id"] for e in events if e["ph"] == "s"}
    finishes = {e["id"] for e in events if e["ph"] == "f"}
    assert starts and starts == finishes, "every flow arrow has both ends"


def test_export_of_the_founding_example_is_well_formed(trace_file, tmp_path):
    live = run_seed_program(trace_file, tmp_path, rows=200_000,
                            before_shutdown=raysim.timeline)
    assert any(e.get("cat") == "task" for e in live), "timeline() of the live session"
    doc = chrome.to_chrome(load(trace_file))
    _check_structure(doc)
    names = [e["name"] for e in doc["traceEvents"] if e["ph"] == "X" and e["cat"] == "task"]
    assert names.count("BatchPredictor.predict") == 3 and names.count("BatchPredictor") == 3
    phases = [e["name"] for e in doc["traceEvents"] if e.get("cat") == "phase"]
    assert phases[:2] == ["init", "put"] and "get" in phases
    counters = [e for e in doc["traceEvents"] if e["ph"] == "C"]
    assert max(c["args"]["used"] for c in counters) > 200_000, "the stored results show"
    out = tmp_path / "trace.chrome.json"
    raysim_path = str(out)
    chrome.write_chrome(load(trace_file), raysim_path)
    assert json.loads(out.read_text())["traceEvents"]
