"""Measuring what raysim's simulator must predict: three programs on a three-node cluster whose
links the kernel shapes, each traced, then set beside the model's prediction for that trace.

The runtime's nodes all live on this machine and talk over loopback, which moves gigabytes a
second with microseconds of latency: no network a cluster has. So the benchmark gives each
node's object manager a link of known speed (``model_links.py``): in a network namespace of
its own, ``htb`` on ``lo`` limits each node's *egress* (the bytes its object manager sends,
which is how objects flow: the holder streams, the puller reads) to ``--rates`` (1 Gbit/s,
then 200 Mbit/s), and shares it fairly among the node's flows (a stochastic fair queue made
of ``htb`` children, as the model's max-min sharing assumes). The kernel here has no
``netem``, so no delay is added: latency stays loopback's, measured and given to the model as
it is. Ingress is not shaped (which node pulls cannot be told from a packet: its destination
port is any ephemeral one), so the model is asked for unlimited ingress when it has the
option (``SimConfig.ingress_bps``); without it, it limits ingress too, and the report says so.

How the ports are known before any transfer: each node is given its port
(``Cluster.add_node(object_manager_port=...)``, Ray's option of that name). Reading them from
the GCS node table once the cluster is up would not do for the founding example, whose first
transfers follow its own ``ray.init()`` at once; fixed ports also let the filters exist before
the cluster does. They lie below the kernel's ephemeral range (32768-60999), so no outgoing
connection's source port can be taken for a node's.

The programs (``model_programs.py``; ``--quick``: smaller), each on a fresh 3-node cluster,
traced to ``--out``: ``seed`` (``examples/seed_example.py``), ``broadcast`` (one 200 MB array
read on every node: two pulls share the head's link) and ``tasks`` (24 tasks of 0.2 s, each
taking a 1 MB argument from the head and returning 1 MB, on the two worker nodes, one CPU
each: task-bound, and leaving CPU for the object managers).

For each run it prints the makespan (as ``raysim.sim`` counts it: from the driver's first
call after ``init`` to its ``shutdown``), every transfer of 1 MB or more (measured duration:
``object_manager.pulled``'s dur, from connecting to the holder to the last chunk written;
with how many other transfers from the same holder overlapped it), and, if
``raysim.sim.simulate`` exists, the model's figures beside them with the relative error, then
the median errors (targets: 10 % for transfers, 25 % for makespans), for transfers also
apart for those that ran alone and those that overlapped. It checks the shaping too: one TCP
stream through a class must come out near its rate, two at once near half each, and the
bytes each node's class carried must match what was pulled from that node.

Where each part runs:

* ``python benchmarks/bench_model.py`` (root, the host's namespace) removes namespaces left by
  runs that died, creates ``raysim-bench-<pid>``, brings its ``lo`` up, re-runs itself
  inside with ``--inside``, removes the namespace whatever happens, then prints the report;
* ``--inside`` (in the namespace) installs the qdisc, measures latency and the shaped rate,
  and runs each program as a child process (``--program``), which is the driver of its
  cluster; it writes ``manifest.json`` beside the traces;
* ``--report DIR`` (anywhere, no root) prints the report again from a manifest and its
  traces: the model can be checked again without measuring again.

Takes about 45 s on this 2-core machine (``--quick``: 10 s). Needs root, ``ip`` and
``tc`` (iproute2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # its sibling modules

import model_links as links  # noqa: E402
from model_programs import NODES, REPO, run_program  # noqa: E402

MB = 1_000_000
_LARGE = MB  # transfers at least this big are listed and scored
_PROGRAM_TIMEOUT_S = 150.0  # a run that takes longer is stopped (SIGINT, then SIGKILL)
_GRACE_S = 20.0  # how long a child stopped with SIGINT may take to shut its cluster down
_TARGETS = {"transfers": 0.10, "makespans": 0.25}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.program:
            return run_program(args.program, args.trace, args.size, args.count)
        if args.inside:
            return measure(args)
        if args.report:
            return report(args.report)
        return outside(args)
    except KeyboardInterrupt:  # every process of the run got it; each cleaned up its part
        if not (args.program or args.inside):
            print("bench_model.py: interrupted; the namespace and its processes are gone",
                  file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Measure three programs on a 3-node raysim cluster with kernel-shaped "
                    "links (in a network namespace of its own; needs root), and compare "
                    "them with raysim.sim's predictions.")
    parser.add_argument("--quick", action="store_true",
                        help="smaller programs (50 MB broadcast, 12 tasks) at the first rate "
                             "only: a fast check")
    parser.add_argument("--rates", default=None, metavar="MBIT,...",
                        help="link rates in Mbit/s, one run of every program each "
                             "(default 1000,200; --quick: 1000)")
    parser.add_argument("--out", default="/tmp/raysim-bench-model",
                        help="where traces, logs and manifest.json are kept "
                             "(default %(default)s)")
    parser.add_argument("--report", metavar="DIR",
                        help="print the report of a run already made into DIR (no root)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--program", help=argparse.SUPPRESS)
    parser.add_argument("--trace", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def _rates_bps(args: argparse.Namespace) -> list[int]:
    text = args.rates or ("1000" if args.quick else "1000,200")
    try:
        rates = [int(float(part) * 1e6) for part in text.split(",")]
    except ValueError:
        rates = []
    if not rates or min(rates) <= 0:
        print(f"bench_model.py: --rates {text!r} is not a list of rates. Tip: give Mbit/s "
              f"separated by commas, e.g. --rates 1000,200.", file=sys.stderr)
        raise SystemExit(2)
    return rates


# ----------------------------------------------------------------------------------------
# Outside: the namespace (host namespace, root)


def outside(args: argparse.Namespace) -> int:
    problem = links.missing_requirement()
    if problem:
        print(f"bench_model.py: {problem}", file=sys.stderr)
        return 2
    _rates_bps(args)  # a bad --rates is refused before anything is made
    args.out = os.path.abspath(args.out)
    os.makedirs(args.out, exist_ok=True)
    links.remove_stale_namespaces()
    name = f"{links.NAMESPACE_PREFIX}{os.getpid()}"
    command = [sys.executable, os.path.abspath(__file__), "--inside", "--out", args.out,
               "--rates", ",".join(str(r / 1e6) for r in _rates_bps(args))]
    command += ["--quick"] if args.quick else []
    with links.namespace(name):
        print(f"network namespace {name}: lo up; measuring inside it", flush=True)
        code = run_child(["ip", "netns", "exec", name, *command], timeout_s=600)
    if code != 0:
        print(f"bench_model.py: the measurements inside the namespace failed (exit {code}); "
              f"their logs are in {args.out}.", file=sys.stderr)
        return 1
    return report(args.out)


def run_child(command: list[str], timeout_s: float, **popen) -> int:
    """Run ``command`` and return its exit code. On Ctrl-C (which the child gets too) or
    past ``timeout_s`` (then it is sent SIGINT), it has ``_GRACE_S`` to shut its cluster
    down before it is killed."""
    child = subprocess.Popen(command, **popen)
    try:
        return child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        print(f"warning: {command[-1]!r} ran past {timeout_s:.0f} s; stopping it",
              file=sys.stderr)
        child.send_signal(signal.SIGINT)
        _wait_or_kill(child)
        return -1
    except KeyboardInterrupt:
        _wait_or_kill(child)
        raise


def _wait_or_kill(child: subprocess.Popen) -> None:
    try:
        child.wait(timeout=_GRACE_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=_GRACE_S)


# ----------------------------------------------------------------------------------------
# Inside the namespace: shaping, calibration, the runs


def measure(args: argparse.Namespace) -> int:
    rates = _rates_bps(args)
    ports = [links.PORT_BASE + i for i in range(NODES)]
    programs = [("seed", 0, 0), ("broadcast", (50 if args.quick else 200) * MB, 0),
                ("tasks", MB, 12 if args.quick else 24)]
    manifest = {"latency_s": links.loopback_latency(), "nodes": NODES,
                "queues": links.QUEUES, "runs": []}
    print(f"loopback latency (one way, median of TCP round trips / 2): "
          f"{manifest['latency_s'] * 1e6:.1f} us", flush=True)
    # Session directories (sockets) away from the traces: short paths, removed at the end.
    sessions = tempfile.mkdtemp(prefix="raysim-bench-model-")
    env = dict(os.environ, RAYSIM_TEMP_DIR=sessions)
    try:
        for rate in rates:
            links.shape(rate, ports + [links.CALIBRATION_PORT])
            calibration = calibrate(rate)
            for program, size, count in programs:
                run = run_measured(program, size, count, rate, ports, args.out, env)
                run.update(calibration)
                manifest["runs"].append(run)
                if run["exit_code"] != 0:
                    return 1
    finally:
        links.unshape()
        shutil.rmtree(sessions, ignore_errors=True)
        with open(os.path.join(args.out, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
    return 0


def calibrate(rate: int) -> dict:
    """The shaping checked: one stream alone, a 1 MB one, and two at once through one class."""
    size = max(10 * MB, rate // 16)  # 0.5 s alone
    achieved = links.tcp_rate(links.CALIBRATION_PORT, size)
    short = statistics.median(links.tcp_rate(links.CALIBRATION_PORT, MB) for _ in range(5))
    two = links.tcp_rates(links.CALIBRATION_PORT, size, streams=2)
    print(f"shaping at {rate / 1e9:.3f} Gbit/s: one TCP stream achieves "
          f"{achieved / 1e9:.3f} Gbit/s ({achieved / rate:.1%} of the rate set); a 1 MB one, "
          f"from connecting to its last byte, {short / 1e9:.3f} ({short / rate:.1%}); two at "
          f"once {two[0][0] / 1e9:.3f} and {two[1][0] / 1e9:.3f} ({two[0][0] / rate:.1%} and "
          f"{two[1][0] / rate:.1%}; queues {two[0][1]} and {two[1][1]} of "
          f"{links.QUEUES})", flush=True)
    return {"achieved_bps": achieved, "achieved_1mb_bps": short,
            "two_streams_bps": [r for r, _ in two], "two_streams_queues": [q for _, q in two]}


def run_measured(program: str, size: int, count: int, rate: int, ports: list[int],
                 out_dir: str, env: dict) -> dict:
    label = f"{program}-{rate // 1_000_000}mbit"
    trace = os.path.abspath(os.path.join(out_dir, f"{label}.jsonl"))
    log = os.path.join(out_dir, f"{label}.log")
    before = links.class_bytes()
    started = time.perf_counter()
    with open(log, "w") as f:
        code = run_child([sys.executable, os.path.abspath(__file__), "--program", program,
                          "--trace", trace, "--size", str(size), "--count", str(count)],
                         _PROGRAM_TIMEOUT_S, stdout=f, stderr=subprocess.STDOUT, env=env,
                         cwd=REPO)
    wall = time.perf_counter() - started
    after = links.class_bytes()

    def sent(cls: str) -> int:
        return after.get(cls, 0) - before.get(cls, 0)

    shaped = {str(port): sent(links.classid(i)) for i, port in enumerate(ports)}
    # Per port, the bytes of each child queue that carried any, most first.
    queues = {str(port): sorted((b for b in (sent(links.child_classid(i, q))
                                             for q in range(links.QUEUES)) if b),
                                reverse=True)
              for i, port in enumerate(ports)}
    print(f"  {label}: {wall:.1f} s (with the cluster's start and stop), exit {code}",
          flush=True)
    if code != 0:
        with open(log) as f:
            print(f"  its output ({log}):\n" + f.read()[-4000:], file=sys.stderr)
    return {"program": program, "rate_bps": rate, "trace": trace, "log": log,
            "exit_code": code, "wall_s": wall, "class_bytes": shaped, "queue_bytes": queues}


# ----------------------------------------------------------------------------------------
# The report: measured against predicted (anywhere, from the manifest and the traces)


def report(out_dir: str) -> int:
    try:
        with open(os.path.join(out_dir, "manifest.json")) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        print(f"bench_model.py: no manifest.json in {out_dir}. Tip: run the benchmark (as "
              f"root) with --out {out_dir} first.", file=sys.stderr)
        return 2
    model, why = _model()
    print(f"n0 is the head node (the driver's). Each node's egress (what its object manager "
          f"sends) is shaped to the run's rate and shared fairly by its flows "
          f"({manifest.get('queues', 1)} htb queues per node); ingress is not shaped. Latency "
          f"is loopback's, {manifest['latency_s'] * 1e6:.1f} us one way.")
    if model is not None:
        print("model: ingress unlimited (ingress_bps=inf), as shaped" if model[2] else
              "model limits ingress too (its SimConfig has no ingress_bps yet): a node "
              "pulling from two others at once is slower in the model than here")
    errors: dict[str, list[float]] = {"transfers": [], "makespans": [], "alone": [],
                                      "overlapped": []}
    for run in manifest["runs"]:
        if run["exit_code"] == 0:
            _report_run(run, manifest, model, errors)
    print("\n== measured vs model")
    if model is None:
        print(f"model not available ({why})")
        return 0
    for what in ("transfers", "makespans"):
        values = errors[what]
        if values:
            median = statistics.median(values)
            verdict = "met" if median <= _TARGETS[what] else "NOT met"
            print(f"{what}: median |error| {median:.1%} over {len(values)} "
                  f"(target <= {_TARGETS[what]:.0%}): {verdict}")
        else:
            print(f"{what}: nothing to compare")
    for what, text in (("alone", "alone (no other pull from its holder at the time)"),
                       ("overlapped", "overlapped by others from the same holder")):
        values = errors[what]
        print(f"  transfers {text}: " + (f"median |error| {statistics.median(values):.1%} "
                                         f"over {len(values)}" if values else "none"))
    return 0


def _model():
    """(``raysim.sim.simulate``, ``SimConfig``, whether it has ``ingress_bps``), or None
    and why not."""
    try:
        from raysim.sim import SimConfig, simulate
    except (ImportError, AttributeError) as e:
        return None, f"{type(e).__name__}: {e}"
    has_ingress = "ingress_bps" in {f.name for f in dataclasses.fields(SimConfig)}
    return (simulate, SimConfig, has_ingress), None


def measured(trace_path: str) -> dict:
    """A run's makespan (as the model counts it), nodes and transfers, from its trace."""
    from raysim import trace

    records = trace.load(trace_path).records
    driver = records[0]["pid"]
    nodes = [e for e in records if e["ev"] == "node.registered"]
    begins = [e for e in records if e["ev"] == "phase.begin" and e["pid"] == driver]
    if begins and begins[0]["api"] == "init":
        begins = begins[1:]
    last = max(e["ts"] for e in records if e["pid"] == driver)
    end = next((e["ts"] for e in begins if e["api"] == "shutdown"), last)
    transfers = [{"obj": e["obj"], "from_node": e["from_node"], "to_node": e["node"],
                  "size": e["size"], "dur_s": e["dur"] / 1e9, "start": e["ts"] - e["dur"],
                  "end": e["ts"]}
                 for e in records if e["ev"] == "object_manager.pulled"]
    for t in transfers:  # how many others from its holder ran at some time during it
        t["overlaps"] = sum(1 for o in transfers if o is not t and
                            o["from_node"] == t["from_node"] and o["start"] < t["end"] and
                            t["start"] < o["end"])
    ports = {e["node_id"]: int((e.get("object_manager") or ":0").rsplit(":", 1)[1])
             for e in nodes}
    base = links.PORT_BASE
    return {"makespan_s": (end - begins[0]["ts"]) / 1e9 if begins else 0.0,
            "ports": ports, "transfers": transfers,
            # n<i>: the node whose object manager listens on PORT_BASE + i (n0: the head)
            "labels": {node: f"n{port - base}" if 0 <= port - base < NODES else node
                       for node, port in ports.items()}}


def _report_run(run: dict, manifest: dict, model, errors: dict[str, list[float]]) -> None:
    facts = measured(run["trace"])
    print(f"\n== {run['program']} at {run['rate_bps'] / 1e9:.3f} Gbit/s  ({run['trace']})")
    predicted = _predict(model, run, manifest)
    line = f"makespan: {facts['makespan_s']:.3f} s measured"
    if predicted is not None:
        error = _error(predicted.makespan_s, facts["makespan_s"])
        errors["makespans"].append(abs(error))
        line += f", {predicted.makespan_s:.3f} s predicted ({error:+.1%})"
    print(line)
    large = [t for t in facts["transfers"] if t["size"] >= _LARGE]
    small = [t for t in facts["transfers"] if t["size"] < _LARGE]
    print(f"transfers >= 1 MB: {len(large)}; smaller: {len(small)} "
          f"({sum(t['size'] for t in small) / MB:.2f} MB in all); 'with': how many other "
          f"transfers (any size) from the same holder overlapped it")
    if large:
        print(f"  {'obj':<20} {'from->to':<8} {'MB':>7} {'with':>4} {'ms':>8} {'Gbit/s':>7}"
              + (f" {'model ms':>9} {'error':>7}" if predicted is not None else ""))
    by_key = ({(t.obj, t.to_node): t for t in predicted.transfers}
              if predicted is not None else {})
    labels = facts["labels"]
    for t in sorted(large, key=lambda t: t["start"]):
        link = f"{labels.get(t['from_node'], '?')}->{labels.get(t['to_node'], '?')}"
        text = (f"  {t['obj']:<20} {link:<8} {t['size'] / MB:>7.2f} {t['overlaps']:>4} "
                f"{t['dur_s'] * 1e3:>8.1f} {t['size'] * 8 / t['dur_s'] / 1e9:>7.3f}")
        guess = by_key.get((t["obj"], t["to_node"]))
        if guess is not None:
            error = _error(guess.end_s - guess.start_s, t["dur_s"])
            errors["transfers"].append(abs(error))
            errors["overlapped" if t["overlaps"] else "alone"].append(abs(error))
            text += f" {(guess.end_s - guess.start_s) * 1e3:>9.1f} {error:>+7.1%}"
        elif predicted is not None:
            text += f" {'(none)':>9}"
        print(text)
    _check_shaping(run, facts)


def _predict(model, run: dict, manifest: dict):
    if model is None:
        return None
    simulate, config, has_ingress = model
    # As shaped: egress limited, ingress not (where the model can be told so).
    extra = {"ingress_bps": float("inf")} if has_ingress else {}
    try:
        return simulate(run["trace"], config(
            nodes=manifest["nodes"], bandwidth_bps=run["rate_bps"],
            latency_s=manifest["latency_s"], placement="recorded", **extra))
    except Exception as e:  # the model is work in progress: say so, keep reporting
        print(f"model failed on this trace: {type(e).__name__}: {e}")
        return None


def _error(predicted: float, measured_value: float) -> float:
    return (predicted - measured_value) / measured_value if measured_value else 0.0


def _check_shaping(run: dict, facts: dict) -> None:
    """One stream must come out near the rate set, two at once near half each, and each
    node's class must have carried what was pulled from that node."""
    achieved = run["achieved_bps"] / run["rate_bps"]
    if not 0.9 <= achieved <= 1.1:
        print(f"warning: one shaped TCP stream achieved {achieved:.0%} of the rate set: "
              f"the shaping is off, these figures measure something else")
    shares = [r / run["rate_bps"] for r in run.get("two_streams_bps", [])]
    if shares and not all(0.4 <= share <= 0.6 for share in shares):
        print(f"warning: two shaped TCP streams at once achieved "
              f"{' and '.join(f'{s:.0%}' for s in shares)} of the rate set, not half each: "
              f"a node's flows do not share its link fairly")
    for node, port in facts["ports"].items():
        sent = sum(t["size"] for t in facts["transfers"] if t["from_node"] == node)
        carried = run["class_bytes"].get(str(port), 0)
        if sent >= _LARGE and carried < 0.95 * sent:
            print(f"warning: {sent / MB:.1f} MB were pulled from {facts['labels'][node]} "
                  f"(port {port}) but its shaped class carried {carried / MB:.1f} MB: the "
                  f"filter missed its traffic")
        elif sent:
            # While at least one pull from it was under way (seen by the pullers).
            busy = _union_s([(t["start"], t["end"])
                             for t in facts["transfers"] if t["from_node"] == node])
            rate = (f", {sent * 8 / busy / 1e9:.3f} Gbit/s while pulled from"
                    if sent >= 10 * MB and busy else "")
            queues = run.get("queue_bytes", {}).get(str(port), [])
            busiest = (f"; {sum(b >= _LARGE for b in queues)} of its queues carried >= 1 MB, "
                       f"the busiest {queues[0] / MB:.2f} MB" if sent >= _LARGE else "")
            print(f"  shaped: {facts['labels'][node]} sent {sent / MB:.2f} MB of objects "
                  f"from port {port}{rate}; its class carried {carried / MB:.2f} MB{busiest}")


def _union_s(spans: list[tuple[int, int]]) -> float:
    """Seconds covered by at least one of the (start, end) spans, in ns."""
    total, reached = 0, None
    for start, end in sorted(spans):
        if reached is None or start > reached:
            total += end - start
            reached = end
        elif end > reached:
            total += end - reached
            reached = end
    return total / 1e9


if __name__ == "__main__":
    sys.exit(main())
