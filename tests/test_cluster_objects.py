"""Tasks placed on other nodes, and objects pulled between the nodes' stores over TCP
(``runtime/gcs/placement.py``, ``runtime/raylet/object_manager.py``)."""

import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from traceutil import of, poll, wait_for

import raysim
from raysim import exceptions
from raysim.cluster_utils import Cluster
from raysim.trace import load
from raysim.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@raysim.remote(resources={"B": 1})
def make(n):
    return np.arange(n, dtype=np.float64)


@raysim.remote(resources={"C": 1})
def total_on_c(array):
    return float(array.sum()), raysim.get_runtime_context().get_node_id()


@raysim.remote(resources={"B": 1})
def length_on_b(array):
    return len(array)


@raysim.remote
def node_of():
    return raysim.get_runtime_context().get_node_id()


def test_an_array_made_on_b_is_read_on_c_and_by_the_driver(three_nodes, trace_file):
    cluster, b, c = three_nodes
    ref = make.remote(1_000_000)  # 8 MB: stored on B
    assert raysim.get(total_on_c.remote(ref)) == (499999500000.0, c.node_id)
    array = raysim.get(ref)
    assert array.sum() == 499999500000.0 and not array.flags.writeable  # zero-copy, here
    raysim.shutdown()
    events = load(trace_file).records
    head = cluster.head_node.node_id
    # The raylets of C and of the head looked the object up, then each pulled it from B.
    located = of(events, "gcs.object_located", obj=ref.hex())
    assert sorted(e["for_node"] for e in located) == sorted([c.node_id, head])
    pulls = of(events, "object_manager.pull", obj=ref.hex())
    assert sorted(e["node"] for e in pulls) == sorted([c.node_id, head])
    assert {e["from_node"] for e in pulls} == {b.node_id}
    size = pulls[0]["size"]
    assert size > 8_000_000
    for node in (c.node_id, head):
        chunks = [e for e in of(events, "object_manager.chunk_received", obj=ref.hex())
                  if e["node"] == node]
        assert len(chunks) == 2  # 5 MiB chunks, as Ray's object_manager_default_chunk_size
        assert sum(e["bytes"] for e in chunks) == size
    sent = of(events, "object_manager.chunk_sent", obj=ref.hex())
    assert {e["node"] for e in sent} == {b.node_id} and sum(e["bytes"] for e in sent) == 2 * size
    # Each copy was sealed and registered where it landed: three locations in all.
    added = of(events, "gcs.object_added", obj=ref.hex())
    assert sorted(e["location"] for e in added) == sorted([b.node_id, c.node_id, head])


def test_two_readers_on_one_node_share_one_pull(three_nodes, trace_file):
    cluster, b, c = three_nodes
    ref = make.remote(300_000)
    assert raysim.get([total_on_c.remote(ref), total_on_c.remote(ref)]) == [
        (44999850000.0, c.node_id)] * 2
    raysim.shutdown()
    pulls = of(load(trace_file).records, "object_manager.pull", obj=ref.hex())
    assert [e["node"] for e in pulls] == [c.node_id]


def test_what_a_node_cannot_run_is_forwarded_to_one_that_can(three_nodes, trace_file):
    cluster, b, c = three_nodes
    on_b = node_of.options(resources={"B": 1}).remote()
    pinned = node_of.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(c.node_id, soft=False)).remote()
    spread = [node_of.options(scheduling_strategy="SPREAD").remote() for _ in range(3)]
    assert raysim.get([on_b, pinned]) == [b.node_id, c.node_id]
    assert sorted(raysim.get(spread)) == sorted(n.node_id for n in cluster.list_all_nodes())
    raysim.shutdown()
    events = load(trace_file).records
    forwarded = of(events, "scheduler.decision", task=on_b.task_id(), decision="forwarded")
    assert forwarded[0]["reason"] == "this node's resources can never fit it"
    placed = of(events, "gcs.task_placed", task=on_b.task_id())
    assert [e["to_node"] for e in placed] == [b.node_id]
    assert of(events, "gcs.task_placed", task=pinned.task_id())[0]["reason"] == "node affinity"


def test_a_connection_without_the_token_is_refused(three_nodes, trace_file):
    nodes = raysim.snapshot()["gcs"]["nodes"]
    host, port = nodes[three_nodes[1].node_id]["object_manager"].rsplit(":", 1)
    assert host == "127.0.0.1"
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"0" * 32 + b"\x00\x00\x00\x02{}")
        try:
            answer = sock.recv(1024)
        except ConnectionResetError:  # closed with the request unread
            answer = b""
        assert answer == b""  # nothing written back
    raysim.shutdown()
    refused = of(load(trace_file).records, "object_manager.refused")
    assert len(refused) == 1 and refused[0]["reason"] == "wrong or missing cluster token"


def test_an_object_whose_only_copy_was_on_a_removed_node_is_lost(three_nodes):
    cluster, b, c = three_nodes
    # Stored on B only; max_retries=0: not made again (Ray's rule for lineage too).
    ref = make.options(max_retries=0).remote(200_000)
    assert raysim.get(length_on_b.remote(ref)) == 200_000  # made, and read there only
    cluster.remove_node(b)
    with pytest.raises(exceptions.ObjectLostError, match="went away with its store"):
        raysim.get(ref, timeout=30)


def test_a_killed_driver_leaves_no_node_behind(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(
        "import os, sys, time\n"
        "import raysim\n"
        "from raysim.cluster_utils import Cluster\n"
        "c = Cluster(initialize_head=True, head_node_args={'num_cpus': 1})\n"
        "c.add_node(num_cpus=1)\n"
        "raysim.init(address=c.address)\n"
        "print(' '.join(str(p.pid) for p in c._processes.raylets.values()), flush=True)\n"
        "time.sleep(60)\n")
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, RAYSIM_TRACE="off"))
    pids = [int(p) for p in driver.stdout.readline().split()]
    assert len(pids) == 2
    driver.send_signal(signal.SIGKILL)
    driver.wait()

    def all_gone():
        for pid in pids:
            try:
                os.kill(pid, 0)
                return False
            except ProcessLookupError:
                pass
        return True
    poll(all_gone, "every raylet to exit after its driver was killed", timeout=20)


def test_object_managers_listen_on_loopback_only(three_nodes):
    nodes = raysim.snapshot()["gcs"]["nodes"].values()
    addresses = [n["object_manager"] for n in nodes]
    assert len(addresses) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)


def test_views_show_the_nodes(three_nodes, trace_file):
    from raysim.trace.chrome import to_chrome
    from raysim.trace.dataflow import dataflow_graph
    from raysim.trace.render import to_text
    from raysim.trace.sequence import phase_groups

    cluster, b, c = three_nodes
    ref = make.remote(200_000)
    assert raysim.get(ref).sum() == 19999900000.0
    raysim.shutdown()
    trace = load(trace_file)
    names = list(trace.process_names().values())
    assert names[:2] == ["driver", "gcs"]
    nodes = [name.partition("@")[2] for name in names[2:]]
    assert nodes == sorted(nodes)  # each node's lanes together, node1 first
    assert trace.node_names()[b.node_id] in ("node2", "node3")
    b_name = trace.node_names()[b.node_id]
    get_call = [p.number for p in trace.phases() if p.api == "get"][0]
    # The pull the get caused belongs to its phase, in every process.
    pull = [e for e in trace.records if e["ev"].startswith("object_manager.")
            and e["ev"] != "object_manager.listening"]
    assert pull and {e["phase"] for e in pull if e["ev"] != "object_manager.chunk_sent"} == {
        get_call}
    panel = next(n for n, group in enumerate(phase_groups(trace), 1)
                 if get_call in group.numbers)  # the views number the phase panels
    text = to_text(trace.stored_where(panel), width=200)
    assert f"object store of {b_name}:" in text
    assert f"{b_name}*, node1" in text  # the primary copy on B, a copy pulled to the head
    stores = trace.stored_where(panel).rows()["store"]
    head_id = cluster.head_node.node_id
    assert {(r["node"], r["object"]) for r in stores} == {
        (b.node_id[:8], "make#1.ret"), (head_id[:8], "make#1.ret")}  # each store its copy
    store_edges = [(u, v, e) for u, v, e in dataflow_graph(trace).edges(data=True)
                   if u.startswith("store:") and v.startswith("store:")]
    assert [(u, v, e["kinds"]) for u, v, e in store_edges] == [
        (f"store:{b.node_id}", f"store:{cluster.head_node.node_id}", {"pulled"})]
    assert store_edges[0][2]["bytes"] > 1_600_000
    labels = {e["args"]["labels"] for e in to_chrome(trace)["traceEvents"]
              if e["name"] == "process_labels"}
    assert labels == {"node1", "node2", "node3"}


def test_a_secondary_copy_is_evicted_before_anything_is_spilled(trace_file):
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "object_store_memory": 100 * 2 ** 20})
    cluster.add_node(num_cpus=1, resources={"B": 1})
    raysim.init(address=cluster.address, trace_path=trace_file)
    try:
        ref = make.remote(60 * 2 ** 20 // 8)  # 60 MiB on B
        assert raysim.get(ref).nbytes == 60 * 2 ** 20  # pulled: a copy on the head node
        mine = raysim.put(np.ones(60 * 2 ** 20, dtype=np.uint8))  # no room beside the copy
        assert raysim.get(mine).sum() == 60 * 2 ** 20
    finally:
        raysim.shutdown()
        cluster.shutdown()
    events = load(trace_file).records
    head = cluster.head_node.node_id
    evicted = of(events, "object_store.evicted", obj=ref.hex())
    assert [(e["node"], e["reason"]) for e in evicted] == [
        (head, "a copy: another node holds the primary")]
    assert of(events, "object_store.spilled") == []
    removed = of(events, "gcs.location_removed", obj=ref.hex())
    assert [e["location"] for e in removed] == [head]


@raysim.remote
def make_anywhere(n):
    return np.arange(n, dtype=np.float64)


def test_a_task_output_lost_with_its_node_is_made_again(three_nodes, trace_file):
    cluster, b, c = three_nodes
    on_b = NodeAffinitySchedulingStrategy(b.node_id, soft=True)  # B, or any node if B is gone
    ref = make_anywhere.options(scheduling_strategy=on_b).remote(200_000)
    assert raysim.get(length_on_b.remote(ref)) == 200_000  # made on B, read there only
    cluster.remove_node(b)
    assert raysim.get(ref, timeout=60).sum() == 19999900000.0  # made again on another node
    raysim.shutdown()
    events = load(trace_file).records
    retries = of(events, "task.retry", task=ref.task_id(), cause="object_lost")
    assert len(retries) == 1
    made = [e["location"] for e in of(events, "gcs.object_added", obj=ref.hex())]
    assert made[0] == b.node_id and made[-1] != b.node_id


def test_hard_affinity_to_a_dead_node_fails_the_task(three_nodes):
    cluster, b, c = three_nodes
    cluster.remove_node(b)
    hard = NodeAffinitySchedulingStrategy(b.node_id, soft=False)
    with pytest.raises(exceptions.TaskUnschedulableError,
                       match="The task is not schedulable: The node specified via "
                             "NodeAffinitySchedulingStrategy doesn't exist any more"):
        raysim.get(node_of.options(scheduling_strategy=hard).remote(), timeout=30)
    soft = NodeAffinitySchedulingStrategy(b.node_id, soft=True)
    assert raysim.get(node_of.options(scheduling_strategy=soft).remote()) != b.node_id


@raysim.remote
def made_once_released(release, n):
    from traceutil import wait_for_file
    wait_for_file(release)
    return np.ones(n)


def test_a_get_pulls_each_result_as_soon_as_it_is_made_not_in_list_order(three_nodes,
                                                                         trace_file, tmp_path):
    import threading
    cluster, b, c = three_nodes
    release_b, release_c = str(tmp_path / "b"), str(tmp_path / "c")
    on_b = made_once_released.options(resources={"B": 1}).remote(release_b, 1_000_000)
    on_c = made_once_released.options(resources={"C": 1}).remote(release_c, 1_000_000)
    got = []  # the lengths only: the arrays map the store, which must not outlive it
    getter = threading.Thread(
        target=lambda: got.append([len(a) for a in raysim.get([on_b, on_c], timeout=60)]))
    getter.start()
    open(release_c, "w").close()
    # The second result is pulled to the driver's node while the first is still being made,
    # as Ray's get hands all its objects to the pull manager at once.
    wait_for(trace_file, lambda ev: of(ev, "object_manager.pulled", obj=on_c.id,
                                       node=cluster.head_node.node_id),
             what="the result made on C to be pulled before the one made on B")
    open(release_b, "w").close()
    getter.join(timeout=90)
    assert got == [[1_000_000, 1_000_000]]


@raysim.remote(resources={"B": 1})
class Keeper:
    def keep(self, n):
        return [raysim.put(np.ones(n))]  # owned by this actor, on B


def test_objects_owned_on_a_removed_node_die_with_their_owner(three_nodes):
    cluster, b, c = three_nodes
    keeper = Keeper.remote()
    [ref] = raysim.get(keeper.keep.remote(200_000))
    assert len(raysim.get(ref)) == 200_000  # a copy is now on the driver's node too
    cluster.remove_node(b)
    # As in Ray, an object dies with its owner even where a copy survives.
    with pytest.raises(exceptions.OwnerDiedError, match="died with its node"):
        raysim.get(ref, timeout=30)


@raysim.remote
def array_of(n):
    return np.arange(n, dtype=np.float64)


def test_a_lost_output_read_by_a_later_task_is_made_again_first(three_nodes, trace_file):
    cluster, b, c = three_nodes
    on_b = NodeAffinitySchedulingStrategy(b.node_id, soft=True)
    ref = array_of.options(scheduling_strategy=on_b).remote(200_000)
    assert raysim.wait([ref], timeout=30)[0] == [ref]  # made on B, and only there
    # Its result reaches the driver straight from the worker; B's registration of the copy
    # in the GCS travels another way: wait for it (an object whose registration dies with
    # its node is not recovered yet: ObjectDirectory.node_removed says why).
    poll(lambda: raysim.snapshot()["gcs"]["objects"].get(ref.id, {}).get("locations"),
         "the GCS to know where the result is")
    cluster.remove_node(b)
    # As Ray's owner does when it hears a node died, the driver runs the task again at
    # once: the task reading it waits for the new copy instead of failing.
    total, node = raysim.get(total_on_c.remote(ref), timeout=60)
    assert (total, node) == (float(np.arange(200_000).sum()), c.node_id)
    raysim.shutdown()
    events = load(trace_file).records
    (retry,) = of(events, "task.retry", task=ref.task_id(), cause="object_lost")
    recover = [e for e in events if e["ev"] == "msg.send" and e["kind"] == "recover_objects"]
    assert recover and recover[0]["ts"] < retry["ts"]

