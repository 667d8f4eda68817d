"""How soon ``raysim trace`` shows the founding example's run once the script has ended.

``raysim trace examples/seed_example.py`` runs the script, shuts the runtime down (every
process writes its last events), loads the trace and prints the phase panels, the reference
counts and the timeline. The target is that the view is on the screen at most 1 s after the
script's last line ran. This measures that span, and its parts, in one process:

* ``shutdown``: ``raysim.shutdown()`` after the script's last line;
* ``load``: ``raysim.trace.load`` of the trace;
* ``render``: building and printing every view (into a null console 120 columns wide);
* ``view_ready``: the sum, from the script's end to the last character printed.

Prints one JSON object per line (median of ``--repeat`` runs, and each run), as
``bench_core.py`` does. Run from the repository root:

    python benchmarks/bench_view.py --repeat 5
"""

from __future__ import annotations

import argparse
import io
import json
import os
import runpy
import statistics
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EXAMPLE = os.path.join(_ROOT, "examples", "seed_example.py")


def one_run(out_dir: str) -> dict[str, float]:
    from rich.console import Console

    import raysim
    from raysim import ray_alias
    from raysim.trace import load
    from raysim.trace.phases_view import RunView

    trace_path = os.path.join(out_dir, "trace.jsonl")
    os.environ["RAYSIM_TRACE"] = trace_path
    ray_alias.install()
    cwd = os.getcwd()
    saved = sys.stdout
    sys.stdout = io.StringIO()  # the script's own prints
    try:
        runpy.run_path(_EXAMPLE, run_name="__main__")
    finally:
        sys.stdout = saved
        os.chdir(cwd)
    ended = time.perf_counter()
    raysim.shutdown()
    stopped = time.perf_counter()
    trace = load(trace_path)
    loaded = time.perf_counter()
    Console(file=io.StringIO(), width=120).print(RunView(trace))
    shown = time.perf_counter()
    ray_alias.uninstall()
    os.environ.pop("RAYSIM_TRACE", None)
    return {"shutdown": stopped - ended, "load": loaded - stopped, "render": shown - loaded,
            "view_ready": shown - ended}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory(prefix="raysim-bench-view-") as tmp:
        os.environ.setdefault("RAYSIM_TEMP_DIR", tmp)
        for n in range(options.repeat):
            runs.append(one_run(tempfile.mkdtemp(dir=tmp)))
    for name in ("shutdown", "load", "render", "view_ready"):
        values = [run[name] for run in runs]
        print(json.dumps({"name": name, "median_s": round(statistics.median(values), 3),
                          "runs_s": [round(v, 3) for v in values],
                          "target_s": 1.0 if name == "view_ready" else None}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
