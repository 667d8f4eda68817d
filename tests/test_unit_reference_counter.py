"""Unit tests of a process's reference counter (raysim/runtime/core_worker/reference_counter.py):
local refs, pins and submitted actor calls, the messages the GCS gets on each change of hold
(borrowed and owned objects, values and tasks holding for others), and the
ref.acquired/ref.released events. No process or socket is started: the counter is given a
fake GCS that records what it is told."""

import json

import pytest

from raysim.runtime.core_worker.reference_counter import ReferenceCounter
from raysim.trace import writer as trace
from raysim.trace.schema import (ACTOR_HANDLE, LOCAL_REFERENCE, PINNED_IN_MEMORY,
                                 USED_BY_PENDING_TASK)


class FakeGcs:
    """Records what the counter tells the GCS, and what it asks it (answered at once)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict]] = []

    def tell(self, kind: str, body: dict) -> None:
        self.messages.append((kind, body))

    def ask(self, kind: str, body: dict) -> dict:
        self.messages.append((kind, body))
        return {}


@pytest.fixture
def gcs():
    return FakeGcs()


@pytest.fixture
def rc(gcs):
    return ReferenceCounter(gcs.tell, gcs.ask, closing=lambda: False, on_io_thread=lambda: False)


@pytest.fixture
def calls(gcs):
    """What the GCS learnt of each borrowed object's hold, in order: (object, ref type), or
    (object, None) once nothing is held."""
    def held():
        out = []
        for kind, body in gcs.messages:
            for oid in body["objects"]:
                out.append((oid, None if kind == "remove_ref" else body["ref_type"]))
        return out
    return held


@pytest.fixture
def events(tmp_path):
    assert not trace.enabled(), "a trace was already open in this process"
    path = tmp_path / "trace.jsonl"
    trace.open_trace(str(path), "driver", "node0")

    def read():
        trace.flush()
        return [(e["ev"], e["obj"], e.get("ref_type"))
                for e in map(json.loads, path.read_text().splitlines())
                if e["ev"] in ("ref.acquired", "ref.released")]
    try:
        yield read
    finally:
        trace.close_trace()


def test_reference_kind_names_are_rays():
    assert (LOCAL_REFERENCE, PINNED_IN_MEMORY, ACTOR_HANDLE, USED_BY_PENDING_TASK) == (
        "LOCAL_REFERENCE", "PINNED_IN_MEMORY", "ACTOR_HANDLE", "USED_BY_PENDING_TASK")


def test_only_first_and_last_local_reference_call_back(rc, calls):
    rc.add_local("o1")
    rc.add_local("o1")
    rc.add_local("o1")
    assert calls() == [("o1", LOCAL_REFERENCE)]
    assert rc.local == {"o1": 3}
    rc.remove_local("o1")
    rc.remove_local("o1")
    assert calls() == [("o1", LOCAL_REFERENCE)]
    rc.remove_local("o1")
    assert calls() == [("o1", LOCAL_REFERENCE), ("o1", None)]
    assert rc.local == {} and rc.held_type("o1") is None


def test_actor_handle_kind_is_kept_until_last_handle_goes(rc, calls):
    rc.add_local("h1", ACTOR_HANDLE)
    rc.add_local("h1", LOCAL_REFERENCE)  # the kind is the first reference's
    assert rc.held_type("h1") == ACTOR_HANDLE
    assert calls() == [("h1", ACTOR_HANDLE)]


def test_counts_are_per_object(rc, calls):
    rc.add_local("a")
    rc.add_local("b")
    rc.remove_local("a")
    assert calls() == [("a", LOCAL_REFERENCE), ("b", LOCAL_REFERENCE), ("a", None)]
    assert rc.held_type("b") == LOCAL_REFERENCE


def test_pin_without_ref_holds_pinned_in_memory(rc, calls):
    rc.add_pin("o1")
    rc.add_pin("o1")
    assert rc.held_type("o1") == PINNED_IN_MEMORY
    rc.remove_pin("o1")
    assert calls() == [("o1", PINNED_IN_MEMORY)]
    rc.remove_pin("o1")
    assert calls() == [("o1", PINNED_IN_MEMORY), ("o1", None)]


def test_dropping_last_ref_of_a_pinned_object_downgrades_to_pinned(rc, calls):
    rc.add_local("o1")
    rc.add_pin("o1")  # a ref is held: nothing changes
    assert calls() == [("o1", LOCAL_REFERENCE)]
    rc.remove_local("o1")
    assert calls()[-1] == ("o1", PINNED_IN_MEMORY)
    rc.remove_pin("o1")
    assert calls()[-1] == ("o1", None)


def test_pending_actor_calls_keep_the_handle_object_held(rc, calls):
    rc.add_local("h1", ACTOR_HANDLE)
    rc.add_submitted("h1")
    rc.add_submitted("h1")
    assert calls() == [("h1", ACTOR_HANDLE)]
    rc.remove_local("h1")  # the last handle is gone, two calls are still running
    assert calls()[-1] == ("h1", USED_BY_PENDING_TASK)
    rc.remove_submitted("h1")
    assert calls()[-1] == ("h1", USED_BY_PENDING_TASK) and len(calls()) == 2
    rc.remove_submitted("h1")
    assert calls()[-1] == ("h1", None)


def test_finished_call_while_handle_held_does_not_call_back(rc, calls):
    rc.add_local("h1", ACTOR_HANDLE)
    rc.add_submitted("h1")
    rc.remove_submitted("h1")
    assert calls() == [("h1", ACTOR_HANDLE)]
    assert rc.held_type("h1") == ACTOR_HANDLE


def test_held_type_prefers_ref_then_pending_call_then_pin(rc):
    rc.add_pin("o1")
    assert rc.held_type("o1") == PINNED_IN_MEMORY
    rc.add_submitted("o1")
    assert rc.held_type("o1") == USED_BY_PENDING_TASK
    rc.add_local("o1")
    assert rc.held_type("o1") == LOCAL_REFERENCE


def test_snapshot_lists_every_count(rc):
    rc.add_local("a")
    rc.add_local("a")
    rc.add_pin("b")
    rc.add_local("h", ACTOR_HANDLE)
    rc.add_submitted("h")
    assert rc.snapshot() == {
        "a": {"ref_type": LOCAL_REFERENCE, "local": 2, "pins": 0, "submitted": 0},
        "b": {"ref_type": PINNED_IN_MEMORY, "local": 0, "pins": 1, "submitted": 0},
        "h": {"ref_type": ACTOR_HANDLE, "local": 1, "pins": 0, "submitted": 1},
    }


def test_events_mark_first_hold_and_last_release(rc, events):
    rc.add_local("a")
    rc.add_local("a")
    rc.remove_local("a")
    rc.remove_local("a")
    rc.add_pin("b")
    rc.add_local("b")  # already announced by its pin: no second ref.acquired
    rc.remove_local("b")
    rc.remove_pin("b")
    assert events() == [("ref.acquired", "a", LOCAL_REFERENCE), ("ref.released", "a", None),
                        ("ref.acquired", "b", PINNED_IN_MEMORY), ("ref.released", "b", None)]


def test_unannounced_reference_still_calls_back_but_emits_no_event(rc, calls, events):
    rc.add_local("r1", announce=False)
    assert calls() == [("r1", LOCAL_REFERENCE)]
    assert events() == []


def test_remove_without_add_tells_the_gcs_nothing_new(rc, gcs):
    # An unbalanced remove is not refused; the GCS never knew of a hold, so it hears nothing.
    rc.remove_local("never")
    assert gcs.messages == []
    assert rc.local == {}


def test_first_borrow_is_confirmed_by_the_gcs_later_changes_are_told(rc, gcs):
    rc.add_local("o1")
    rc.add_pin("o1")
    rc.remove_local("o1")
    rc.remove_pin("o1")
    assert gcs.messages == [
        ("borrow_ref", {"objects": ["o1"], "ref_type": LOCAL_REFERENCE}),
        ("add_ref", {"objects": ["o1"], "ref_type": PINNED_IN_MEMORY}),
        ("remove_ref", {"objects": ["o1"]})]


def test_a_task_batches_its_borrows_until_it_ends(rc, gcs, monkeypatch):
    rc.begin_deferring()
    rc.add_local("a")
    rc.add_local("b")
    rc.add_local("c")
    rc.remove_local("c")  # made and dropped during the task: the GCS never hears of it
    assert gcs.messages == []
    rc.flush_deferred()
    assert gcs.messages == [("borrow_ref", {"objects": ["a", "b"], "ref_type": LOCAL_REFERENCE})] \
        or gcs.messages == [("borrow_ref", {"objects": ["b", "a"], "ref_type": LOCAL_REFERENCE})]


def test_an_owned_stored_object_is_dropped_with_its_last_ref(rc, gcs):
    from raysim.runtime.core_worker.memory_store import STORED, OwnedObject
    slot = OwnedObject(STORED)  # the store's registration counts us (LOCAL_REFERENCE)
    rc.owned["o1"] = slot
    rc.add_local("o1")
    assert gcs.messages == []  # already counted
    rc.remove_local("o1")
    assert gcs.messages == [("remove_ref", {"objects": ["o1"], "owner": True})]
    assert "o1" not in rc.owned and rc.released_since_put


def test_an_owned_pending_object_is_only_marked_released(rc, gcs):
    from raysim.runtime.core_worker.memory_store import OwnedObject
    slot = rc.owned["o1"] = OwnedObject()
    rc.add_local("o1")
    rc.remove_local("o1")
    assert gcs.messages == [] and slot.released and rc.owned["o1"] is slot


def test_values_and_tasks_hold_for_others(rc, gcs):
    rc.capture("v1", ["a", "b"])
    rc.release_captured("v1", ["a", "b"])
    rc.hold_for_task("t1", ["a"])
    rc.release_for_task("t1", ["a"])
    assert gcs.messages == [
        ("add_ref", {"objects": ["a", "b"], "holder": "object:v1",
                     "ref_type": "CAPTURED_IN_OBJECT"}),
        ("remove_ref", {"objects": ["a", "b"], "holder": "object:v1"}),
        ("add_ref", {"objects": ["a"], "holder": "task:t1", "ref_type": USED_BY_PENDING_TASK}),
        ("remove_ref", {"objects": ["a"], "holder": "task:t1"})]
