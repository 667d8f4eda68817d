"""Where a task may run, among a cluster's nodes (Ray's ``ray.util.scheduling_strategies``).

``scheduling_strategy=`` in ``@remote`` or ``.options()`` takes ``"DEFAULT"`` (run where the
caller's node can, else on a node that can: the raylet forwards what it cannot place),
``"SPREAD"`` (each task on the next node that can run it, round robin), or a
``NodeAffinitySchedulingStrategy(node_id, soft)``: that node, or, when ``soft`` and it
cannot (it is dead, or lacks the resources), any node that can. The GCS makes the choice
for a task the caller's node does not keep (``runtime/gcs/placement.py``).
"""

from __future__ import annotations


class NodeAffinitySchedulingStrategy:
    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False) -> None:
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"NodeAffinitySchedulingStrategy needs a node id (a str, as "
                             f"ray.get_runtime_context().get_node_id() gives), got "
                             f"{node_id!r}.")
        self.node_id = node_id
        self.soft = bool(soft)

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


def to_spec(strategy) -> object:
    """The strategy as a task spec carries it: None (default), "SPREAD", or
    ("node", node_id, soft)."""
    if strategy is None or strategy == "DEFAULT":
        return None
    if strategy == "SPREAD":
        return "SPREAD"
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        return ("node", strategy.node_id, strategy.soft)
    raise ValueError(
        f"scheduling_strategy={strategy!r} is not one raysim knows. Tip: use \"DEFAULT\", "
        f"\"SPREAD\" or NodeAffinitySchedulingStrategy(node_id, soft=...); placement groups "
        f"are not modelled.")
