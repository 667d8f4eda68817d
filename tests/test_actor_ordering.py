"""Actor calls from one caller run in the order they were submitted, as in Ray, even when an
earlier call still waits for an argument that a task is computing and a later one is ready.

Each test holds its first argument back with a gate (a file the test creates once every call
is submitted), so a later call is ready first in every run, never by luck of timing.
"""

import gc
import os

import numpy as np
import pytest
from traceutil import poll, wait_for_file

import raysim
from raysim import exceptions


@pytest.fixture
def gate(tmp_path):
    return str(tmp_path / "gate")


@raysim.remote
def held_back(gate, value):
    wait_for_file(gate)
    return value


@raysim.remote
def held_back_error(gate):
    wait_for_file(gate)
    raise IndexError("no gradient")


@raysim.remote
class ParameterServer:
    def __init__(self, size):
        self.weights = np.zeros(size)
        self.updates = []

    def push(self, gradient):
        self.weights += gradient
        self.updates.append(float(gradient[0]))
        return list(self.updates)


@raysim.remote
class Log:
    def __init__(self):
        self.items = []

    def push(self, item):
        self.items.append(item)
        return len(self.items)

    def items_(self):
        return self.items


@raysim.remote
class Forwarder:
    """Pushes what it is given to a Log: its effect outlives the forwarder's handle."""

    def __init__(self, log):
        self.log = log

    def push(self, item):
        return raysim.get(self.log.push.remote(item))


def test_a_ready_call_waits_for_an_earlier_call_whose_argument_is_computing(
        shared_session, gate):
    """The parameter server of the issue: every push counts, in order, before the last."""
    ps = ParameterServer.remote(1000)
    gradients = [held_back.remote(gate, np.full(1000, float(i))) for i in range(1, 4)]
    for g in gradients:
        ps.push.remote(g)
    last = ps.push.remote(np.zeros(1000))
    open(gate, "w").close()
    assert raysim.get(last) == [1.0, 2.0, 3.0, 0.0]


def test_large_results_passed_and_dropped_by_the_caller_all_apply(shared_session, gate):
    """Results over 100 KiB go through the store; the caller keeps no ref to them, yet each
    call waiting for its turn keeps its argument alive until it has run."""
    size = 200_000  # 1.6 MB of float64
    ps = ParameterServer.remote(size)
    for i in range(1, 4):
        ps.push.remote(held_back.remote(gate, np.full(size, float(i))))
    gc.collect()
    last = ps.push.remote(np.zeros(size))
    open(gate, "w").close()
    assert raysim.get(last) == [1.0, 2.0, 3.0, 0.0]


def test_fire_and_forget_calls_run_after_the_handle_is_dropped(shared_session, gate):
    log = Log.remote()
    forwarder = Forwarder.remote(log)
    forwarder.push.remote(held_back.remote(gate, "a"))
    forwarder.push.remote("b")
    forwarder.push.remote(held_back.remote(gate, "c"))
    del forwarder
    gc.collect()
    open(gate, "w").close()
    items = poll(lambda: (lambda got: got if len(got) == 3 else None)(
        raysim.get(log.items_.remote())), "the three forwarded pushes")
    assert items == ["a", "b", "c"]


def test_a_failed_argument_fails_its_call_and_the_next_calls_go_on(shared_session, gate):
    log = Log.remote()
    first = log.push.remote(held_back.remote(gate, "a"))
    second = log.push.remote("b")
    failed = log.push.remote(held_back_error.remote(gate))
    fourth = log.push.remote("c")
    open(gate, "w").close()
    assert raysim.get([first, second]) == [1, 2]
    with pytest.raises(IndexError):
        raysim.get(failed)
    assert raysim.get(fourth) == 3
    assert raysim.get(log.items_.remote()) == ["a", "b", "c"]


def test_cancelling_a_call_held_behind_another_lets_the_rest_run(shared_session, gate):
    """Ray 2.60 itself stalls here for 30 s (the actor waits for the cancelled call's
    sequence number, then fails everything queued): raysim runs the calls after it."""
    log = Log.remote()
    first = log.push.remote(held_back.remote(gate, "a"))
    cancelled = log.push.remote("b")
    third = log.push.remote("c")
    raysim.cancel(cancelled)
    open(gate, "w").close()
    with pytest.raises(exceptions.TaskCancelledError):
        raysim.get(cancelled)
    assert raysim.get([first, third]) == [1, 2]
    assert raysim.get(log.items_.remote()) == ["a", "c"]


def test_calls_to_different_actors_do_not_wait_for_each_other(shared_session, gate):
    slow_log, fast_log = Log.remote(), Log.remote()
    held = slow_log.push.remote(held_back.remote(gate, "a"))
    assert raysim.get(fast_log.push.remote("b")) == 1
    assert not os.path.exists(gate)  # the slow call's argument is still held back
    open(gate, "w").close()
    assert raysim.get(held) == 1
