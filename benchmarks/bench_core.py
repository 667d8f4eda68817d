"""Core benchmarks of raysim: how fast its runtime starts, runs tasks and moves objects.

What it measures (one JSON object per line on stdout, one line per measurement):

* ``init_time`` / ``shutdown_time``: ``ray.init(num_cpus=2)`` and ``ray.shutdown()``, median
  of several cycles;
* ``memory``: PSS of the runtime's processes (GCS, raylet, zygote, workers) right after
  ``init`` and again 1 s later, with and without the driver;
* ``task_throughput``: 2,000 no-op tasks submitted, then all fetched; tasks/s;
* ``task_latency``: ``ray.get(f.remote())`` one at a time; median and p99 in ms;
* ``actor_latency``: ``ray.get(a.m.remote())`` one at a time on one actor; median and p99;
* ``actor_throughput``: calls submitted round-robin to 4 actors, then all fetched; calls/s;
* ``tracing``: no-op task throughput with ``tracing=False`` and with tracing on (the default),
  and the throughput tracing costs, in %;
* ``shared_array``: a 100 MB numpy array put once and passed by ref to 10 tasks that each
  return its sum; wall time;
* ``put_get``: ``ray.put`` / ``ray.get`` of numpy arrays of 1 KB, 1 MB, 100 MB and 1 GB; put
  throughput in GB/s in steady state (a warm-up put of the same size first, the previous ref
  deleted before each put), get time in ms, and whether the array from get is a read-only,
  zero-copy view of the store;
* ``dataframe``: put/get of a pandas DataFrame of 1e6 rows x 4 float columns;
* ``seed_example``: ``python examples/seed_example.py`` as a subprocess, whole-process wall
  time, minus the time of ``python -c "import pandas, numpy"``, and the time from ``init`` to
  the end of its ``get`` as its trace records it.

Each line carries the value, its unit, what real Ray 2.60 does on the same 2-core machine
(``ray_2_60``) and raysim's target (``target``); either is null where there is none.

Run it from the repository root:

    python benchmarks/bench_core.py                  # everything (about 1.5 min)
    python benchmarks/bench_core.py --quick          # fewer repeats, under a minute
    python benchmarks/bench_core.py --only tasks,put_get

Each measurement starts its own session with ``ray.init(num_cpus=2)`` and shuts it down even on
error. Sessions live in a temporary directory removed at the end, so no trace is left behind.
A measurement that fails prints a line with an ``error`` field and the run goes on (exit code 1).
The machine is small and shared, so numbers are noisy: repeat before believing a difference.

pandas is imported only by the measurements that need it: raysim's zygote preloads every
site-packages module the driver has imported, so importing it up front would change what
``init`` and the memory measurement see.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable, Iterator

import numpy as np

import raysim as ray

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_EXAMPLE = os.path.join("examples", "seed_example.py")
NUM_CPUS = 2
PUT_GET_STORE = 4 * 1024**3
MB = 1024**2
GB = 1024**3

# name -> (real Ray 2.60 on this machine, raysim's target), as printed in each line.
REFERENCE: dict[str, tuple[str | None, str | None]] = {
    "init_time": ("2.2", "<= 0.3"),
    "task_throughput": ("1800-2100", ">= 4000"),
    "task_throughput_tracing_off": ("1800-2100", ">= 4000"),
    "task_throughput_tracing_on": ("1800-2100", ">= 4000"),
    "tracing_overhead": (None, "<= 10"),
    "task_latency_median": ("1.3", "<= 0.6"),
    "actor_latency_median": ("0.7-0.9", "<= 0.35"),
    "actor_throughput_4_actors": ("3000-3400", ">= 5000"),
    "put_100MB": ("1.1-1.2", ">= 2.5"),
    "put_1GB": ("1.1-1.2", ">= 2.5"),
    "get_1KB": ("~0.1", "<= 0.1"),
    "get_1MB": ("~0.1", "<= 0.1"),
    "get_100MB": ("~0.1", "<= 0.1"),
    "get_1GB": ("~0.1", "<= 0.1"),
    "seed_example_wall": ("1.2-1.4", "<= 0.6"),
    "seed_example_minus_imports": ("1.2-1.4", "<= 0.6"),
    "seed_example_init_to_get": ("1.2-1.4", "<= 0.6"),
    "pss_runtime_after_init": ("600", "<= 200"),
    "pss_runtime_after_init_1s": ("600", "<= 200"),
    "pss_with_driver_after_init": ("600", "<= 200"),
    "pss_with_driver_after_init_1s": ("600", "<= 200"),
}


# ------------------------------------------------------------------------------------------
# Helpers


class Bench:
    """Run-wide settings: quick or full, where sessions live, processes left behind."""

    def __init__(self, quick: bool, temp_dir: str) -> None:
        self.quick = quick
        self.temp_dir = temp_dir
        self.leftovers: list[str] = []  # runtime processes still alive after a shutdown

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @contextlib.contextmanager
    def session(self, **kwargs: Any) -> Iterator[dict]:
        """A raysim session, shut down whatever happens inside; reports leftover processes."""
        ctx = ray.init(num_cpus=NUM_CPUS, _temp_dir=self.temp_dir, **kwargs)
        pids: list[int] = []
        try:
            yield ctx
        finally:
            with contextlib.suppress(Exception):
                pids = descendants([ctx["address_info"]["gcs"], ctx["address_info"]["raylet"]])
            ray.shutdown()
        self.leftovers += [f"{pid} {process_name(pid)}" for pid in pids if is_alive(pid)]


def emit(name: str, value: float | bool | None, unit: str, **extra: Any) -> None:
    """Print one measurement as a JSON line."""
    ray_ref, target = REFERENCE.get(name, (None, None))
    if isinstance(value, float):
        value = round(value, 4)
    line = {"name": name, "value": value, "unit": unit, "ray_2_60": ray_ref, "target": target}
    line.update(extra)
    print(json.dumps(line), flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def ms(seconds: float) -> float:
    return seconds * 1e3


def rounded(values: list[float], digits: int = 4) -> list[float]:
    return [round(v, digits) for v in values]


@ray.remote
def noop() -> None:
    return None


@ray.remote
def array_sum(arr: np.ndarray) -> float:
    return float(arr.sum())


@ray.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def m(self) -> int:
        self.n += 1
        return self.n


def timed_batch(submit: Callable[[int], Any], n: int) -> float:
    """Seconds to submit ``n`` calls (``submit(i)`` returns a ref) and get all results."""
    start = time.perf_counter()
    refs = [submit(i) for i in range(n)]
    ray.get(refs, timeout=300)
    return time.perf_counter() - start


def latencies(call: Callable[[], Any], warmup: int, iterations: int) -> list[float]:
    """Seconds of each of ``iterations`` blocking calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def task_throughput_in_session(bench: Bench, n: int) -> tuple[float, list[float]]:
    """Median no-op tasks/s over repeats of ``n`` tasks, in the current session."""
    timed_batch(lambda i: noop.remote(), 200)  # warm-up: workers up, function exported
    rates = [n / timed_batch(lambda i: noop.remote(), n) for _ in range(bench.pick(5, 3))]
    return median(rates), rates


# ------------------------------------------------------------------------------------------
# Process memory, from /proc


def parent_pids() -> dict[int, int]:
    """pid -> ppid of every process, from /proc/*/stat."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry)] = int(fields[1])
    return parents


def descendants(roots: list[int]) -> list[int]:
    """``roots`` and every process below them."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_pids().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def pss_kb(pid: int) -> int:
    """Proportional set size of one process in kB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def is_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def runtime_memory(ctx: dict) -> dict[str, Any]:
    """PSS of the session's processes in MB: runtime alone, and with this driver."""
    info = ctx["address_info"]
    roles = {info["gcs"]: "gcs", info["raylet"]: "raylet"}
    pids = descendants([info["gcs"], info["raylet"]])
    per_process = {pid: pss_kb(pid) for pid in pids}
    runtime_mb = sum(per_process.values()) / 1024
    by_role: dict[str, float] = {}
    for pid, kb in per_process.items():
        role = roles.get(pid) or process_name(pid)  # raysim::zygote, raysim::worker
        by_role[role] = round(by_role.get(role, 0.0) + kb / 1024, 1)
    return {"runtime": runtime_mb, "driver": pss_kb(os.getpid()) / 1024,
            "processes": len(pids), "by_process": by_role}


# ------------------------------------------------------------------------------------------
# Measurements


def bench_init(bench: Bench) -> None:
    """init and shutdown time, median of several cycles (the first one is also shown)."""
    inits, shutdowns = [], []
    for _ in range(bench.pick(5, 3)):
        start = time.perf_counter()
        ray.init(num_cpus=NUM_CPUS, _temp_dir=bench.temp_dir)
        try:
            inits.append(time.perf_counter() - start)
        finally:
            start = time.perf_counter()
            ray.shutdown()
            shutdowns.append(time.perf_counter() - start)
    emit("init_time", median(inits), "s", first=round(inits[0], 4), samples=rounded(inits))
    emit("shutdown_time", median(shutdowns), "s", samples=rounded(shutdowns))


def bench_memory(bench: Bench) -> None:
    """PSS right after init, and after 1 s (task workers are prestarted asynchronously)."""
    with bench.session() as ctx:
        now = runtime_memory(ctx)
        time.sleep(1.0)
        later = runtime_memory(ctx)
    for suffix, mem in (("", now), ("_1s", later)):
        emit(f"pss_runtime_after_init{suffix}", mem["runtime"], "MB",
             processes=mem["processes"], by_process=mem["by_process"])
        emit(f"pss_with_driver_after_init{suffix}", mem["runtime"] + mem["driver"], "MB",
             driver=round(mem["driver"], 1))


def bench_tasks(bench: Bench) -> None:
    """No-op task throughput: submit 2,000 tasks, then get them all."""
    n = 2000
    with bench.session():
        rate, rates = task_throughput_in_session(bench, n)
    emit("task_throughput", rate, "tasks/s", tasks=n, samples=rounded(rates, 1))


def bench_task_latency(bench: Bench) -> None:
    """Round trip of one no-op task at a time."""
    warmup, iterations = 50, bench.pick(500, 200)
    with bench.session():
        samples = latencies(lambda: ray.get(noop.remote()), warmup, iterations)
    emit("task_latency_median", ms(median(samples)), "ms", iterations=iterations)
    emit("task_latency_p99", ms(p99(samples)), "ms", iterations=iterations)


def bench_actor_latency(bench: Bench) -> None:
    """Round trip of one call at a time to one actor."""
    warmup, iterations = 50, bench.pick(500, 200)
    with bench.session():
        actor = Counter.remote()
        samples = latencies(lambda: ray.get(actor.m.remote()), warmup, iterations)
    emit("actor_latency_median", ms(median(samples)), "ms", iterations=iterations)
    emit("actor_latency_p99", ms(p99(samples)), "ms", iterations=iterations)


def bench_actor_throughput(bench: Bench) -> None:
    """Calls submitted round-robin to 4 actors, then all fetched."""
    n = bench.pick(4000, 2000)
    with bench.session():
        actors = [Counter.remote() for _ in range(4)]

        def call(i: int) -> Any:
            return actors[i % len(actors)].m.remote()

        timed_batch(call, 200)  # warm-up: every actor is alive
        rates = [n / timed_batch(call, n) for _ in range(bench.pick(5, 3))]
    emit("actor_throughput_4_actors", median(rates), "calls/s", calls=n,
         samples=rounded(rates, 1))


def bench_tracing(bench: Bench) -> None:
    """Task throughput with tracing off and on, sessions alternated to share the noise."""
    n = 2000
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(bench.pick(3, 1)):
        for mode in ("off", "on"):
            with bench.session(tracing=mode == "on"):
                rates[mode].append(task_throughput_in_session(bench, n)[0])
    off, on = median(rates["off"]), median(rates["on"])
    emit("task_throughput_tracing_off", off, "tasks/s", samples=rounded(rates["off"], 1))
    emit("task_throughput_tracing_on", on, "tasks/s", samples=rounded(rates["on"], 1))
    emit("tracing_overhead", (off - on) / off * 100, "%",
         definition="(off - on) / off, of task throughput")


def bench_shared_array(bench: Bench) -> None:
    """A 100 MB array put once, passed by ref to 10 tasks that each return its sum."""
    arr = np.arange(100 * MB // 8, dtype=np.float64)
    expected = float(arr.sum())
    walls, after_put = [], []
    with bench.session(object_store_memory=PUT_GET_STORE):
        for _ in range(1 + bench.pick(5, 2)):  # the first round is a warm-up
            start = time.perf_counter()
            ref = ray.put(arr)
            put_done = time.perf_counter()
            sums = ray.get([array_sum.remote(ref) for _ in range(10)], timeout=300)
            end = time.perf_counter()
            if sums != [expected] * 10:
                raise AssertionError(f"wrong sums: {sums[:3]}..., expected {expected}")
            walls.append(end - start)
            after_put.append(end - put_done)
            del ref
    emit("shared_array_10_tasks", median(walls[1:]), "s", tasks=10, array_mb=100,
         first=round(walls[0], 4), tasks_only=round(median(after_put[1:]), 4),
         samples=rounded(walls[1:]))


def put_get_one_size(label: str, nbytes: int, repeats: int) -> None:
    """Steady-state put throughput and get time of one array size.

    Two warm-up puts: the first put into fresh store pages pays their page faults, and a ref
    deleted just before the next put is freed asynchronously (driver -> GCS -> raylet), so
    that put usually lands in a second region; from the third put on, puts alternate
    between two regions whose pages are already mapped. ``get`` is timed right after the put
    (caches cold after a big copy) and again on the same ref (``get_again_ms``).
    """
    arr = np.arange(nbytes // 8, dtype=np.float64)
    warmups = []
    for _ in range(2):
        start = time.perf_counter()
        ref = ray.put(arr)
        warmups.append(time.perf_counter() - start)
        out = ray.get(ref)
        del out, ref
    puts, gets, gets_again, zero_copy = [], [], [], True
    for _ in range(repeats):
        start = time.perf_counter()
        ref = ray.put(arr)
        puts.append(time.perf_counter() - start)
        start = time.perf_counter()
        out = ray.get(ref)
        gets.append(time.perf_counter() - start)
        zero_copy = zero_copy and not out.flags.writeable
        if out.shape != arr.shape or out[-1] != arr[-1]:
            raise AssertionError(f"{label}: get returned a different array")
        del out
        start = time.perf_counter()
        out = ray.get(ref)
        gets_again.append(time.perf_counter() - start)
        del out, ref  # drop it before the next put, so the store can reuse its space
    emit(f"put_{label}", nbytes / median(puts) / GB, "GB/s", put_ms=round(ms(median(puts)), 4),
         warmup_put_ms=rounded([ms(w) for w in warmups], 3), repeats=repeats)
    emit(f"get_{label}", ms(median(gets)), "ms", zero_copy=zero_copy,
         get_again_ms=round(ms(median(gets_again)), 4), repeats=repeats)


def bench_put_get(bench: Bench) -> None:
    """put/get of numpy arrays of 1 KB, 1 MB, 100 MB and 1 GB."""
    sizes = [("1KB", 1024, bench.pick(200, 50)), ("1MB", MB, bench.pick(50, 20)),
             ("100MB", 100 * MB, bench.pick(9, 3)), ("1GB", GB, bench.pick(5, 3))]
    with bench.session(object_store_memory=PUT_GET_STORE):
        for label, nbytes, repeats in sizes:
            put_get_one_size(label, nbytes, repeats)


def bench_dataframe(bench: Bench) -> None:
    """put/get of a pandas DataFrame of 1e6 rows x 4 float columns (32 MB)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.random((1_000_000, 4)), columns=["a", "b", "c", "d"])
    puts, gets, zero_copy = [], [], True
    with bench.session(object_store_memory=PUT_GET_STORE):
        ref = ray.put(df)  # warm-up
        out = ray.get(ref)
        del out, ref
        for _ in range(bench.pick(7, 3)):
            start = time.perf_counter()
            ref = ray.put(df)
            puts.append(time.perf_counter() - start)
            start = time.perf_counter()
            out = ray.get(ref)
            gets.append(time.perf_counter() - start)
            zero_copy = zero_copy and not out["a"].to_numpy().flags.writeable
            if out.shape != df.shape:
                raise AssertionError(f"get returned a DataFrame of shape {out.shape}")
            del out, ref
    emit("dataframe_put", median(puts), "s", rows=len(df), columns=4, samples=rounded(puts))
    emit("dataframe_get", ms(median(gets)), "ms", zero_copy=zero_copy)


def run_process(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall time of a whole Python process, and its stdout."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n{proc.stderr}")
    return wall, proc.stdout


def init_to_get_from_trace(stdout: str) -> float | None:
    """Seconds from the start of ``init`` to the driver's last event of its last ``get``."""
    marker = "trace written to "
    paths = [line[len(marker):].strip() for line in stdout.splitlines()
             if line.startswith(marker)]
    if not paths or not os.path.exists(paths[-1]):
        return None
    init_ts, get_phase, get_end = None, None, None
    events = []
    with open(paths[-1], "rb") as f:
        for line in f:
            events.append(json.loads(line))
    for ev in events:
        if ev["ev"] == "phase.begin" and ev.get("api") == "init":
            init_ts = ev["ts"]
        elif ev["ev"] == "phase.begin" and ev.get("api") == "get":
            get_phase = ev["phase"]
    for ev in events:
        if ev["proc"] == "driver" and ev.get("phase") == get_phase and get_phase is not None:
            get_end = max(get_end or 0, ev["ts"])
    if init_ts is None or get_end is None:
        return None
    return (get_end - init_ts) / 1e9


def bench_seed_example(bench: Bench) -> None:
    """The founding example as a whole process, against a bare ``import pandas, numpy``."""
    env = dict(os.environ, RAYSIM_TEMP_DIR=bench.temp_dir)
    example = [sys.executable, SEED_EXAMPLE]
    baseline = [sys.executable, "-c", "import pandas, numpy"]
    run_process(example, env)  # warm-up: page cache, and the data files on a first run
    run_process(baseline, env)
    repeats = bench.pick(5, 3)
    walls, base, in_trace = [], [], []
    for _ in range(repeats):  # alternate, so both see the same background load
        wall, stdout = run_process(example, env)
        walls.append(wall)
        traced = init_to_get_from_trace(stdout)
        if traced is not None:
            in_trace.append(traced)
        base.append(run_process(baseline, env)[0])
    emit("seed_example_wall", median(walls), "s", samples=rounded(walls))
    emit("import_pandas_numpy_wall", median(base), "s", samples=rounded(base))
    emit("seed_example_minus_imports", median(walls) - median(base), "s")
    emit("seed_example_init_to_get", median(in_trace) if in_trace else None, "s",
         how="trace: init's phase.begin to the driver's last event of the get phase")


MEASUREMENTS: dict[str, Callable[[Bench], None]] = {
    "init": bench_init,
    "memory": bench_memory,
    "tasks": bench_tasks,
    "task_latency": bench_task_latency,
    "actor_latency": bench_actor_latency,
    "actor_throughput": bench_actor_throughput,
    "tracing": bench_tracing,
    "shared_array": bench_shared_array,
    "put_get": bench_put_get,
    "dataframe": bench_dataframe,
    "seed_example": bench_seed_example,
}


# ------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats; the whole run takes under a minute")
    parser.add_argument("--only", metavar="NAME[,NAME]",
                        help="measurements to run, of: " + ", ".join(MEASUREMENTS))
    args = parser.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in MEASUREMENTS]
        if unknown:
            parser.error(f"unknown measurement(s) {unknown}; choose from "
                         f"{', '.join(MEASUREMENTS)}")
        args.names = names
    else:
        args.names = list(MEASUREMENTS)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    temp_dir = tempfile.mkdtemp(prefix="rsbench-")
    bench = Bench(args.quick, temp_dir)
    failed = False
    try:
        for name in args.names:
            start = time.perf_counter()
            try:
                MEASUREMENTS[name](bench)
            except Exception as e:
                failed = True
                traceback.print_exc()
                print(json.dumps({"name": name, "error": f"{type(e).__name__}: {e}"}),
                      flush=True)
                if ray.is_initialized():  # never leave a session behind for the next one
                    ray.shutdown()
            print(f"# {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        if bench.leftovers:
            failed = True
            print(json.dumps({"name": "leftover_processes", "error": "runtime processes "
                              "still alive after shutdown", "processes": bench.leftovers}),
                  flush=True)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
