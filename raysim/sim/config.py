"""The simulated cluster's parameters, and the local costs fitted from a measured trace.

Units: bandwidths in bits per second on the command line and in ``SimConfig`` (as network
people quote them: ``10Gbit/s``), bytes per second inside the model; times in seconds.

Runs in: the simulator.
"""

from __future__ import annotations

import dataclasses
import json
import re

_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


@dataclasses.dataclass
class Calibration:
    """Local costs the model takes from a measured run (``raysim calibrate``)."""

    # One-way cost of a control message between two kinds of process on one node, by
    # "sender->receiver" (driver->raylet, raylet->gcs, ...): from msg.send to msg.recv.
    message_s: dict[str, float] = dataclasses.field(default_factory=dict)
    # Bytes per second a node's store takes a pulled object's chunks at (the receiving
    # side's copy into shared memory), from object_manager.chunk_received.
    store_write_Bps: float = 4e9
    # Fixed cost per chunk of a pull (framing, the receiver's bookkeeping), seconds.
    chunk_overhead_s: float = 50e-6
    # Bytes per second of pickling (object.serialized), for reference.
    serialize_Bps: float = 2e9
    # How well each parameter fits the trace it came from (median relative error).
    errors: dict[str, float] = dataclasses.field(default_factory=dict)
    source: str = ""  # the trace it was fitted from

    def message(self, sender: str, receiver: str) -> float:
        key = f"{sender}->{receiver}"
        if key in self.message_s:
            return self.message_s[key]
        if self.message_s:
            return sorted(self.message_s.values())[len(self.message_s) // 2]
        return 50e-6

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=2, sort_keys=True)
            f.write("\n")

    @classmethod
    def load(cls, path: str) -> "Calibration":
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read the calibration file {path!r}: {e}. Tip: write one "
                             f"with raysim calibrate TRACE -o FILE.") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"the calibration file {path!r} has unknown keys "
                             f"{sorted(unknown)}. Tip: write it again with raysim calibrate.")
        return cls(**data)


@dataclasses.dataclass
class SimConfig:
    """The cluster to simulate."""

    nodes: int | None = None  # None: as many as the recorded run had
    bandwidth_bps: float = 10e9  # each node's NIC, each way, bits per second
    latency_s: float = 200e-6  # one way, between two nodes
    # Each node's NIC inbound, bits per second: None is bandwidth_bps (a full-duplex NIC);
    # math.inf leaves it unlimited (a link shaped on the sending side only).
    ingress_bps: float | None = None
    cpus_per_node: float | None = None  # None: as recorded (each node its own)
    placement: str = "policy"  # "policy": the runtime's rules; "recorded": where they ran
    # Per pair of nodes (by index, 0 = head): (bits per second, seconds), both directions.
    links: dict[tuple[int, int], tuple[float, float]] = dataclasses.field(default_factory=dict)
    calibration: Calibration | None = None  # None: fitted from the trace being simulated
    chunk_size: int | None = None  # None: the recorded run's config

    def __post_init__(self) -> None:
        if self.placement not in ("policy", "recorded"):
            raise ValueError(f"placement must be 'policy' or 'recorded', not "
                             f"{self.placement!r}")
        if self.nodes is not None and self.nodes < 1:
            raise ValueError(f"nodes must be at least 1, not {self.nodes}")
        if self.bandwidth_bps <= 0:
            raise ValueError(f"bandwidth must be positive, not {self.bandwidth_bps}")
        if self.ingress_bps is not None and self.ingress_bps <= 0:
            raise ValueError(f"ingress bandwidth must be positive, not {self.ingress_bps}")
        if self.latency_s < 0:
            raise ValueError(f"latency cannot be negative, not {self.latency_s}")
        if self.cpus_per_node is not None and self.cpus_per_node <= 0:
            raise ValueError(f"cpus per node must be positive, not {self.cpus_per_node}")


def parse_bandwidth(text: str) -> float:
    """``10Gbit/s``, ``100Mbit/s``, ``1.5Gbps``, ``800M`` -> bits per second."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([kmgtKMGT]?)\s*(bit/s|bps|b/s|bit)?\s*", text)
    if not match:
        raise ValueError(f"cannot read the bandwidth {text!r}. Tip: write it like 10Gbit/s, "
                         f"100Mbit/s or 1.5Gbps.")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value <= 0:
        raise ValueError(f"bandwidth must be positive, not {text!r}")
    return value


def parse_duration(text: str) -> float:
    """``0.2ms``, ``200us``, ``1s``, ``50ns`` -> seconds."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ns|us|µs|ms|s)\s*", text)
    if not match:
        raise ValueError(f"cannot read the duration {text!r}. Tip: write it like 0.2ms, "
                         f"200us or 1s.")
    scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}[match.group(2)]
    return float(match.group(1)) * scale
