"""Unit tests of a process's own reference counter
(raysim/runtime/core_worker/reference_counter.py): local refs, pins and submitted actor calls,
the callbacks made on each hold transition, and the ref.acquired/ref.released events. No
process or socket is started: the counter is given a recording callback."""

import json

import pytest

from raysim.runtime.core_worker.reference_counter import ReferenceCounter
from raysim.trace.schema import (ACTOR_HANDLE, LOCAL_REFERENCE, PINNED_IN_MEMORY,
                                 USED_BY_PENDING_TASK)
from raysim.trace import writer as trace


@pytest.fixture
def calls():
    return []


@pytest.fixture
def rc(calls):
    return ReferenceCounter(lambda oid, held: calls.append((oid, held)))


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
    assert calls == [("o1", LOCAL_REFERENCE)]
    assert rc.local == {"o1": 3}
    rc.remove_local("o1")
    rc.remove_local("o1")
    assert calls == [("o1", LOCAL_REFERENCE)]
    rc.remove_local("o1")
    assert calls == [("o1", LOCAL_REFERENCE), ("o1", None)]
    assert rc.local == {} and rc.held_type("o1") is None


def test_actor_handle_kind_is_kept_until_last_handle_goes(rc, calls):
    rc.add_local("h1", ACTOR_HANDLE)
    rc.add_local("h1", LOCAL_REFERENCE)  # the kind is the first reference's
    assert rc.held_type("h1") == ACTOR_HANDLE
    assert calls == [("h1", ACTOR_HANDLE)]


def test_counts_are_per_object(rc, calls):
    rc.add_local("a")
    rc.add_local("b")
    rc.remove_local("a")
    assert calls == [("a", LOCAL_REFERENCE), ("b", LOCAL_REFERENCE), ("a", None)]
    assert rc.held_type("b") == LOCAL_REFERENCE


def test_pin_without_ref_holds_pinned_in_memory(rc, calls):
    rc.add_pin("o1")
    rc.add_pin("o1")
    assert rc.held_type("o1") == PINNED_IN_MEMORY
    rc.remove_pin("o1")
    assert calls == [("o1", PINNED_IN_MEMORY)]
    rc.remove_pin("o1")
    assert calls == [("o1", PINNED_IN_MEMORY), ("o1", None)]


def test_dropping_last_ref_of_a_pinned_object_downgrades_to_pinned(rc, calls):
    rc.add_local("o1")
    rc.add_pin("o1")  # a ref is held: nothing changes
    assert calls == [("o1", LOCAL_REFERENCE)]
    rc.remove_local("o1")
    assert calls[-1] == ("o1", PINNED_IN_MEMORY)
    rc.remove_pin("o1")
    assert calls[-1] == ("o1", None)


def test_pending_actor_calls_keep_the_handle_object_held(rc, calls):
    rc.add_local("h1", ACTOR_HANDLE)
    rc.add_submitted("h1")
    rc.add_submitted("h1")
    assert calls == [("h1", ACTOR_HANDLE)]
    rc.remove_local("h1")  # the last handle is gone, two calls are still running
    assert calls[-1] == ("h1", USED_BY_PENDING_TASK)
    rc.remove_submitted("h1")
    assert calls[-1] == ("h1", USED_BY_PENDING_TASK) and len(calls) == 2
    rc.remove_submitted("h1")
    assert calls[-1] == ("h1", None)


def test_finished_call_while_handle_held_does_not_call_back(rc, calls):
    rc.add_local("h1", ACTOR_HANDLE)
    rc.add_submitted("h1")
    rc.remove_submitted("h1")
    assert calls == [("h1", ACTOR_HANDLE)]
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
    assert calls == [("r1", LOCAL_REFERENCE)]
    assert events() == []


def test_remove_without_add_reports_a_release(rc, calls):
    # Documents current behaviour: an unbalanced remove is not refused, it reports that
    # nothing is held (the core worker would tell the directory of a release it never made).
    rc.remove_local("never")
    assert calls == [("never", None)]
    assert rc.local == {}
