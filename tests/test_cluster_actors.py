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
    with pytest.raises(exceptions.ActorDiedError, match="its node .* went away"):
        raysim.get(counter.add.remote(), timeout=30)


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
