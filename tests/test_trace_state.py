"""The cluster's tables at any moment, rebuilt from a trace alone: they tell the founding
document's story (3 actors ALIVE on 3 workers, model_ref's count 4, prediction_count 1) and
agree with what the live runtime reported at the same moment.

The founding program runs once for the module; ``raysim.snapshot()`` is taken once the
program is done and before shutdown, when nothing in the cluster changes any more."""

import dataclasses

import pytest
from seed_model import BatchPredictor, holders, load_trained_model, write_parquet
from traceutil import of, wait_for

import raysim
from raysim.trace import state as replay
from raysim.trace.loader import load

# data0's result (a DataFrame of 200,000 booleans, ~200 KB) is stored in the object store;
# the others go back inline. So the store and the GCS object table hold a result too.
ROWS = (200_000, 100, 100)


@dataclasses.dataclass
class FoundingRun:
    path: str
    model: str
    actors: list[str]
    futures: list[str]
    snapshot: dict


def _quiet(model: str, stored_result: str):
    """True once the trace holds every event the founding program causes before shutdown."""
    def settled(events: list[dict]) -> bool:
        held = holders(events, model)
        return (len(of(events, "actor.state")) == 6
                and len(of(events, "gcs.actor_state", state="ALIVE")) == 3
                and len(held) == 4 and set(held.values()) == {"LOCAL_REFERENCE"}
                and bool(of(events, "gcs.object_added", obj=stored_result)))
    return settled


@pytest.fixture(scope="module")
def run(shared_session, tmp_path_factory) -> FoundingRun:
    data = tmp_path_factory.mktemp("data")
    model_ref = raysim.put(load_trained_model())
    actors = [BatchPredictor.remote(model_ref) for _ in range(3)]
    files = [write_parquet(data / f"data{i}.parquet", rows) for i, rows in enumerate(ROWS)]
    futures = [actors[i].predict.remote(files[i]) for i in range(3)]
    results = raysim.get(futures)
    assert [count for _, count in results] == [1, 1, 1]
    path = shared_session.trace_path
    wait_for(path, _quiet(model_ref.hex(), futures[0].hex()),
             what="the founding program's last events")
    snapshot = raysim.snapshot()
    raysim.shutdown()  # refs are still held here: they are released by shutdown, not before
    return FoundingRun(path, model_ref.hex(), [a._actor_id for a in actors],
                       [f.hex() for f in futures], snapshot)


@pytest.fixture(scope="module")
def trace(run):
    return load(run.path)


def _before_shutdown(trace) -> int:
    """The index of the last event before the shutdown phase began."""
    shutdown = trace.phases()[-1]
    assert shutdown.api == "shutdown"
    return shutdown.first_index - 1


def _creation_settled(trace, model: str) -> tuple[int, int]:
    """Where actor creation is done: the index of the event that made the third actor ALIVE,
    and of the last of the creation's changes to the model's holders (each actor's worker
    taking a reference, each creation task dropping its own). Found by content, not by phase
    number: a worker's late events can carry the number of an earlier call."""
    records = trace.records
    alive = [i for i, e in enumerate(records)
             if e["ev"] == "gcs.actor_state" and e["state"] == "ALIVE"]
    changes = [i for i, e in enumerate(records)
               if e.get("obj") == model and (
                   e["ev"] == "gcs.ref_added" and e["holder"].startswith("worker:")
                   or e["ev"] == "gcs.ref_removed" and e["holder"].startswith("task:"))]
    assert len(alive) == 3 and len(changes) == 6
    return alive[-1], max(alive[-1], changes[-1])


def test_after_actor_creation_three_actors_are_alive_and_the_model_count_is_four(run, trace):
    third_alive, settled = _creation_settled(trace, run.model)
    state = trace.state_at(settled)
    for moment in (trace.state_at(third_alive), state):
        actors = moment.gcs.actors
        assert sorted(actors) == sorted(run.actors)
        assert [row["state"] for row in actors.values()] == ["ALIVE"] * 3
        assert {row["class_name"] for row in actors.values()} == {"BatchPredictor"}
        assert len({row["worker_pid"] for row in actors.values()}) == 3, \
            "each actor has a worker process of its own"
    assert trace.state_at(third_alive - 1).gcs.actors[trace.records[third_alive]["actor"]][
        "state"] == "PENDING_CREATION"

    model = state.gcs.objects[run.model]
    assert model["ref_count"] == 4
    kinds = sorted(holder.split(":")[0] for holder in model["holders"])
    assert kinds == ["driver", "worker", "worker", "worker"]
    # The three worker holders are the actors' workers (the GCS names them by worker id).
    wids = {row["wid"] for row in state.gcs.actors.values()}
    assert {h.split(":")[1] for h in model["holders"] if h.startswith("worker:")} == wids
    assert state.stores[model["locations"][0]]["objects"][run.model]["sealed"] is True


def test_once_put_the_model_is_stored_registered_and_held_by_the_driver(run, trace):
    """Seed phase 2: sealed in the store, registered with the GCS, held by the driver."""
    records = trace.records
    registered = next(i for i, e in enumerate(records) if e["ev"] == "gcs.ref_added"
                      and e["obj"] == run.model and e["holder"].startswith("driver:"))
    acquired = next(i for i, e in enumerate(records) if e["ev"] == "ref.acquired"
                    and e["obj"] == run.model and e["proc"] == "driver")
    before = trace.state_at(min(registered, acquired) - 1)
    assert run.model not in before.gcs.objects or run.model not in before.driver_refs
    state = trace.state_at(max(registered, acquired))
    model = state.gcs.objects[run.model]
    assert model["owner"].startswith("driver:")
    assert model["holders"][model["owner"]] == "LOCAL_REFERENCE"
    assert state.driver_refs[run.model] == "LOCAL_REFERENCE"
    (location,) = model["locations"]
    entry = state.stores[location]["objects"][run.model]
    assert entry["sealed"] is True and entry["size"] == model["size"]


def test_at_the_end_each_actor_has_made_one_prediction(run, trace):
    state = trace.state_at(len(trace) - 1)
    assert sorted(state.actors) == sorted(run.actors)
    for actor in state.actors.values():
        assert actor["attrs"]["prediction_count"] == "1"
        assert actor["calls"] == 1
    pids = {row["worker_pid"] for row in state.gcs.actors.values()}
    assert {actor["pid"] for actor in state.actors.values()} == pids


def test_driver_holds_the_model_the_handles_and_the_futures(run, trace):
    state = trace.state_at(_before_shutdown(trace))
    refs = state.driver_refs
    assert refs[run.model] == "LOCAL_REFERENCE"
    for future in run.futures:
        assert refs[future] == "LOCAL_REFERENCE", "task.submitted hands the caller its future"
    assert sorted(refs.values()).count("ACTOR_HANDLE") == 3
    assert state.driver == f"driver:{trace.header['pid']}"
    # Each actor's worker holds the model (its constructor argument) by its own count.
    for row in state.gcs.actors.values():
        assert state.refs[f"worker:{row['worker_pid']}"] == {run.model: "LOCAL_REFERENCE"}


def test_replayed_tables_match_the_live_snapshot(run, trace):
    state = trace.state_at(_before_shutdown(trace))
    live = run.snapshot["gcs"]
    assert {a: row["state"] for a, row in state.gcs.actors.items()} == \
        {a: row["state"] for a, row in live["actors"].items()}
    assert {a: (row["worker_pid"], row["wid"], row["node"])
            for a, row in state.gcs.actors.items()} == \
        {a: (row["pid"], row["wid"], row["node"]) for a, row in live["actors"].items()}
    assert {o: row["ref_count"] for o, row in state.gcs.objects.items()} == \
        {o: row["ref_count"] for o, row in live["objects"].items()}
    assert state.gcs.objects == live["objects"], "sizes, owners, locations and holders too"
    assert state.gcs.unregistered == {}
    assert state.gcs.nodes == live["nodes"] and state.gcs.jobs == live["jobs"]
    (node,) = run.snapshot["raylets"]
    live_store = run.snapshot["raylets"][node]["store"]
    assert set(state.stores[node]["objects"]) == set(live_store["objects"])
    assert state.stores[node] == live_store, "capacity, usage and every entry"
    assert run.futures[0] in live_store["objects"], "the big result is in the store"


def test_state_at_equals_a_replay_from_the_first_event(trace):
    """Checkpoints every 7 events, so a small trace crosses many of them."""
    history = replay.History(trace.records, every=7)
    n = len(trace)
    for index in sorted({0, 5, 6, 7, 8, 13, 14, n // 3, n // 2, n - 8, n - 7, n - 2, n - 1}):
        expected = replay.replay(trace.records, index)
        assert history.state_at(index) == expected, f"at event {index}"
        assert expected.index == index and expected.ts == trace.records[index]["ts"]
    assert trace.state_at(n // 2) == replay.replay(trace.records, n // 2)
    assert trace.state_at(-1) == trace.state_at(n - 1)


def test_a_returned_state_is_a_copy(run, trace):
    index = _before_shutdown(trace)
    state = trace.state_at(index)
    state.gcs.objects[run.model]["holders"].clear()
    state.driver_refs.clear()
    next(iter(state.stores.values()))["objects"].clear()
    assert trace.state_at(index) == replay.replay(trace.records, index), \
        "changing a returned state must not change the saved ones"


def test_out_of_range_index_is_refused(trace):
    with pytest.raises(IndexError, match=f"the trace has {len(trace)} events"):
        trace.state_at(len(trace))
    with pytest.raises(IndexError):
        trace.state_at(-len(trace) - 1)


def test_replay_handles_references_that_arrive_before_the_object():
    """The directory can hear of a holder before the store registers the object (they come
    on different sockets); such an object stays out of the table until it is registered."""
    def event(ev, **fields):
        return {"ts": 0, "ev": ev, "proc": "gcs", "node": "n1", "pid": 1, "phase": 1, **fields}
    records = [
        event("gcs.ref_added", obj="o1", holder="worker:b", ref_type="LOCAL_REFERENCE",
              count=1),
        event("gcs.object_added", obj="o1", location="n1", size=5, owner="driver:a"),
        event("gcs.ref_added", obj="o1", holder="driver:a", ref_type="LOCAL_REFERENCE",
              count=2),
        event("gcs.ref_removed", obj="o1", holder="worker:b", count=1),
        event("gcs.ref_removed", obj="o1", holder="driver:a", count=0),
        event("gcs.object_freed", obj="o1", locations=["n1"]),
    ]
    early = replay.replay(records, 0)
    assert early.gcs.objects == {} and early.gcs.unregistered == {"o1": {"worker:b":
                                                                         "LOCAL_REFERENCE"}}
    both = replay.replay(records, 2).gcs.objects["o1"]
    assert both == {"size": 5, "owner": "driver:a", "locations": ["n1"], "primary": "n1",
                    "ref_count": 2,
                    "holders": {"worker:b": "LOCAL_REFERENCE", "driver:a": "LOCAL_REFERENCE"}}
    assert replay.replay(records, 4).gcs.objects["o1"]["ref_count"] == 0
    assert replay.replay(records, 5).gcs.objects == {}
