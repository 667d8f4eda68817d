"""Several nodes on one machine (``raysim.cluster_utils.Cluster``, Ray's testing API): one GCS,
one raylet per node, each with its own store, zygote and workers, all in the GCS node table."""

import os
import subprocess
import sys

import pytest
from traceutil import of, wait_for

import raysim
from raysim.cluster_utils import Cluster
from raysim.trace import load


@pytest.fixture
def cluster(trace_file):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    cluster.add_node(num_cpus=1, resources={"special": 1})
    cluster.add_node(num_cpus=1)
    raysim.init(address=cluster.address, trace_path=trace_file)
    try:
        yield cluster
    finally:
        raysim.shutdown()
        cluster.shutdown()


def test_every_node_registers_with_its_own_resources(cluster, trace_file):
    nodes = {n["NodeID"]: n for n in raysim.nodes()}
    assert set(nodes) == {n.node_id for n in cluster.list_all_nodes()}
    assert all(n["Alive"] for n in nodes.values())
    head, special, plain = cluster.list_all_nodes()
    assert nodes[head.node_id]["Resources"]["CPU"] == 2.0
    assert "node:__internal_head__" in nodes[head.node_id]["Resources"]
    assert nodes[special.node_id]["Resources"]["special"] == 1
    assert "node:__internal_head__" not in nodes[plain.node_id]["Resources"]
    totals = raysim.cluster_resources()
    assert totals["CPU"] == 4.0 and totals["special"] == 1
    assert raysim.get_runtime_context().get_node_id() == head.node_id
    raysim.shutdown()
    trace = load(trace_file)
    registered = [e["node_id"] for e in of(trace.records, "node.registered")]
    assert sorted(registered) == sorted(nodes)
    # Each node has its own raylet and store; processes are named by their node.
    stores = {e["node"] for e in of(trace.records, "store.created")}
    assert stores == set(nodes)
    names = set(trace.process_names().values())
    assert {"driver", "gcs", "raylet@node1", "raylet@node2", "raylet@node3"} <= names


def test_nodes_join_and_leave_while_the_session_runs(cluster, trace_file):
    extra = cluster.add_node(num_cpus=3)  # waits until it has registered
    assert raysim.cluster_resources()["CPU"] == 7.0
    pid = cluster._processes.raylets[extra.node_id].pid
    cluster.remove_node(extra)
    assert raysim.cluster_resources()["CPU"] == 4.0
    alive = {n["NodeID"]: n["Alive"] for n in raysim.nodes()}
    assert alive[extra.node_id] is False
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # its raylet is gone
    assert raysim.get(raysim.put(41)) == 41  # the rest of the cluster goes on
    raysim_nodes = raysim.nodes()
    raysim.shutdown()
    removed = [e["node_id"] for e in of(load(trace_file).records, "node.removed")]
    # The removed node first; the others when the session shut down, each once.
    assert removed[0] == extra.node_id
    assert sorted(removed) == sorted(n["NodeID"] for n in raysim_nodes)


def test_shutdown_stops_every_node_and_leaves_no_socket(trace_file):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ctx = raysim.init(address=cluster.address, trace_path=trace_file)
    pids = [p.pid for p in cluster._processes.raylets.values()] + [ctx.address_info["gcs"]]
    cluster.shutdown()  # ends the session connected to it too
    assert not raysim.is_initialized()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert [n for n in os.listdir(ctx.session_dir) if n.endswith(".sock")] == []
    trace = load(trace_file)
    assert of(trace.records, "component.died") == []  # each node was stopped, none died


def test_bad_addresses_and_arguments_are_refused():
    with pytest.raises(ValueError, match="raysim cannot connect to address='10.0.0.1:6379'"):
        raysim.init(address="10.0.0.1:6379")
    cluster = Cluster(initialize_head=True)
    with pytest.raises(ValueError, match="When connecting to an existing cluster, num_cpus"):
        raysim.init(address=cluster.address, num_cpus=2)
    assert not raysim.is_initialized()
    cluster.shutdown()
    with pytest.raises(ValueError, match="The head node cannot be removed"):
        cluster.remove_node(cluster.head_node)


def test_a_node_s_object_manager_listens_on_the_port_it_is_given(trace_file):
    import socket
    with socket.socket() as probe:  # a port free now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    with pytest.raises(ValueError, match="object_manager_port=70000 is not a TCP port"):
        cluster.add_node(object_manager_port=70000)
    node = cluster.add_node(num_cpus=1, object_manager_port=port)
    raysim.init(address=cluster.address, trace_path=trace_file)
    try:
        listening = {e["node"]: e["address"] for e in
                     wait_for(trace_file, lambda ev: len(of(ev, "object_manager.listening")) == 2,
                              what="both object managers")
                     if e["ev"] == "object_manager.listening"}
        assert listening[node.node_id] == f"127.0.0.1:{port}"
    finally:
        raysim.shutdown()
        cluster.shutdown()


def test_raysim_trace_nodes_runs_a_script_on_a_cluster(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("import ray\n"
                      "from ray.cluster_utils import Cluster  # resolves to raysim's\n"
                      "ray.init(num_cpus=1)\n"
                      "print('nodes', len(ray.nodes()), ray.cluster_resources()['CPU'])\n"
                      "ray.shutdown()\n")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "raysim.cli", "trace", "--nodes", "3",
                           "--out", str(out), str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "nodes 3 3.0" in done.stdout
    trace = load(str(out / "trace.jsonl"))
    assert len({e["node_id"] for e in of(trace.records, "node.registered")}) == 3
    bad = subprocess.run([sys.executable, "-m", "raysim.cli", "trace", "--nodes", "0",
                          str(script)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--nodes 0 is not a number of nodes" in bad.stderr
