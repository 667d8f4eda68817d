"""The Global Control Store, one process per cluster (Ray's ``src/ray/gcs/``).

Seed, phase 1: it keeps the cluster's metadata: the actor table (phase 3) and, in the
founding document's ownership model, the object directory (phase 2). Run it with
``python -m raysim.runtime.gcs`` (``node.py`` does)."""
