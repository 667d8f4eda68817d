"""Unit tests of the GCS actor registry and actor state machine
(raysim/runtime/gcs/actor_table.py). No process or socket is started: the table is used
directly, with the trace writer opened on a temporary file where events are checked."""

import json

import pytest

from raysim.runtime.common.errors import RaySimInternalError
from raysim.runtime.gcs.actor_table import (ALIVE, DEAD, DEPENDENCIES_UNREADY, PENDING_CREATION,
                                            RESTARTING, ActorEntry, ActorTable)
from raysim.trace import writer as trace

STATES = [DEPENDENCIES_UNREADY, PENDING_CREATION, ALIVE, RESTARTING, DEAD]
# Ray's ActorTableData.ActorState moves, written out here rather than read from the module.
LEGAL = {
    None: {DEPENDENCIES_UNREADY, PENDING_CREATION},
    DEPENDENCIES_UNREADY: {PENDING_CREATION, DEAD},
    PENDING_CREATION: {ALIVE, RESTARTING, DEAD},
    ALIVE: {RESTARTING, DEAD},
    RESTARTING: {RESTARTING, ALIVE, DEAD},
    DEAD: set(),
}


@pytest.fixture
def events(tmp_path):
    """Opens the trace on a temp file; calling the fixture's value returns the events so far."""
    assert not trace.enabled(), "a trace was already open in this process"
    path = tmp_path / "trace.jsonl"
    trace.open_trace(str(path), "gcs", "node0")

    def read():
        trace.flush()
        return [json.loads(line) for line in path.read_text().splitlines()]
    try:
        yield read
    finally:
        trace.close_trace()


def make_table(actor_id="a1", name=None, namespace=None):
    table = ActorTable()
    table.register(ActorEntry(actor_id, "BatchPredictor", f"h-{actor_id}", "driver:1",
                              name=name, namespace=namespace))
    return table


def test_state_names_are_rays():
    assert STATES == ["DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD"]


@pytest.mark.parametrize("start", [None, *STATES])
@pytest.mark.parametrize("target", STATES)
def test_transition_matrix_allows_exactly_rays_moves(start, target):
    table = make_table()
    table.actors["a1"].state = start
    if target in LEGAL[start]:
        assert table.transition("a1", target).state == target
    else:
        with pytest.raises(RaySimInternalError, match="illegal actor state change"):
            table.transition("a1", target)
        assert table.actors["a1"].state == start


def test_full_life_with_a_restart_records_location_restarts_and_cause():
    table = make_table()
    table.transition("a1", DEPENDENCIES_UNREADY)
    table.transition("a1", PENDING_CREATION)
    table.transition("a1", ALIVE, node="n1", wid="w1", pid=101)
    entry = table.transition("a1", RESTARTING, "worker crashed", "WORKER_DIED", num_restarts=1)
    assert (entry.state, entry.num_restarts) == (RESTARTING, 1)
    assert (entry.death_cause, entry.cause) == ("worker crashed", "WORKER_DIED")
    table.transition("a1", ALIVE, wid="w2", pid=102)
    entry = table.transition("a1", DEAD, "ray.kill", "RAY_KILL")
    assert table.snapshot() == {"a1": {
        "actor_id": "a1", "class_name": "BatchPredictor", "state": "DEAD", "name": None,
        "namespace": None, "node": "n1", "wid": "w2", "pid": 102, "num_restarts": 1,
        "death_cause": "ray.kill", "cause": "RAY_KILL"}}


def test_table_does_not_count_restarts_itself():
    table = make_table()
    table.transition("a1", PENDING_CREATION)
    table.transition("a1", ALIVE)
    table.transition("a1", RESTARTING)
    table.transition("a1", RESTARTING)
    assert table.actors["a1"].num_restarts == 0  # the raylet reports the count


def test_unknown_actor_transition_raises_internal_error():
    with pytest.raises(RaySimInternalError, match="unknown actor"):
        ActorTable().transition("nobody", PENDING_CREATION)


def test_register_twice_keeps_the_first_entry():
    table = make_table()
    table.register(ActorEntry("a1", "Other", "h-other", "driver:2"))
    assert table.actors["a1"].class_name == "BatchPredictor"
    assert table.by_handle_object == {"h-a1": "a1"}


def test_named_actor_is_found_by_name_and_namespace():
    table = make_table(name="pred", namespace="ns")
    assert table.lookup_name("pred", "ns").actor_id == "a1"
    assert table.lookup_name("pred", None) is None
    assert table.lookup_name("other", "ns") is None
    default = make_table(name="pred")
    assert default.lookup_name("pred", "").actor_id == "a1"  # None and "" are one namespace


def test_dead_actor_frees_its_name():
    table = make_table(name="pred")
    table.transition("a1", PENDING_CREATION)
    table.transition("a1", DEAD, "init failed", "CREATION_TASK_ERROR")
    assert table.lookup_name("pred", None) is None
    assert table.actors["a1"].state == DEAD  # the row stays


def test_death_of_an_old_actor_does_not_free_a_name_taken_again():
    table = make_table("a1", name="pred")
    table.transition("a1", PENDING_CREATION)
    table.register(ActorEntry("a2", "BatchPredictor", "h-a2", "driver:1", name="pred"))
    table.transition("a1", DEAD)
    assert table.lookup_name("pred", None).actor_id == "a2"


def test_each_transition_emits_one_actor_state_event(events):
    table = make_table(name="pred")
    table.transition("a1", PENDING_CREATION)
    table.transition("a1", ALIVE, node="n1", wid="w1", pid=7)
    table.transition("a1", DEAD, "out of scope", "OUT_OF_SCOPE")
    evs = [e for e in events() if e["ev"] == "gcs.actor_state"]
    assert [e["state"] for e in evs] == [PENDING_CREATION, ALIVE, DEAD]
    last = evs[-1]
    assert (last["actor"], last["class_name"], last["handle_object"]) == (
        "a1", "BatchPredictor", "h-a1")
    assert (last["worker_pid"], last["wid"], last["actor_node"], last["name"]) == (
        7, "w1", "n1", "pred")
    assert (last["reason"], last["cause"], last["num_restarts"]) == (
        "out of scope", "OUT_OF_SCOPE", 0)
    assert (last["proc"], last["node"]) == ("gcs", "node0")


def test_rejected_transition_emits_nothing(events):
    table = make_table()
    with pytest.raises(RaySimInternalError):
        table.transition("a1", ALIVE)
    assert [e for e in events() if e["ev"] == "gcs.actor_state"] == []


def test_transition_without_open_trace_still_changes_state():
    assert not trace.enabled()
    table = make_table()
    assert table.transition("a1", PENDING_CREATION).state == PENDING_CREATION
