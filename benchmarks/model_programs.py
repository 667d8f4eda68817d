"""The programs ``bench_model.py`` measures, each the driver of a fresh 3-node cluster whose
node i's object manager listens on ``model_links.PORT_BASE + i`` (so the links shape it):

* ``seed``: ``examples/seed_example.py`` as ``raysim trace --nodes 3`` runs it (three nodes
  with ``init()``'s resources, actors SPREAD), but started here so that its nodes get their
  ports (``raysim trace`` has no option for them);
* ``broadcast``: the driver puts one ``size``-byte numpy array, then one task pinned to each
  node (custom resources ``node0``..``node2``) reads it and returns its sum: two pulls share
  the head node's link;
* ``tasks``: ``count`` tasks of 0.2 s each, each taking a ``size``-byte array put by the
  driver and returning one, alternately on the two worker nodes, which have one CPU each
  (the head has none): at most two run at once. Each task spins 0.05 s on the wall clock and
  sleeps 0.15 s, so the tasks take half a core of the machine's two on average and the
  object managers, raylets and driver have the rest: the makespan is the tasks' (twelve in
  a row on each node), not a CPU starved of the processes that move the objects.

Runs in: a child process of ``bench_model.py --inside``, in the namespace (``--program``).
"""

from __future__ import annotations

import os
import sys
import time

from model_links import PORT_BASE

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODES = 3
TASK_SPIN_S = 0.05
TASK_SLEEP_S = 0.15


def run_program(program: str, trace: str, size: int, count: int) -> int:
    {"seed": seed_program, "broadcast": broadcast_program,
     "tasks": tasks_program}[program](trace, size, count)
    return 0


def _cluster(**node_args):
    """Three nodes, node i's object manager on PORT_BASE + i; ``node_args`` for each (a
    callable is called with the node's index)."""
    from raysim.cluster_utils import Cluster

    cluster = Cluster()
    for index in range(NODES):
        args = {key: value(index) if callable(value) else value
                for key, value in node_args.items()}
        cluster.add_node(object_manager_port=PORT_BASE + index, **args)
    return cluster


def seed_program(trace: str, _size: int, _count: int) -> None:
    """``raysim trace --nodes 3 examples/seed_example.py``, with the nodes' ports given (what
    ``raysim.cli.run_script`` does, with ``Cluster.like_init(3)``'s nodes given ports)."""
    import runpy

    import raysim
    from raysim import launch, ray_alias

    script = os.path.join(REPO, "examples", "seed_example.py")
    ray_alias.install()
    sys.argv = [script]
    sys.path.insert(0, os.path.dirname(script))
    try:
        with launch.init_defaults(trace_path=trace, cluster=_cluster(),
                                  actor_strategy="SPREAD"):
            runpy.run_path(script, run_name="__main__")
    finally:
        raysim.shutdown()
        ray_alias.uninstall()


def broadcast_program(trace: str, size: int, _count: int) -> None:
    import numpy as np

    import raysim

    cluster = _cluster(num_cpus=1, resources=lambda i: {f"node{i}": 1})
    raysim.init(address=cluster.address, trace_path=trace)
    try:
        @raysim.remote
        def total(array):
            return int(array.sum(dtype=np.uint64))

        ref = raysim.put(np.ones(size, dtype=np.uint8))
        sums = raysim.get([total.options(resources={f"node{i}": 1}).remote(ref)
                           for i in range(NODES)])
        if sums != [size] * NODES:
            raise RuntimeError(f"the broadcast read wrong sums {sums}, not {size} each")
    finally:
        raysim.shutdown()
        cluster.shutdown()


def tasks_program(trace: str, size: int, count: int) -> None:
    import numpy as np

    import raysim

    cluster = _cluster(num_cpus=lambda i: 0 if i == 0 else 1,
                       resources=lambda i: {f"node{i}": 100})
    raysim.init(address=cluster.address, trace_path=trace)
    try:
        @raysim.remote
        def work(array, spin_s, sleep_s):
            # The wall clock, not CPU time: as long whatever share of the cores it gets.
            end = time.perf_counter() + spin_s
            while time.perf_counter() < end:
                pass
            time.sleep(sleep_s)
            return array + 1

        args = [raysim.put(np.full(size, i, dtype=np.uint8)) for i in range(count)]
        results = raysim.get([
            work.options(resources={f"node{1 + i % (NODES - 1)}": 1}).remote(
                a, TASK_SPIN_S, TASK_SLEEP_S)
            for i, a in enumerate(args)])
        if [int(r[0]) for r in results] != [(i + 1) % 256 for i in range(count)]:
            raise RuntimeError("the tasks returned wrong arrays")
    finally:
        raysim.shutdown()
        cluster.shutdown()
