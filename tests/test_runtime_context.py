"""get_runtime_context() answers as Ray's does: in the driver, in a task, in an actor."""

import os
import signal
import warnings

import pytest
from traceutil import poll

import raysim


@raysim.remote
def task_context():
    context = raysim.get_runtime_context()
    return {"get": context.get(), "task_name": context.get_task_name(),
            "function": context.get_task_function_name(),
            "actor_name": context.get_actor_name(),
            "resources": context.get_assigned_resources(),
            "session": context.get_session_name(), "namespace": context.namespace}


@raysim.remote
class Probe:
    def __init__(self):
        self.restarted = raysim.get_runtime_context().was_current_actor_reconstructed

    def context(self):
        context = raysim.get_runtime_context()
        return {"get": context.get(), "task_name": context.get_task_name(),
                "function": context.get_task_function_name(),
                "actor_name": context.get_actor_name(),
                "resources": context.get_assigned_resources(),
                "restarted": (self.restarted, context.was_current_actor_reconstructed)}

    def echo_through_self(self, value):
        return raysim.get_runtime_context().current_actor.echo.remote(value)

    def echo(self, value):
        return value

    async def async_name(self):
        return raysim.get_runtime_context().get_task_function_name()

    def pid(self):
        return os.getpid()


def test_the_driver_names_its_job_node_and_namespace(ray_start):
    context = raysim.get_runtime_context()
    got = context.get()
    assert set(got) == {"job_id", "node_id", "namespace"}  # no task, no actor here
    assert got["job_id"].hex() == context.get_job_id()
    assert got["node_id"].hex() == context.get_node_id()
    assert context.get_task_name() is None and context.get_actor_name() is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert context.job_id.hex() == context.get_job_id()
    assert "Use get_job_id() instead" in str(caught[0].message)


def test_a_task_sees_its_id_name_function_and_resources(ray_start):
    driver = raysim.get_runtime_context()
    got = raysim.get(task_context.remote())
    assert got["get"]["task_id"].hex() and "actor_id" not in got["get"]
    assert got["get"]["job_id"] == driver.get_job_id()
    assert got["task_name"] == "task_context"
    assert got["function"] == f"{__name__}.task_context"
    assert got["actor_name"] is None
    assert got["resources"] == {"CPU": 1.0}
    assert got["session"] == driver.get_session_name()
    named = raysim.get(task_context.options(name="renamed", num_cpus=2,
                                            memory=100 * 1024 ** 2).remote())
    assert named["task_name"] == "renamed"
    assert named["resources"] == {"CPU": 2.0, "memory": 100.0 * 1024 ** 2}


def test_an_actor_call_sees_the_actor(ray_start):
    named = Probe.options(name="probe").remote()
    got = raysim.get(named.context.remote())
    assert got["get"]["actor_id"] == named._actor_id
    assert got["task_name"] == "Probe.context"
    assert got["function"] == f"{__name__}.Probe.context"
    assert got["actor_name"] == "probe"
    assert got["resources"] == {}  # an actor holds no CPU once placed, as in Ray
    assert raysim.get(Probe.remote().context.remote())["actor_name"] == ""
    assert raysim.get(Probe.options(num_cpus=1).remote().context.remote())["resources"] == \
        {"CPU": 1.0}
    assert raysim.get(raysim.get(named.echo_through_self.remote("hi"))) == "hi"
    assert raysim.get(named.async_name.remote()).endswith("Probe.async_name")


def test_a_restarted_actor_knows_it_was_reconstructed(ray_start):
    probe = Probe.options(max_restarts=1, max_task_retries=-1).remote()
    assert raysim.get(probe.context.remote())["restarted"] == (False, False)
    pid = raysim.get(probe.pid.remote())
    os.kill(pid, signal.SIGKILL)
    poll(lambda: raysim.get(probe.pid.remote()) != pid, "the actor to restart")
    assert raysim.get(probe.context.remote())["restarted"] == (True, True)


def test_the_cluster_reports_memory_and_the_node_as_ray_does(ray_start):
    total = raysim.cluster_resources()
    assert total["CPU"] == 2.0
    assert total["memory"] > 0 and total["object_store_memory"] > 0
    assert total["node:127.0.0.1"] == 1.0
    with pytest.raises(raysim.exceptions.GetTimeoutError):
        # More heap than the machine has: it waits, infeasible, as in Ray.
        raysim.get(task_context.options(memory=int(total["memory"]) * 2).remote(),
                   timeout=0.5)
