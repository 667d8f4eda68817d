"""The raylet: one process per node (Ray's ``src/ray/raylet/`` and ``object_manager/``).

Seed, phase 1: it owns the node's shared-memory object store, schedules tasks onto the
node's workers, starts and keeps the worker processes (through the zygote) and hosts actors.
Run it with ``python -m raysim.runtime.raylet`` (``node.py`` does)."""
