"""``raysim.util``: the parts of ``ray.util`` that Ray programs built on the core API use.

Under ``raysim trace`` (or after ``raysim.ray_alias.install()``), ``import ray.util`` and
``from ray.util import ActorPool`` resolve here. The rest of ``ray.util`` (placement groups,
queues, collective, the state API) is not implemented; importing it raises an ImportError
that says so. None of it is a step of the founding document, whose program imports only
``ray``.
"""

from __future__ import annotations

from raysim.util.actor_pool import ActorPool


def get_node_ip_address() -> str:
    """The address of this node: raysim's nodes all run on this machine, on loopback."""
    return "127.0.0.1"


__all__ = ["ActorPool", "get_node_ip_address"]
