"""Fitting the model's local costs from a measured trace (``raysim calibrate``).

What is fitted, each from the events that measure it:

* ``message_s``: the one-way cost of a control message between two kinds of process, by
  sender and receiver kind (``driver->raylet``, ``raylet->gcs``, ...): the median of
  ``msg.recv.ts - msg.send.ts`` over the messages of that pair (matched by message id). It
  includes the receiver's queueing, as a real message's cost does;
* ``store_write_Bps``: the rate a store takes an object's bytes at: the median of
  ``size / dur`` over ``object_store.written`` of objects of 64 KiB or more (the writer's
  copy into shared memory), else over received chunks;
* ``chunk_overhead_s``: a pull's fixed cost per chunk: the intercept of a least-squares line
  ``dur = overhead + bytes / rate`` through ``object_manager.chunk_received`` (0 if the
  trace has too few chunks of different sizes to tell);
* ``serialize_Bps``: pickling's rate, ``object.serialized`` of 64 KiB or more.

Each comes with its error: the median relative distance of the samples from the fitted
value (for the line, from the line), so a reader can see how much one number hides.

Runs in: the simulator's command line; reads only the trace.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from raysim.sim.config import Calibration

_BIG = 64 * 1024


def fit(records: list[dict], source: str = "") -> Calibration:
    calibration = Calibration(source=source)
    sends: dict[str, dict] = {}
    samples: dict[str, list[float]] = defaultdict(list)
    for event in records:
        ev = event.get("ev")
        if ev == "msg.send":
            sends[event["msg"]] = event
        elif ev == "msg.recv":
            sent = sends.pop(event["msg"], None)
            if sent is not None and event["ts"] >= sent["ts"]:
                samples[f"{sent['proc']}->{event['proc']}"].append(
                    (event["ts"] - sent["ts"]) / 1e9)
    for key, values in samples.items():
        median = statistics.median(values)
        calibration.message_s[key] = median
        calibration.errors[f"message_s[{key}]"] = _spread(values, median)
    writes = [e["size"] / (e["dur"] / 1e9) for e in records
              if e.get("ev") == "object_store.written" and e["size"] >= _BIG and e["dur"] > 0]
    chunks = [(e["bytes"], e["dur"] / 1e9) for e in records
              if e.get("ev") == "object_manager.chunk_received" and e["dur"] > 0]
    if not writes:
        writes = [b / d for b, d in chunks if b >= _BIG]
    if writes:
        calibration.store_write_Bps = statistics.median(writes)
        calibration.errors["store_write_Bps"] = _spread(writes, calibration.store_write_Bps)
    overhead = _intercept(chunks)
    if overhead is not None:
        calibration.chunk_overhead_s, error = overhead
        calibration.errors["chunk_overhead_s"] = error
    pickles = [e["size"] / (e["dur"] / 1e9) for e in records
               if e.get("ev") == "object.serialized" and e["size"] >= _BIG and e["dur"] > 0]
    if pickles:
        calibration.serialize_Bps = statistics.median(pickles)
        calibration.errors["serialize_Bps"] = _spread(pickles, calibration.serialize_Bps)
    return calibration


def _spread(values: list[float], center: float) -> float:
    if not center:
        return 0.0
    return statistics.median(abs(v - center) / abs(center) for v in values)


def _intercept(chunks: list[tuple[int, float]]) -> tuple[float, float] | None:
    """(overhead, error) of ``dur = overhead + bytes * slope``, if the sizes vary."""
    if len(chunks) < 3 or len({b for b, _ in chunks}) < 2:
        return None
    mean_b = statistics.fmean(b for b, _ in chunks)
    mean_d = statistics.fmean(d for _, d in chunks)
    var = sum((b - mean_b) ** 2 for b, _ in chunks)
    if var == 0:
        return None
    slope = sum((b - mean_b) * (d - mean_d) for b, d in chunks) / var
    overhead = max(0.0, mean_d - slope * mean_b)
    errors = [abs(d - (overhead + slope * b)) / d for b, d in chunks if d > 0]
    return overhead, statistics.median(errors) if errors else 0.0
