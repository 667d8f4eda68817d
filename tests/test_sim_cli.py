"""The model on real traces and from the command line: a simulated trace is a trace every
view shows; ``raysim simulate`` and ``raysim calibrate`` take good input and refuse bad."""

import io
import re

import numpy as np
import orjson
from rich.console import Console
from sim_trace import Run

import raysim
from raysim import cli
from raysim.sim import SimConfig, simulate
from raysim.trace import chrome, load, phases_view, views
from raysim.trace.limits import BOUNDED

NODES = {"aaaa0001": {"CPU": 2.0}, "bbbb0002": {"CPU": 2.0}, "cccc0003": {"CPU": 2.0}}


@raysim.remote
def total(array):
    return float(array.sum())


def test_a_recorded_cluster_run_simulated_is_a_trace_every_view_shows(three_nodes, trace_file,
                                                                      tmp_path):
    cluster, b, c = three_nodes
    data = raysim.put(np.ones(1_000_000))  # 8 MB, in the head's store
    assert raysim.get(total.options(resources={"C": 1}).remote(data)) == 1_000_000.0
    raysim.shutdown()
    measured = [(e["obj"], e["node"]) for e in load(trace_file).records
                if e["ev"] == "object_manager.pulled"]
    assert (data.id, c.node_id) in measured
    result = simulate(trace_file, SimConfig(placement="recorded", bandwidth_bps=10e9))
    assert sorted((t.obj, t.to_node) for t in result.transfers) == sorted(measured)
    assert 0 < result.makespan_s and 0 < result.measured_makespan_s
    path = tmp_path / "simulated.jsonl"
    result.write(str(path))
    trace = load(str(path))  # validates every event against the schema
    assert trace.records[0]["mode"] == "simulated"
    assert trace.records[0]["simulation"]["bandwidth_bps"] == 10e9
    text = io.StringIO()
    Console(file=text, width=120).print(phases_view.RunView(trace, None, limits=BOUNDED))
    assert "raylet@node3" in text.getvalue() or "node3" in text.getvalue()
    for name, figure in views.figures(trace):
        assert figure.axes, name
    chrome.write_chrome(trace, str(tmp_path / "simulated.chrome.json"))


def _write(records, path) -> str:
    with open(path, "wb") as f:
        for record in records:
            f.write(orjson.dumps(record) + b"\n")
    return str(path)


def _broadcast_trace(tmp_path) -> str:
    run = Run(NODES)
    data = run.put(50 * 1024 * 1024)
    run.get([run.task(node, 0.01, deps=[data]) for node in NODES])
    return _write(run.records(), tmp_path / "trace.jsonl")


def test_simulate_prints_measured_and_simulated_side_by_side(tmp_path, capsys):
    trace = _broadcast_trace(tmp_path)
    out = tmp_path / "sim"
    assert cli.main(["simulate", trace, "--nodes", "3", "--bandwidth", "100Mbit/s",
                     "--latency", "1ms", "--placement", "recorded", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "Simulated on 3 node(s), 0.1 Gbit/s NICs, 1 ms latency" in printed.out
    assert "get at job.py:get" in printed.out and "makespan" in printed.out
    assert "link" in printed.out  # the get waits for two 50 MB pulls over 100 Mbit/s
    assert "2 transfer(s) between nodes, 104.9 MB in all" in printed.out
    assert re.search(r"the longest: put#1 node1 -> node[23],\s+52\.4 MB", printed.out), printed.out
    assert "trace written to" in printed.err
    assert load(str(out / "trace.jsonl")).records[0]["simulation"]["nodes"] == 3


def test_calibrate_writes_what_simulate_reads(tmp_path, capsys):
    trace = _broadcast_trace(tmp_path)
    assert cli.main(["calibrate", trace, "-o", str(tmp_path / "cal.json")]) == 0
    printed = capsys.readouterr().out
    assert "store_write_Bps" in printed and "chunk_overhead_s" in printed
    assert cli.main(["simulate", trace, "--calibration", str(tmp_path / "cal.json"),
                     "--out", str(tmp_path / "sim")]) == 0


def test_bad_input_gets_a_one_line_error(tmp_path, capsys):
    trace = _broadcast_trace(tmp_path)
    cases = [
        (["simulate", trace, "--bandwidth", "fast"], 2, "cannot read the bandwidth 'fast'"),
        (["simulate", trace, "--latency", "3"], 2, "cannot read the duration '3'"),
        (["simulate", trace, "--nodes", "2", "--link", "0-5=1Gbit/s/1ms"], 2,
         "--link 0-5 names a node past the 2 simulated"),
        (["simulate", trace, "--link", "0-1"], 2, "write it like 0-2=1Gbit/s/2ms"),
        (["simulate", str(tmp_path / "nope.jsonl")], 1, "no trace file"),
        (["simulate", trace, "--calibration", str(tmp_path / "nope.json")], 2,
         "cannot read the calibration file"),
        (["calibrate", str(tmp_path / "nope.jsonl")], 1, "no trace file"),
    ]
    for argv, code, message in cases:
        assert cli.main(argv + ["--out", str(tmp_path / "o")] if argv[0] == "simulate"
                        else argv) == code, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
        assert "Traceback" not in err
