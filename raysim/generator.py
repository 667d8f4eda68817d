"""Generator tasks: a remote function or actor method that ``yield``s (Ray's streaming
generators, ``ObjectRefGenerator``).

Beyond the founding document, whose tasks return once. In Ray 2.x a generator function's
``.remote()`` returns at once an ``ObjectRefGenerator``; each value the task yields becomes an
object of its own, sent to the caller as soon as it is made (inline if small, through the
store if large, like any result), so the caller can ``ray.get`` the first values while the
task still computes the next. raysim does the same:

* the worker runs the generator, and for each value sends one ``task_done`` carrying that one
  result (``item``: its position), then a last one with the task's own return: the number of
  values made, or the error that stopped the task (``worker.py``);
* the caller's core worker keeps, per generator task, the refs of the values that have
  arrived, in order (``runtime/core_worker/generators.py``), and this iterator hands them
  out, waiting for the next one or the end;
* the task's own return ("the end") is a normal return value: whatever fails the task
  (an exception mid-way, a crash with no retries left, a cancel) fails it, and the iterator
  raises that error once it has handed out the values made before it, as Ray's does.

Values yielded by an async generator are not supported (``option_utils.refuse_generator``).

Runs in: the caller (driver or worker). Trace events: those of the results (``task.submitted``
lists only the end; each value's ``task_done`` message is in the trace as it arrives).
"""

from __future__ import annotations

from raysim import session
from raysim.object_ref import ObjectRef


class ObjectRefGenerator:
    """What ``.remote()`` of a generator function returns: an iterator of ObjectRefs, one per
    value yielded, in order, each available as soon as the task has made it."""

    def __init__(self, end: ObjectRef, generators) -> None:
        self._end = end
        self._generators = generators
        self._next = 0
        generators.expect(end.task_id())  # (the submitter did, before its values could come)

    def __iter__(self) -> "ObjectRefGenerator":
        return self

    def __next__(self) -> ObjectRef:
        """The next value's ref, once it has arrived; StopIteration after the last; the
        task's error if it failed before making it."""
        task_id, index = self._end.task_id(), self._next
        ref = self._generators.next_ref(task_id, self._end.id, index)
        if ref is None:  # the task has ended: its end says how many values it made
            count = session.get_values([self._end], None, "get")[0]  # or raises its error
            ref = self._generators.next_ref(task_id, self._end.id, index, wait=False)
            if ref is None and index >= count:
                raise StopIteration
            if ref is None:
                raise RuntimeError(f"generator task {task_id} made {count} values, but value "
                                   f"{index} never arrived")
        self._next += 1
        return ref

    def task_id(self) -> str:
        return self._end.task_id()

    def completed(self) -> ObjectRef:
        """A ref that is ready once the task has ended (its value: how many it yielded)."""
        return self._end

    def __del__(self) -> None:
        generators = getattr(self, "_generators", None)
        if generators is not None:
            generators.forget(self._end.task_id())

    def __repr__(self) -> str:
        return f"ObjectRefGenerator({self._end.task_id()})"
