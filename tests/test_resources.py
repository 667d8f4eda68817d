"""Resources as the raylet's scheduler grants them (fractions and custom ones included),
the CPU a blocked task lends, and the workers a task of another kind or environment gets."""

import os

import pytest

import raysim


def test_custom_fractional_resources(trace_file):
    raysim.init(num_cpus=2, resources={"accel": 1}, trace_path=trace_file)
    try:
        @raysim.remote(resources={"accel": 0.5}, num_cpus=0)
        def half():
            return raysim.get_runtime_context().get_task_id()

        total = raysim.cluster_resources()
        assert (total["CPU"], total["accel"]) == (2.0, 1.0)
        assert len(set(raysim.get([half.remote() for _ in range(4)]))) == 4
    finally:
        raysim.shutdown()


@raysim.remote
def big_list():
    return [1] * (1024 * 1024)  # stored: 8 MB pickled


@raysim.remote
def reads_what_it_has(value, holder):
    assert value == raysim.get(holder[0])  # already in the store: no wait, no CPU lent
    return os.getpid()


@raysim.remote
def pid_of(value):
    return os.getpid()


def test_a_get_of_objects_already_there_keeps_the_tasks_cpu(trace_file):
    """Ray lends a blocked task's CPU only when its get() really waits. On one CPU, the
    second task must wait for the first, on the same worker."""
    raysim.init(num_cpus=1, trace_path=trace_file)
    try:
        stored = big_list.remote()
        first = reads_what_it_has.remote(stored, [stored])
        second = pid_of.remote(stored)
        assert len(set(raysim.get([first, second]))) == 1
    finally:
        raysim.shutdown()



@raysim.remote(num_gpus=1)
def gpu_pid():
    return os.getpid()


def test_gpu_and_cpu_tasks_do_not_share_a_worker(trace_file):
    """As in Ray (ray#22504): a worker that ran a GPU task runs only GPU tasks after it."""
    raysim.init(num_cpus=1, num_gpus=1, trace_path=trace_file)
    try:
        cpu = raysim.get(pid_of.remote(0))
        gpu = raysim.get(gpu_pid.remote())
        assert cpu != gpu
        assert raysim.get([pid_of.remote(0), gpu_pid.remote()]) == [cpu, gpu]
    finally:
        raysim.shutdown()


@raysim.remote
def environment():
    return os.environ.get("RAYSIM_TEST_JOB"), os.environ.get("RAYSIM_TEST_TASK")


@raysim.remote(runtime_env={"env_vars": {"RAYSIM_TEST_TASK": "actor"}})
class Environment:
    def read(self):
        return os.environ.get("RAYSIM_TEST_JOB"), os.environ.get("RAYSIM_TEST_TASK")


def test_runtime_env_vars_for_the_job_a_task_and_an_actor(trace_file):
    """As in Ray: the job's variables reach every worker, a task's or an actor's only the
    process that runs it (a task of another environment gets another worker), and the
    driver's own environment is left alone."""
    raysim.init(num_cpus=2, trace_path=trace_file,
                runtime_env={"env_vars": {"RAYSIM_TEST_JOB": "job"}})
    try:
        assert raysim.get(environment.remote()) == ("job", None)
        task_env = {"runtime_env": {"env_vars": {"RAYSIM_TEST_TASK": "task"}}}
        assert raysim.get(environment.options(**task_env).remote()) == ("job", "task")
        assert raysim.get([environment.remote() for _ in range(4)]) == [("job", None)] * 4
        assert raysim.get(Environment.remote().read.remote()) == ("job", "actor")
        assert "RAYSIM_TEST_JOB" not in os.environ
        with pytest.raises(TypeError, match=r"env_vars'\] must be a dict of str to str.*Tip"):
            environment.options(runtime_env={"env_vars": {"N": 1}})
        with pytest.raises(ValueError, match=r"runtime_env key\(s\) \['pip'\]"):
            environment.options(runtime_env={"pip": ["numpy"]})
    finally:
        raysim.shutdown()
