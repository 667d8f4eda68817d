"""The raysim command line: `raysim trace` runs Ray scripts unmodified; bad input gets a
one-line error and a non-zero exit code."""

import os
import re
import subprocess
import sys

import orjson

from raysim.trace import schema

_EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "seed_example.py")


def _raysim(*args, cwd=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "raysim.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120, input=stdin)


def _events(path):
    with open(path, "rb") as f:
        return [orjson.loads(line) for line in f]


def test_trace_runs_a_plain_ray_script_and_passes_its_arguments(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import sys\nimport ray\nimport ray.exceptions\n"
                      "ray.init(num_cpus=1)\n"
                      "@ray.remote\ndef double(x):\n    return 2 * x\n"
                      "print('got', ray.get(double.remote(21)), sys.argv[1:])\n")
    out = _raysim("trace", "--out", str(tmp_path / "out"), str(script), "--flag", "x")
    assert out.returncode == 0, out.stderr
    assert "got 42 ['--flag', 'x']" in out.stdout
    events = _events(tmp_path / "out" / "trace.jsonl")
    assert events[0]["ev"] == "trace.header"
    assert any(e["ev"] == "task.execute" and e["name"] == "double" for e in events)


def test_trace_runs_the_founding_document_code_with_import_ray(tmp_path):
    code = open(_EXAMPLE).read().replace("import raysim as ray\n", "import ray\n")
    assert "\nimport ray\n" in code
    script = tmp_path / "seed.py"
    script.write_text(code.replace('os.path.dirname(os.path.abspath(__file__))',
                                   repr(str(tmp_path))))
    out = _raysim("trace", "--out", str(tmp_path / "out"), str(script))
    assert out.returncode == 0, out.stderr
    script_lines = [l for l in out.stdout.splitlines() if l.startswith("data")]
    assert len(script_lines) == 3 and all("prediction_count=1" in l for l in script_lines)
    assert "Phase 3: actor_creation x3" in out.stdout, "then the run, phase by phase"
    # Each panel names the line that caused it, although the script changed directory.
    assert "seed.py:32  ray.init()" in out.stdout
    assert "seed.py:58  model_ref = ray.put(model)" in out.stdout
    assert "seed.py:end  (the script ended; raysim trace shuts the runtime down)" in out.stdout


def test_missing_script_is_a_one_line_error(tmp_path):
    out = _raysim("trace", str(tmp_path / "nope.py"))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "nope.py" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_failing_script_shows_its_traceback_keeps_the_trace_and_its_exit_code(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("import ray\nray.init(num_cpus=1)\nref = ray.put(1)\n"
                      "raise ValueError('boom')\n")
    out = _raysim("trace", "--out", str(tmp_path / "out"), str(script))
    assert out.returncode == 1
    assert 'fails.py", line 4' in out.stderr and "ValueError: boom" in out.stderr
    assert "raysim/cli.py" not in out.stderr
    events = _events(tmp_path / "out" / "trace.jsonl")
    assert any(e["ev"] == "object_store.sealed" for e in events), "the trace so far is kept"
    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(3)\n")
    assert _raysim("trace", "--out", str(tmp_path / "o2"), str(exits)).returncode == 3


def test_unsupported_parts_of_ray_say_so(tmp_path):
    script = tmp_path / "data.py"
    script.write_text("import ray.data\n")
    out = _raysim("trace", "--out", str(tmp_path / "out"), str(script))
    assert out.returncode == 1 and "core API only" in out.stderr


def test_png_writes_the_figures(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import ray\nray.init(num_cpus=1)\n"
                      "@ray.remote\ndef f(x):\n    return x\nray.get(f.remote(ray.put(1)))\n")
    out = _raysim("trace", "--png", "--out", str(tmp_path / "out"), str(script))
    assert out.returncode == 0, out.stderr
    written = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert written == ["dataflow.png", "sequence-phase-1.png", "sequence-phase-2.png",
                       "sequence-phase-3.png", "sequence-phase-4.png", "sequence-phase-5.png",
                       "timeline.png"]
    assert all((tmp_path / "out" / name).read_bytes().startswith(b"\x89PNG")
               for name in written)


def test_help_on_every_command():
    assert "trace" in _raysim("--help").stdout
    assert "SCRIPT" in _raysim("trace", "--help").stdout
    assert "--step" in _raysim("replay", "--help").stdout
    assert "--format" in _raysim("export", "--help").stdout


def test_phase_shows_one_phase_and_step_walks_it_event_by_event(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import ray\nray.init(num_cpus=1)\nref = ray.put(7)\n"
                      "print(ray.get(ref))\n")
    out = _raysim("trace", "--phase", "2", "--out", str(tmp_path / "out"), str(script))
    assert out.returncode == 0, out.stderr
    assert "Phase 2: put" in out.stdout and "Phase 1" not in out.stdout
    assert "Phase 3" not in out.stdout and "Timeline" not in out.stdout
    trace = str(tmp_path / "out" / "trace.jsonl")
    # Three Enters, then q: four events shown, the walk stops.
    walk = _raysim("replay", trace, "--step", "--phase", "2", stdin="\n\n\nq\n")
    assert walk.returncode == 0, walk.stderr
    lines = [l for l in walk.stdout.splitlines() if "/" in l.split(" ")[0]]
    assert [l.split(" ")[0].split("/")[0] for l in lines] == ["1", "2", "3", "4"]
    assert "driver call put at job.py:3: ref = ray.put(7)" in lines[0]
    assert "serialize put#1" in lines[1]
    assert "-> raylet: create_object put#1" in lines[2]
    # The store's allocation appears as a row added to the tables.
    full = _raysim("replay", trace, "--step", "--phase", "2", stdin="\n" * 100)
    assert "+ object store: node=" in full.stdout and "object=put#1" in full.stdout
    assert "+ GCS object table: object=put#1, size=" in full.stdout
    for command in (["replay", trace, "--phase", "9"], ["replay", trace, "--step", "--phase", "0"]):
        bad = _raysim(*command)
        assert bad.returncode == 1 and "there is no phase" in bad.stderr
        assert "Traceback" not in bad.stderr and bad.stderr.strip().count("\n") == 0


def test_replay_shows_a_saved_trace_and_refuses_what_is_not_one(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import ray\nray.init(num_cpus=1)\nref = ray.put(7)\n"
                      "print(ray.get(ref))\n")
    assert _raysim("trace", "--out", str(tmp_path / "out"), str(script)).returncode == 0
    trace = tmp_path / "out" / "trace.jsonl"
    out = _raysim("replay", str(trace))
    assert out.returncode == 0 and "Phase 2: put" in out.stdout
    assert "ref = ray.put(7)" in out.stdout
    missing = _raysim("replay", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1 and "no trace file" in missing.stderr
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n")
    bad = _raysim("replay", str(garbage))
    assert bad.returncode == 1 and "garbage.jsonl" in bad.stderr
    assert "Traceback" not in bad.stderr and bad.stderr.strip().count("\n") == 0
    newer = tmp_path / "newer.jsonl"
    newer.write_text(trace.read_text().replace(f'"schema_version":"{schema.SCHEMA_VERSION}"',
                                               '"schema_version":"9.0"', 1))
    refused = _raysim("replay", str(newer))
    assert refused.returncode == 1 and "upgrade raysim" in refused.stderr


def test_export_writes_chrome_parquet_and_csv(tmp_path):
    import pandas as pd

    script = tmp_path / "job.py"
    script.write_text("import ray\nray.init(num_cpus=1)\n"
                      "@ray.remote\ndef f():\n    return 1\nray.get([f.remote() for _ in range(3)])\n")
    out = _raysim("trace", "--chrome", "--out", str(tmp_path / "out"), str(script))
    assert out.returncode == 0, out.stderr
    trace = tmp_path / "out" / "trace.jsonl"
    chrome = orjson.loads((tmp_path / "out" / "trace.chrome.json").read_bytes())
    assert sum(1 for e in chrome["traceEvents"] if e.get("cat") == "task") == 3
    lines = len(trace.read_bytes().splitlines())
    assert _raysim("export", str(trace), "--format", "parquet", "-o",
                   str(tmp_path / "e.parquet")).returncode == 0
    frame = pd.read_parquet(tmp_path / "e.parquet")
    assert len(frame) == lines and (frame["ev"] == "task.execute").sum() == 3
    assert _raysim("export", str(trace), "--format", "csv", "-o",
                   str(tmp_path / "e.csv")).returncode == 0
    assert len(pd.read_csv(tmp_path / "e.csv")) == lines
    bad = _raysim("export", str(tmp_path / "nope"), "--format", "csv")
    assert bad.returncode == 1 and "no trace file" in bad.stderr


def test_relative_paths_are_resolved_before_a_script_that_changes_directory(tmp_path):
    """The founding example changes directory; --out, --png and --chrome still land where
    they were asked for, relative to where raysim was started."""
    script = tmp_path / "job.py"
    (tmp_path / "elsewhere").mkdir()
    script.write_text("import os\nimport ray\nos.chdir(os.path.join(os.path.dirname("
                      "os.path.abspath(__file__)), 'elsewhere'))\nray.init(num_cpus=1)\n"
                      "print(ray.get(ray.put(7)))\n")
    out = _raysim("trace", "--png", "--chrome", "--out", "rel/out", "job.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    written = tmp_path / "rel" / "out"
    assert (written / "trace.jsonl").exists() and (written / "trace.chrome.json").exists()
    assert (written / "timeline.png").exists() and (written / "sequence-phase-2.png").exists()
    assert not (tmp_path / "elsewhere" / "rel").exists()


def test_all_shows_what_the_bounded_view_leaves_out(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import ray\nray.init(num_cpus=1)\n"
                      "refs = [ray.put(i) for i in range(12)]\nprint(len(ray.get(refs)))\n")
    assert _raysim("trace", "--out", str(tmp_path / "out"), str(script)).returncode == 0
    trace = str(tmp_path / "out" / "trace.jsonl")
    bounded = _raysim("replay", trace)
    assert bounded.returncode == 0, bounded.stderr
    # 12 objects, 8 rows shown (the count of those left out is the runtime's business).
    assert re.search(r"│ … and \d more │ +\d+ B │", bounded.stdout), bounded.stdout
    every = _raysim("replay", "--all", trace)
    assert every.returncode == 0 and "… and" not in every.stdout
    assert all(f"put#{n} " in every.stdout for n in range(1, 13))
