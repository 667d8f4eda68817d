"""The SimPy model: transfers over shared links, chunk by chunk, and programs whose makespan
follows what bounds them."""

import pytest
from sim_trace import MiB, Run
from traceutil import of

from raysim.sim import Calibration, SimConfig, simulate
from raysim.sim.network import Link, Network

# Local costs of zero: what remains is the network the test sets.
FREE = Calibration(message_s={"driver->raylet": 0.0}, store_write_Bps=1e15,
                   chunk_overhead_s=0.0)
GBIT = 1e9
NODES = {"aaaa0001": {"CPU": 2.0}, "bbbb0002": {"CPU": 2.0}, "cccc0003": {"CPU": 2.0}}


def config(**kw) -> SimConfig:
    kw.setdefault("calibration", FREE)
    kw.setdefault("placement", "recorded")
    return SimConfig(**kw)


def test_one_transfer_takes_its_latencies_and_its_bytes_over_the_bandwidth():
    run = Run(NODES)
    size = 12 * MiB
    data = run.put(size)
    run.get([run.task("bbbb0002", 0.001, deps=[data])])
    latency = 0.5e-3
    result = simulate(run.records(), config(bandwidth_bps=GBIT, latency_s=latency))
    (transfer,) = result.transfers
    assert (transfer.obj, transfer.from_node, transfer.to_node) == (data, "aaaa0001",
                                                                    "bbbb0002")
    # After a lookup in the GCS on the head (a round trip: 2 latencies), the transfer: a
    # connection (a round trip), the request and the first byte's flight (one way each),
    # then the bytes.
    expected = 4 * latency + size / (GBIT / 8)
    assert transfer.end_s - transfer.start_s == pytest.approx(expected, rel=1e-6)
    # Before it: the task forwarded to B through the GCS (one latency), the lookup (two).
    located = of(result.records, "gcs.object_located")[0]["ts"]
    submitted = of(result.records, "task.submitted")[0]["ts"]
    assert (located - submitted) / 1e9 == pytest.approx(3 * latency, rel=1e-6)
    # Chunk by chunk, at the config's 5 MiB: 5, 5 and 2 MiB, each at the link's rate.
    chunks = of(result.records, "object_manager.chunk_received", obj=data)
    assert [c["bytes"] for c in chunks] == [5 * MiB, 5 * MiB, 2 * MiB]
    for chunk in chunks:
        assert chunk["dur"] / 1e9 == pytest.approx(chunk["bytes"] / (GBIT / 8), rel=1e-6)
        assert chunk["node"] == "bbbb0002" and chunk["from_node"] == "aaaa0001"
    assert len(of(result.records, "object_manager.chunk_sent", node="aaaa0001")) == 3


def test_two_transfers_over_one_link_each_take_twice_as_long():
    def pull_time(objects: int) -> list[float]:
        run = Run(NODES)
        puts = [run.put(40 * MiB) for _ in range(objects)]
        results = [run.task("bbbb0002", 0.001, deps=[p]) for p in puts]
        run.get(results)
        result = simulate(run.records(), config(bandwidth_bps=GBIT, latency_s=0.0))
        return [t.end_s - t.start_s for t in result.transfers]

    (alone,) = pull_time(1)
    together = pull_time(2)
    assert len(together) == 2
    for each in together:
        assert each == pytest.approx(2 * alone, rel=0.01)


def test_a_node_receiving_from_two_holders_shares_its_ingress_unless_it_is_unlimited():
    run = Run(NODES)
    on_b = run.task("bbbb0002", 0.001, returns=40 * MiB)
    on_c = run.task("cccc0003", 0.001, returns=40 * MiB)
    run.get([on_b, on_c])  # both pulled to the head at once
    records = run.records()
    alone = 40 * MiB / (GBIT / 8)
    for ingress, expected in ((None, 2 * alone), (float("inf"), alone)):
        result = simulate(records, config(bandwidth_bps=GBIT, latency_s=0.0,
                                          ingress_bps=ingress))
        assert [t.end_s - t.start_s for t in result.transfers] == pytest.approx(
            [expected, expected], rel=0.01), ingress


def test_max_min_sharing_gives_a_flow_held_back_elsewhere_s_share_to_the_others():
    import simpy

    env = simpy.Environment()
    net = Network(env)
    shared, narrow = Link("shared", 100.0), Link("narrow", 10.0)
    wide = net.transfer(900, (shared,))
    held = net.transfer(100, (shared, narrow))
    env.run()
    # The held-back flow gets 10 B/s (its narrow link), the other the 90 B/s left: both end
    # at t=10 s; with an equal split the wide one would have needed more.
    assert wide.triggered and held.triggered
    assert env.now == pytest.approx(10.0)
    assert shared.bytes == pytest.approx(1000.0)


def _broadcast(size: int) -> list[dict]:
    """One object from the driver read by a task on every node: transfer-bound."""
    run = Run(NODES)
    data = run.put(size)
    run.get([run.task(node, 0.01, deps=[data]) for node in NODES])
    return run.records()


def _compute(tasks: int) -> list[dict]:
    """Tasks of a second each, with small arguments and results: CPU-bound."""
    run = Run(NODES)
    nodes = list(NODES)
    run.get([run.task(nodes[i % 3], 1.0, returns=200 * 1024) for i in range(tasks)])
    return run.records()


def test_halving_the_bandwidth_slows_a_transfer_bound_program_not_a_cpu_bound_one():
    def makespans(records) -> tuple[float, float]:
        fast = simulate(records, config(bandwidth_bps=10 * GBIT, latency_s=200e-6))
        slow = simulate(records, config(bandwidth_bps=5 * GBIT, latency_s=200e-6))
        return fast.makespan_s, slow.makespan_s

    fast, slow = makespans(_broadcast(200 * 1024 * 1024))
    assert slow / fast > 1.8, (fast, slow)
    fast, slow = makespans(_compute(12))
    assert slow / fast < 1.02, (fast, slow)


def test_policy_placement_uses_free_cpus_on_other_nodes_and_pays_for_the_results():
    records = _compute(12)
    recorded = simulate(records, config(bandwidth_bps=GBIT))
    on_one = simulate(records, config(bandwidth_bps=GBIT, placement="policy", nodes=1))
    spread = simulate(records, config(bandwidth_bps=GBIT, placement="policy", nodes=3))
    # 12 one-second tasks: 2 CPUs take 6 s, 6 CPUs 2 s.
    assert on_one.makespan_s == pytest.approx(6.0, rel=0.01)
    assert spread.makespan_s == pytest.approx(2.0, rel=0.05)
    assert recorded.makespan_s == pytest.approx(2.0, rel=0.05)
    assert not on_one.transfers
    # Results made on the other nodes are pulled to the driver's.
    assert {t.to_node for t in spread.transfers} == {"aaaa0001"}
    # Four spill back at once (B and C have room); the rest wait for the first CPU free.
    reasons = [e["reason"] for e in of(spread.records, "gcs.task_placed")]
    assert reasons.count("aaaa0001 is full: spillback") == 4
    assert set(reasons) == {"aaaa0001 is full: spillback", "the first node with room"}


def test_a_bad_configuration_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="placement must be 'policy' or 'recorded'"):
        SimConfig(placement="random")
    with pytest.raises(ValueError, match="nodes must be at least 1"):
        SimConfig(nodes=0)
    with pytest.raises(ValueError, match="not a raysim trace"):
        simulate([{"ev": "task.execute"}])
