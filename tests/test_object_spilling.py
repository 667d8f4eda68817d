"""The store's capacity: a full store spills objects to disk and restores them when read;
what cannot fit is refused with ObjectStoreFullError, and the runtime goes on.

Objects here are numpy arrays of 16 MiB in a store of 64 MiB: three fit (each takes a page
more than 16 MiB), the fourth makes the store spill one.
"""

import os
import signal
import stat

import numpy as np
import pytest
from traceutil import of, wait_for

import raysim
from raysim import exceptions
from raysim.runtime.raylet.object_store import ObjectStore
from raysim.trace import state as replay
from raysim.trace.loader import load

MiB = 1024 * 1024
STORE = 64 * MiB
ITEMS = 16 * MiB // 8  # int64s in a 16 MiB array


def array(i: int) -> np.ndarray:
    return np.full(ITEMS, i, dtype=np.int64)


@pytest.fixture
def small_store(trace_file):
    ctx = raysim.init(num_cpus=2, object_store_memory=STORE, trace_path=trace_file)
    try:
        yield ctx
    finally:
        raysim.shutdown()


def spill_dir(ctx) -> str:
    return os.path.join(ctx["session_dir"], "spill")


@raysim.remote
def make(i):
    return array(i)


@raysim.remote
def make_big():
    return np.zeros(80 * MiB, dtype=np.uint8)


@raysim.remote
def first_and_last(a):
    return int(a[0]), int(a[-1]), a.nbytes


def test_four_times_the_store_is_spilled_and_restored(trace_file):
    """16 arrays of 16 MiB, all referenced, through a 64 MiB store: every value comes back
    right, the trace shows spills and restores, and shutdown removes the spill files."""
    ctx = raysim.init(num_cpus=2, object_store_memory=STORE, trace_path=trace_file)
    try:
        refs = [raysim.put(array(i)) for i in range(16)]
        directory = spill_dir(ctx)
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        files = os.listdir(directory)
        assert len(files) >= 13, "at most three of the sixteen can be in memory"
        assert all(stat.S_IMODE(os.stat(os.path.join(directory, f)).st_mode) == 0o600
                   for f in files)
        for i, ref in enumerate(refs):
            value = raysim.get(ref)
            assert value.nbytes == 16 * MiB and (value == i).all(), f"array {i}"
            del value  # its zero-copy view pins the object: let it go before the next
        snapshot = raysim.snapshot()
    finally:
        raysim.shutdown()
    assert not os.path.exists(directory), "shutdown removes the spill directory"

    trace = load(trace_file)
    events = trace.records
    ids = [r.hex() for r in refs]
    spilled = {e["obj"] for e in of(events, "object_store.spilled")}
    restored = {e["obj"] for e in of(events, "object_store.restored")}
    assert len(spilled) >= 13 and spilled <= set(ids)
    assert restored == spilled, "every object that went to disk came back when read"
    for e in of(events, "object_store.spilled"):
        assert e["size"] > 16 * MiB and e["path"] == os.path.join(directory, e["obj"])
    first_spill = events.index(of(events, "object_store.spilled", obj=ids[0])[0])
    assert events.index(of(events, "object_store.restored", obj=ids[0])[0]) > first_spill
    # The store never held more than its capacity, as its own events say.
    assert all(e["used"] <= STORE for e in events if e["ev"].startswith("object_store.")
               and "used" in e)
    # Replaying the trace gives the store the live runtime reported: what is in memory,
    # and what is on disk.
    state = trace.state_at(trace.phases()[-1].first_index - 1)
    (node,) = snapshot["raylets"]
    live = snapshot["raylets"][node]["store"]
    assert state.stores[node] == live
    assert set(live["spilled"]) == spilled and set(live["objects"]) <= set(ids)
    history = replay.History(events, every=50)
    for index in (len(events) // 3, len(events) // 2, len(events) - 1):
        assert history.state_at(index) == replay.replay(events, index)


def test_an_object_bigger_than_the_store_is_refused_and_the_runtime_goes_on(small_store,
                                                                           trace_file):
    with pytest.raises(exceptions.ObjectStoreFullError) as info:
        raysim.put(np.zeros(80 * MiB, dtype=np.uint8))
    text = str(info.value)
    assert "80.0 MiB" in text and "the object is bigger than the whole store" in text
    assert "the store holds 64.0 MiB (67,108,864 bytes)" in text
    assert "pass a larger object_store_memory to raysim.init()" in text
    assert "drop references to objects you no longer need" in text
    with pytest.raises(exceptions.ObjectStoreFullError, match="bigger than the whole store"):
        raysim.get(make_big.remote())  # a task's return value: the task fails with it
    ref = raysim.put(array(7))
    assert (raysim.get(ref) == 7).all()
    events = wait_for(trace_file, lambda ev: len(of(ev, "object_store.full")) == 2)
    full, _ = of(events, "object_store.full")
    assert full["size"] > 80 * MiB and full["capacity"] == STORE
    assert full["reason"] == "the object is bigger than the whole store"
    assert not of(events, "object_store.spilled"), "nothing is spilled in vain"


def test_objects_mapped_by_a_reader_stay_and_a_full_store_says_so(small_store):
    refs = [raysim.put(array(i)) for i in range(3)]
    views = raysim.get(refs)  # zero-copy: each view pins its object
    with pytest.raises(exceptions.ObjectStoreFullError) as info:
        raysim.put(array(3))
    text = str(info.value)
    assert "cannot move: they are pinned by readers" in text
    assert "48.0 MiB" in text, "the three pinned objects are named as what cannot move"
    assert [int(v[0]) for v in views] == [0, 1, 2], "the views were left alone"
    del views
    ref = raysim.put(array(3))  # now the store can spill one of them
    assert [int(raysim.get(r)[0]) for r in [*refs, ref]] == [0, 1, 2, 3]


def test_task_results_that_do_not_fit_are_spilled_and_arguments_restored(small_store,
                                                                        trace_file):
    results = [make.remote(i) for i in range(6)]
    assert [int(raysim.get(r)[-1]) for r in results] == list(range(6))
    (node,) = raysim.snapshot()["raylets"].values()
    on_disk = [r for r in results if r.hex() in node["store"]["spilled"]]
    assert len(on_disk) >= 3, "at most three of the six results fit in memory"
    # An argument that is on disk is restored for its task.
    i = results.index(on_disk[0])
    assert raysim.get(first_and_last.remote(on_disk[0])) == (i, i, 16 * MiB)
    events = wait_for(trace_file, lambda ev: of(ev, "object_store.restored",
                                                obj=on_disk[0].hex()))
    assert {r.hex() for r in on_disk} <= {e["obj"] for e in of(events, "object_store.spilled")}
    # (The driver's own gets above may have restored it once already, before it went to
    # disk again: the last restore is the task's.)
    restore = of(events, "object_store.restored", obj=on_disk[0].hex())[-1]
    assert restore["size"] > 16 * MiB and restore["dur"] > 0


def test_a_freed_object_takes_its_spill_file_with_it(small_store, trace_file):
    refs = [raysim.put(array(i)) for i in range(5)]
    path = os.path.join(spill_dir(small_store), refs[0].hex())
    assert os.path.exists(path), "the least recently used object went to disk first"
    oid = refs[0].hex()
    del refs[0]
    events = wait_for(trace_file, lambda ev: of(ev, "object_store.deleted", obj=oid),
                      what="the spilled object to be freed")
    (deleted,) = of(events, "object_store.deleted", obj=oid)
    assert "spill file" in deleted["reason"]
    assert not os.path.exists(path)


def test_with_spilling_off_a_full_store_refuses(trace_file):
    raysim.init(num_cpus=1, object_store_memory=STORE, trace_path=trace_file,
                _system_config={"automatic_object_spilling_enabled": False})
    try:
        refs = [raysim.put(array(i)) for i in range(3)]
        with pytest.raises(exceptions.ObjectStoreFullError, match="spilling is off"):
            raysim.put(array(3))
        oid = refs[0].hex()
        del refs[0]
        wait_for(trace_file, lambda ev: of(ev, "object_store.deleted", obj=oid),
                 what="the store to free the dropped object")
        assert int(raysim.get(raysim.put(array(3)))[0]) == 3, "freed space is reused"
    finally:
        raysim.shutdown()


@raysim.remote(max_retries=0)
def die_while_writing():
    """Write the first bytes of the result into the store, then die before sealing it."""
    from raysim.runtime.core_worker import store_client

    def write_and_die(self, offset, obj):
        self._view[offset:offset + 8] = b"halfdone"
        os.kill(os.getpid(), signal.SIGKILL)

    store_client.StoreClient.write = write_and_die
    return array(1)


def test_a_writer_that_dies_between_create_and_seal_leaves_nothing(small_store, trace_file):
    ref = die_while_writing.remote()
    with pytest.raises(exceptions.WorkerCrashedError):
        raysim.get(ref)
    oid = ref.hex()
    events = wait_for(trace_file, lambda ev: of(ev, "object_store.deleted", obj=oid))
    assert of(events, "object_store.create", obj=oid), "space was created for it"
    assert not of(events, "object_store.sealed", obj=oid), "it never became visible"
    (deleted,) = of(events, "object_store.deleted", obj=oid)
    assert deleted["reason"] == "its writer died before sealing it"
    (node,) = raysim.snapshot()["raylets"].values()
    assert oid not in node["store"]["objects"] and node["store"]["used"] == 0
    refs = [raysim.put(array(i)) for i in range(3)]  # the whole store is usable again
    assert [int(raysim.get(r)[0]) for r in refs] == [0, 1, 2]


def test_an_unsealed_object_is_invisible_to_readers():
    store = ObjectStore(4 * MiB, 64 * 1024)
    try:
        entry = store.create("a" * 20, MiB, "driver:x")
        seen = []
        store.get_or_wait(entry.object_id, seen.append)
        assert store.lookup(entry.object_id) is None and seen == []
        store.seal(entry.object_id)
        assert seen == [entry] and store.lookup(entry.object_id) is entry
        unsealed = store.create("b" * 20, MiB, "worker:y")
        assert store.abort_unsealed("worker:y") == [unsealed]
        assert store.used == MiB, "the dead writer's space is free again"
    finally:
        store.close()


@pytest.mark.parametrize("bad", [1000, 64.5 * MiB, "64MB", True])
def test_object_store_memory_must_be_an_int_of_at_least_1_mib(bad):
    with pytest.raises(ValueError) as info:
        raysim.init(object_store_memory=bad)
    assert repr(bad) in str(info.value) and "at least 1 MiB" in str(info.value)
    assert not raysim.is_initialized()


def test_object_store_memory_sets_the_store_size(small_store, trace_file):
    (node,) = raysim.snapshot()["raylets"].values()
    assert node["store"]["capacity"] == STORE
    events = wait_for(trace_file, lambda ev: of(ev, "store.created"))
    assert of(events, "store.created")[0]["capacity"] == STORE
