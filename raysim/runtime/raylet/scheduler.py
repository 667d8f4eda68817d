"""The raylet's local scheduler: resources, and what a task or an actor asks of them.

Seed, phase 3 steps 1-3: "Driver submits actor creation request to Local Scheduler (Raylet).
Local Scheduler checks local resources; if sufficient, assigns to a local worker; otherwise
forwards to Global Scheduler." and phase 4 step 3: actors process methods serially.

What raysim's scheduler does, as Ray 2.x's raylet does on one node:

* A node has resources: ``CPU`` (``num_cpus``), custom ones (``resources={"GPU": 1}``), all
  divisible down to 1/10000 as in Ray. A task asks for ``num_cpus`` (default 1) and any custom
  amounts; it runs when they fit in what is available, and holds them while it runs.
* An actor needs 1 CPU to be *placed* but holds 0 while it lives, unless it asked for
  ``num_cpus`` explicitly (Ray's default: "1 CPU for scheduling, 0 CPU for running"). So the
  founding example's 3 actors run on a 2-CPU machine.
* Tasks that do not fit wait in FIFO order; a task that could never fit on this node is
  *infeasible*: it waits, and the trace and the driver say so, instead of failing.
* A worker blocked in ``get`` lends its CPUs back (Ray: NotifyDirectCallTaskBlocked), so
  nested tasks deeper than the CPU count cannot deadlock; it takes them back when it wakes,
  even if that briefly oversubscribes the node, as Ray does.

There is no global scheduler: the founding document's is from the 2018 Ray paper; Ray 2.x
spills back to another node instead (docs/modern-ray.md#no-global-scheduler). Multi-node
placement goes here.

The queues and the dispatch loop that apply these rules are ``local_task_manager.py``'s; this
module is the arithmetic (``ResourceSet``, ``task_request``, ``placement_request``) and the
record of a queued task (``TaskRecord``).

Runs in: the raylet process (and the API, which reads a task's request). Trace events: none
of its own (``local_task_manager.py`` records ``scheduler.decision``).
"""

from __future__ import annotations

import dataclasses

from raysim.runtime.common.errors import RaySimInternalError
from raysim.runtime.common.task_spec import TaskSpec

# Resources are kept in fixed point, 1/10000 of a unit, like Ray's FixedPoint.
_SCALE = 10000


def to_fixed(resources: dict[str, float]) -> dict[str, int]:
    return {k: int(round(v * _SCALE)) for k, v in resources.items() if v}


def from_fixed(resources: dict[str, int]) -> dict[str, float]:
    return {k: v / _SCALE for k, v in resources.items()}


class ResourceSet:
    """A node's total and available resources."""

    def __init__(self, total: dict[str, float]) -> None:
        self.total = to_fixed(total)
        self.available = dict(self.total)

    def feasible(self, request: dict[str, int]) -> bool:
        return all(self.total.get(k, 0) >= v for k, v in request.items())

    def fits(self, request: dict[str, int]) -> bool:
        available = self.available
        return all(available.get(k, 0) >= v for k, v in request.items())

    def acquire(self, request: dict[str, int], force: bool = False) -> None:
        if not force and not self.fits(request):
            raise RaySimInternalError(f"acquire {request} beyond available {self.available}")
        for k, v in request.items():
            self.available[k] = self.available.get(k, 0) - v

    def release(self, request: dict[str, int]) -> None:
        for k, v in request.items():
            self.available[k] = self.available.get(k, 0) + v

    def snapshot(self) -> dict:
        return {"total": from_fixed(self.total), "available": from_fixed(self.available)}


def task_request(spec: TaskSpec) -> dict[str, int]:
    """The resources a task holds while it runs."""
    resources = dict(spec.resources or {})
    num_cpus = spec.num_cpus
    if spec.kind == "actor_creation":
        # Placement needs 1 CPU by default; see placement_request. Held: only what was asked.
        resources["CPU"] = num_cpus or 0
    else:
        resources["CPU"] = 1 if num_cpus is None else num_cpus
    return to_fixed(resources)


def placement_request(spec: TaskSpec) -> dict[str, int]:
    """The resources an actor creation needs free to be placed (Ray: 1 CPU by default)."""
    resources = dict(spec.resources or {})
    num_cpus = spec.num_cpus
    resources["CPU"] = 1 if num_cpus is None else num_cpus
    return to_fixed(resources)


@dataclasses.dataclass(eq=False)
class TaskRecord:
    """A task as the raylet's scheduler sees it, from submission until it finishes."""

    spec: TaskSpec
    request: dict[str, int]  # resources held while it runs
    shape: tuple  # scheduling class: tasks with equal requests queue together
    attempt: int = 0
    worker: object = None  # the WorkerRecord running it
    missing: set | None = None  # store dependencies not yet sealed here
    cancelled: bool = False  # raysim.cancel reached it while it ran: never retried
    # The error its owner's get() would raise once its killed worker is gone, when the
    # raylet, not raysim.cancel, stopped it (its owner died): (exception type, message).
    stopped_with: tuple[str, str] | None = None

    @property
    def task_id(self) -> str:
        return self.spec.task_id

    @property
    def phase(self) -> int | None:
        return self.spec.phase
