"""``raysim.util``: the parts of ``ray.util`` that Ray programs built on the core API use.

Under ``raysim trace`` (or after ``raysim.ray_alias.install()``), ``import ray.util`` and
``from ray.util import ActorPool`` resolve here. The rest of ``ray.util`` (placement groups,
queues, collective, the state API) is not implemented; importing it raises an ImportError
that says so. None of it is a step of the founding document, whose program imports only
``ray``.
"""

from __future__ import annotations

from raysim import launch, session
from raysim.util.actor_pool import ActorPool


def get_node_ip_address() -> str:
    """The address of this node: raysim's nodes all run on this machine, on loopback."""
    return "127.0.0.1"


def list_named_actors(all_namespaces: bool = False) -> list:
    """The names of the named actors alive (not DEAD) in this job's namespace, as Ray's
    ``ray.util.list_named_actors``; with ``all_namespaces``, dicts of name and namespace.
    Read from the GCS actor table."""
    core = launch.auto_init("raysim.util.list_named_actors")
    actors = core.conns.ask_gcs("snapshot", {})["actors"].values()
    namespace = session.current().namespace or core.namespace
    named = [a for a in actors if a.get("name") and a["state"] != "DEAD"]
    if all_namespaces:
        return [{"name": a["name"], "namespace": a["namespace"]} for a in named]
    return [a["name"] for a in named if a["namespace"] == namespace]


__all__ = ["ActorPool", "get_node_ip_address", "list_named_actors"]
