"""How long objects and actors live when their refs and handles travel: Ray's rules.

* An actor's pending calls hold the actor (``USED_BY_PENDING_TASK`` of its handle object):
  ``A.remote().f.remote()`` is answered, then the actor goes out of scope.
* Refs inside a task's return value keep their objects alive (``CAPTURED_IN_OBJECT``, held
  by the returned object) until the caller has counted its own borrow.
* Reading an object that can never be read (its owner died, or it was freed before the
  reader's ref was counted) raises at once, instead of waiting forever.

Every read that could hang is given a timeout: a regression fails with GetTimeoutError."""

import gc
import pickle

import numpy as np
import pytest
from traceutil import of, wait_for, wait_for_file

import raysim
from raysim import exceptions
from raysim.trace import state as replay


@raysim.remote
class Echo:
    def f(self):
        return 42

    def after(self, release, value):
        wait_for_file(release)
        return value

    def make_refs(self):
        return {"refs": [raysim.put(np.full(1000, k)) for k in range(3)]}

    def put_one(self):
        return raysim.put(np.arange(10))

    def start_blocked(self, release):
        return [blocked.remote(release)]


@raysim.remote
def put_three():
    return [raysim.put(np.full(1000, k)) for k in range(3)]


@raysim.remote
def put_three_in_a_big_value():
    return {"refs": [raysim.put(np.full(1000, k)) for k in range(3)],
            "padding": np.zeros(200_000)}  # 1.6 MB: the value goes to the store


@raysim.remote
def read_what_put_three_returns():
    refs = raysim.get(put_three.remote(), timeout=10)  # its ref is dropped at once
    return [int(raysim.get(r, timeout=10)[0]) for r in refs]


@raysim.remote
def blocked(release):
    wait_for_file(release)
    return 7


@raysim.remote
def fails():
    raise ValueError("boom")


@raysim.remote
def return_ref_to_a_failure():
    return [fails.remote()]


@raysim.remote
def total(values):
    return int(np.sum(values))


def _firsts(refs) -> list[int]:
    return [int(raysim.get(r, timeout=10)[0]) for r in refs]


def _captured_by(events, outer: str) -> set[str]:
    return {e["obj"] for e in of(events, "gcs.ref_added", holder=f"object:{outer}",
                                 ref_type="CAPTURED_IN_OBJECT")}


def _handed_over(trace_file: str, outer: str, inner: list[str]) -> None:
    """Each object a worker put and returned inside ``outer`` was held by ``outer`` before
    the worker (its owner, named by the id's first 8 characters) dropped its own ref."""
    def dropped(events, oid):
        return of(events, "gcs.ref_removed", obj=oid, holder=f"worker:{oid[:8]}")

    events = wait_for(trace_file, lambda ev: all(dropped(ev, o) for o in inner),
                      what="the worker dropping its refs")
    for oid in inner:
        held = of(events, "gcs.ref_added", obj=oid, holder=f"object:{outer}",
                  ref_type="CAPTURED_IN_OBJECT")
        assert held and events.index(held[0]) < events.index(dropped(events, oid)[0])


# ---------------------------------------------------------------------------------------------
# An actor outlives its pending calls


def test_an_actor_whose_handle_is_a_temporary_answers_then_goes_out_of_scope(
        ray_start, trace_file):
    ref = Echo.remote().f.remote()
    assert raysim.get(ref, timeout=10) == 42
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.actor_state", state="DEAD"),
                      what="the actor's end")
    actor = of(events, "task.submitted", returns=[ref.hex()])[0]["actor"]
    dead = of(events, "gcs.actor_state", actor=actor, state="DEAD")
    assert [e["cause"] for e in dead] == ["OUT_OF_SCOPE"]
    assert dead[0]["reason"].startswith("all handles out of scope")
    snapshot = raysim.snapshot()["gcs"]["actors"][actor]
    assert (snapshot["state"], snapshot["cause"]) == ("DEAD", "OUT_OF_SCOPE")


def test_pending_calls_hold_the_actor_as_used_by_pending_task(ray_start, trace_file, tmp_path):
    release = str(tmp_path / "release")
    echo = Echo.remote()
    actor, handle = echo._actor_id, echo._descriptor["handle_object"]
    refs = [echo.after.remote(release, i) for i in range(3)]
    del echo
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.ref_added", obj=handle,
                                                ref_type="USED_BY_PENDING_TASK"),
                      what="the driver's hold turning USED_BY_PENDING_TASK")
    assert not of(events, "gcs.actor_state", actor=actor, state="DEAD")
    open(release, "w").close()
    assert raysim.get(refs, timeout=10) == [0, 1, 2]
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.actor_state", actor=actor,
                                                state="DEAD"), what="the actor's end")
    assert of(events, "gcs.actor_state", actor=actor, state="DEAD")[0]["cause"] == \
        "OUT_OF_SCOPE"
    holds = [(e["ev"], e.get("ref_type"), e["count"]) for e in events
             if e["ev"] in ("gcs.ref_added", "gcs.ref_removed") and e["obj"] == handle]
    assert holds == [("gcs.ref_added", "ACTOR_HANDLE", 1),
                     ("gcs.ref_added", "USED_BY_PENDING_TASK", 1),
                     ("gcs.ref_removed", None, 0)]


# ---------------------------------------------------------------------------------------------
# Refs inside a return value keep their objects alive


def test_refs_put_in_a_task_and_returned_inline_can_be_read(ray_start, trace_file):
    outer = put_three.remote()
    outer_id = outer.hex()
    refs = raysim.get(outer, timeout=10)
    assert _firsts(refs) == [0, 1, 2]
    events = wait_for(trace_file, lambda ev: len(_captured_by(ev, outer_id)) == 3,
                      what="the returned value's holds")
    assert _captured_by(events, outer_id) == {r.hex() for r in refs}
    _handed_over(trace_file, outer_id, [r.hex() for r in refs])
    # Once nothing refers to them, they are freed: the holds were handed over, not leaked.
    inner = [r.hex() for r in refs]
    del refs, outer
    wait_for(trace_file, lambda ev: all(of(ev, "gcs.object_freed", obj=o) for o in inner),
             what="the objects freed once the caller dropped them")


def test_refs_in_a_stored_return_value_can_be_read(ray_start, trace_file):
    outer = put_three_in_a_big_value.remote()
    value = raysim.get(outer, timeout=10)
    assert _firsts(value["refs"]) == [0, 1, 2]
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.object_added", obj=outer.hex()),
                      what="the stored result")
    assert _captured_by(events, outer.hex()) == {r.hex() for r in value["refs"]}
    _handed_over(trace_file, outer.hex(), [r.hex() for r in value["refs"]])


def test_refs_returned_by_an_actor_method_can_be_read(ray_start):
    echo = Echo.remote()
    refs = raysim.get(echo.make_refs.remote(), timeout=10)["refs"]
    assert _firsts(refs) == [0, 1, 2]
    assert raysim.get(echo.f.remote(), timeout=10) == 42


def test_a_task_reads_the_refs_another_task_returned(ray_start):
    """The reader is a worker whose borrows are counted when its task ends: the returned
    value's holds must not go before them."""
    assert raysim.get(read_what_put_three_returns.remote(), timeout=30) == [0, 1, 2]


def test_a_returned_ref_to_a_result_still_computing_can_be_read(ray_start, tmp_path):
    """The actor owns the result, small enough to come back to it inline: it copies the
    result into the store when it arrives, for the driver to read."""
    release = str(tmp_path / "release")
    echo = Echo.remote()
    refs = raysim.get(echo.start_blocked.remote(release), timeout=10)
    open(release, "w").close()
    assert raysim.get(refs[0], timeout=10) == 7


def test_a_returned_ref_to_a_failed_task_raises_its_error(ray_start):
    refs = raysim.get(return_ref_to_a_failure.remote(), timeout=10)
    with pytest.raises(ValueError, match="boom"):
        raysim.get(refs[0], timeout=10)


# ---------------------------------------------------------------------------------------------
# Objects that can never be read raise


def test_an_object_put_by_a_killed_actor_is_lost(ray_start, trace_file):
    echo = Echo.remote()
    ref = raysim.get(echo.put_one.remote(), timeout=10)
    assert list(raysim.get(ref, timeout=10)) == list(range(10))
    raysim.kill(echo)
    events = wait_for(trace_file, lambda ev: of(ev, "object_store.deleted", obj=ref.hex()),
                      what="the store deleting the lost object")
    with pytest.raises(exceptions.OwnerDiedError) as info:
        raysim.get(ref, timeout=10)
    assert isinstance(info.value, exceptions.ObjectLostError)
    assert f"Object {ref.hex()} is lost: its owner, the actor Echo" in str(info.value)
    assert "Tip:" in str(info.value)
    lost = of(events, "gcs.object_lost", obj=ref.hex())
    assert [e["cause"] for e in lost] == ["OWNER_DIED"]
    assert any(h.startswith("driver:") for h in lost[0]["holders"]), "the driver held it"
    index = events.index(lost[0])
    assert ref.hex() not in replay.replay(events, index).gcs.objects
    assert ref.hex() in replay.replay(events, index - 1).gcs.objects


def test_a_get_waiting_for_an_object_whose_owner_dies_raises(ray_start, tmp_path):
    release = str(tmp_path / "release")
    echo = Echo.remote()
    refs = raysim.get(echo.start_blocked.remote(release), timeout=10)
    raysim.kill(echo)
    try:
        with pytest.raises(exceptions.OwnerDiedError):
            raysim.get(refs[0], timeout=10)
    finally:
        open(release, "w").close()


def test_a_task_whose_argument_is_lost_fails(ray_start, trace_file):
    echo = Echo.remote()
    ref = raysim.get(echo.put_one.remote(), timeout=10)
    raysim.kill(echo)
    wait_for(trace_file, lambda ev: of(ev, "object_store.deleted", obj=ref.hex()),
             what="the store deleting the lost object")
    with pytest.raises(exceptions.OwnerDiedError, match="one of its arguments"):
        raysim.get(total.remote(ref), timeout=10)


def test_a_ref_counted_after_its_object_was_freed_raises(ray_start, trace_file):
    ref = raysim.put(np.arange(10))
    smuggled = pickle.dumps(ref)  # by hand: nobody counts this copy
    object_id = ref.hex()
    del ref
    wait_for(trace_file, lambda ev: of(ev, "object_store.deleted", obj=object_id),
             what="the object freed from the store")
    with pytest.raises(exceptions.ReferenceCountingAssertionError, match="was freed"):
        raysim.get(pickle.loads(smuggled), timeout=10)


def test_a_view_of_a_lost_object_keeps_its_memory(ray_start, trace_file):
    """The store deletes a lost object, but a zero-copy view of it in the driver still
    points into its memory: that memory is not reused until the view is gone."""
    echo = Echo.remote()
    ref = raysim.get(echo.put_one.remote(), timeout=10)
    view = raysim.get(ref, timeout=10)  # a read-only view of the store
    raysim.kill(echo)
    wait_for(trace_file, lambda ev: of(ev, "object_store.deleted", obj=ref.hex()),
             what="the store deleting the lost object")
    others = [raysim.put(np.full(10, 7)) for _ in range(20)]
    assert list(view) == list(range(10))
    assert [int(raysim.get(r)[0]) for r in others] == [7] * 20


@raysim.remote
def big_array(n):
    return np.ones(n)


@raysim.remote
def sum_plus(array, gated):
    return float(array.sum()) + gated


def test_an_argument_that_arrives_while_its_task_waits_outlives_the_callers_ref(
        ray_start, tmp_path):
    """The task waits for a second argument; the first arrives in the store and the caller
    drops its ref meanwhile. The waiting task's own hold keeps the object alive."""
    gate = str(tmp_path / "gate")
    array = big_array.remote(100_000)  # 800 KB: stored, not inline
    result = sum_plus.remote(array, held_value.remote(gate, 1.0))
    raysim.wait([array])
    del array
    gc.collect()
    open(gate, "w").close()
    assert raysim.get(result) == 100_001.0


@raysim.remote
def held_value(gate, value):
    wait_for_file(gate)
    return value


def test_a_ref_captured_by_a_remote_function_keeps_its_object_alive_for_good(ray_start):
    data = raysim.put(np.arange(200_000, dtype=np.float64))  # in the store
    object_id = data.id

    @raysim.remote
    def total():
        return float(raysim.get(data).sum())  # ``data`` travels inside the function

    ref = total.remote()
    del data  # before any worker has loaded the function: Ray keeps the object anyway
    gc.collect()
    assert raysim.get(ref, timeout=30) == float(np.arange(200_000).sum())
    assert raysim.get(total.remote(), timeout=30) == float(np.arange(200_000).sum())
    # Pinned by the process that pickled the function, for as long as it lives
    # (ray-project/ray#15058): pass refs as arguments instead.
    assert object_id in raysim.snapshot()["gcs"]["objects"]


def test_a_value_read_from_the_store_keeps_its_object_pinned_after_its_ref_goes(ray_start,
                                                                              trace_file):
    ref = raysim.put(np.zeros(200_000))
    object_id = ref.id
    array = raysim.get(ref)  # a zero-copy view of the store
    del ref
    gc.collect()
    # The driver still holds the object, as PINNED_IN_MEMORY, and the replay says so.
    events = wait_for(trace_file, lambda ev: of(ev, "ref.acquired", obj=object_id,
                                                ref_type="PINNED_IN_MEMORY"),
                      what="the driver's hold to become PINNED_IN_MEMORY")
    refs = replay.replay(events, len(events) - 1).refs
    assert {obj: kind for held in refs.values() for obj, kind in held.items()
            if obj == object_id} == {object_id: "PINNED_IN_MEMORY"}
    assert array.sum() == 0.0
    del array
    gc.collect()
    wait_for(trace_file, lambda ev: of(ev, "ref.released", obj=object_id),
             what="the driver's hold to go with the array")
