"""Unit tests of the raylet's scheduler pieces (raysim/runtime/raylet/scheduler.py): fixed-point
resources, a node's ResourceSet (feasibility, fit, acquire/release) and what a task or an actor
asks for. No process or socket is started. The dispatch decision itself (queueing, the
``scheduler.decision`` event) is made in raylet/server.py and is not covered here."""

import pytest

from raysim.runtime.common.errors import RaySimInternalError
from raysim.runtime.common.task_spec import ACTOR_CREATION, ACTOR_TASK, NORMAL_TASK, TaskSpec
from raysim.runtime.raylet.scheduler import (ResourceSet, TaskRecord, from_fixed, placement_request,
                                             task_request, to_fixed)


def spec(kind=NORMAL_TASK, num_cpus=None, resources=None, task_id="t1", phase=None):
    return TaskSpec(task_id=task_id, kind=kind, num_cpus=num_cpus, resources=resources,
                    phase=phase)


def test_fixed_point_is_one_ten_thousandth_and_drops_zeros():
    assert to_fixed({"CPU": 1.5, "GPU": 0, "x": 0.0001}) == {"CPU": 15000, "x": 1}
    assert from_fixed({"CPU": 15000, "x": 1}) == {"CPU": 1.5, "x": 0.0001}


def test_fractional_requests_fill_a_cpu_exactly():
    node = ResourceSet({"CPU": 1})
    tenth = to_fixed({"CPU": 0.1})
    for _ in range(10):  # 0.1 * 10 != 1.0 in floats, but is exact here
        assert node.fits(tenth)
        node.acquire(tenth)
    assert node.available == {"CPU": 0}
    assert not node.fits(tenth)


def test_acquire_and_release_move_available_not_total():
    node = ResourceSet({"CPU": 2, "GPU": 1})
    request = to_fixed({"CPU": 1, "GPU": 0.5})
    node.acquire(request)
    assert node.snapshot() == {"total": {"CPU": 2.0, "GPU": 1.0},
                               "available": {"CPU": 1.0, "GPU": 0.5}}
    node.release(request)
    assert node.available == node.total == {"CPU": 20000, "GPU": 10000}


def test_acquire_beyond_available_raises_internal_error_and_changes_nothing():
    node = ResourceSet({"CPU": 2})
    node.acquire(to_fixed({"CPU": 2}))
    with pytest.raises(RaySimInternalError):
        node.acquire(to_fixed({"CPU": 1}))
    assert node.available == {"CPU": 0}


def test_forced_acquire_oversubscribes_like_a_woken_blocked_worker():
    node = ResourceSet({"CPU": 1})
    node.acquire(to_fixed({"CPU": 1}))
    node.acquire(to_fixed({"CPU": 1}), force=True)
    assert from_fixed(node.available) == {"CPU": -1.0}
    assert not node.fits(to_fixed({"CPU": 0.5}))


def test_feasible_compares_with_total_fits_with_available():
    node = ResourceSet({"CPU": 2})
    node.acquire(to_fixed({"CPU": 2}))
    request = to_fixed({"CPU": 2})
    assert node.feasible(request) and not node.fits(request)  # waits, does not fail


def test_request_beyond_the_node_or_for_an_unknown_resource_is_infeasible():
    node = ResourceSet({"CPU": 2})
    assert not node.feasible(to_fixed({"CPU": 3}))
    assert not node.feasible(to_fixed({"CPU": 1, "GPU": 1}))
    assert not node.fits(to_fixed({"GPU": 1}))
    assert node.feasible({})  # asks for nothing


def test_task_holds_one_cpu_by_default_plus_custom_resources():
    assert task_request(spec()) == {"CPU": 10000}
    assert task_request(spec(num_cpus=0.5, resources={"GPU": 1})) == {"GPU": 10000,
                                                                      "CPU": 5000}


def test_task_with_zero_cpus_asks_for_nothing():
    assert task_request(spec(num_cpus=0)) == {}
    assert ResourceSet({"CPU": 0}).feasible(task_request(spec(num_cpus=0)))


def test_actor_needs_one_cpu_to_be_placed_but_holds_none_by_default():
    actor = spec(ACTOR_CREATION)
    assert placement_request(actor) == {"CPU": 10000}
    assert task_request(actor) == {}


def test_actor_with_explicit_cpus_holds_them():
    actor = spec(ACTOR_CREATION, num_cpus=2, resources={"acc": 1})
    assert placement_request(actor) == task_request(actor) == {"acc": 10000, "CPU": 20000}


def test_actor_task_holds_cpu_like_a_normal_task():
    assert task_request(spec(ACTOR_TASK)) == {"CPU": 10000}


def test_three_default_actors_are_placed_on_a_two_cpu_node():
    node = ResourceSet({"CPU": 2})
    for i in range(3):
        actor = spec(ACTOR_CREATION, task_id=f"t{i}")
        assert node.fits(placement_request(actor))
        node.acquire(task_request(actor))
    assert from_fixed(node.available) == {"CPU": 2.0}


def test_task_record_exposes_its_specs_id_and_phase():
    s = spec(task_id="abc", phase=4)
    request = task_request(s)
    record = TaskRecord(s, request, tuple(sorted(request.items())))
    assert (record.task_id, record.phase, record.attempt, record.cancelled) == (
        "abc", 4, 0, False)
    assert record.shape == (("CPU", 10000),)
