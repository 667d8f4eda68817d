"""Which node runs a task its own node does not keep: the founding document's global
scheduler, as a decision the GCS makes.

Seed, phase 3 step 2: "Local Scheduler checks local resources; if sufficient, assigns to a
local worker; otherwise forwards to Global Scheduler." A raylet places what it can; a task it
cannot run (its resources exceed the node's, or it must run on another node) it forwards to
the GCS (``forward_task``), which picks a node from its node table and hands the task to
that node's raylet (``submit_task``); ``gcs.task_placed`` records the choice and why.

Ray 2.x has no global scheduler process: each raylet knows every node's resources (the GCS
broadcasts them) and *spills back* a task it cannot run, telling the submitter which node to
ask instead (docs/modern-ray.md#no-global-scheduler). raysim's choice is the same one,
made in one place where a reader can see it, from the nodes' total resources:

* ``("node", id, soft)`` (``NodeAffinitySchedulingStrategy``): that node if it is alive and
  could run the task; otherwise, if ``soft``, any node that could; otherwise none;
* ``"SPREAD"``: the next node that could run it, round robin over the node table;
* the default: the first node (in the order they joined) other than the one that forwarded
  it that could run it.

No node: the task goes back to the node that forwarded it, which keeps it as infeasible
(it runs if a node that can joins). Runs in: the GCS. Trace events: none of its own (the
GCS records ``gcs.task_placed``).
"""

from __future__ import annotations

import itertools


class Placement:
    def __init__(self) -> None:
        self._spread = itertools.count()  # the round robin of SPREAD

    def choose(self, nodes: dict[str, dict], request: dict[str, float], strategy,
               from_node: str) -> tuple[str | None, str]:
        """(node id or None, why) for a task asking ``request`` of a node."""
        alive = [n for n, info in nodes.items() if info.get("alive", True)]
        fits = [n for n in alive if _fits(nodes[n]["resources"], request)]
        if isinstance(strategy, (list, tuple)) and strategy and strategy[0] == "node":
            _, wanted, soft = strategy
            if wanted in fits:
                return wanted, "node affinity"
            missing = "is not alive" if wanted not in alive else "cannot run it"
            if not soft:
                return None, f"node affinity to {wanted}, which {missing}"
            others = [n for n in fits if n != wanted]
            if others:
                return others[0], f"soft node affinity: {wanted} {missing}"
            return None, f"soft node affinity: {wanted} {missing}, and no other node can"
        if not fits:
            return None, f"no node has {request}"
        if strategy == "SPREAD":
            return fits[next(self._spread) % len(fits)], "SPREAD: the next node in turn"
        others = [n for n in fits if n != from_node]
        if others:
            return others[0], f"{from_node} cannot run it; this node can"
        return fits[0], "only this node can run it"


def _fits(total: dict[str, float], request: dict[str, float]) -> bool:
    return all(total.get(name, 0.0) >= amount for name, amount in request.items())
