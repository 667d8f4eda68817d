"""Seed phase 2: ray.put(model) serializes in the driver, writes to shared memory, seals,
registers the location with the GCS; the driver holds the ObjectRef (count 1)."""

import ctypes
import gc
import threading

import numpy as np
import pytest
from traceutil import of, wait_for

import raysim
from raysim import session


def load_trained_model():
    def model(batch):
        return batch["passenger_count"] >= 2
    return model


def test_put_follows_the_seed_steps_in_order(ray_start, trace_file):
    model_ref = raysim.put(load_trained_model())
    assert isinstance(model_ref, raysim.ObjectRef)
    oid = model_ref.hex()
    kinds = ("object.serialized", "object_store.create", "object_store.written",
             "object_store.sealed", "gcs.object_added", "gcs.ref_added")

    def steps_of(events):
        return [e for e in events if e.get("obj") == oid and e["ev"] in kinds]

    # Each process writes its events when it next goes idle: wait for all six.
    events = wait_for(trace_file, lambda ev: len(steps_of(ev)) == 6,
                      what="the six steps of a put")
    driver = ray_start["address_info"]
    steps = steps_of(events)
    assert [(e["ev"], e["proc"]) for e in steps] == [
        ("object.serialized", "driver"),       # 1. driver pickles the model
        ("object_store.create", "raylet"),     # 2. space in the store's shared memory...
        ("object_store.written", "driver"),    #    ...which the driver writes itself
        ("object_store.sealed", "raylet"),     # 3. the object is complete: an ObjectRef
        ("gcs.object_added", "gcs"),           # 4. its location is registered with the GCS
        ("gcs.ref_added", "gcs"),              #    ref_count 1, held by the driver
    ]
    size = steps[0]["size"]
    assert 200 < size < 10_000, "the model is a few KB, as the seed says"
    assert all(e["size"] == size for e in steps if "size" in e)
    added = steps[4]
    assert added["location"] == ray_start["node_id"] and added["owner"].startswith("driver:")
    ref = steps[5]
    assert ref["count"] == 1 and ref["ref_type"] == "LOCAL_REFERENCE"
    assert steps[1]["pid"] == driver["raylet"] and steps[4]["pid"] == driver["gcs"]
    assert raysim.get(model_ref)({"passenger_count": 3})


def test_put_always_goes_to_the_store_even_when_tiny(ray_start, trace_file):
    ref = raysim.put(1)
    events = wait_for(trace_file, lambda ev: of(ev, "object_store.sealed", obj=ref.hex()))
    assert of(events, "object_store.sealed", obj=ref.hex())[0]["size"] < 200
    assert raysim.get(ref) == 1


def test_dropping_the_last_ref_frees_the_object(ray_start, trace_file):
    ref = raysim.put(np.zeros(1000))
    oid = ref.hex()
    del ref
    gc.collect()
    events = wait_for(trace_file, lambda ev: of(ev, "object_store.deleted", obj=oid) and
                      of(ev, "gcs.object_freed", obj=oid) and of(ev, "ref.released", obj=oid),
                      what="the store to delete the object")
    assert of(events, "gcs.ref_removed", obj=oid)[-1]["count"] == 0
    assert of(events, "gcs.object_freed", obj=oid)
    assert of(events, "ref.released", obj=oid)


def test_numpy_get_is_a_read_only_view_of_the_store(ray_start):
    array = np.arange(1_000_000, dtype=np.float64)
    ref = raysim.put(array)
    out = raysim.get(ref)
    assert np.array_equal(out, array)
    assert not out.flags.writeable
    with pytest.raises(ValueError):
        out[0] = 1.0
    store = session.current_core().store.mmap
    base = ctypes.addressof(ctypes.c_char.from_buffer(store))
    address = out.__array_interface__["data"][0]
    assert base <= address < base + len(store), "the array's memory is the store's"


def test_a_pinned_view_keeps_its_object_alive(ray_start, trace_file):
    ref = raysim.put(np.ones(100_000))
    oid = ref.hex()
    view = raysim.get(ref)
    del ref
    gc.collect()
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.ref_added", obj=oid,
                                                ref_type="PINNED_IN_MEMORY"),
                      what="the driver's hold to become PINNED_IN_MEMORY")
    assert not of(events, "object_store.deleted", obj=oid)
    assert view.sum() == 100_000
    del view
    gc.collect()
    wait_for(trace_file, lambda ev: of(ev, "object_store.deleted", obj=oid))


def test_put_rejects_refs_and_unpicklable_values(ray_start):
    ref = raysim.put(1)
    with pytest.raises(TypeError, match="wrap the ObjectRef in a list"):
        raysim.put(ref)
    with pytest.raises(TypeError, match="Could not serialize.*lock"):
        raysim.put(threading.Lock())
    assert raysim.get(raysim.put([ref]))[0] == ref


@raysim.remote
def total(array):
    return float(array.sum())


def test_object_is_freed_once_its_ref_is_gone_and_the_task_using_it_is_done(ray_start,
                                                                            trace_file):
    ref = raysim.put(np.ones(200_000))
    oid = ref.hex()
    result = total.remote(ref)
    del ref
    gc.collect()
    assert raysim.get(result) == 200_000.0
    events = wait_for(trace_file, lambda ev: of(ev, "object_store.deleted", obj=oid) and
                      len(of(ev, "gcs.ref_removed", obj=oid)) >= 2,
                      what="the store to delete the argument once the task is done")
    holders = [e["holder"] for e in of(events, "gcs.ref_removed", obj=oid)]
    assert any(h.startswith("task:") for h in holders) and any(h.startswith("driver:")
                                                               for h in holders)
