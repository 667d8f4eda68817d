"""Threaded and async actors run several calls at once, as in Ray; cancel reaches a running
coroutine. Each test makes the calls wait for each other (a barrier, an event), so a run
that is not concurrent fails by timing out inside the actor, never by luck of timing."""

import asyncio
import os
import threading

import pytest
from traceutil import of, poll, wait_for

import raysim
import raysim.trace
import raysim.trace.chrome
from raysim import exceptions
from raysim.trace.overlap import execution_rows
from raysim.trace.timeline_view import timeline_text


@raysim.remote(max_concurrency=3)
class Threaded:
    def __init__(self):
        self.barrier = threading.Barrier(3, timeout=10)

    def meet(self):
        self.barrier.wait()  # returns only once three calls are in here together
        return threading.current_thread().name


@raysim.remote
class AsyncGroup:
    def __init__(self, size):
        self.size = size
        self.active = 0
        self.peak = 0
        self.arrived = 0
        self.cancelled = []
        self.all_here = None

    async def meet(self):
        if self.all_here is None:
            self.all_here = asyncio.Event()
        self.active += 1
        self.peak = max(self.peak, self.active)
        self.arrived += 1
        if self.arrived == self.size:
            self.all_here.set()
        await asyncio.wait_for(self.all_here.wait(), timeout=10)
        self.active -= 1
        return self.peak

    async def block(self, name, started):
        open(started, "w").close()
        try:
            await asyncio.Event().wait()  # never set: only a cancel ends it
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise

    async def cancelled_calls(self):
        return self.cancelled

    def thread_name(self):
        return threading.current_thread().name


def test_a_threaded_actor_runs_max_concurrency_calls_at_once(ray_start, trace_file):
    actor = Threaded.remote()
    names = raysim.get([actor.meet.remote() for _ in range(3)], timeout=30)
    assert len(set(names)) == 3  # three threads of the actor's pool
    events = wait_for(trace_file, lambda ev: len(of(ev, "task.execute", name="Threaded.meet"))
                      == 3, what="the three calls' spans")
    spans = [(e["ts"], e["ts"] + e["dur"]) for e in of(events, "task.execute",
                                                         name="Threaded.meet")]
    latest_start = max(start for start, _ in spans)
    assert all(latest_start < end for _, end in spans), "the spans overlap"
    # The Perfetto timeline draws them side by side: one thread of the process each.
    raysim.shutdown()
    trace = raysim.trace.load(trace_file)
    chrome = raysim.trace.chrome.to_chrome(trace)["traceEvents"]
    slices = [e for e in chrome if e.get("name") == "Threaded.meet" and e["ph"] == "X"]
    assert len({e["pid"] for e in slices}) == 1 and len({e["tid"] for e in slices}) == 3
    # The terminal timeline says how many ran at once in the actor's lane.
    assert "×3 " in timeline_text(trace).plain


def test_overlapping_calls_get_a_row_each():
    def call(pid, start, end):
        return {"ev": "task.execute", "pid": pid, "ts": start, "dur": end - start}
    records = [call(1, 0, 10), call(1, 2, 5), call(2, 3, 4), call(1, 6, 12), call(1, 11, 13)]
    rows, used = execution_rows(records)
    assert [rows[i] for i in range(5)] == [0, 1, 0, 1, 0]
    assert used == {1: 2, 2: 1}


def test_an_async_actor_runs_many_calls_at_once_by_default(ray_start):
    group = AsyncGroup.remote(50)
    peaks = raysim.get([group.meet.remote() for _ in range(50)], timeout=30)
    assert max(peaks) == 50


def test_an_async_actors_max_concurrency_bounds_its_calls(ray_start):
    group = AsyncGroup.options(max_concurrency=2).remote(2)
    assert max(raysim.get([group.meet.remote() for _ in range(6)], timeout=30)) == 2


def test_cancel_reaches_a_running_coroutine(ray_start, tmp_path):
    group = AsyncGroup.remote(1)
    started = str(tmp_path / "started")
    running = group.block.remote("first", started)
    poll(lambda: os.path.exists(started), "the call to start")
    raysim.cancel(running)
    with pytest.raises(exceptions.TaskCancelledError) as info:
        raysim.get(running, timeout=30)
    assert isinstance(info.value, exceptions.RayTaskError)
    assert raysim.get(group.cancelled_calls.remote(), timeout=30) == ["first"]


def test_cancel_of_an_async_call_waiting_for_a_slot(ray_start, tmp_path):
    group = AsyncGroup.options(max_concurrency=1).remote(1)
    started = str(tmp_path / "started")
    running = group.block.remote("running", started)
    waiting = group.block.remote("waiting", str(tmp_path / "never"))
    poll(lambda: os.path.exists(started), "the first call to start")
    raysim.cancel(waiting)
    raysim.cancel(running)
    for ref in (running, waiting):
        with pytest.raises(exceptions.TaskCancelledError):
            raysim.get(ref, timeout=30)
    assert raysim.get(group.cancelled_calls.remote(), timeout=30) == ["running"]


def test_a_plain_method_of_an_async_actor_runs_on_its_event_loop(ray_start):
    group = AsyncGroup.remote(1)
    assert raysim.get(group.thread_name.remote()) == "raysim-asyncio"


def test_killing_a_threaded_actor_fails_every_call_in_flight(ray_start):
    actor = Threaded.remote()
    calls = [actor.meet.remote() for _ in range(2)]  # two of three: they wait at the barrier
    raysim.kill(actor)
    for call in calls:
        with pytest.raises(exceptions.ActorDiedError):
            raysim.get(call, timeout=30)


@pytest.mark.parametrize("value, error", [(0, ValueError), (-1, ValueError),
                                          (1.5, TypeError), (True, TypeError)])
def test_max_concurrency_must_be_a_positive_int(value, error):
    with pytest.raises(error, match=r"max_concurrency.*Tip"):
        Threaded.options(max_concurrency=value)
