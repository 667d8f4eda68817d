"""Seed phase 1: ray.init() starts GCS, raylet with its object store, and idle workers."""

import os

import pytest
from traceutil import load, of, pid_alive, wait_for

import raysim


def test_init_starts_real_processes_and_records_them(ray_start, trace_file):
    events = wait_for(trace_file, lambda ev: len(of(ev, "worker.registered", role="task")) >= 2,
                      what="two prestarted task workers")
    started = {e["proc"]: e for e in of(events, "process.started") if e["proc"] != "worker"}
    assert set(started) == {"driver", "gcs", "raylet", "zygote"}
    pids = {e["pid"] for e in started.values()}
    assert len(pids) == 4, "each component runs in a process of its own"
    assert started["driver"]["pid"] == os.getpid()
    for proc in ("gcs", "raylet", "zygote"):
        assert pid_alive(started[proc]["pid"])
    addr = ray_start["address_info"]
    assert started["gcs"]["pid"] == addr["gcs"]
    assert started["raylet"]["pid"] == addr["raylet"]
    # The store belongs to the raylet; the GCS learns of the node; workers are idle.
    (store,) = of(events, "store.created")
    assert store["pid"] == addr["raylet"] and store["capacity"] > 0
    (node,) = of(events, "node.registered")
    assert node["raylet_pid"] == addr["raylet"] and node["resources"]["CPU"] == 2.0
    assert node["resources"]["object_store_memory"] == store["capacity"]
    workers = [e["worker_pid"] for e in of(events, "worker.registered", role="task")]
    assert len(set(workers)) == len(workers) and all(pid_alive(p) for p in workers)
    # The trace starts with its header, and every event validates against the schema.
    assert events[0]["ev"] == "trace.header"
    assert events[0]["schema_version"].startswith("1.")


def test_init_phase_messages_are_paired(trace_file):
    raysim.init(num_cpus=2, trace_path=trace_file)
    wait_for(trace_file, lambda ev: len(of(ev, "worker.registered", role="task")) >= 2)
    raysim.shutdown()  # every process has written its last events
    events = load(trace_file)
    sends = {e["msg"]: e for e in of(events, "msg.send")}
    for recv in of(events, "msg.recv"):
        send = sends.get(recv["msg"])
        assert send is not None, f"received {recv['msg']} that nobody sent"
        assert send["kind"] == recv["kind"] and send["ts"] <= recv["ts"]
        assert send["to_pid"] == recv["pid"] and recv["src_pid"] == send["pid"]


def test_cluster_resources_and_runtime_context(ray_start):
    assert raysim.is_initialized()
    # Ray's keys: CPUs, heap memory, the store's size, the node's own resource.
    assert set(raysim.cluster_resources()) == {"CPU", "memory", "object_store_memory",
                                               "node:127.0.0.1", "node:__internal_head__"}
    assert raysim.cluster_resources()["CPU"] == 2.0
    assert raysim.available_resources()["CPU"] == 2.0
    ctx = raysim.get_runtime_context()
    assert ctx.get_node_id() == ray_start["node_id"]
    assert ctx.get_task_id() is None and ctx.get_actor_id() is None


def test_second_init_is_rejected_unless_ignored(ray_start):
    with pytest.raises(RuntimeError, match="ignore_reinit_error"):
        raysim.init()
    assert raysim.init(ignore_reinit_error=True) is ray_start


def test_shutdown_stops_every_process_and_removes_sockets(trace_file):
    ctx = raysim.init(num_cpus=2, trace_path=trace_file)
    events = wait_for(trace_file, lambda ev: len(of(ev, "worker.registered", role="task")) >= 2)
    pids = [e["pid"] for e in of(events, "process.started") if e["proc"] != "driver"]
    session_dir = ctx["session_dir"]
    raysim.shutdown()
    assert not raysim.is_initialized()
    assert not [p for p in pids if pid_alive(p)]
    assert not [f for f in os.listdir(session_dir) if f.endswith(".sock")]
    assert (os.stat(session_dir).st_mode & 0o777) == 0o700
    # The trace survives the session.
    assert of(load(trace_file), "process.stopping")


def test_api_before_init_says_what_to_do(monkeypatch):
    # put() starts a session by itself, as Ray's does, unless that is turned off.
    monkeypatch.setenv("RAYSIM_ENABLE_AUTO_CONNECT", "0")
    with pytest.raises(raysim.exceptions.RaySimNotInitializedError, match="raysim.init"):
        raysim.put(1)


def test_tracing_off_writes_no_trace(tmp_path):
    path = tmp_path / "t.jsonl"
    raysim.init(num_cpus=1, trace_path=str(path), tracing=False)
    try:
        assert raysim.get(raysim.put(5)) == 5
        assert raysim.trace_path() is None
    finally:
        raysim.shutdown()
    assert not path.exists()


def test_the_zygote_imports_the_drivers_modules_after_what_every_worker_needs(trace_file):
    import networkx  # noqa: F401  a third-party module no raysim process imports by itself

    raysim.init(num_cpus=2, trace_path=trace_file)
    try:
        events = wait_for(trace_file, lambda ev: any(
            "networkx" in e["modules"] for e in of(ev, "zygote.preloaded")),
            what="the zygote importing networkx")
        first, *later = of(events, "zygote.preloaded")
        # What every worker needs comes first, alone: workers forked before the driver's
        # other modules are in do not wait for them.
        assert {"cloudpickle", "numpy"} <= set(first["modules"])
        assert "networkx" not in first["modules"]

        @raysim.remote
        class Probe:
            def has(self, name):
                import sys
                return name in sys.modules

        # A worker forked now starts with networkx without importing it itself.
        assert raysim.get(Probe.remote().has.remote("networkx"))
    finally:
        raysim.shutdown()


def test_init_accepts_what_ray_260_accepts_and_refuses_local_mode(trace_file):
    with pytest.raises(RuntimeError, match="local_mode.*no longer supported.*Tip"):
        raysim.init(local_mode=True, trace_path=trace_file)
    assert not raysim.is_initialized()
    raysim.init(num_cpus=1, local_mode=False, logging_level="warning", configure_logging=False,
                include_dashboard=False, dashboard_host="127.0.0.1", labels={"zone": "a"},
                trace_path=trace_file)
    try:
        assert raysim.cluster_resources()["CPU"] == 1.0
    finally:
        raysim.shutdown()
