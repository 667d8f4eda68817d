"""raysim's model: a recorded run replayed on a simulated cluster you do not have.

``simulate(trace, SimConfig(nodes=3, bandwidth_bps=10e9, latency_s=200e-6))`` replays the
task, actor and object graph of a trace (``workload.py``) on SimPy nodes whose NICs are
shared fairly by transfers (``network.py``, ``model.py``), with local costs fitted from a
measured trace (``calibrate.py``), and returns the simulated trace (same schema: every view
shows it), the transfers, and a side-by-side of measured and simulated times.

``raysim simulate TRACE`` and ``raysim calibrate TRACE`` are its command line;
``docs/model.md`` says what it includes, leaves out, and how it was validated.

Runs in: any process; it needs the trace only, never the runtime.
"""

from __future__ import annotations

import dataclasses
import itertools
import os

from raysim.sim import calibrate as _calibrate
from raysim.sim.config import Calibration, SimConfig, parse_bandwidth, parse_duration
from raysim.sim.model import Model, Transfer
from raysim.sim.output import Recorder, Row, bound_by
from raysim.sim.workload import Workload, from_records

__all__ = ["Calibration", "SimConfig", "SimResult", "Transfer", "parse_bandwidth",
           "parse_duration", "simulate"]


@dataclasses.dataclass
class SimResult:
    records: list[dict]  # the simulated trace, header first
    makespan_s: float  # simulated: from the first call after init to the last call's end
    measured_makespan_s: float
    transfers: list[Transfer]
    rows: list[Row]  # the side-by-side, like calls merged
    nodes: list[str]
    calibration: Calibration
    workload: Workload

    def write(self, path: str) -> None:
        import orjson
        with open(path, "wb") as f:
            for record in self.records:
                f.write(orjson.dumps(record))
                f.write(b"\n")


def simulate(trace, config: SimConfig | None = None) -> SimResult:
    """Replay ``trace`` (a path, or its records) on the cluster ``config`` describes."""
    config = config or SimConfig()
    records = _records(trace)
    workload = from_records(records)
    calibration = config.calibration or _calibrate.fit(records)
    recorder = Recorder(workload.header, workload.start_ts, _describe(config, calibration))
    model = Model(workload, config, calibration, recorder)
    model.run()
    rows = _rows(workload, model)
    return SimResult(recorder.records(), model.end_s, workload.makespan_s, model.transfers,
                     rows, [n.node_id for n in model.nodes], calibration, workload)


def _records(trace) -> list[dict]:
    if isinstance(trace, (str, os.PathLike)):
        from raysim.trace import load
        return load(trace).records
    return list(trace)


def _describe(config: SimConfig, calibration: Calibration) -> dict:
    return {"nodes": config.nodes, "bandwidth_bps": config.bandwidth_bps,
            "latency_s": config.latency_s, "cpus_per_node": config.cpus_per_node,
            "ingress_bps": ("unlimited" if config.ingress_bps == float("inf")
                            else config.ingress_bps),
            "placement": config.placement,
            "links": {f"{a}-{b}": list(v) for (a, b), v in config.links.items()},
            "store_write_Bps": calibration.store_write_Bps,
            "chunk_overhead_s": calibration.chunk_overhead_s,
            "calibration": calibration.source}


def _rows(workload: Workload, model: Model) -> list[Row]:
    """Per driver call, measured against simulated, runs of like calls merged (25,000
    ``remote`` calls on one line are one row), each with what bounded it: the kind of step
    that took most of the critical paths of its calls."""
    calls = workload.calls
    starts = [model.call_starts.get(c.phase, model.end_s) for c in calls] + [model.end_s]
    rows: list[Row] = []
    for (api, site), group in itertools.groupby(
            range(len(calls)), key=lambda i: (calls[i].api, calls[i].event.get("site"))):
        members = list(group)
        spent: dict[str, float] = {}
        for i in members:
            for kind, seconds in model.call_bounds.get(calls[i].phase, {}).items():
                spent[kind] = spent.get(kind, 0.0) + seconds
        measured = sum(calls[i].measured_s for i in members)
        what = f"{api} at {site}" if site else api
        simulated = max(0.0, starts[members[-1] + 1] - starts[members[0]])
        rows.append(Row(what, len(members), measured, simulated, bound_by(spent)))
    return rows
