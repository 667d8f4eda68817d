"""Actors on other nodes than their caller's: placed by the GCS, called through it, killed
and lost with their node."""

import subprocess
import sys

import pytest
from traceutil import of

import raysim
from raysim import exceptions
from raysim.trace import load


@raysim.remote
class Counter:
    def __init__(self):
        self.n = 0

    def add(self):
        self.n += 1
        return self.n

    def node(self):
        return raysim.get_runtime_context().get_node_id()

    def hang_on(self, node_id):
        """Never answers on ``node_id``; elsewhere says where it runs."""
        if self.node() == node_id:
            import threading
            threading.Event().wait()
        return self.node()


def test_an_actor_that_needs_another_node_runs_there_and_keeps_call_order(three_nodes,
                                                                          trace_file):
    cluster, b, c = three_nodes
    counter = Counter.options(resources={"C": 1}).remote()
    assert raysim.get([counter.add.remote() for _ in range(5)]) == [1, 2, 3, 4, 5]
    assert raysim.get(counter.node.remote()) == c.node_id
    raysim.shutdown()
    events = load(trace_file).records
    creation = of(events, "gcs.task_placed")
    assert [e["to_node"] for e in creation] == [c.node_id]
    # Each call: looked up in the GCS by the head's raylet, pushed to the worker by C's.
    lookups = of(events, "raylet.actor_lookup")
    assert {e["node"] for e in lookups if e["source"] == "GCS: on another node"} == {
        cluster.head_node.node_id}
    assert {e["node"] for e in lookups if e["source"] == "local actor table"} == {c.node_id}


def test_spread_actors_land_on_every_node(three_nodes):
    cluster, b, c = three_nodes
    actors = [Counter.options(scheduling_strategy="SPREAD").remote() for _ in range(3)]
    nodes = raysim.get([a.node.remote() for a in actors])
    assert sorted(nodes) == sorted(n.node_id for n in cluster.list_all_nodes())


def test_killing_an_actor_on_another_node(three_nodes):
    cluster, b, c = three_nodes
    counter = Counter.options(resources={"B": 1}).remote()
    assert raysim.get(counter.add.remote()) == 1
    raysim.kill(counter)
    with pytest.raises(exceptions.ActorDiedError):
        raysim.get(counter.add.remote(), timeout=30)


def test_an_actor_dies_with_its_node_and_no_call_waits_forever(three_nodes):
    cluster, b, c = three_nodes
    counter = Counter.options(resources={"B": 1}).remote()
    assert raysim.get(counter.add.remote()) == 1
    cluster.remove_node(b)
    with pytest.raises(exceptions.ActorDiedError, match="its node .* died; it is not restarted"):
        raysim.get(counter.add.remote(), timeout=30)


def _on_node(node_id, soft=True):
    from raysim.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    return NodeAffinitySchedulingStrategy(node_id, soft=soft)


def test_an_actor_restarts_on_another_node_when_its_node_goes(three_nodes, trace_file):
    cluster, b, c = three_nodes
    sticky = Counter.options(scheduling_strategy=_on_node(b.node_id), max_restarts=1,
                             max_task_retries=1).remote()
    assert raysim.get([sticky.add.remote(), sticky.add.remote()]) == [1, 2]
    assert raysim.get(sticky.node.remote()) == b.node_id
    # Running on B (or on its way there) when B goes: run again on the restarted actor.
    hanging = sticky.hang_on.remote(b.node_id)
    cluster.remove_node(b)
    elsewhere = raysim.get(hanging, timeout=60)
    assert elsewhere in (cluster.head_node.node_id, c.node_id)
    assert raysim.get(sticky.add.remote()) == 1  # __init__ ran again: its state is new
    raysim.shutdown()
    events = load(trace_file).records
    states = [(e["state"], e["cause"]) for e in of(events, "gcs.actor_state")]
    restart = states.index(("RESTARTING", "NODE_DIED"))
    assert states[restart + 1] == ("ALIVE", None)
    assert of(events, "gcs.actor_state")[restart + 1]["num_restarts"] == 1
    placed = of(events, "gcs.task_placed")[-1]
    assert placed["from_node"] == b.node_id and placed["to_node"] == elsewhere
    assert placed["reason"].startswith(f"restart 1: {b.node_id} went away")


def test_a_restarting_actor_waits_for_a_node_that_can_host_it(three_nodes):
    cluster, b, c = three_nodes
    patient = Counter.options(resources={"B": 0.5}, max_restarts=1, max_task_retries=1).remote()
    hasty = Counter.options(resources={"B": 0.5}, max_restarts=1).remote()
    assert raysim.get([patient.add.remote(), hasty.add.remote()]) == [1, 1]
    cluster.remove_node(b)
    # No node has B: both restart and wait for one, as in Ray. A call to an actor whose
    # max_task_retries is 0 fails at once meanwhile; the others wait for the restart.
    with pytest.raises(exceptions.ActorUnavailableError, match="is restarting"):
        raysim.get(hasty.add.remote(), timeout=30)
    call = patient.add.remote()
    assert raysim.wait([call], timeout=0.5)[0] == []
    new_b = cluster.add_node(num_cpus=1, resources={"B": 1})
    assert raysim.get(call, timeout=60) == 1
    assert raysim.get(patient.node.remote()) == new_b.node_id


def test_an_actor_with_hard_affinity_to_its_dead_node_is_not_restarted(three_nodes):
    cluster, b, c = three_nodes
    counter = Counter.options(scheduling_strategy=_on_node(b.node_id, soft=False),
                              max_restarts=1).remote()
    assert raysim.get(counter.add.remote()) == 1
    cluster.remove_node(b)
    with pytest.raises(exceptions.ActorUnschedulableError, match="soft=False was specified"):
        raysim.get(counter.add.remote(), timeout=30)


def test_an_actor_with_hard_affinity_to_a_dead_node_is_unschedulable(three_nodes):
    cluster, b, c = three_nodes
    cluster.remove_node(b)
    counter = Counter.options(scheduling_strategy=_on_node(b.node_id, soft=False)).remote()
    with pytest.raises(exceptions.ActorUnschedulableError,
                       match="^The actor is not schedulable: The node specified"):
        raysim.get(counter.add.remote(), timeout=30)
    # soft=True: it is placed on another node instead.
    soft = Counter.options(scheduling_strategy=_on_node(b.node_id, soft=True)).remote()
    assert raysim.get(soft.node.remote()) != b.node_id


def test_the_founding_example_on_three_nodes(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "raysim.cli", "trace", "--nodes", "3", "--out", str(out),
         "examples/seed_example.py"], capture_output=True, text=True, timeout=240,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    assert done.returncode == 0, done.stderr
    assert "data1.parquet: 1,000,000 predictions" in done.stdout
    events = load(str(out / "trace.jsonl")).records
    alive = of(events, "gcs.actor_state", state="ALIVE")
    assert len({e["actor_node"] for e in alive}) == 3  # one actor per node (SPREAD)
    assert of(events, "object_manager.pulled")  # the model went to the other nodes


def test_available_resources_add_up_every_node(three_nodes):
    cluster, b, c = three_nodes
    assert raysim.available_resources()["CPU"] == 4.0  # 1 + 1 + 2
    counter = Counter.options(resources={"C": 1}, num_cpus=1).remote()
    assert raysim.get(counter.add.remote()) == 1  # alive on C, holding 1 CPU and 1 C
    available = raysim.available_resources()
    assert (available["CPU"], available["C"], available["B"]) == (3.0, 1.0, 1.0)
    cluster.remove_node(b)
    assert "B" not in raysim.available_resources()

