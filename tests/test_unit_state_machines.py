"""The state machines of a worker (the raylet's pool) and of an owned object (a core
worker's memory store): every legal move is taken through ``move_to``, every other one is
refused with raysim's internal error. No process is started."""

import itertools
import threading

import pytest

from raysim.runtime.common.errors import RaySimInternalError
from raysim.runtime.core_worker.memory_store import FAILED, INLINE, PENDING, STORED, OwnedObject
from raysim.runtime.raylet.worker_pool import (ACTOR, BLOCKED, BUSY, DEAD, IDLE, STARTING,
                                               WorkerRecord)

WORKER_MOVES = {(STARTING, IDLE), (STARTING, ACTOR), (STARTING, DEAD), (IDLE, BUSY),
                (IDLE, DEAD), (BUSY, IDLE), (BUSY, BLOCKED), (BUSY, DEAD), (BLOCKED, BUSY),
                (BLOCKED, IDLE), (BLOCKED, DEAD), (ACTOR, DEAD)}
WORKER_STATES = (STARTING, IDLE, BUSY, BLOCKED, ACTOR, DEAD)


@pytest.mark.parametrize("start, end", list(itertools.product(WORKER_STATES, repeat=2)))
def test_worker_moves(start, end):
    worker = WorkerRecord("w1", "task", state=start)
    if (start, end) in WORKER_MOVES:
        worker.move_to(end)
        assert worker.state == end
    else:
        with pytest.raises(RaySimInternalError, match=f"worker w1 cannot go from {start} to {end}"):
            worker.move_to(end)
        assert worker.state == start


def test_a_task_worker_lends_its_cpu_and_takes_it_back():
    worker = WorkerRecord("w1", "task")
    for state in (IDLE, BUSY, BLOCKED, BUSY, IDLE):
        worker.move_to(state)
    assert worker.state == IDLE


OBJECT_MOVES = {(PENDING, INLINE), (PENDING, STORED), (PENDING, FAILED), (INLINE, STORED),
                (STORED, PENDING)}  # the last: made again after a node took its only copy
OBJECT_STATES = (PENDING, INLINE, STORED, FAILED)


@pytest.mark.parametrize("start, end", list(itertools.product(OBJECT_STATES, repeat=2)))
def test_owned_object_moves(start, end):
    slot = OwnedObject(start)
    if (start, end) in OBJECT_MOVES:
        slot.move_to(end, b"value")
        assert (slot.state, slot.data) == (end, b"value")
    else:
        with pytest.raises(RaySimInternalError,
                           match=f"an owned object cannot go from {start} to {end}"):
            slot.move_to(end)
        assert slot.state == start


def test_completing_an_object_wakes_its_waiters():
    slot = OwnedObject()
    waiters = [threading.Lock() for _ in range(2)]
    for lock in waiters:
        lock.acquire()
    slot.waiters = list(waiters)
    slot.move_to(INLINE, b"x")
    assert slot.waiters is None
    assert all(lock.acquire(blocking=False) for lock in waiters)  # released: free to take


def test_an_object_stored_by_put_counts_its_owner_once_sealed():
    """A put's object is PENDING until sealed; only a STORED one counts its owner
    (LOCAL_REFERENCE) in the GCS from the start."""
    assert OwnedObject().reported is None
    assert OwnedObject(STORED).reported == "LOCAL_REFERENCE"
