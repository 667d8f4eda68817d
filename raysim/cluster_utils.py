"""Several nodes on one machine, with Ray's testing API (``ray.cluster_utils.Cluster``).

The founding document's cluster has several nodes, each with its own raylet and object store.
raysim builds one on this machine: one GCS, and one raylet process per node, each with its
own shared-memory store, zygote and workers, all registered in the GCS node table::

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=2, resources={"special": 1})
    raysim.init(address=cluster.address)

As in Ray's ``Cluster``, nodes added before ``init`` start with the session and nodes added
after it start at once; ``remove_node`` stops one node's raylet, its workers and its store.
Differences from Ray, which starts a cluster's processes as soon as ``Cluster`` is made and
keeps them for any number of drivers:

* the processes start with the driver's ``init(address=cluster.address)``, in the same Python
  process as the ``Cluster`` (the address names this object, not a network address);
* ``raysim.shutdown()`` stops the whole cluster, as it stops a one-node session;
  ``cluster.shutdown()`` is then a no-op (and before it, it shuts the session down).

Under ``raysim trace`` (and after ``raysim.ray_alias.install()``), ``from ray.cluster_utils
import Cluster`` resolves here; ``raysim trace --nodes N`` runs a script's own ``ray.init()``
on an N-node cluster made this way.

Runs in: the driver.
"""

from __future__ import annotations

from typing import Any

from raysim import launch, session
from raysim.runtime.common import ids

_ADDRESS_PREFIX = "raysim-cluster://"
_NODE_ARGS = ("num_cpus", "num_gpus", "resources", "object_store_memory",
              "object_manager_port")


class ClusterNode:
    """One node of a ``Cluster`` (Ray's ``ray._private.node.Node``, as far as tests use it)."""

    def __init__(self, node_id: str, args: dict[str, Any], head: bool) -> None:
        self.node_id = node_id
        self.unique_id = node_id
        self.args = args
        self.head = head

    def __repr__(self) -> str:
        return f"ClusterNode({self.node_id}{', head' if self.head else ''})"


class Cluster:
    def __init__(self, initialize_head: bool = False, connect: bool = False,
                 head_node_args: dict | None = None, shutdown_at_exit: bool = True) -> None:
        self.head_node: ClusterNode | None = None
        self.worker_nodes: list[ClusterNode] = []
        self.address = f"{_ADDRESS_PREFIX}{ids.random_hex(8)}"
        self._processes = None  # NodeProcesses, once the session started
        self._core = None  # the driver's core worker, connected to the head node
        launch.clusters[self.address] = self  # what init(address=...) connects to
        if initialize_head:
            self.add_node(**(head_node_args or {}))
        if connect:
            self.connect()

    # -- nodes ------------------------------------------------------------------------------

    def add_node(self, wait: bool = True, **node_args: Any) -> ClusterNode:
        """Add a node: the head if there is none yet. Arguments: ``num_cpus``, ``num_gpus``,
        ``resources``, ``object_store_memory``, ``object_manager_port`` (the TCP port on
        127.0.0.1 where the node's object manager serves other nodes; by default one the
        system picks). Ray's others are accepted and ignored."""
        args = {k: v for k, v in node_args.items() if k in _NODE_ARGS}
        _check_port(args.get("object_manager_port"))
        if self.head_node is None:
            if self._processes is not None:
                raise RuntimeError("This cluster's session is running without a head node.")
            self.head_node = ClusterNode("", args, head=True)  # its id comes with init()
            return self.head_node
        node = ClusterNode(ids.random_hex(8), args, head=False)
        self.worker_nodes.append(node)
        if self._processes is not None:
            self._start(node)
            if wait:
                self.wait_for_nodes()
        return node

    def remove_node(self, node: ClusterNode, allow_graceful: bool = True) -> None:
        """Stop a node's raylet, with its workers and store (the head cannot be removed)."""
        if node is self.head_node:
            raise ValueError("The head node cannot be removed; call cluster.shutdown().")
        self.worker_nodes.remove(node)
        if self._processes is not None and node.node_id in self._processes.raylets:
            self._processes.remove_raylet(node.node_id)

    def list_all_nodes(self) -> list[ClusterNode]:
        return ([self.head_node] if self.head_node else []) + list(self.worker_nodes)

    def wait_for_nodes(self, timeout: float = 30) -> None:
        """Wait until every node's raylet has registered with the GCS."""
        core = self._core
        if core is None or self._processes is None:
            return
        wanted = [n.node_id for n in self.list_all_nodes()]
        try:
            core.conns.ask_gcs("wait_for_nodes", {"nodes": wanted}, timeout=timeout)
        except Exception as e:  # GetTimeoutError
            raise TimeoutError(f"Not every node of the cluster registered within {timeout} "
                               f"s. Tip: the raylets' errors are on stderr.") from e

    # -- the session --------------------------------------------------------------------------

    def connect(self, namespace: str | None = None):
        from raysim import api
        return api.init(address=self.address, namespace=namespace)

    def shutdown(self) -> None:
        """Stop the cluster's processes (the session connected to it ends too)."""
        current = session.current()
        if current is not None and current.node is self._processes:
            launch.stop()
        self._processes = self._core = None
        launch.clusters.pop(self.address, None)

    @classmethod
    def like_init(cls, nodes: int) -> "Cluster":
        """``nodes`` nodes, each with the resources the driver's own ``init()`` asks for
        (``raysim trace --nodes N``: an unmodified script's ``ray.init()`` joins them)."""
        cluster = cls()
        cluster.head_node = ClusterNode("", None, head=True)
        cluster.worker_nodes = [ClusterNode(ids.random_hex(8), None, head=False)
                                for _ in range(nodes - 1)]
        return cluster

    # -- called by launch.start --------------------------------------------------------------

    def head_args(self, init_args: dict[str, Any]) -> dict[str, Any]:
        """The head node's arguments; a node made ``like_init`` takes ``init_args``."""
        if self.head_node is None:
            raise ValueError("This cluster has no head node. Tip: make it with "
                             "Cluster(initialize_head=True) or call add_node() first.")
        for node in self.list_all_nodes():
            if node.args is None:
                node.args = dict(init_args)
        return dict(self.head_node.args)

    def started(self, processes, core) -> None:
        """The head node and the driver are up: the other nodes start now."""
        self._processes, self._core = processes, core
        self.head_node.node_id = self.head_node.unique_id = processes.node_id
        for node in self.worker_nodes:
            self._start(node)
        self.wait_for_nodes()

    def _start(self, node: ClusterNode) -> None:
        config = self._processes.config
        capacity = node.args.get("object_store_memory") or config.object_store_memory or \
            launch.default_object_store_memory()
        total = launch.node_resources(node.args.get("num_cpus"), node.args.get("num_gpus"),
                                      node.args.get("resources"), capacity)
        self._processes.add_raylet(node.node_id, total, capacity,
                                   node.args.get("object_manager_port") or 0)


def _check_port(port: Any) -> None:
    if port is None:
        return
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"object_manager_port={port!r} is not a TCP port. Tip: pass an int "
                         f"from 1 to 65535, or 0 (the default) to let the system pick one.")

