"""``raysim.util``: ``ActorPool`` as in ``ray.util``, and ``import ray.util`` under raysim."""

import asyncio
import importlib
import os
import sys

import pytest
from traceutil import wait_for_file

import raysim
from raysim import ray_alias
from raysim.util import ActorPool


@raysim.remote
class Doubler:
    def double(self, value):
        return 2 * value

    def double_when(self, release, value):
        wait_for_file(release)
        return 2 * value

    def pid(self):
        return os.getpid()

    @raysim.method(num_returns=2)
    def double_and_square(self, value):
        return 2 * value, value * value

    def die(self, value):
        os._exit(1)


@pytest.fixture(scope="module")
def pool_actors(shared_session):
    return [Doubler.remote(), Doubler.remote()]


def double(actor, value):
    return actor.double.remote(value)


def test_map_returns_results_in_order_and_uses_every_actor(pool_actors):
    pool = ActorPool(pool_actors)
    assert list(pool.map(double, range(10))) == [2 * v for v in range(10)]
    assert sorted(pool.map_unordered(double, range(10))) == [2 * v for v in range(10)]
    pids = list(pool.map(lambda a, v: a.pid.remote(), range(4)))
    assert len(set(pids)) == 2, "both actors took values"
    assert not pool.has_next()
    with pytest.raises(StopIteration):
        pool.get_next()


def test_values_wait_for_a_free_actor_and_results_can_time_out(pool_actors, tmp_path):
    pool = ActorPool(pool_actors)
    release = str(tmp_path / "release")
    for value in (1, 2, 3):  # two actors: the third value waits in the pool
        pool.submit(lambda a, v: a.double_when.remote(release, v), value)
    assert not pool.has_free() and pool.pop_idle() is None
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.05)
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=0.05)
    open(release, "w").close()
    assert [pool.get_next(), pool.get_next(), pool.get_next()] == [2, 4, 6]
    assert pool.has_free()
    actor = pool.pop_idle()
    assert actor is not None
    still_in = next(a for a in pool_actors if a != actor)
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(still_in)
    pool.push(actor)
    assert list(pool.map(double, [5])) == [10]


def test_a_method_of_several_returns_gives_a_list_per_value(pool_actors):
    pool = ActorPool(pool_actors)
    got = list(pool.map(lambda a, v: a.double_and_square.remote(v), [1, 2, 3]))
    assert got == [[2, 1], [4, 4], [6, 9]]


@raysim.remote
class AsyncDoubler:
    async def double(self, value):
        if value == 100:
            await asyncio.Event().wait()  # never answers; the actor's other calls go on
        return 2 * value


def test_map_drops_the_results_of_earlier_submits_first(shared_session):
    """Ray's map first takes whatever earlier submits left pending, without waiting:
    a result not ready yet is given up, and map returns only its own values (ray#23107)."""
    for map_ in (ActorPool.map, ActorPool.map_unordered):
        pool = ActorPool([AsyncDoubler.remote(), AsyncDoubler.remote()])
        pool.submit(double, 100)
        assert sorted(map_(pool, double, [1, 2, 3])) == [2, 4, 6]


def test_an_actor_found_dead_leaves_the_pool(shared_session):
    doomed, alive = Doubler.remote(), Doubler.remote()
    pool = ActorPool([alive, doomed])  # the last is taken first
    pool.submit(lambda a, v: a.die.remote(v), 0)
    with pytest.raises(raysim.exceptions.ActorDiedError):
        pool.get_next()
    assert list(pool.map(lambda a, v: a.pid.remote(), range(3))) == \
        [raysim.get(alive.pid.remote())] * 3


def test_fn_must_return_an_actor_call(pool_actors):
    pool = ActorPool(pool_actors)
    with pytest.raises(TypeError, match="must return the ObjectRef"):
        pool.submit(lambda a, v: v, 1)
    assert pool.has_free(), "the actor went back to the pool"


def test_ray_util_resolves_to_raysim_and_the_rest_of_it_is_refused():
    ray_alias.install()
    try:
        ray_util = importlib.import_module("ray.util")
        from ray.util.actor_pool import ActorPool as AliasedPool
        assert ray_util.ActorPool is ActorPool is AliasedPool
        assert ray_util.get_node_ip_address() == "127.0.0.1"
        with pytest.raises(ImportError, match="'ray.util.queue' is not part of it"):
            importlib.import_module("ray.util.queue")
    finally:
        ray_alias.uninstall()
    assert "ray.util" not in sys.modules
