"""A simulated node: its resources (what runs, what waits, what was promised), its task
workers, its NIC and its store.

A node's resources are taken first come, first served among the requests that fit, as the
raylet's queues take them (``runtime/raylet/local_task_manager.py``). Its NIC is two links
(out and in, full duplex) and its store a third, the rate chunks are written at: the links
that transfers share (``network.py``).

Runs in: the simulator.
"""

from __future__ import annotations

import simpy

from raysim.sim.network import Link


class SimNode:
    """A node: its resources, its task workers, its NIC and its store."""

    def __init__(self, env: simpy.Environment, index: int, node_id: str,
                 resources: dict[str, float], nic_Bps: float, store_Bps: float,
                 ingress_Bps: float | None = None) -> None:
        self.env = env
        self.index = index
        self.node_id = node_id
        self.total = dict(resources)
        self.available = dict(resources)
        self._waiters: list[tuple[dict, simpy.Event]] = []
        # Placed here but not yet running (waiting for arguments): a raylet counts them
        # against its free resources when it decides where the next task goes.
        self.promised: dict[str, float] = {}
        self.nic_out = Link(f"{node_id} NIC out", nic_Bps)
        self.nic_in = Link(f"{node_id} NIC in", ingress_Bps or nic_Bps)
        self.store = Link(f"{node_id} store", store_Bps)
        self.idle_workers: list[int] = []  # pids
        self.store_capacity = 0
        self.raylet_pid = 0

    def fits(self, request: dict[str, float]) -> bool:
        return all(self.available.get(k, 0.0) >= v - 1e-9 for k, v in request.items())

    def free_for(self, request: dict[str, float]) -> bool:
        """Whether ``request`` fits beside what runs and what was promised already."""
        return all(self.available.get(k, 0.0) - self.promised.get(k, 0.0) >= v - 1e-9
                   for k, v in request.items())

    def promise(self, request: dict[str, float], sign: int = 1) -> None:
        for key, value in request.items():
            self.promised[key] = self.promised.get(key, 0.0) + sign * value

    def free_cpus(self) -> float:
        return self.available.get("CPU", 0.0) - self.promised.get("CPU", 0.0)

    def feasible(self, request: dict[str, float]) -> bool:
        return all(self.total.get(k, 0.0) >= v - 1e-9 for k, v in request.items())

    def acquire(self, request: dict[str, float]) -> simpy.Event:
        """Fires once ``request`` is granted (first come, first served among those that
        fit, as the raylet's queues are)."""
        event = self.env.event()
        if not self._waiters and self.fits(request):
            self._take(request)
            event.succeed()
        else:
            self._waiters.append((request, event))
        return event

    def release(self, request: dict[str, float]) -> None:
        for key, value in request.items():
            self.available[key] = self.available.get(key, 0.0) + value
        waiting, self._waiters = self._waiters, []
        for wanted, event in waiting:
            if self.fits(wanted):
                self._take(wanted)
                event.succeed()
            else:
                self._waiters.append((wanted, event))

    def _take(self, request: dict[str, float]) -> None:
        for key, value in request.items():
            self.available[key] = self.available.get(key, 0.0) - value
