"""Unit tests of the GCS object table (raysim/runtime/gcs/object_directory.py): locations,
holders and reference counts, freeing, lost objects. No process or socket is started: the
directory is used directly, with the trace writer opened on a temporary file where needed."""

import json

import pytest

from raysim.runtime.common.ids import IdFactory, return_object_id
from raysim.runtime.gcs.object_directory import FREED, OWNER_DIED, ObjectDirectory
from raysim.trace import writer as trace
from raysim.trace.schema import (ACTOR_HANDLE, CAPTURED_IN_OBJECT, LOCAL_REFERENCE,
                                 USED_BY_PENDING_TASK)

DRIVER_WID, WORKER_WID = "d0d0d0d0", "e1e1e1e1"
DRIVER, WORKER = f"driver:{DRIVER_WID}", f"worker:{WORKER_WID}"


_FACTORIES: dict[str, IdFactory] = {}


def put_id(wid=DRIVER_WID):
    """A fresh ObjectID of an object put by the process ``wid`` (so owned by it)."""
    return _FACTORIES.setdefault(wid, IdFactory(wid)).put_object_id()


@pytest.fixture
def events(tmp_path):
    assert not trace.enabled(), "a trace was already open in this process"
    path = tmp_path / "trace.jsonl"
    trace.open_trace(str(path), "gcs", "node0")

    def read(kind):
        trace.flush()
        return [e for e in map(json.loads, path.read_text().splitlines()) if e["ev"] == kind]
    try:
        yield read
    finally:
        trace.close_trace()


def test_added_object_is_held_by_its_owner_at_its_location():
    d, oid = ObjectDirectory(), put_id()
    assert d.add_object(oid, "node1", 759, DRIVER) == []
    assert d.snapshot() == {oid: {"size": 759, "owner": DRIVER, "locations": ["node1"],
                                  "primary": "node1", "ref_count": 1,
                                  "holders": {DRIVER: LOCAL_REFERENCE}}}
    assert d.locations(oid) == {"node1"}
    assert d.lost(oid) is None


def test_locations_are_added_and_removed_per_node():
    d, oid = ObjectDirectory(), put_id()
    d.add_object(oid, "node1", 10, DRIVER)
    d.add_object(oid, "node2", 10, DRIVER)
    assert d.snapshot()[oid]["primary"] == "node1"  # the first copy sealed
    d.remove_location(oid, "node1")
    assert d.locations(oid) == {"node2"}
    assert d.objects[oid].ref_count == 1  # a second location is not a second holder
    assert d.locations("unknown") == set()


def test_ref_count_is_the_number_of_distinct_holders():
    d, oid = ObjectDirectory(), put_id()
    d.add_object(oid, "node1", 10, DRIVER)
    for holder in ("worker:a", "worker:b", "worker:c", "worker:a"):
        d.add_ref(oid, holder, LOCAL_REFERENCE)
    d.add_ref(oid, f"task:{DRIVER_WID}00000001", USED_BY_PENDING_TASK)
    assert d.snapshot()[oid]["ref_count"] == 5


def test_last_holder_released_frees_object_from_its_nodes():
    d, oid = ObjectDirectory(), put_id()
    d.add_object(oid, "node2", 10, DRIVER)
    d.add_object(oid, "node1", 10, DRIVER)
    d.add_ref(oid, WORKER, LOCAL_REFERENCE)
    assert d.remove_ref(oid, DRIVER) == []
    assert d.remove_ref(oid, WORKER) == [(oid, ["node1", "node2"])]
    assert oid not in d.snapshot()
    assert d.lost(oid).cause == FREED
    assert d.remove_ref(oid, WORKER) == []  # late release of a freed object: nothing to do


def test_freeing_an_object_releases_the_refs_its_value_captured():
    d, inner, outer = ObjectDirectory(), put_id(), put_id()
    d.add_object(inner, "node1", 10, DRIVER)
    d.add_object(outer, "node1", 20, DRIVER, contained=[inner])
    assert d.snapshot()[inner]["holders"] == {DRIVER: LOCAL_REFERENCE,
                                              f"object:{outer}": CAPTURED_IN_OBJECT}
    assert d.remove_ref(inner, DRIVER) == []  # still captured
    assert d.remove_ref(outer, DRIVER) == [(outer, ["node1"]), (inner, ["node1"])]
    assert d.snapshot() == {}


def test_ref_arriving_before_registration_is_counted_after_the_owner():
    d, oid = ObjectDirectory(), put_id()
    d.add_ref(oid, WORKER, LOCAL_REFERENCE)
    assert d.snapshot() == {}  # not registered yet: not reported
    d.add_object(oid, "node1", 10, DRIVER)
    assert list(d.snapshot()[oid]["holders"]) == [DRIVER, WORKER]


def test_owner_release_before_registration_frees_at_registration():
    d, oid = ObjectDirectory(), put_id()
    assert d.remove_ref(oid, DRIVER, owner=True) == []
    assert d.add_object(oid, "node1", 10, DRIVER) == [(oid, ["node1"])]
    assert d.snapshot() == {}


def test_dead_process_drops_every_reference_it_held():
    d, a, b = ObjectDirectory(), put_id(), put_id()
    for oid in (a, b):
        d.add_object(oid, "node1", 10, DRIVER)
        d.add_ref(oid, WORKER, LOCAL_REFERENCE)
    d.remove_ref(b, DRIVER)
    assert d.remove_holder(WORKER) == [(b, ["node1"])]
    assert d.snapshot()[a]["holders"] == {DRIVER: LOCAL_REFERENCE}


def test_objects_die_with_their_owner_and_holders_are_told():
    d, oid = ObjectDirectory(), put_id(WORKER_WID)
    d.add_object(oid, "node1", 10, WORKER)
    d.add_ref(oid, DRIVER, LOCAL_REFERENCE)
    d.owner_died(WORKER_WID, "worker e1e1e1e1, died")
    assert d.snapshot() == {}
    assert d.lost(oid).cause == OWNER_DIED
    [(lost_id, why, nodes)] = d.take_lost()
    assert (lost_id, why.cause, nodes) == (oid, OWNER_DIED, {"node1"})
    assert "worker e1e1e1e1, died" in why.message
    assert why.to_wire() == {"cause": OWNER_DIED, "message": why.message}
    assert d.take_lost() == []


def test_result_stored_for_a_dead_owner_is_lost_on_arrival():
    d = ObjectDirectory()
    d.owner_died(WORKER_WID, "worker e1e1e1e1, died")
    oid = return_object_id(f"{WORKER_WID}00000001", 1)
    assert d.add_object(oid, "node1", 10, WORKER) == []
    assert d.snapshot() == {}
    [(lost_id, why, nodes)] = d.take_lost()
    assert (lost_id, why.cause, nodes) == (oid, OWNER_DIED, {"node1"})


def test_actor_handle_object_outlives_its_creator():
    d = ObjectDirectory()
    handle = return_object_id(f"{WORKER_WID}00000001", 0)
    d.add_handle_object(handle, WORKER)
    d.add_ref(handle, DRIVER, ACTOR_HANDLE)
    d.owner_died(WORKER_WID, "worker e1e1e1e1, died")
    assert d.lost(handle) is None
    assert d.snapshot()[handle]["holders"] == {WORKER: ACTOR_HANDLE, DRIVER: ACTOR_HANDLE}


def test_watch_answers_at_once_for_freed_and_later_for_lost():
    d, freed, later = ObjectDirectory(), put_id(), put_id()
    d.add_object(freed, "node1", 10, DRIVER)
    d.remove_ref(freed, DRIVER)
    assert d.watch(freed, "node2").cause == FREED
    assert d.watch(later, "node2") is None
    d.owner_died(DRIVER_WID, "the driver, died")
    assert [(oid, why.cause, nodes) for oid, why, nodes in d.take_lost()] == [
        (later, OWNER_DIED, {"node2"})]


def test_freed_ids_are_remembered_only_up_to_the_limit():
    d, a, b = ObjectDirectory(freed_remembered=1), put_id(), put_id()
    for oid in (a, b):
        d.add_object(oid, "node1", 10, DRIVER)
        d.remove_ref(oid, DRIVER)
    assert d.lost(a) is None
    assert d.lost(b).cause == FREED


def test_trace_events_tell_added_counted_released_freed(events):
    d, oid = ObjectDirectory(), put_id()
    d.add_object(oid, "node1", 759, DRIVER)
    d.add_ref(oid, WORKER, LOCAL_REFERENCE)
    d.remove_ref(oid, WORKER)
    d.remove_ref(oid, DRIVER)
    d.add_ref(oid, "worker:late", LOCAL_REFERENCE)  # too late: the object was freed
    [added] = events("gcs.object_added")
    assert (added["obj"], added["location"], added["size"], added["owner"]) == (
        oid, "node1", 759, DRIVER)
    assert [(e["holder"], e["count"]) for e in events("gcs.ref_added")] == [(DRIVER, 1),
                                                                            (WORKER, 2)]
    assert [(e["holder"], e["count"]) for e in events("gcs.ref_removed")] == [(WORKER, 1),
                                                                              (DRIVER, 0)]
    assert [(e["obj"], e["locations"]) for e in events("gcs.object_freed")] == [
        (oid, ["node1"])]
    [lost] = events("gcs.object_lost")
    assert (lost["obj"], lost["cause"], lost["holders"]) == (oid, FREED, ["worker:late"])
