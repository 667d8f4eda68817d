"""Generator tasks stream their values to the caller as they are made, as Ray's do."""

import numpy as np
import pytest
from traceutil import wait_for_file

import raysim
from raysim.generator import ObjectRefGenerator


@raysim.remote
def count_to(n):
    for i in range(n):
        yield i * 10


@raysim.remote
def first_then_wait(gate):
    yield "first"
    wait_for_file(gate)  # the caller has the first value while this waits
    yield "second"


@raysim.remote
def fails_after_one():
    yield 1
    raise ValueError("no second value")


@raysim.remote
def large_values():
    for i in range(3):
        yield np.full(100_000, float(i))  # 800 KB each: through the store


@raysim.remote
class Streamer:
    def stream(self, n):
        yield from range(n)

    async def async_stream(self):
        yield 1


def test_values_come_in_order(shared_session):
    gen = count_to.remote(4)
    assert isinstance(gen, ObjectRefGenerator)
    assert [raysim.get(ref) for ref in gen] == [0, 10, 20, 30]
    assert raysim.get(gen.completed()) == 4


def test_the_first_value_arrives_before_the_task_ends(shared_session, tmp_path):
    gate = str(tmp_path / "gate")
    gen = first_then_wait.remote(gate)
    assert raysim.get(next(gen), timeout=30) == "first"  # the task is still waiting
    open(gate, "w").close()
    assert [raysim.get(ref) for ref in gen] == ["second"]


def test_an_exception_is_raised_where_the_values_stop(shared_session):
    gen = fails_after_one.remote()
    assert raysim.get(next(gen)) == 1
    with pytest.raises(ValueError, match="no second value"):
        next(gen)


def test_large_values_travel_through_the_store(shared_session):
    values = [raysim.get(ref) for ref in large_values.remote()]
    assert [float(v[0]) for v in values] == [0.0, 1.0, 2.0]
    assert not values[0].flags.writeable  # a zero-copy view of the store


def test_actor_generator_methods_stream_and_async_ones_are_refused(shared_session):
    streamer = Streamer.remote()
    assert [raysim.get(ref) for ref in streamer.stream.remote(3)] == [0, 1, 2]
    with pytest.raises(NotImplementedError, match="async generator.*Tip"):
        streamer.async_stream.remote()


def test_with_num_returns_a_generator_returns_that_many_values(shared_session):
    assert raysim.get(count_to.options(num_returns=2).remote(2)) == [0, 10]


def test_num_returns_streaming_is_a_generator_and_dynamic_is_refused(shared_session):
    assert [raysim.get(r) for r in count_to.options(num_returns="streaming").remote(2)] == \
        [0, 10]
    with pytest.raises(NotImplementedError, match=r"num_returns='dynamic'.*Tip"):
        count_to.options(num_returns="dynamic")
    with pytest.raises(ValueError, match=r"only accepts None, a non-negative integer"):
        count_to.options(num_returns="bogus")
