"""An actor's own end, as in Ray: exit_actor(), __ray_terminate__, __ray_ready__, and the
user's clean-up (__ray_shutdown__, __del__, atexit) when it ends gracefully."""

import atexit
import gc
import os

import pytest
from traceutil import of, poll, wait_for

import raysim
from raysim import exceptions
from raysim.actor import exit_actor


def touch(path):
    open(path, "w").close()


@raysim.remote(max_restarts=3)
class Leaver:
    def __init__(self, workdir, leave_in_init=False):
        self.workdir = workdir
        atexit.register(touch, os.path.join(workdir, "atexit"))
        if leave_in_init:
            exit_actor()
            touch(os.path.join(workdir, "after_exit"))  # never runs

    def leave(self):
        exit_actor()
        touch(os.path.join(self.workdir, "after_exit"))  # never runs

    def leave_but_catch(self):
        try:
            exit_actor()
        except SystemExit:
            return "caught"

    async def leave_async(self):
        exit_actor()

    def ping(self):
        return "pong"

    def __ray_shutdown__(self):
        touch(os.path.join(self.workdir, "ray_shutdown"))

    def __del__(self):
        touch(os.path.join(self.workdir, "del"))


def exists(tmp_path, name):
    return os.path.exists(os.path.join(tmp_path, name))


@pytest.mark.parametrize("method", ["leave", "leave_but_catch"])
def test_exit_actor_fails_the_call_runs_clean_up_and_is_not_restarted(
        ray_start, trace_file, tmp_path, method):
    actor = Leaver.remote(str(tmp_path))
    assert raysim.get(actor.__ray_ready__.remote()) is True
    with pytest.raises(exceptions.ActorDiedError, match=r"exit_actor\(\)"):
        raysim.get(getattr(actor, method).remote())
    with pytest.raises(exceptions.ActorDiedError, match="exited on purpose"):
        raysim.get(actor.ping.remote())  # max_restarts=3, yet no restart
    poll(lambda: exists(tmp_path, "atexit"), "the actor's atexit handler")
    assert exists(tmp_path, "ray_shutdown") and exists(tmp_path, "del")
    assert not exists(tmp_path, "after_exit")
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.actor_state", state="DEAD"),
                      what="the actor's death")
    (dead,) = of(events, "gcs.actor_state", state="DEAD")
    assert dead["cause"] == "INTENDED_USER_EXIT"
    assert not of(events, "gcs.actor_state", state="RESTARTING")


def test_exit_actor_in_the_constructor(ray_start, tmp_path):
    actor = Leaver.remote(str(tmp_path), leave_in_init=True)
    with pytest.raises(exceptions.ActorDiedError, match=r"exit_actor\(\)"):
        raysim.get(actor.ping.remote())
    poll(lambda: exists(tmp_path, "atexit"), "the actor's atexit handler")
    assert not exists(tmp_path, "after_exit")


def test_exit_actor_in_a_coroutine(ray_start, tmp_path):
    actor = Leaver.remote(str(tmp_path))
    with pytest.raises(exceptions.ActorDiedError, match=r"exit_actor\(\)"):
        raysim.get(actor.leave_async.remote())
    poll(lambda: exists(tmp_path, "atexit"), "the actor's atexit handler")


@raysim.remote
def calls_exit_actor():
    exit_actor()


def test_exit_actor_outside_an_actor_is_a_type_error(ray_start):
    with pytest.raises(TypeError, match="exit_actor API is called on a non-actor worker"):
        exit_actor()
    with pytest.raises(TypeError, match="non-actor worker.*Tip"):
        raysim.get(calls_exit_actor.remote())


def test_ray_terminate_runs_after_the_calls_before_it(ray_start, tmp_path):
    actor = Leaver.remote(str(tmp_path))
    before = [actor.ping.remote() for _ in range(5)]
    actor.__ray_terminate__.remote()
    after = actor.ping.remote()
    assert raysim.get(before) == ["pong"] * 5
    with pytest.raises(exceptions.ActorDiedError, match="__ray_terminate__"):
        raysim.get(after)
    poll(lambda: exists(tmp_path, "atexit"), "the actor's atexit handler")
    assert exists(tmp_path, "ray_shutdown") and exists(tmp_path, "del")


def test_an_actor_out_of_scope_runs_its_clean_up(ray_start, tmp_path):
    actor = Leaver.remote(str(tmp_path))
    assert raysim.get(actor.ping.remote()) == "pong"
    del actor
    gc.collect()
    poll(lambda: exists(tmp_path, "atexit"), "the actor's atexit handler")
    assert exists(tmp_path, "del")


def test_shutdown_runs_a_live_actors_clean_up(trace_file, tmp_path):
    raysim.init(num_cpus=1, trace_path=trace_file)
    try:
        actor = Leaver.remote(str(tmp_path))
        assert raysim.get(actor.ping.remote()) == "pong"
    finally:
        raysim.shutdown()  # waits for the actor's process to exit
    assert exists(tmp_path, "atexit") and exists(tmp_path, "del")


def test_a_killed_actor_runs_no_clean_up(ray_start, tmp_path):
    actor = Leaver.options(max_restarts=0).remote(str(tmp_path))
    pid_ref = actor.ping.remote()
    assert raysim.get(pid_ref) == "pong"
    raysim.kill(actor)
    with pytest.raises(exceptions.ActorDiedError):
        raysim.get(actor.ping.remote())
    assert not exists(tmp_path, "atexit") and not exists(tmp_path, "del")
