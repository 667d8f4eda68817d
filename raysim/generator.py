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
* the caller keeps, per generator task, the refs of the values that have arrived, in order
  (``Generators``), and the iterator hands them out, waiting for the next one or the end;
* the task's own return ("the end") is a normal return value: whatever fails the task
  (an exception mid-way, a crash with no retries left, a cancel) fails it, and the iterator
  raises that error once it has handed out the values made before it, as Ray's does.

Values yielded by an async generator are not supported (``option_utils.refuse_generator``).

Runs in: the caller (driver or worker). Trace events: those of the results (``task.submitted``
lists only the end; each value's ``task_done`` message is in the trace as it arrives).
"""

from __future__ import annotations

import threading

from raysim.object_ref import ObjectRef
from raysim.runtime.common import ids
from raysim.runtime.core_worker.memory_store import PENDING, OwnedObject


def item_object_id(task_id: str, index: int) -> str:
    """The id of the ``index``-th value (0-based) a generator task yields; return index 1 is
    the task's end."""
    return ids.return_object_id(task_id, index + 2)


class ObjectRefGenerator:
    """What ``.remote()`` of a generator function returns: an iterator of ObjectRefs, one per
    value yielded, in order, each available as soon as the task has made it."""

    def __init__(self, end: ObjectRef, generators: "Generators") -> None:
        self._end = end
        self._generators = generators
        self._next = 0
        generators.expect(end.task_id())  # (the submitter did, before its values could come)

    def __iter__(self) -> "ObjectRefGenerator":
        return self

    def __next__(self) -> ObjectRef:
        ref = self._generators.next_ref(self._end, self._next)
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


class Generators:
    """The caller's side: the values of each generator task that have arrived."""

    def __init__(self, core) -> None:
        self.core = core
        self._changed = threading.Condition()
        self.tasks: dict[str, list[ObjectRef]] = {}  # task id -> refs, in yield order

    def expect(self, task_id: str) -> None:
        with self._changed:
            self.tasks.setdefault(task_id, [])

    def forget(self, task_id: str) -> None:
        with self._changed:
            self.tasks.pop(task_id, None)  # refs not handed out are released with it

    def item(self, body: dict) -> None:
        """I/O thread: one value arrived (``body["item"]`` is its position)."""
        core = self.core
        (object_id,) = body["returns"]
        with core.owned_lock:
            new = object_id not in core.owned  # a retried task sends its values again
            if new:
                core.owned[object_id] = OwnedObject()
        # The caller's ref first (never under owned_lock: the reference counter reports to
        # the GCS), then the value, as for any return value.
        ref = ObjectRef(object_id, core.wid) if new else None
        core.submitter.complete_results([object_id], body["results"])
        if ref is None:
            return
        with self._changed:
            items = self.tasks.get(body["task_id"])
            if items is not None and len(items) == body["item"]:
                items.append(ref)
            self._changed.notify_all()

    def ended(self) -> None:
        """I/O thread: a task's end arrived; iterators waiting for a value look again."""
        with self._changed:
            self._changed.notify_all()

    def next_ref(self, end: ObjectRef, index: int) -> ObjectRef:
        """The ``index``-th value's ref, once it has arrived; StopIteration after the last;
        the task's error if it failed before making it."""
        task_id = end.task_id()
        slot = self.core.owned.get(end.id)
        with self._changed:
            while True:
                items = self.tasks.get(task_id, [])
                if index < len(items):
                    return items[index]
                if slot is None or slot.state != PENDING:
                    break
                self._changed.wait(0.5)  # woken by item() and ended(); the timeout re-checks
        from raysim import api
        count = api.get(end)  # raises the task's error, if it failed
        with self._changed:
            items = self.tasks.get(task_id, [])
            if index < len(items):
                return items[index]
        if index >= count:
            raise StopIteration
        raise RuntimeError(f"generator task {task_id} made {count} values, but value "
                           f"{index} never arrived")
