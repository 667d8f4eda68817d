"""Seed phase 3: BatchPredictor.remote(model_ref) x3 — the raylet schedules each actor on a
worker of its own, the worker fetches model_ref, runs __init__ and registers with the GCS;
model_ref's count goes 1 -> 4 (driver + 3 actors)."""

from seed_model import BatchPredictor, holders, load_trained_model
from traceutil import of, wait_for

import raysim


def _created(oid):
    def settled(events):
        alive = of(events, "gcs.actor_state", state="ALIVE")
        held = holders(events, oid)
        return len(alive) == 3 and len(held) == 4 and \
            all(t == "LOCAL_REFERENCE" for t in held.values())
    return settled


def test_three_actors_alive_on_three_workers_and_model_count_is_four(ray_start, trace_file):
    model_ref = raysim.put(load_trained_model())
    oid = model_ref.hex()
    actors = [BatchPredictor.remote(model_ref) for _ in range(3)]
    events = wait_for(trace_file, _created(oid), what="3 ALIVE actors and a count of 4")

    alive = of(events, "gcs.actor_state", state="ALIVE")
    assert {e["actor"] for e in alive} == {a._actor_id for a in actors}
    pids = {e["worker_pid"] for e in alive}
    assert len(pids) == 3, "each actor has a dedicated worker process"
    assert all(e["class_name"] == "BatchPredictor" for e in alive)

    held = holders(events, oid)
    assert sum(h.startswith("driver:") for h in held) == 1
    assert sum(h.startswith("worker:") for h in held) == 3
    counts = [e["count"] for e in events if e.get("obj") == oid and e["ev"] == "gcs.ref_added"]
    assert counts[0] == 1 and max(counts) >= 4
    # While creation was pending, each creation task held the model (USED_BY_PENDING_TASK).
    pending = [e for e in of(events, "gcs.ref_added", obj=oid)
               if e["ref_type"] == "USED_BY_PENDING_TASK"]
    assert len(pending) == 3

    # The live runtime agrees with the trace.
    snap = raysim.snapshot()
    assert snap["gcs"]["objects"][oid]["ref_count"] == 4
    table = snap["gcs"]["actors"]
    assert sorted(row["state"] for row in table.values()) == ["ALIVE"] * 3
    assert {row["pid"] for row in table.values()} == pids


def test_creation_steps_in_order_for_one_actor(ray_start, trace_file):
    model_ref = raysim.put(load_trained_model())
    actor = BatchPredictor.remote(model_ref)
    aid = actor._actor_id
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.actor_state", actor=aid, state="ALIVE")
                      and of(ev, "actor.state", actor=aid) and of(ev, "function.loaded"),
                      what="the actor's creation, in GCS and worker")
    (submitted,) = of(events, "task.submitted", task_kind="actor_creation")
    task = submitted["task"]
    (decision,) = of(events, "scheduler.decision", task=task, decision="start_actor_worker")
    assert decision["resources"] == {"CPU": 1.0}, "placing an actor takes 1 CPU"
    (execute,) = of(events, "task.execute", task=task)
    worker_pid = execute["pid"]
    (resolved,) = of(events, "task.args_resolved", task=task)
    (fetch,) = [e for e in of(events, "object.get", obj=model_ref.hex()) if e["pid"] == worker_pid]
    (state,) = of(events, "actor.state", task=task)
    (registered,) = of(events, "gcs.actor_state", actor=aid, state="ALIVE")
    pending = of(events, "gcs.actor_state", actor=aid, state="PENDING_CREATION")
    order = [submitted, decision, fetch, resolved, execute, state, registered]
    assert [e["ts"] for e in order] == sorted(e["ts"] for e in order)
    assert submitted["ts"] < pending[0]["ts"] < registered["ts"]
    assert fetch["path"] == "local_store" and resolved["pid"] == worker_pid
    assert state["attrs"]["prediction_count"] == "0"
    assert "function" in state["attrs"]["model"]
    assert registered["worker_pid"] == worker_pid
    # The class travelled once, through the GCS key-value store.
    assert of(events, "function.exported", name="BatchPredictor")
    assert [e["pid"] for e in of(events, "function.loaded")] == [worker_pid]


def test_actors_do_not_hold_cpus_once_alive(ray_start, trace_file):
    model_ref = raysim.put(load_trained_model())
    actors = [BatchPredictor.remote(model_ref) for _ in range(4)]
    tasks = {a._descriptor["handle_object"][:16] for a in actors}
    wait_for(trace_file, lambda ev: len([e for e in of(ev, "task.finished", ok=True)
                                         if e["task"] in tasks]) == 4,
             what="4 actors created on 2 CPUs")
    assert raysim.available_resources().get("CPU") == 2.0
    del actors
