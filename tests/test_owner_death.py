"""What a worker owns dies with it, as in Ray: the actors it created (whatever their
max_restarts) and the tasks it submitted, whose results nobody could read any more. The
references those tasks held go too, so the objects they used are freed."""

import os

import numpy as np
import pytest
from traceutil import of, pid_alive, poll, wait_for, wait_for_file

import raysim
from raysim import exceptions


@raysim.remote(max_restarts=-1)
class Pinger:
    def pid(self):
        return os.getpid()


@raysim.remote(max_retries=0)
def create_an_actor_then_die(pid_file):
    actor = Pinger.remote()
    with open(pid_file, "w") as f:
        f.write(str(raysim.get(actor.pid.remote(), timeout=30)))
    os._exit(1)


def test_an_actor_dies_with_the_worker_that_created_it(ray_start, trace_file, tmp_path):
    pid_file = str(tmp_path / "actor_pid")
    with pytest.raises(exceptions.WorkerCrashedError):
        raysim.get(create_an_actor_then_die.remote(pid_file), timeout=30)
    actor_pid = int(open(pid_file).read())

    def dead_and_gone(events):
        dead = of(events, "gcs.actor_state", class_name="Pinger", state="DEAD")
        return dead and of(events, "worker.died", actor=dead[0]["actor"])

    events = wait_for(trace_file, dead_and_gone, what="the actor to die with its owner")
    (dead,) = of(events, "gcs.actor_state", class_name="Pinger", state="DEAD")
    assert dead["cause"] == "OWNER_DIED" and "its owner, worker" in dead["reason"]
    # max_restarts=-1 does not bring it back: its owner is gone.
    assert not of(events, "gcs.actor_state", class_name="Pinger", state="RESTARTING")
    (died,) = of(events, "worker.died", actor=dead["actor"])
    assert died["exit_type"] == "INTENDED_SYSTEM_EXIT"
    poll(lambda: not pid_alive(actor_pid), "the actor's process to end")


@raysim.remote
def hold_then_block(value, started, never):
    with open(started, "w") as f:
        f.write(str(os.getpid()))
    wait_for_file(never)
    return value


@raysim.remote(max_retries=0)
def submit_then_die(refs, started, never, child_file):
    child = hold_then_block.remote(refs[0], started, never)  # a borrowed ref, passed on
    with open(child_file, "w") as f:
        f.write(child.task_id())
    wait_for_file(started)
    os._exit(1)


def test_tasks_of_a_dead_owner_stop_and_release_their_arguments(ray_start, trace_file,
                                                                 tmp_path):
    started, never = str(tmp_path / "started"), str(tmp_path / "never")
    child_file = str(tmp_path / "child")
    obj = raysim.put(np.zeros(200_000))  # 1.6 MB: in the store
    oid = obj.hex()
    with pytest.raises(exceptions.WorkerCrashedError):
        raysim.get(submit_then_die.remote([obj], started, never, child_file), timeout=30)
    child = open(child_file).read()
    child_pid = int(poll(lambda: open(started).read(), "the child to write its pid"))
    events = wait_for(trace_file, lambda ev: of(ev, "task.finished", task=child),
                      what="the orphaned task to be stopped")
    (finished,) = of(events, "task.finished", task=child)
    assert finished["error"] == "OwnerDiedError" and "its owner, worker" in finished["reason"]
    (died,) = of(events, "worker.died", task=child)
    assert died["exit_type"] == "INTENDED_SYSTEM_EXIT" and died["worker_pid"] == child_pid
    assert not of(events, "task.retry", task=child)
    poll(lambda: not pid_alive(child_pid), "the orphaned task's worker to end")
    # Its hold on the argument went with it: once the driver lets go, the object is freed.
    del obj
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.object_freed", obj=oid),
                      what="the argument to be freed")
    held = {e["holder"] for e in of(events, "gcs.ref_added", obj=oid)}
    assert f"task:{child}" in held, "the orphaned task did hold its argument"
    assert raysim.get(hold_then_block.remote(1, started, started), timeout=30) == 1


@raysim.remote(max_retries=0)
def create_a_detached_actor_then_die(pid_file):
    actor = Pinger.options(name="keeper", lifetime="detached").remote()
    with open(pid_file, "w") as f:
        f.write(str(raysim.get(actor.pid.remote(), timeout=30)))
    os._exit(1)


def test_a_detached_actor_outlives_its_creator_and_its_handles(ray_start, trace_file,
                                                               tmp_path):
    pid_file = str(tmp_path / "actor_pid")
    with pytest.raises(exceptions.WorkerCrashedError):
        raysim.get(create_a_detached_actor_then_die.remote(pid_file), timeout=30)
    actor_pid = int(open(pid_file).read())
    # Its creator and every handle it made are gone; the GCS still holds it.
    keeper = raysim.get_actor("keeper")
    assert raysim.get(keeper.pid.remote(), timeout=30) == actor_pid
    handle_object = keeper._handle_object
    del keeper
    events = wait_for(trace_file, lambda ev: [
        e for e in of(ev, "gcs.ref_removed", obj=handle_object)
        if e["holder"].startswith("driver:")], what="the driver's handle to go")
    assert not of(events, "gcs.actor_state", class_name="Pinger", state="DEAD")
    assert pid_alive(actor_pid)
    assert {e["holder"] for e in of(events, "gcs.ref_added", obj=handle_object)} >= {"gcs"}
    # raysim.kill ends it, and the GCS lets go of its handle.
    raysim.kill(raysim.get_actor("keeper"))
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.object_freed", obj=handle_object),
                      what="the killed actor's handle to be freed")
    (dead,) = of(events, "gcs.actor_state", class_name="Pinger", state="DEAD")
    assert dead["cause"] == "RAY_KILL"
    poll(lambda: not pid_alive(actor_pid), "the actor's process to end")


def test_lifetime_must_be_one_of_rays_values():
    with pytest.raises(ValueError, match="lifetime='forever' is invalid"):
        Pinger.options(lifetime="forever")
