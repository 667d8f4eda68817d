"""Benchmarks of raysim's tracer: how soon a big run is on the screen, and how fast a trace
loads and any moment of it replays.

What it does: runs one traced program on raysim (20,000 no-op tasks, then 5,000 calls
round-robin to 4 actors, everything fetched), which writes a trace of about 400,000 events
to a temporary file; then measures, on that file:

* ``trace_events``: how many events the trace holds;
* ``trace_load``: ``raysim.trace.load(path)``, events/s, median of 3 loads (``--loads``;
  decode, validation against the schema, sort by time);
* ``trace_view_render``: what ``raysim trace`` prints once the trace is loaded (every phase
  panel, the reference counts, the timeline), rendered into a console 120 columns wide,
  seconds, on a freshly loaded trace (nothing computed yet);
* ``trace_view_lines``: how many lines that is;
* ``trace_view_ready``: load plus render, seconds: from the end of the run to the whole view
  (what the user waits for);
* ``trace_decode_only``: for reference, ``orjson.loads`` of each line and nothing else, on
  the same file, events/s, median of as many: how fast this machine is right now (a loader
  that decodes a few hundred lines per orjson call can beat it);
* ``trace_dataframe``: building ``trace.events``, the one-row-per-event DataFrame, seconds,
  median of as many, each on a trace loaded afresh (the first build after a load is the one
  a user waits for: a second build on the same trace would find more of it in the cache),
  with pandas already imported;
* ``trace_checkpoints``: the first ``state_at`` call, which replays the whole trace once and
  saves a state every ``CHECKPOINT_EVERY`` events, seconds;
* ``trace_state_at``: ``state_at(i)`` at 20 random indices after that, median and max in ms.

Each measurement is one JSON object per line on stdout, with its target (null where there is
none). The machine is small and shared, so numbers are noisy: repeat before believing a
difference.

Run it from the repository root:

    python benchmarks/bench_trace.py
    python benchmarks/bench_trace.py --trace saved.jsonl   # measure an existing trace
    python benchmarks/bench_trace.py --trace saved.jsonl --loads 5   # median of 5
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import orjson
from bench_core import Counter, noop  # the same no-op task and actor as the core benchmark

import raysim as ray
from raysim.trace import state as trace_state
from raysim.trace.loader import load

TASKS = 20_000
ACTOR_CALLS = 5_000
ACTORS = 4
STATE_SAMPLES = 20
LOADS = 3

TARGETS: dict[str, str] = {
    "trace_view_render": "<= 3",
    "trace_view_lines": "~300",
    "trace_dataframe": "<= 1",
    "trace_state_at_median": "<= 50",
    "trace_state_at_max": "<= 50",
}


def emit(name: str, value: float | int, unit: str, **extra: Any) -> None:
    """Print one measurement as a JSON line."""
    if isinstance(value, float):
        value = round(value, 4)
    line = {"name": name, "value": value, "unit": unit, "target": TARGETS.get(name)}
    line.update(extra)
    print(json.dumps(line), flush=True)


def write_trace(path: str, temp_dir: str) -> float:
    """Run the benchmark program traced to ``path``; return its wall time in seconds."""
    start = time.perf_counter()
    ray.init(num_cpus=2, trace_path=path, _temp_dir=temp_dir)
    try:
        ray.get([noop.remote() for _ in range(TASKS)], timeout=600)
        actors = [Counter.remote() for _ in range(ACTORS)]
        ray.get([actors[i % ACTORS].m.remote() for i in range(ACTOR_CALLS)], timeout=600)
    finally:
        ray.shutdown()
    return time.perf_counter() - start


def bench_load(path: str, loads: int = LOADS) -> Any:
    """Median load rate of ``loads`` loads; returns the last trace loaded."""
    seconds = []
    trace = None
    for _ in range(loads):
        trace = None  # free the previous trace first: its memory is not the load's cost
        start = time.perf_counter()
        trace = load(path)
        seconds.append(time.perf_counter() - start)
    events = len(trace)
    emit("trace_events", events, "events", bytes=os.path.getsize(path))
    emit("trace_load", events / statistics.median(seconds), "events/s",
         seconds=[round(s, 3) for s in seconds])
    return trace, statistics.median(seconds)


def bench_decode_only(path: str, loads: int = LOADS) -> None:
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")[:-1]
    seconds = []
    collecting = gc.isenabled()
    gc.disable()  # as load() does
    try:
        for _ in range(loads):
            start = time.perf_counter()
            events = [orjson.loads(line) for line in lines]
            seconds.append(time.perf_counter() - start)
            del events  # freed before the next run, as bench_load frees its trace
    finally:
        if collecting:
            gc.enable()
    emit("trace_decode_only", len(lines) / statistics.median(seconds), "events/s",
         seconds=[round(s, 3) for s in seconds])


def bench_view(path: str, load_seconds: float) -> None:
    """The view ``raysim trace`` prints, on a trace loaded afresh (no view built yet)."""
    from rich.console import Console

    from raysim.trace.phases_view import RunView

    trace = load(path)
    out = io.StringIO()
    start = time.perf_counter()
    Console(file=out, width=120, color_system=None).print(RunView(trace))
    seconds = time.perf_counter() - start
    emit("trace_view_render", seconds, "s")
    emit("trace_view_lines", out.getvalue().count("\n"), "lines", width=120)
    emit("trace_view_ready", load_seconds + seconds, "s")


def bench_dataframe(path: str, loads: int = LOADS) -> Any:
    """Median time of ``trace.events`` on ``loads`` freshly loaded traces; returns the last
    trace."""
    import pandas  # noqa: F401  (imported once per process, by whatever uses it first:

    # about a quarter of a second here, which is not the DataFrame's to pay)

    seconds = []
    trace = None
    for _ in range(loads):
        trace = None  # free the previous trace, and its DataFrame, before loading the next
        trace = load(path)
        start = time.perf_counter()
        trace.events  # built on first use, and kept
        seconds.append(time.perf_counter() - start)
    emit("trace_dataframe", statistics.median(seconds), "s", columns=len(trace.events.columns),
         seconds=[round(s, 3) for s in seconds])
    return trace


def bench_state_at(trace: Any) -> None:
    start = time.perf_counter()
    trace.state_at(0)  # the first call replays the whole trace and saves its checkpoints
    emit("trace_checkpoints", time.perf_counter() - start, "s",
         every=trace_state.CHECKPOINT_EVERY)
    rng = random.Random(0)
    samples = []
    for _ in range(STATE_SAMPLES):
        index = rng.randrange(len(trace))
        start = time.perf_counter()
        trace.state_at(index)
        samples.append((time.perf_counter() - start) * 1e3)
    emit("trace_state_at_median", statistics.median(samples), "ms", samples=STATE_SAMPLES)
    emit("trace_state_at_max", max(samples), "ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", help="measure this trace instead of writing a new one")
    parser.add_argument("--loads", type=int, default=LOADS,
                        help=f"loads (and decodes, and DataFrame builds) to take the median "
                             f"of (default {LOADS})")
    args = parser.parse_args()
    temp_dir = tempfile.mkdtemp(prefix="raysim-bench-trace-")
    try:
        path = args.trace
        if path is None:
            path = os.path.join(temp_dir, "trace.jsonl")
            seconds = write_trace(path, temp_dir)
            emit("trace_program", seconds, "s", tasks=TASKS, actor_calls=ACTOR_CALLS,
                 actors=ACTORS)
        bench_decode_only(path, args.loads)
        trace, load_seconds = bench_load(path, args.loads)
        trace = None  # freed before bench_dataframe's own loads
        trace = bench_dataframe(path, args.loads)
        bench_state_at(trace)
        trace = None  # freed before the view's own load
        bench_view(path, load_seconds)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
