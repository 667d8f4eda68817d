"""raysim's runtime: the processes a Ray session starts, one package per process.

Ray's C++ core (``src/ray/``) is laid out the same way, and so is this folder:

* ``gcs/``: the Global Control Store, one per cluster (``python -m raysim.runtime.gcs``);
* ``raylet/``: the node manager, one per node, with the node's shared-memory object store
  and the zygote that forks its workers (``python -m raysim.runtime.raylet``);
* ``core_worker/``: what runs inside the driver and inside every worker process;
* ``common/``: what all of them share: the wire protocol, ids, config, task specs,
  serialization, errors.

``node.py`` is run by the driver: it starts the GCS and the raylet and connects to them.

A package of one process imports only ``common/`` and the trace schema and writer, never
another process's package: processes talk through messages, not through each other's code
(``tests/test_layers.py`` keeps it so).
"""
