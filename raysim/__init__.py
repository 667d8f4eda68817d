"""raysim: watch how a Ray program really runs inside.

``import raysim as ray`` and a Ray program runs on raysim's own local runtime (a driver, a GCS
process, a raylet with a shared-memory object store, worker processes), with every step
recorded as a trace event. See README.md.

The public names are imported on first use (PEP 562), so that the runtime's own processes,
which import ``raysim.runtime.*`` only, start without paying for the whole API.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "ActorClass": "raysim.actor", "ActorHandle": "raysim.actor", "method": "raysim.actor",
    "ObjectRef": "raysim.object_ref", "ObjectID": "raysim.object_ref",
    "RemoteFunction": "raysim.remote_function",
    "available_resources": "raysim.api", "cancel": "raysim.api", "cluster_resources": "raysim.api",
    "get": "raysim.api", "get_actor": "raysim.api", "get_gpu_ids": "raysim.api",
    "get_runtime_context": "raysim.api",
    "init": "raysim.api", "is_initialized": "raysim.api", "kill": "raysim.api",
    "nodes": "raysim.api", "put": "raysim.api", "remote": "raysim.api",
    "shutdown": "raysim.api", "snapshot": "raysim.api", "trace_path": "raysim.api",
    "timeline": "raysim.api",
    "wait": "raysim.api", "exceptions": "raysim.exceptions",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    module_name = _PUBLIC.get(name)
    if module_name is None:
        raise AttributeError(f"module 'raysim' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name == f"raysim.{name}" else getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
