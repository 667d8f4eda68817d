"""Submitting tasks: arguments, dependencies, and what comes back (the caller's side).

Seed, phase 3 step 1 and phase 4 step 1: "Driver submits actor creation request to Local
Scheduler (Raylet)"; "Driver sends task to Raylet". Phase 4 steps 8-9: "Worker #1 returns
ObjectRef(result_0) to driver; Driver receives the ObjectRef (this is the future)".

Before a task is sent its arguments are settled, as Ray's submitter does
(``LocalDependencyResolver``):

* a top-level ``ObjectRef`` argument becomes a dependency, resolved to its value on the
  worker before the function runs; refs nested inside other values stay refs;
* a dependency whose value is small and inline in this process travels inside the task;
  one in the store travels as its id, and the task holds a ``USED_BY_PENDING_TASK``
  reference to it until it finishes;
* a dependency this process is still computing makes the task wait here: it is sent the
  moment the last of its arguments arrives (on the I/O thread), or fails at once with the
  argument's error;
* actor calls leave in the order they were submitted, whatever their arguments: a call
  whose arguments are ready waits behind an earlier call to the same actor that still waits
  for its own. Ray gives each caller's calls to an actor a sequence number and the actor
  runs them in that order (``SequentialActorSubmitQueue``, ``ActorSchedulingQueue``), so a
  parameter server sees every ``push`` in the order its caller wrote them;
* an argument too big to travel inline is put in the store first.

When a result comes back (``task_done``) the owner's table is updated and everyone waiting
for it is woken.

Failures, the caller's side (Ray's actor task submitter does the same):

* when an actor's process dies the raylet says which of this caller's calls it had pushed to
  it (``actor_died``); those that had not finished run again on the restarted actor if
  ``max_task_retries`` allows (-1: always), or fail with ``ActorDiedError``. Later calls were
  never pushed: they wait in the raylet for the new process, or fail there if it is dead;
* an actor call whose exception its ``retry_exceptions`` covers is sent to the actor again,
  after ``task_retry_delay_ms``, on the same ``max_task_retries`` budget;
* a restartable actor's constructor arguments stay referenced until the actor is dead for
  good, so that a restart can run ``__init__`` with them again;
* an actor call holds the actor's handle object until it is answered or fails
  (``USED_BY_PENDING_TASK``, as Ray's pending actor tasks do), so an actor whose last handle
  goes away right after a call (``A.remote().f.remote()``) stays alive to answer it;
* ``cancel`` of a task still waiting here for its arguments fails it at once.

Runs in: the driver and workers, as part of their core worker. Trace events:
``task.submitted``, ``task.retry`` and ``task.cancelled`` (for the cases above).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import Any, Protocol

from raysim.runtime.common import results, serialization
from raysim.runtime.common.config import Config
from raysim.runtime.common.task_spec import ACTOR_CREATION, ACTOR_TASK, NORMAL_TASK, TaskSpec
from raysim.runtime.core_worker import check_serialize
from raysim.runtime.core_worker.connections import Connections
from raysim.runtime.core_worker.generators import Generators
from raysim.runtime.core_worker.memory_store import FAILED, INLINE, PENDING, STORED, OwnedObject
from raysim.runtime.core_worker.object_reader import ObjectReader
from raysim.runtime.core_worker.reference_counter import ReferenceCounter
from raysim.trace import writer as trace
from raysim.trace.schema import LOCAL_REFERENCE

_EMPTY_ARGS = serialization.serialize(((), {})).to_bytes()


class _WaitingTask:
    """A submitted task whose arguments this process is still computing."""

    __slots__ = ("spec", "missing", "holders")

    def __init__(self, spec: TaskSpec, missing: int, holders: list[str]) -> None:
        self.spec = spec
        self.missing = missing
        self.holders = holders


class _ArgRef:
    """Stands in a serialized argument list for a top-level ObjectRef argument."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self):
        return (_ArgRef, (self.index,))


class Owner(Protocol):
    """What the submitter needs of its process's core worker (``core_worker.py``): who the
    process is, where its references are counted, its connections, and how it makes objects
    (``put``, ``pass_on``, ``promote``). The core worker is this, and more."""

    wid: str
    node_id: str
    config: Config
    namespace: str | None  # named actors go there
    ref_class: type  # the API's ObjectRef
    refs: ReferenceCounter
    conns: Connections
    reader: ObjectReader  # grants the lease of a result stored by a task
    generators: Generators

    @property
    def current_task_id(self) -> str | None: ...
    def check_alive(self) -> None: ...
    def put(self, value: Any) -> str: ...
    def pass_on(self, refs: list) -> list[str]: ...
    def promote(self, object_id: str, slot: OwnedObject, background: bool = False) -> None: ...
    def serialize_value(self, value: Any, what: str) -> serialization.SerializedObject: ...


class TaskSubmitter:
    def __init__(self, core: Owner) -> None:
        self.core = core
        self._waiting_tasks: dict[str, _WaitingTask] = {}  # task id -> waiting for arguments
        # Actor calls not yet sent, per actor, in submission order: the first waits for its
        # arguments, the others for it (under owned_lock). Absent: nothing waits.
        self._held_calls: dict[str, deque[_WaitingTask]] = {}
        self._task_holders: dict[str, list[str]] = {}  # task id -> ids it holds
        # Calls not yet answered, per actor, in the order they were sent to the raylet.
        # Added (and sent) under _send_lock, removed under owned_lock, walked under both
        # (taken in that order): the I/O thread that removes answered calls never waits for
        # a send in progress, which it did while sends held owned_lock.
        self._actor_calls: dict[str, dict[str, TaskSpec]] = {}
        self._send_lock = threading.RLock()
        self._seq = itertools.count(1)  # actor calls' send order (spec.seq), under _send_lock
        self._call_actor: dict[str, str] = {}  # task id -> actor, for those calls
        self._call_retries: dict[str, int] = {}  # task id -> times run again (a death, or
        # an exception its retry_exceptions covers)
        # actor -> (its creation task, may it restart), until the actor is dead for good.
        self._creations: dict[str, tuple[str, bool]] = {}
        self._actor_args: dict[str, list[str]] = {}  # actor -> constructor args held for it
        # Actor calls not yet answered -> the handle object each holds (USED_BY_PENDING_TASK).
        self._call_holds: dict[str, str] = {}
        # Actor calls not yet answered -> the task this worker ran when it made them (None in
        # the driver): a recursive cancel of that task cancels them too.
        self._call_parent: dict[str, str | None] = {}
        # Handle holds of calls that ended while owned_lock was held: dropped once it is not
        # (dropping one may report to the GCS through the reference counter, whose lock must
        # never be taken under owned_lock: the counter's own callbacks take them the other
        # way round).
        self._ended_holds: list[str] = []

    def serialize_args(self, args: tuple, kwargs: dict,
                       function: str = "the task") -> tuple[bytes, list[str], list, list]:
        """Top-level ObjectRef arguments become dependencies, resolved to values before the
        task runs; refs nested inside other values stay refs. Arguments too large to travel
        inline are put in the store first and passed by reference, as Ray does. An argument
        that cannot be pickled raises TypeError naming it ("argument 2 of f()").

        Returns (args bytes, dependency ids, nested refs, refs to keep alive until sent).
        """
        if not args and not kwargs:
            return _EMPTY_ARGS, [], [], []
        deps: list[str] = []

        def by_ref(ref) -> _ArgRef:
            deps.append(ref.id)
            return _ArgRef(len(deps) - 1)

        ref_class = self.core.ref_class
        new_args = [by_ref(a) if type(a) is ref_class else a for a in args]
        new_kwargs = {k: by_ref(v) if type(v) is ref_class else v for k, v in kwargs.items()}
        try:
            obj = serialization.serialize((tuple(new_args), new_kwargs))
        except Exception as e:
            config = self.core.config
            raise check_serialize.arguments_error(
                args, kwargs, function, e, config.serialization_debug_depth,
                config.serialization_debug_time_s) from None
        keep: list = []
        threshold = self.core.config.max_direct_call_object_size
        if obj.total_size >= threshold:
            # Seldom: find the big ones, put each in the store, and pickle again.
            for container, key in [(new_args, i) for i in range(len(new_args))] + \
                    [(new_kwargs, k) for k in new_kwargs]:
                value = container[key]
                if isinstance(value, _ArgRef) or serialization.is_plain(value):
                    continue
                if self.core.serialize_value(value, "argument").total_size >= threshold:
                    ref = ref_class(self.core.put(value), self.core.wid)
                    keep.append(ref)
                    container[key] = by_ref(ref)
            obj = self.core.serialize_value((tuple(new_args), new_kwargs), "argument")
        return obj.to_bytes(), deps, obj.contained_refs, keep

    def submit(self, spec: TaskSpec, deps: list[str], nested: list) -> None:
        """Seed phase 3 step 1 / phase 4 step 1: hand the task to the raylet.

        Dependencies this process owns and that are still being computed are waited for
        here, as Ray's submitter does; the task is sent when the last one arrives.
        """
        task_id = spec.task_id
        if spec.namespace is None:
            spec.namespace = self.core.namespace  # the namespace the task runs in
        if spec.kind == ACTOR_TASK and spec.handle_object:
            # Taken before anything can fail the call, released when it ends either way.
            self._call_holds[task_id] = spec.handle_object
            self._call_parent[task_id] = self.core.current_task_id
            self.core.refs.add_submitted(spec.handle_object)
        nested_ids = self.core.pass_on(nested)
        holders = list(nested_ids)
        entries: list[list] = []
        waiting = 0
        failed = None
        with self.core.refs.owned_lock:
            # Under the lock: a death after this check fails the returns made below.
            self.core.check_alive()
            for object_id in deps:
                slot = self.core.refs.owned.get(object_id)
                if slot is None or slot.state == STORED:
                    entries.append([object_id, None])
                    holders.append(object_id)
                elif slot.state == INLINE:
                    entries.append([object_id, slot.data])
                elif slot.state == FAILED:
                    failed = slot.data
                    entries.append([object_id, None])
                else:
                    entries.append([object_id, None])
                    if slot.dependents is None:
                        slot.dependents = []
                    slot.dependents.append(task_id)
                    waiting += 1
            spec.deps = entries
            rebuildable = spec.kind == NORMAL_TASK and (spec.max_retries or 0) != 0
            for object_id in spec.returns:
                slot = self.core.refs.owned[object_id] = OwnedObject()
                if rebuildable:
                    slot.lineage = spec
            later = None
            if failed is None and (waiting or (spec.kind == ACTOR_TASK
                                               and spec.actor_id in self._held_calls)):
                later = self._hold_back(spec, waiting, holders)
        trace.emit("task.submitted", task=task_id, task_kind=spec.kind, name=spec.name,
                   actor=spec.actor_id, returns=spec.returns, deps=list(deps),
                   args_size=len(spec.args))
        if failed is not None:
            self._fail_returns(spec, failed)
            self._drop_ended_holds()
            return
        if later is None:
            self._send_task(spec, holders)

    def _hold_back(self, spec: TaskSpec, waiting: int, holders: list[str]) -> _WaitingTask:
        """The task cannot leave yet: it waits for ``waiting`` arguments, or (an actor call)
        behind an earlier call of ours to the same actor, which leaves first
        (``_send_held_calls``). What it holds is counted now, not when it leaves: the caller
        may drop its own refs meanwhile, and those objects must outlive the wait
        (owned_lock held)."""
        later = _WaitingTask(spec, waiting, holders)
        if waiting:
            self._waiting_tasks[spec.task_id] = later
        if spec.kind == ACTOR_TASK:
            self._held_calls.setdefault(spec.actor_id, deque()).append(later)
        self._task_holders[spec.task_id] = holders
        if holders:
            self._add_holds(spec.task_id, holders)
        return later

    def _add_holds(self, task_id: str, objects: list[str]) -> None:
        # The task holds its arguments until it finishes (USED_BY_PENDING_TASK).
        self.core.refs.hold_for_task(task_id, objects)

    def _drop_holds(self, task_id: str) -> None:
        """A task that waited here will never be sent (its argument failed, or it was
        cancelled): what it held is released."""
        holders = self._task_holders.pop(task_id, None)
        if holders:
            self.core.refs.release_for_task(task_id, holders)

    def _send_task(self, spec: TaskSpec, holders: list[str], counted: bool = False) -> None:
        """``counted``: the task waited here, and its holds were added meanwhile."""
        task_id = spec.task_id
        if spec.kind == ACTOR_CREATION:
            self._creations[spec.actor_id] = (task_id, (spec.max_restarts or 0) != 0)
        if holders and not counted:
            self._task_holders[task_id] = holders
            self._add_holds(task_id, holders)
        if spec.kind == ACTOR_TASK:
            self._send_call(spec)
            return
        self.core.conns.tell_raylet("submit_task", {"spec": spec, "task_id": task_id})

    def recover(self, object_ids: list[str]) -> None:
        """The GCS says these owned objects were lost with a node (I/O thread): make each
        again now if its task may run again, as Ray's owners do when they hear a node died;
        tell the GCS which cannot be, so that their readers fail instead of waiting."""
        lost = [oid for oid in object_ids if not self.reconstruct(oid)
                and not self._rebuilding(oid)]
        if lost:
            self.core.conns.tell_gcs("reconstruct_objects", {"objects": [], "lost": lost})

    def _rebuilding(self, object_id: str) -> bool:
        with self.core.refs.owned_lock:
            slot = self.core.refs.owned.get(object_id)
            return slot is not None and slot.state == PENDING

    def reconstruct(self, object_id: str) -> bool:
        """Make an owned object again, its only copy having been lost with a node: run the
        task that made it once more (Ray's lineage reconstruction, for tasks that may be
        retried). Whether it was resubmitted; ``get`` then waits for it as for any result."""
        with self.core.refs.owned_lock:
            slot = self.core.refs.owned.get(object_id)
            spec = slot.lineage if slot is not None else None
            if spec is None or slot.state != STORED:
                return False
            for oid in spec.returns:
                other = self.core.refs.owned.get(oid)
                if other is not None and other.state == STORED:
                    other.move_to(PENDING)
                    other.leased = None
        # The GCS forgets the loss first, so that nobody is told it again while the task runs.
        self.core.conns.tell_gcs("reconstruct_objects", {"objects": list(spec.returns)})
        trace.emit("task.retry", phase=trace.get_phase(), task=spec.task_id, name=spec.name,
                   attempt=1, max_retries=spec.max_retries or 0, cause="object_lost",
                   reason=f"its result {object_id} was lost with its node", delay_ms=None)
        holders = [oid for oid, inline in spec.deps if inline is None]
        self._send_task(spec, holders)
        return True

    def _send_call(self, spec: TaskSpec) -> None:
        # Under the lock, so that the table's order is the order the raylet receives them in:
        # on a death, "up to the last call pushed" must mean the same here and there.
        with self._send_lock:
            calls = self._actor_calls.setdefault(spec.actor_id, {})
            calls.pop(spec.task_id, None)  # a retry goes to the end
            calls[spec.task_id] = spec
            spec.seq = next(self._seq)
            self._call_actor[spec.task_id] = spec.actor_id
            self.core.conns.tell_raylet("submit_task", {"spec": spec,
                                                             "task_id": spec.task_id})

    def _dependency_ready(self, object_id: str, slot: OwnedObject) -> None:
        """Called with owned_lock held when an owned object leaves PENDING."""
        for task_id in slot.dependents or ():
            waiting = self._waiting_tasks.get(task_id)
            if waiting is None:
                continue
            if slot.state == FAILED:
                self._waiting_tasks.pop(task_id)
                self._unhold(waiting)
                self._drop_holds(task_id)
                self._fail_returns(waiting.spec, slot.data)
                continue
            for dep in waiting.spec.deps:  # [object id, inline bytes or None]
                if dep[0] == object_id:
                    if slot.state == INLINE:
                        dep[1] = slot.data  # it travels with the task
                    else:
                        waiting.holders.append(object_id)
                        self._add_holds(task_id, [object_id])
            waiting.missing -= 1
            if waiting.missing == 0:
                self._waiting_tasks.pop(task_id)
                if waiting.spec.kind == ACTOR_TASK:
                    self._send_held_calls(waiting.spec.actor_id)
                else:
                    self._send_task(waiting.spec, waiting.holders, counted=True)
        slot.dependents = None

    def _send_held_calls(self, actor_id: str) -> None:
        """Send the calls held for ``actor_id`` from the front, up to the first that still
        waits for its arguments (owned_lock held)."""
        held = self._held_calls.get(actor_id)
        while held and held[0].missing == 0:
            call = held.popleft()
            self._send_task(call.spec, call.holders, counted=True)
        if not held:
            self._held_calls.pop(actor_id, None)

    def _unhold(self, waiting: _WaitingTask) -> None:
        """A held actor call will never be sent (its argument failed, or it was cancelled):
        the calls behind it go on without it (owned_lock held)."""
        if waiting.spec.kind != ACTOR_TASK:
            return
        held = self._held_calls.get(waiting.spec.actor_id)
        if held is not None and waiting in held:
            held.remove(waiting)
            self._send_held_calls(waiting.spec.actor_id)

    def _fail_returns(self, spec: TaskSpec, error: list) -> None:
        with self.core.refs.owned_lock:
            for object_id in spec.returns:
                slot = self.core.refs.owned.get(object_id)
                if slot is not None and slot.state == PENDING:
                    slot.move_to(FAILED, error)
                    if slot.promote:  # its readers elsewhere must get the error too
                        self.core.promote(object_id, slot, background=True)
                    self._dependency_ready(object_id, slot)
            self._call_ended(spec.task_id)

    def _call_ended(self, task_id: str) -> None:
        """An actor call was answered or failed: its hold on the actor's handle goes (at the
        next ``_drop_ended_holds``). Once only, however many answers come."""
        self._call_parent.pop(task_id, None)
        handle_object = self._call_holds.pop(task_id, None)
        if handle_object is not None:
            self._ended_holds.append(handle_object)

    def _drop_ended_holds(self) -> None:
        """Called with owned_lock not held."""
        while self._ended_holds:
            try:
                handle_object = self._ended_holds.pop()
            except IndexError:  # another thread took the last one
                return
            self.core.refs.remove_submitted(handle_object)

    def actor_died(self, body: dict) -> None:
        """The raylet says an actor's process died (I/O thread)."""
        try:
            self._actor_died(body)
        finally:
            self._drop_ended_holds()

    def _actor_died(self, body: dict) -> None:
        actor_id, message = body["actor_id"], body["message"]
        error = results.raised(body.get("error", "ActorDiedError"), message)
        with self.core.refs.owned_lock, self._send_lock:  # no call is sent while these are read
            calls = self._actor_calls.get(actor_id, {})
            if not body["restarting"]:
                # Dead for good: every call still unanswered fails (those the raylet held it
                # fails too, and get() takes whichever error comes first).
                self._actor_calls.pop(actor_id, None)
                for spec in calls.values():
                    self._fail_call(spec, error)
                self._release_actor_args(actor_id)
                return
            for spec in self._pushed_calls(calls, body["last_pushed"].get(self.core.wid)):
                retries = self._call_retries.get(spec.task_id, 0)
                max_retries = spec.max_retries or 0
                if max_retries < 0 or retries < max_retries:
                    self._call_retries[spec.task_id] = retries + 1
                    trace.emit("task.retry", phase=spec.phase, task=spec.task_id,
                               name=spec.name, attempt=retries + 1, max_retries=max_retries,
                               cause="actor_died", reason=message.split(". ")[0],
                               actor=actor_id)
                    self._send_call(spec)
                else:
                    # The actor lives on, restarting: as in Ray, the call is "unavailable"
                    # (it may or may not have run), not dead.
                    calls.pop(spec.task_id, None)
                    self._fail_call(spec, results.raised("ActorUnavailableError", message))

    def _retry_call(self, body: dict) -> bool:
        """An actor call raised an exception its ``retry_exceptions`` covers: send it to the
        actor again if its ``max_task_retries`` allows (one budget with the retries after the
        actor's death), after ``task_retry_delay_ms`` as Ray does. Whether it will run again."""
        with self.core.refs.owned_lock:
            spec = self._actor_calls.get(body["actor_id"], {}).get(body["task_id"])
            if spec is None:
                return False  # cancelled, or failed by the actor's death meanwhile
            retries = self._call_retries.get(spec.task_id, 0)
            max_retries = spec.max_retries or 0
            if 0 <= max_retries <= retries:
                return False
            self._call_retries[spec.task_id] = retries + 1
        delay_ms = self.core.config.task_retry_delay_ms
        trace.emit("task.retry", phase=spec.phase, task=spec.task_id, name=spec.name,
                   attempt=retries + 1, max_retries=max_retries, cause="exception",
                   reason=body["retryable"], delay_ms=delay_ms or None, actor=spec.actor_id)
        if delay_ms <= 0:
            self._send_call(spec)
            return True
        timer = threading.Timer(delay_ms / 1000, self._send_call, (spec,))
        timer.daemon = True
        timer.start()
        return True

    @staticmethod
    def _pushed_calls(calls: dict[str, TaskSpec], last_pushed: int | None) -> list[TaskSpec]:
        """The calls the raylet had pushed to the dead process, and not yet answered: those
        sent up to the one numbered ``last_pushed``. (A threaded or async actor answers out
        of order: a later call may be answered while an earlier one still runs.)"""
        if last_pushed is None:
            return []
        return [spec for spec in calls.values() if spec.seq <= last_pushed]

    def _fail_call(self, spec: TaskSpec, error: list) -> None:
        self._call_actor.pop(spec.task_id, None)
        self._call_retries.pop(spec.task_id, None)
        self._fail_returns(spec, error)

    def _release_actor_args(self, actor_id: str) -> None:
        held = self._actor_args.pop(actor_id, None) or []
        task_id, _ = self._creations.pop(actor_id, (None, False))
        if task_id is not None:
            # Also what a creation that never finished (killed while starting) still holds.
            held += self._task_holders.pop(task_id, None) or []
        if held:
            self.core.refs.release_for_task(task_id, held)

    def cancel_waiting(self, task_id: str) -> bool:
        """Cancel a task still waiting here for its arguments: it never reached the raylet."""
        with self.core.refs.owned_lock:
            waiting = self._waiting_tasks.pop(task_id, None)
            if waiting is None:
                waiting = self._held_behind(task_id)
            if waiting is not None:
                self._unhold(waiting)
                self._drop_holds(task_id)
        if waiting is None:
            return False
        spec = waiting.spec
        trace.emit("task.cancelled", phase=spec.phase, task=task_id, name=spec.name,
                   how="waiting_for_arguments", force=False)
        self._fail_returns(spec, results.raised(
            "TaskCancelledError", f"Task {spec.name} ({task_id}) was cancelled by "
                                  f"raysim.cancel() while it waited for its arguments, so "
                                  f"it never ran. Tip: submit it again if you still need it."))
        self._drop_ended_holds()
        return True

    def _held_behind(self, task_id: str) -> _WaitingTask | None:
        """The held actor call ``task_id`` whose arguments are ready but which waits behind
        an earlier call (owned_lock held)."""
        for held in self._held_calls.values():
            for call in held:
                if call.spec.task_id == task_id:
                    return call
        return None

    def calls_made_by(self, parent_task_id: str) -> list[tuple[str, str]]:
        """(call, actor) of the actor calls the task ``parent_task_id`` made here that are not
        answered yet."""
        return [(task_id, self._call_actor[task_id])
                for task_id, parent in list(self._call_parent.items())
                if parent == parent_task_id and task_id in self._call_actor]

    def call_actor(self, task_id: str) -> str | None:
        """The actor a still-unanswered call of this process goes to (None: not a call)."""
        actor_id = self._call_actor.get(task_id)
        if actor_id is None:
            with self.core.refs.owned_lock:
                waiting = self._waiting_tasks.get(task_id) or self._held_behind(task_id)
            if waiting is not None:
                actor_id = waiting.spec.actor_id
        return actor_id

    def task_done(self, body: dict) -> None:
        """Seed phase 4 steps 5-9: a result arrives, inline or as a place in the store."""
        try:
            self._task_done(body)
        finally:
            self._drop_ended_holds()

    def _task_done(self, body: dict) -> None:
        task_id = body["task_id"]
        if body.get("item") is not None:
            self.core.generators.item(body)  # one value of a generator task
            return
        actor_id = body.get("actor_id")
        if body.get("retryable") is not None and self._retry_call(body):
            return  # it runs again: this attempt's error is nobody's result
        if actor_id is not None:
            with self.core.refs.owned_lock:
                calls = self._actor_calls.get(actor_id)
                if calls is not None:
                    calls.pop(task_id, None)
                self._call_actor.pop(task_id, None)
                self._call_retries.pop(task_id, None)
                self._call_ended(task_id)
        if actor_id is not None and self._creations.get(actor_id) == (task_id, True):
            # A restartable actor's creation: a restart needs the constructor's arguments
            # again, so they are held until the actor is dead for good (actor_died). A second
            # report (after a restart) finds nothing left to move.
            held = self._task_holders.pop(task_id, None)
            if held:
                self._actor_args.setdefault(actor_id, []).extend(held)
            return
        holders = self._task_holders.pop(task_id, None)
        self.complete_results(body.get("returns") or (), body["results"])
        if task_id in self.core.generators.tasks:
            self.core.generators.ended()  # its iterator may be waiting for the end
        if holders:
            self.core.refs.release_for_task(task_id, holders)

    def complete_results(self, returns, entries: list) -> None:
        """Seed phase 4 step 9: the results of a task (or one value of a generator task)
        complete the owner's slots, inline or as places in the store; tasks waiting for them
        are sent."""
        releases = []
        with self.core.refs.owned_lock:
            for object_id, result in zip(returns, entries):
                slot = self.core.refs.owned.get(object_id)
                kind = results.kind(result)
                if slot is None or slot.state != PENDING:
                    # Nobody here wants it any more.
                    if kind == results.STORED:
                        releases.append(object_id)
                    elif kind == results.INLINE and results.inline_contained(result):
                        self.core.refs.release_captured(object_id,
                                                        results.inline_contained(result))
                    continue
                if kind == results.INLINE:
                    # The refs inside it were held for it by the worker (``capture``).
                    slot.contained = results.inline_contained(result)
                    slot.move_to(INLINE, results.inline_data(result))
                    if slot.promote:
                        self.core.promote(object_id, slot, background=True)
                elif kind == results.STORED:
                    slot.offset, slot.size = results.stored_place(result)
                    slot.reported = LOCAL_REFERENCE
                    # Read where it was stored without asking, if that is this node's store
                    # (and not a retry's answer "exists" of a spilled copy); a value stored
                    # on another node is read through the raylet, which pulls it here.
                    here = results.stored_node(result) == self.core.node_id
                    if slot.offset >= 0 and here:
                        self.core.reader.grant_lease(slot)
                    slot.move_to(STORED, None)
                    if not here:
                        self.core.reader.made_elsewhere(object_id)
                else:
                    slot.move_to(FAILED, result)
                    if slot.promote:  # its readers elsewhere must get the error too
                        self.core.promote(object_id, slot, background=True)
                # Tasks waiting for it go first; then, if every reference here went while it
                # was computed, it is dropped.
                self._dependency_ready(object_id, slot)
                if slot.released:
                    if slot.state == STORED:
                        releases.append(object_id)
                    self.core.refs.drop_owned(object_id, slot)
        if releases:
            self.core.refs.release_stored(releases)
