"""raysim: watch how a Ray program really runs inside.

``import raysim as ray`` and a Ray program runs on raysim's own local runtime (a driver, a GCS
process, a raylet with a shared-memory object store, worker processes), with every step
recorded as a trace event. See README.md.
"""

from raysim import exceptions
from raysim.actor import ActorClass, ActorHandle, method
from raysim.api import (available_resources, cluster_resources, get, get_actor,
                        get_runtime_context, init, is_initialized, kill, nodes, put, remote,
                        shutdown, snapshot, trace_path, wait)
from raysim.object_ref import ObjectRef
from raysim.remote_function import RemoteFunction

__version__ = "0.1.0"

__all__ = [
    "ActorClass", "ActorHandle", "ObjectRef", "RemoteFunction", "available_resources",
    "cluster_resources", "exceptions", "get", "get_actor", "get_runtime_context", "init",
    "is_initialized", "kill", "method", "nodes", "put", "remote", "shutdown", "snapshot",
    "trace_path", "wait",
]
