"""Identifiers, one distinct type per kind of thing (Ray: ``src/ray/common/id.h``).

Ray's ids are random bytes with structure: an ObjectID is the TaskID that creates the object
plus an index, so the creator of any object can be read off its id. raysim keeps that
structure in short hex strings that read well in a trace:

    TaskID    16 hex chars: 6 for the process that made it, 10 for a counter
    ObjectID  TaskID + 4 hex chars: return index (1, 2, ...) or put index (8000 + n)
    ActorID   12 hex chars
    NodeID    8 hex chars
    WorkerID  8 hex chars, one per process (driver or worker)

They are ``str`` subclasses, so they cost nothing to compare, hash, pickle or write as JSON.
Runs in: every process.
"""

from __future__ import annotations

import itertools
import os


class ObjectID(str):
    __slots__ = ()

    def task_id(self) -> "TaskID":
        return TaskID(self[:16])


class TaskID(str):
    __slots__ = ()


class ActorID(str):
    __slots__ = ()


class NodeID(str):
    __slots__ = ()


class WorkerID(str):
    __slots__ = ()


class JobID(str):
    __slots__ = ()


PUT_INDEX_BASE = 0x8000


def random_hex(n_chars: int) -> str:
    return os.urandom((n_chars + 1) // 2).hex()[:n_chars]


class IdFactory:
    """Makes task ids unique across processes: a random per-process prefix plus a counter."""

    def __init__(self) -> None:
        self._prefix = random_hex(6)
        self._tasks = itertools.count(1)
        self._puts = itertools.count(0)
        # The pseudo task that puts made by this process belong to (Ray derives put ids from
        # the current task id; raysim uses one per process).
        self.put_task_id = TaskID(f"{self._prefix}{0:010x}")

    def task_id(self) -> TaskID:
        return TaskID(f"{self._prefix}{next(self._tasks):010x}")

    def put_object_id(self) -> ObjectID:
        n = next(self._puts)
        if n == PUT_INDEX_BASE:  # 32,768 puts used this pseudo task's index space up
            self.put_task_id = self.task_id()
            self._puts = itertools.count(1)
            n = 0
        return ObjectID(f"{self.put_task_id}{PUT_INDEX_BASE + n:04x}")


def return_object_id(task_id: str, index: int) -> ObjectID:
    """The id of a task's index-th return value (1-based, as in Ray)."""
    return ObjectID(f"{task_id}{index:04x}")
