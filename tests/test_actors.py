"""Actors: handles, names, scope, kill, errors."""

import gc

import pytest
from traceutil import of, wait_for

import raysim
from raysim import exceptions


@raysim.remote
class Counter:
    def __init__(self, start=0):
        self.value = start

    def incr(self, by=1):
        self.value += by
        return self.value

    def fail(self):
        raise KeyError("nope")

    @raysim.method(num_returns=2)
    def pair(self):
        return self.value, -self.value


@raysim.remote
class Broken:
    def __init__(self):
        raise ValueError("bad constructor")

    def ping(self):
        return "pong"


@raysim.remote
def call_through(handle):
    return raysim.get(handle.incr.remote(10))


def test_handle_passed_to_a_task(shared_session):
    counter = Counter.remote(5)
    assert raysim.get(call_through.remote(counter)) == 15
    assert raysim.get(counter.incr.remote()) == 16
    assert raysim.get(counter.pair.remote()) == [16, -16]


def test_method_exception_does_not_kill_the_actor(shared_session):
    counter = Counter.remote()
    with pytest.raises(KeyError):
        raysim.get(counter.fail.remote())
    assert raysim.get(counter.incr.remote()) == 1


def test_constructor_error_fails_calls_with_actor_died_error(shared_session):
    broken = Broken.remote()
    with pytest.raises(exceptions.ActorDiedError, match="bad constructor"):
        raysim.get(broken.ping.remote(), timeout=30)


def test_unknown_method_and_direct_calls(shared_session):
    counter = Counter.remote()
    with pytest.raises(AttributeError, match="no method 'decr'"):
        counter.decr
    with pytest.raises(TypeError, match=r"incr\.remote\(\)"):
        counter.incr()
    with pytest.raises(TypeError, match=r"Counter\.remote\(\)"):
        Counter()


def test_named_actor_lookup_and_duplicate_name(shared_session):
    counter = Counter.options(name="shared").remote()
    assert raysim.get(raysim.get_actor("shared").incr.remote()) == 1
    with pytest.raises(ValueError, match="already taken"):
        Counter.options(name="shared").remote()
    same = Counter.options(name="shared", get_if_exists=True).remote()
    assert raysim.get(same.incr.remote()) == 2
    with pytest.raises(ValueError, match="Failed to look up actor"):
        raysim.get_actor("nobody")
    del counter, same


def test_killed_actor_calls_raise(shared_session):
    counter = Counter.remote()
    assert raysim.get(counter.incr.remote()) == 1
    raysim.kill(counter)
    with pytest.raises(exceptions.RayActorError):
        raysim.get(counter.incr.remote(), timeout=30)


def test_actor_out_of_scope_is_terminated(shared_session):
    counter = Counter.remote()
    actor_id = counter._actor_id
    assert raysim.get(counter.incr.remote()) == 1
    del counter
    gc.collect()
    events = wait_for(shared_session["trace_path"],
                      lambda ev: of(ev, "gcs.actor_state", actor=actor_id, state="DEAD"),
                      what="the actor to die once its last handle is gone")
    (dead,) = of(events, "gcs.actor_state", actor=actor_id, state="DEAD")
    assert "out of scope" in dead["reason"]


@raysim.remote
class AsyncCounter:
    def __init__(self):
        self.value = 0

    async def add(self, n):
        import asyncio
        await asyncio.sleep(0)  # a real suspension point on the actor's event loop
        self.value += n
        return self.value

    async def fail(self):
        raise ValueError("from a coroutine")


def test_async_methods_run_on_the_actors_event_loop(shared_session):
    counter = AsyncCounter.remote()
    assert raysim.get([counter.add.remote(n) for n in (1, 2, 3)], timeout=30) == [1, 3, 6]
    with pytest.raises(ValueError, match="from a coroutine"):
        raysim.get(counter.fail.remote(), timeout=30)
    assert raysim.get(counter.add.remote(4), timeout=30) == 10, "the actor lives on"
