"""Remote functions: arguments, returns, options, errors, scheduling and dependencies."""

import os

import numpy as np
import pytest
from traceutil import of, wait_for

import raysim
from raysim import exceptions


@raysim.remote
def echo(x):
    return x


@raysim.remote(num_returns=3)
def three():
    return 1, 2, 3


@raysim.remote
def add(a, b=0):
    return a + b


@raysim.remote
def nested_get(refs):
    return raysim.get(refs[0]) + 1


@raysim.remote
def depth(n):
    if n == 0:
        return 0
    return raysim.get(depth.remote(n - 1)) + 1


@raysim.remote
def crash_once(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return "survived"


@raysim.remote(max_retries=0)
def always_crash():
    os._exit(3)


def test_returns_and_num_returns(shared_session):
    assert raysim.get(three.remote()) is not None
    a, b, c = three.remote()
    assert raysim.get([a, b, c]) == [1, 2, 3]
    assert echo.options(num_returns=0).remote(1) is None
    assert raysim.get(add.remote(1, b=2)) == 3


def test_top_level_refs_are_resolved_nested_refs_stay_refs(shared_session):
    ref = raysim.put(41)
    assert raysim.get(add.remote(ref, b=ref)) == 82
    assert raysim.get(nested_get.remote([ref])) == 42
    inner = echo.remote([ref])
    assert raysim.get(inner)[0] == ref


def test_pending_dependencies_are_chained(shared_session):
    assert raysim.get(add.remote(add.remote(add.remote(1, 1), 1), 1)) == 4
    big = np.ones(200_000)
    total = raysim.get(echo.remote(echo.remote(big)))
    assert total.sum() == 200_000


def test_large_argument_travels_through_the_store(shared_session):
    array = np.arange(50_000, dtype=np.float64)  # 400 KB, above the inline threshold
    ref = echo.remote(array)
    assert np.array_equal(raysim.get(ref), array)
    events = wait_for(shared_session["trace_path"],
                      lambda ev: of(ev, "task.args_resolved", task=ref.task_id()))
    (submitted,) = of(events, "task.submitted", task=ref.task_id())
    assert len(submitted["deps"]) == 1 and submitted["args_size"] < 1000


def test_nested_tasks_deeper_than_cpus_do_not_deadlock(shared_session):
    assert raysim.get(depth.remote(4), timeout=60) == 4


def test_calling_a_remote_function_directly_says_use_remote(shared_session):
    with pytest.raises(TypeError, match=r"echo\.remote\(\)"):
        echo(1)


def test_bad_options_are_rejected_at_the_call():
    with pytest.raises(ValueError, match="Invalid option keyword colour"):
        echo.options(colour="red")
    with pytest.raises(ValueError, match="num_cpus.*-1"):
        raysim.remote(num_cpus=-1)(lambda: 1)
    with pytest.raises(TypeError, match="resources"):  # not a number: Ray's TypeError
        echo.options(resources={"x": "lots"})


def test_infeasible_task_waits_instead_of_failing(shared_session, capfd):
    ref = echo.options(num_cpus=64).remote(1)
    ready, not_ready = raysim.wait([ref], timeout=0.3)
    assert ready == [] and not_ready == [ref]
    events = wait_for(shared_session["trace_path"],
                      lambda ev: of(ev, "scheduler.decision", task=ref.task_id(),
                                    decision="infeasible"))
    assert "64" in of(events, "scheduler.decision", task=ref.task_id())[0]["reason"]


def test_wait_semantics(shared_session):
    refs = [echo.remote(i) for i in range(4)]
    ready, not_ready = raysim.wait(refs, num_returns=4, timeout=30)
    assert ready == refs and not_ready == []
    ready, not_ready = raysim.wait(refs, num_returns=2)
    assert len(ready) == 2 and ready + not_ready != [] and set(ready + not_ready) == set(refs)
    assert [r for r in refs if r in ready] == ready, "input order is kept"
    assert raysim.wait([]) == ([], [])
    with pytest.raises(ValueError, match="unique"):
        raysim.wait([refs[0], refs[0]])
    with pytest.raises(ValueError):
        raysim.wait(refs, num_returns=5)
    with pytest.raises(ValueError):
        raysim.wait(refs, num_returns=0)
    with pytest.raises(ValueError):
        raysim.wait(refs, timeout=-1)
    with pytest.raises(TypeError):
        raysim.wait(refs[0])


def test_a_crashed_worker_is_retried(shared_session, tmp_path):
    assert raysim.get(crash_once.remote(str(tmp_path / "m"))) == "survived"
    with pytest.raises(exceptions.WorkerCrashedError, match="max_retries"):
        raysim.get(always_crash.remote())


def test_unserializable_argument_is_a_type_error_at_the_call(shared_session):
    import threading
    with pytest.raises(TypeError, match="Could not serialize"):
        echo.remote(threading.Lock())
    assert raysim.get(echo.remote(1)) == 1, "the runtime keeps working"


def test_error_in_dependency_propagates_without_running(shared_session):
    bad = add.remote("a", 1)
    with pytest.raises(TypeError):
        raysim.get(add.remote(bad, 1))


def test_a_function_capturing_too_much_is_refused_as_in_ray(shared_session):
    huge = bytearray(101 * 1000 * 1000)

    @raysim.remote
    def uses_huge():
        return len(huge)

    @raysim.remote
    class UsesHuge:
        def size(self):
            return len(huge)

    with pytest.raises(ValueError, match=r"The remote function .*uses_huge is too large.*Tip"):
        uses_huge.remote()
    with pytest.raises(ValueError, match="The actor UsesHuge is too large"):
        UsesHuge.remote()


def test_object_id_is_rays_old_name_for_object_ref(shared_session):
    assert raysim.ObjectID is raysim.ObjectRef
    assert isinstance(raysim.put(1), raysim.ObjectID)


def test_get_gpu_ids_and_list_named_actors(shared_session):
    from raysim.util import list_named_actors

    @raysim.remote
    class Named:
        def ping(self):
            return raysim.get_gpu_ids()

    named = Named.options(name="listed").remote()
    assert raysim.get(named.ping.remote()) == [] and raysim.get_gpu_ids() == []
    assert "listed" in list_named_actors()
    assert {"name": "listed", "namespace": raysim.get_runtime_context().namespace} in \
        list_named_actors(all_namespaces=True)


@raysim.remote(max_calls=1)
def pid_once():
    return os.getpid()


def test_max_calls_retires_the_worker_after_that_many_tasks(shared_session):
    """As in Ray: with max_calls=1 every task runs in a fresh worker process."""
    assert len(set(raysim.get([pid_once.remote() for _ in range(4)]))) == 4
