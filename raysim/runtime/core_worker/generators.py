"""The caller's side of generator tasks: the values each one has yielded so far.

Ray's streaming generators (``ObjectRefGenerator``, ``raysim/generator.py``): each value a
generator task yields arrives at its caller as one ``task_done`` of its own, carrying that one
result (``item``: its position); the task's own return ("the end") comes last. The I/O thread
files each value here, in order; the caller's iterator takes them out, waiting for the next
one or the end.

Runs in: the caller (driver or worker), on the I/O thread (arrivals) and the caller's
thread (iteration). Trace events: none of its own (each value's ``task_done`` is traced as
it arrives).
"""

from __future__ import annotations

import threading
from typing import Callable

from raysim.runtime.core_worker.memory_store import PENDING, OwnedObject
from raysim.runtime.core_worker.reference_counter import ReferenceCounter


class Generators:
    """The caller's side: the values of each generator task that have arrived."""

    def __init__(self, refs: ReferenceCounter, wid: str, ref_class: type,
                 complete_results: Callable[[list, list], None]) -> None:
        self.refs = refs  # where the values' objects are owned
        self.wid = wid
        self.ref_class = ref_class  # the API's ObjectRef
        self.complete_results = complete_results  # the submitter's: store a value's result
        self._changed = threading.Condition()
        self.tasks: dict[str, list] = {}  # task id -> refs, in yield order

    def expect(self, task_id: str) -> None:
        with self._changed:
            self.tasks.setdefault(task_id, [])

    def forget(self, task_id: str) -> None:
        with self._changed:
            self.tasks.pop(task_id, None)  # refs not handed out are released with it

    def item(self, body: dict) -> None:
        """I/O thread: one value arrived (``body["item"]`` is its position)."""
        (object_id,) = body["returns"]
        with self.refs.owned_lock:
            new = object_id not in self.refs.owned  # a retried task sends its values again
            if new:
                self.refs.owned[object_id] = OwnedObject()
        # The caller's ref first (never under owned_lock: the reference counter reports to
        # the GCS), then the value, as for any return value.
        ref = self.ref_class(object_id, self.wid) if new else None
        self.complete_results([object_id], body["results"])
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

    def next_ref(self, task_id: str, end_id: str, index: int, wait: bool = True):
        """The ``index``-th value's ref once it has arrived, or None once the task has ended
        without it (then the task's end says why: how many values it made, or its error).
        With ``wait=False``, None at once if the value has not arrived."""
        slot = self.refs.owned.get(end_id)
        with self._changed:
            while True:
                items = self.tasks.get(task_id, [])
                if index < len(items):
                    return items[index]
                if not wait or slot is None or slot.state != PENDING:
                    return None
                self._changed.wait(0.5)  # woken by item() and ended(); the timeout re-checks
