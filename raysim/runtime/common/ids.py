"""Identifiers, one distinct type per kind of thing (Ray: ``src/ray/common/id.h``).

Ray's ids are random bytes with structure: an ObjectID is the TaskID that creates the object
plus an index, so the creator of any object can be read off its id. raysim keeps that
structure in short hex strings that read well in a trace:

    TaskID    16 hex chars: the WorkerID of the process that made it (8), then a counter (8)
    ObjectID  TaskID + 4 hex chars: return index (1, 2, ...), put index (8000 + n), or 0
              for an actor's handle object (the creation task's "return 0")
    ActorID   12 hex chars
    NodeID    8 hex chars
    WorkerID  8 hex chars, one per process (driver or worker)

So the process that made an id, which owns the object (it put it, or submitted the task that
returns it), can be read off the id: ``owner_of``. The GCS uses that to know which objects die
with a process, even objects it has not heard of yet (Ray's ObjectIDs embed their owner's
task the same way; its owners keep the table themselves).

They are ``str`` subclasses, so they cost nothing to compare, hash, pickle or write as JSON.
Runs in: every process.
"""

from __future__ import annotations

import itertools
import os

from raysim.runtime.common.errors import RaySimInternalError
from raysim.trace import schema


class BaseID(str):
    __slots__ = ()

    def hex(self) -> str:
        """The id as plain text (Ray's ids are bytes, read as ``id.hex()``)."""
        return str(self)


class ObjectID(BaseID):
    __slots__ = ()

    def task_id(self) -> "TaskID":
        return TaskID(self[:16])


class TaskID(BaseID):
    __slots__ = ()


class ActorID(BaseID):
    __slots__ = ()


class NodeID(BaseID):
    __slots__ = ()


class WorkerID(BaseID):
    __slots__ = ()


class JobID(BaseID):
    __slots__ = ()


# The formats are the trace schema's (the tracer reads ids without the runtime).
PUT_INDEX_BASE = schema.PUT_INDEX_BASE
HANDLE_INDEX = schema.HANDLE_INDEX
WORKER_ID_CHARS = schema.WORKER_ID_CHARS


def random_hex(n_chars: int) -> str:
    return os.urandom((n_chars + 1) // 2).hex()[:n_chars]


class IdFactory:
    """Makes task ids unique across processes: the process's worker id plus a counter."""

    def __init__(self, worker_id: str) -> None:
        if len(worker_id) != WORKER_ID_CHARS:
            raise RaySimInternalError(
                f"a worker id has {WORKER_ID_CHARS} hex chars, got {worker_id!r}")
        self._prefix = worker_id
        self._tasks = itertools.count(1)
        self._puts = itertools.count(0)
        # The pseudo task that puts made by this process belong to (Ray derives put ids from
        # the current task id; raysim uses one per process).
        self.put_task_id = TaskID(f"{self._prefix}{0:08x}")

    def task_id(self) -> TaskID:
        return TaskID(f"{self._prefix}{next(self._tasks):08x}")

    def put_object_id(self) -> ObjectID:
        n = next(self._puts)
        if n == PUT_INDEX_BASE:  # 32,768 puts used this pseudo task's index space up
            self.put_task_id = self.task_id()
            self._puts = itertools.count(1)
            n = 0
        return ObjectID(f"{self.put_task_id}{PUT_INDEX_BASE + n:04x}")


def owner_of(object_id: str) -> str:
    """The worker id of the process that owns an object (or made a task id)."""
    return object_id[:WORKER_ID_CHARS]


def is_actor_handle(object_id: str) -> bool:
    """Is this the handle object of an actor (not a value in a store)?"""
    return len(object_id) == 20 and int(object_id[16:], 16) == HANDLE_INDEX


def return_object_id(task_id: str, index: int) -> ObjectID:
    """The id of a task's index-th return value (1-based, as in Ray)."""
    return ObjectID(f"{task_id}{index:04x}")


def item_object_id(task_id: str, index: int) -> ObjectID:
    """The id of the ``index``-th value (0-based) a generator task yields; return index 1 is
    the task's end."""
    return return_object_id(task_id, index + 2)
