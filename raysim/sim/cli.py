"""``raysim simulate`` and ``raysim calibrate``: the model from the command line.

``raysim simulate TRACE --nodes N --bandwidth 10Gbit/s --latency 0.2ms [--cpus-per-node K]
[--placement policy|recorded] [--link A-B=BW/LAT ...] [--calibration FILE] [--out DIR]``
replays TRACE on the cluster described, writes the simulated trace to ``DIR/trace.jsonl``
(``raysim replay`` and every view read it), and prints measured and simulated times side
by side, per driver call (like calls merged), with the resource that bounded each.

``raysim calibrate TRACE [-o FILE]`` fits the model's local costs from a measured trace and
prints each parameter with its error; ``simulate --calibration FILE`` uses them.

Runs in: the ``raysim`` command (``raysim/cli.py`` hands these two over).
"""

from __future__ import annotations

import os
import sys
import time

# Rows of the side-by-side shown without --all.
_ROWS_SHOWN = 30


def add_parsers(commands) -> None:
    simulate = commands.add_parser(
        "simulate", help="replay a trace on a simulated cluster (the SimPy model)",
        description="Replay TRACE's tasks, actors and objects on a simulated cluster of N "
                    "nodes whose NICs have the bandwidth and latency given (transfers share "
                    "them fairly), write the simulated trace to DIR/trace.jsonl and print "
                    "measured and simulated times side by side. See docs/model.md.")
    simulate.add_argument("trace", metavar="TRACE", help="a trace.jsonl written by raysim")
    simulate.add_argument("--nodes", type=int, metavar="N",
                          help="nodes to simulate (default: as many as the recorded run)")
    simulate.add_argument("--bandwidth", default="10Gbit/s", metavar="BW",
                          help="each node's NIC, each way, e.g. 10Gbit/s or 100Mbit/s "
                               "(default: 10Gbit/s)")
    simulate.add_argument("--ingress-bandwidth", metavar="BW",
                          help="each node's NIC inbound, if not --bandwidth; 'unlimited' "
                               "for links shaped on the sending side only")
    simulate.add_argument("--latency", default="0.2ms", metavar="T",
                          help="one-way latency between two nodes, e.g. 0.2ms or 50us "
                               "(default: 0.2ms)")
    simulate.add_argument("--cpus-per-node", type=float, metavar="K",
                          help="CPUs of every node (default: each node as recorded)")
    simulate.add_argument("--placement", choices=("policy", "recorded"), default="policy",
                          help="policy: place tasks by the runtime's rules (local first, "
                               "spillback when full, custom resources pin); recorded: where "
                               "they ran (default: policy)")
    simulate.add_argument("--link", action="append", default=[], metavar="A-B=BW/LAT",
                          help="a link of its own between nodes A and B (indexes, 0 is the "
                               "head), e.g. 0-2=1Gbit/s/2ms; may be repeated")
    simulate.add_argument("--calibration", metavar="FILE",
                          help="local costs from raysim calibrate (default: fitted from TRACE)")
    simulate.add_argument("--out", default="raysim-sim", metavar="DIR",
                          help="directory for the simulated trace.jsonl (default: ./raysim-sim)")
    simulate.add_argument("--all", action="store_true", dest="show_all",
                          help="show every row of the side-by-side")
    calibrate = commands.add_parser(
        "calibrate", help="fit the model's local costs from a measured trace",
        description="Fit the model's local costs (control messages by process kind, store "
                    "write bandwidth, chunk handling, serialization) from TRACE and print "
                    "each with its error.")
    calibrate.add_argument("trace", metavar="TRACE", help="a trace.jsonl written by raysim")
    calibrate.add_argument("-o", "--output", metavar="FILE",
                           help="write the parameters here, for simulate --calibration")


def simulate_command(options) -> int:
    from raysim.sim import SimConfig, simulate
    from raysim.sim.config import Calibration, parse_bandwidth, parse_duration

    try:
        links = dict(_parse_link(text) for text in options.link)
        config = SimConfig(
            nodes=options.nodes, bandwidth_bps=parse_bandwidth(options.bandwidth),
            latency_s=parse_duration(options.latency), cpus_per_node=options.cpus_per_node,
            ingress_bps=_ingress(options.ingress_bandwidth),
            placement=options.placement, links=links,
            calibration=Calibration.load(options.calibration) if options.calibration else None)
        nodes = options.nodes
        for a, b in links:
            if nodes is not None and max(a, b) >= nodes:
                raise ValueError(f"--link {a}-{b} names a node past the {nodes} simulated")
    except ValueError as e:
        print(f"raysim: error: {e}", file=sys.stderr)
        return 2
    trace = _trace_or_say(options.trace)
    if trace is None:
        return 1
    began = time.perf_counter()
    try:
        result = simulate(trace.records, config)
    except ValueError as e:
        print(f"raysim: error: {e}", file=sys.stderr)
        return 1
    took = time.perf_counter() - began
    out_dir = os.path.abspath(options.out)
    try:
        os.makedirs(out_dir, exist_ok=True)
        result.write(os.path.join(out_dir, "trace.jsonl"))
    except OSError as e:
        print(f"raysim: error: cannot write to {out_dir!r}: {e.strerror}", file=sys.stderr)
        return 1
    _print_report(result, config, options.show_all, trace.labels())
    print(f"raysim: simulated in {took:.2f} s; trace written to "
          f"{os.path.join(out_dir, 'trace.jsonl')}", file=sys.stderr)
    return 0


def calibrate_command(options) -> int:
    from raysim.sim import calibrate

    trace = _trace_or_say(options.trace)
    if trace is None:
        return 1
    calibration = calibrate.fit(trace.records, source=os.path.abspath(options.trace))
    print("Fitted from", options.trace)
    for key, value in sorted(calibration.message_s.items()):
        error = calibration.errors.get(f"message_s[{key}]")
        print(f"  message {key:22} {value * 1e6:10.1f} us   ±{_pct(error)}")
    for name, value, unit in (("store_write_Bps", calibration.store_write_Bps / 1e9, "GB/s"),
                              ("chunk_overhead_s", calibration.chunk_overhead_s * 1e6, "us"),
                              ("serialize_Bps", calibration.serialize_Bps / 1e9, "GB/s")):
        error = calibration.errors.get(name)
        note = f"±{_pct(error)}" if error is not None else "(default: not in this trace)"
        print(f"  {name:30} {value:10.2f} {unit:4}  {note}")
    if options.output:
        try:
            calibration.save(options.output)
        except OSError as e:
            print(f"raysim: error: cannot write {options.output!r}: {e.strerror}",
                  file=sys.stderr)
            return 1
        print(f"raysim: calibration written to {options.output}", file=sys.stderr)
    return 0


def _ingress(text: str | None) -> float | None:
    from raysim.sim.config import parse_bandwidth

    if text is None:
        return None
    return float("inf") if text.strip().lower() == "unlimited" else parse_bandwidth(text)


def _pct(error: float | None) -> str:
    return "?" if error is None else f"{error * 100:.0f}%"


def _parse_link(text: str) -> tuple[tuple[int, int], tuple[float, float]]:
    from raysim.sim.config import parse_bandwidth, parse_duration

    try:
        pair, spec = text.split("=", 1)
        a, b = (int(x) for x in pair.split("-"))
        bandwidth, latency = spec.rsplit("/", 1)
        if a == b or min(a, b) < 0:
            raise ValueError
        return (min(a, b), max(a, b)), (parse_bandwidth(bandwidth), parse_duration(latency))
    except ValueError as e:
        detail = f" ({e})" if str(e) else ""
        raise ValueError(f"cannot read --link {text!r}{detail}. Tip: write it like "
                         f"0-2=1Gbit/s/2ms (two different node indexes, 0 is the head)") \
            from None


def _trace_or_say(path: str):
    """The loaded trace, or None after saying why it cannot be."""
    from raysim.trace import load

    if not os.path.isfile(path):
        print(f"raysim: error: no trace file {path!r}", file=sys.stderr)
        return None
    try:
        return load(path)
    except (ValueError, OSError) as e:
        print(f"raysim: error: {e}", file=sys.stderr)
        return None


def _print_report(result, config, show_all: bool, labels) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    nodes = len(result.nodes)
    console.print(f"Simulated on {nodes} node(s), {config.bandwidth_bps / 1e9:g} Gbit/s NICs, "
                  f"{config.latency_s * 1e3:g} ms latency, placement {config.placement}.")
    table = Table(title="Measured and simulated, per driver call")
    for column, justify in (("driver call", "left"), ("calls", "right"),
                            ("measured", "right"), ("simulated", "right"),
                            ("bounded by", "left")):
        table.add_column(column, justify=justify)
    rows = result.rows if show_all else result.rows[:_ROWS_SHOWN]
    for row in rows:
        table.add_row(row.what, str(row.calls), _seconds(row.measured_s),
                      _seconds(row.simulated_s), row.bound_by)
    if len(rows) < len(result.rows):
        table.add_row(f"... {len(result.rows) - len(rows)} more rows (--all shows them)",
                      "", "", "", "")
    table.add_row("makespan", "", _seconds(result.measured_makespan_s),
                  _seconds(result.makespan_s), "", style="bold")
    console.print(table)
    moved = sum(t.size for t in result.transfers)
    if result.transfers:
        slowest = max(result.transfers, key=lambda t: t.end_s - t.start_s)
        # Nodes named as the views name them: the head node1, the others in order.
        names = {node_id: f"node{i}" for i, node_id in enumerate(result.nodes, 1)}
        console.print(f"{len(result.transfers)} transfer(s) between nodes, {moved / 1e6:.1f} MB "
                      f"in all; the longest: {labels.obj(slowest.obj)} "
                      f"{names[slowest.from_node]} -> {names[slowest.to_node]}, "
                      f"{slowest.size / 1e6:.1f} MB in "
                      f"{_seconds(slowest.end_s - slowest.start_s)}.")
    else:
        console.print("No transfers between nodes.")


def _seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} us"
