"""The core worker: the part of every driver and worker process that speaks to the runtime.

Ray links the same C++ ``CoreWorker`` into drivers and workers; raysim has this class. It
holds the process's two connections (to its raylet and to the GCS), its mapping of the object
store, the objects it *owns* (the return values of tasks it submitted and the objects it
``put``), and its reference counts. The public API (``raysim.put/get/wait``, ``.remote()``)
is a thin layer over it.

Seed steps implemented here:

* phase 2: serialize the model, write it into the store, get an ObjectRef (``put``);
* phase 4 step 5: a worker's result goes back inline or into the store (``store_result``);
* phase 5: ``get`` reads inline bytes from this process's memory, or maps the store zero-copy
  (``object_reader.py``).

Submitting tasks is ``task_submitter.py``'s part; an owned object's value and state are
``memory_store.py``'s; which objects this process owns and holds, and what the GCS is told
about them, ``reference_counter.py``'s; reading objects (``get``, ``wait``) is
``object_reader.py``'s.

Refs inside a value that leaves this process (a put, a task's result) are held for the value
at the GCS (``CAPTURED_IN_OBJECT``, holder ``object:<id>``) before this process can drop its
own, so the value's reader finds them alive, as Ray's owner keeps refs nested in a returned
object alive. A stored value's holds go when the GCS frees it; an inline result's, when its
owner drops it. An object that can never be read (its owner died, or it was freed before
this process's ref was counted) makes ``get`` raise ``OwnerDiedError`` or
``ReferenceCountingAssertionError``, as the raylet reports it.

Threads: the user's thread(s) call the API; one I/O thread reads every connection and
completes what waits on it (replies, task results), so that a task whose arguments were
pending is submitted as soon as they are ready, even while the user's thread is busy
elsewhere (Ray's io_service thread does the same).

When the GCS or the raylet dies, the I/O thread sees its connection close: every call
waiting here fails, and every later one fails at once, with ``RaySystemError`` (GCS) or
``LocalRayletDiedError`` (raylet) naming the process and how it ended. Ray without GCS fault
tolerance fails the same way; the session must be shut down and started again.

Runs in: the driver and every worker. Trace events: ``object.serialized``,
``object_store.written``, ``object.inlined``, ``object.promoted``,
``function.exported``, ``component.died``, ``phase.begin`` (driver).
"""

from __future__ import annotations

import contextvars
import dataclasses
import pickle
import sys
import threading
import time
from typing import Any, Callable

from raysim import exceptions
from raysim.runtime.common import ids, results, serialization
from raysim.runtime.common.config import Config
from raysim.runtime.common.protocol import BlockingConnection
from raysim.runtime.common.task_spec import TaskSpec
from raysim.runtime.core_worker import check_serialize
from raysim.runtime.core_worker.connections import Connections
from raysim.runtime.core_worker.generators import Generators
from raysim.runtime.core_worker.memory_store import FAILED, INLINE, PENDING, STORED, OwnedObject
from raysim.runtime.core_worker.object_reader import ObjectReader
from raysim.runtime.core_worker.reference_counter import ReferenceCounter
from raysim.runtime.core_worker.store_client import StoreClient, store_full_error
from raysim.runtime.core_worker.task_submitter import TaskSubmitter
from raysim.trace import writer as trace
from raysim.trace.schema import LOCAL_REFERENCE

_current_task: contextvars.ContextVar[TaskSpec | None] = contextvars.ContextVar(
    "current_task", default=None)


@dataclasses.dataclass
class WorkerHooks:
    """What a worker process (``worker.py``) gives its core worker; a driver has none."""

    actor_id: str | None  # the actor this worker is dedicated to, if any
    on_task: Callable[[dict], None]  # push_task and exit_worker, for the main thread to run
    on_cancel: Callable[[dict], None]  # cancel_task, on the I/O thread: interrupts the task
    cancelled: set[str]  # the tasks raysim.cancel reached here (is_canceled())
    function_name_of: Callable[[TaskSpec], str]  # the full name of the function a task runs
    exit_actor: Callable[[str], None]  # exit_actor(): ends the actor on its own wish


class CoreWorker:
    def __init__(self, role: str, wid: str, node_id: str, session_dir: str,
                 raylet: BlockingConnection, gcs: BlockingConnection, store_fd: int,
                 store_capacity: int, config: Config, job_id: str, ref_class: type,
                 hooks: WorkerHooks | None = None) -> None:
        self.role = role  # "driver" or "worker"
        # The API's ObjectRef class, for the refs this process makes (a result's, a
        # generator's value's): the core worker sits below the API and does not import it.
        self.ref_class = ref_class
        self.wid = wid
        self.holder_name = f"{role}:{wid}"  # how the GCS and raylet name this process
        self.node_id = node_id
        self.session_dir = session_dir
        self.job_id = job_id
        self.config = config
        # Its raylet, the GCS, the owners it sends results to, and the I/O thread.
        self.conns = Connections(role, wid, session_dir, raylet, gcs, config)
        self.conns.on_death.append(self._fail_pending)
        self.store = StoreClient(store_fd, store_capacity)
        self.ids = ids.IdFactory(wid)
        # Who holds which object, and the objects this process owns (reference_counter.py).
        conns = self.conns
        self.refs = ReferenceCounter(
            conns.tell_gcs, conns.ask_gcs, lambda: conns.closing,
            lambda: threading.current_thread() is conns.io_thread)
        self._exported: set[str] = set()
        # What the worker process does with the tasks sent to it (None in the driver).
        self.hooks = hooks
        # The namespace named actors are created in and looked up in when none is given:
        # the driver's init(namespace=...); in a worker, that of the task it runs.
        self.namespace: str | None = None
        self.current_actor_id = hooks.actor_id if hooks is not None else None
        # Set by an actor's worker: the actor's creation task, and how many times it was
        # restarted before this process (the runtime context reports both).
        self.actor_creation: TaskSpec | None = None
        self.actor_restarts = 0
        self.in_task = False  # a worker is executing a task (lends its CPU back when blocked)
        self.submitter = TaskSubmitter(self)
        # Values of generator tasks, as they arrive.
        self.generators = Generators(self.refs, wid, ref_class, self.submitter.complete_results)
        self.reader = ObjectReader(self.conns, self.refs, self.store, node_id,
                                   lambda: self.in_task, self.submitter.reconstruct)

    # The task this thread (or this coroutine, in an async actor) runs: the parent of what
    # it submits, and what is_canceled() and the runtime context ask about. A context
    # variable, because a threaded or async actor runs several calls at once in one process.
    @property
    def current_task(self) -> TaskSpec | None:
        return _current_task.get()

    @current_task.setter
    def current_task(self, spec: TaskSpec | None) -> None:
        _current_task.set(spec)

    @property
    def current_task_id(self) -> str | None:
        spec = _current_task.get()
        return spec.task_id if spec is not None else None

    # ------------------------------------------------------------------------------------
    # Messages: what the I/O thread (connections.py) hands to this process

    def start(self) -> None:
        """Listen for results and start the I/O thread."""
        self.conns.start(self._handlers())

    def _handlers(self) -> dict[str, Callable[[dict, int | None], None]]:
        """Every message kind this process's I/O thread answers, and who answers it."""
        return {
            # answers to this process's requests (from the raylet and the GCS)
            "reply": self._on_reply,
            # results of the tasks this process owns, straight from their workers
            "task_done": lambda body, phase: self.submitter.task_done(body),
            # from the raylet
            "actor_died": lambda body, phase: self.submitter.actor_died(body),
            "recover_objects": lambda body, phase: self.submitter.recover(body["objects"]),
            "revoke_leases": lambda body, phase: self.reader.return_leases(body["objects"]),
            "task_infeasible": self._on_task_infeasible,
            # to a worker: run a task, exit, cancel one (worker.py sets the callbacks)
            "push_task": lambda body, phase: self._on_task(body, "push_task", phase),
            "exit_worker": lambda body, phase: self._on_task(body, "exit_worker", phase),
            "cancel_task": self._on_cancel,
        }

    def _on_reply(self, body: dict, phase) -> None:
        future = self.conns.futures.pop(body["reply_to"], None)
        if future is not None:
            future.set(body)
        elif body.get("pinned"):
            # The answer to a get that timed out: nobody will read these objects.
            self.reader.release_store_pins([oid for oid, (_, _, n) in
                                            body["locations"].items() for _ in range(n)])

    def _on_task(self, body: dict, kind: str, phase) -> None:
        if self.hooks is not None:
            self.hooks.on_task(dict(body, kind=kind, phase=phase))

    def _on_cancel(self, body: dict, phase) -> None:
        if self.hooks is not None:
            self.hooks.on_cancel(body)

    def _on_task_infeasible(self, body: dict, phase) -> None:
        print(f"raysim: warning: task {body['name']} cannot be scheduled: {body['reason']}",
              file=sys.stderr)

    def _fail_pending(self, error: exceptions.RaySystemError) -> None:
        """The GCS or raylet died (connections.py): every object still being computed
        fails with that error."""
        entry = results.error(pickle.dumps(error))
        with self.refs.owned_lock:
            for slot in self.refs.owned.values():
                if slot.state == PENDING:
                    slot.move_to(FAILED, entry)

    def check_alive(self) -> None:
        self.conns.check_alive()

    # ------------------------------------------------------------------------------------
    # put

    def put(self, value: Any) -> str:
        """Seed phase 2: serialize, write into the store, register. Returns the object id."""
        self.check_alive()
        obj = self.serialize_value(value, "the value passed to put()")
        big = obj.total_size >= self.config.object_store_page_align_threshold
        if self.refs.released_since_put and big:
            # The space of an object this process just dropped is freed by the GCS telling
            # the raylet, while this put goes straight to the raylet. Let the GCS catch up
            # first, so the new object can reuse that space, whose pages this process has
            # already touched (a fresh page costs a fault; a reused one, a memcpy).
                self.conns.ask_gcs("sync", {})
        object_id = self.ids.put_object_id()
        trace.emit("object.serialized", obj=object_id, size=obj.total_size,
                   buffers=len(obj.buffers), dur=obj.dur_ns, type=type(value).__name__)
        contained = self.pass_on(obj.contained_refs)
        slot = OwnedObject(PENDING)  # STORED once sealed (_store_object)
        # In the table before the store knows the object, so that a revoke_leases for it
        # finds it (and stops its lease from being granted) whenever it comes.
        with self.refs.owned_lock:
            self.refs.owned[object_id] = slot
        try:
            self._store_object(object_id, obj, contained, slot)
        except BaseException:
            with self.refs.owned_lock:
                self.refs.owned.pop(object_id, None)
            raise
        self.reader.grant_lease(slot)
        return object_id

    def serialize_value(self, value: Any, what: str) -> serialization.SerializedObject:
        """Serialize ``value``; if it cannot be pickled, a TypeError naming the part that
        cannot and where it sits in ``what`` (e.g. "the value passed to put()")."""
        try:
            return serialization.serialize(value)
        except Exception as e:
            # from None: cloudpickle's own frames would only hide the message.
            raise self.serialization_error(value, what, e) from None

    def serialization_error(self, value: Any, what: str, error: BaseException) -> TypeError:
        return check_serialize.value_error(value, what, error,
                                           self.config.serialization_debug_depth,
                                           self.config.serialization_debug_time_s)

    def _store_object(self, object_id: str, obj: serialization.SerializedObject,
                      contained: list[str], slot: OwnedObject, owner: str | None = None,
                      captured: bool = False) -> None:
        """create -> write -> seal, as plasma does; readers never see a partial object.

        ``contained``: the refs inside the value. The GCS records them with the object when
        the store registers it, so that freeing the object releases them; they are held for
        it at once (``capture``), unless that was done already (``captured``)."""
        reply = self.conns.ask_raylet("create_object",
                             {"object_id": object_id, "size": obj.total_size})
        if reply.get("error") == "exists":
            # A retried task's result that its first attempt had already stored.
            slot.offset, slot.size = reply["offset"], reply["size"]
            slot.move_to(STORED)
            slot.reported = LOCAL_REFERENCE
            return
        if reply.get("error") == "full":
            raise store_full_error(f"store object {object_id}", obj.total_size,
                                   self.node_id, reply)
        if contained and not captured:
            self.refs.capture(object_id, contained)
        start = time.perf_counter_ns()
        self.store.write(reply["offset"], obj)
        trace.emit("object_store.written", obj=object_id, size=obj.total_size,
                   dur=time.perf_counter_ns() - start)
        self.conns.tell_raylet("seal_object", {"object_id": object_id,
                                               "owner": owner or self.holder_name,
                                               "contained": contained})
        slot.offset, slot.size = reply["offset"], obj.total_size
        slot.move_to(STORED)
        slot.reported = LOCAL_REFERENCE

    def pass_on(self, refs: list) -> list[str]:
        """Refs captured in a value being sent elsewhere: make sure others can read them.

        An inline value lives only in its owner's memory, so when its ref leaves this process
        the value is copied into the store (Ray: PromoteObjectToPlasma); so is the error of a
        task that failed, for the readers elsewhere to raise. A value still being computed
        is copied when it arrives.
        """
        out: list[str] = []
        seen: set[str] = set()
        for ref in refs:
            object_id = ref.id if hasattr(ref, "id") else ref._handle_object
            if object_id in seen:
                continue  # the same ref twice in one value: one hold
            seen.add(object_id)
            out.append(object_id)
            slot = self.refs.owned.get(object_id)
            if slot is None:
                continue
            with self.refs.owned_lock:
                if slot.promote:
                    continue  # passed on before: copied already, or will be
                slot.promote = True
                now = slot.state in (INLINE, FAILED)
            if now:
                self.promote(object_id, slot)
        return out

    def promote(self, object_id: str, slot: OwnedObject, background: bool = False) -> None:
        """Copy an INLINE value (or a FAILED one's error) into the store for readers in other
        processes. The copy waits for the raylet, whose answers the I/O thread delivers, so
        it must not run on that thread nor under owned_lock, which the I/O thread may need
        before it gets to the answer: callers there pass ``background``, and the copy runs
        on a thread of its own."""
        with self.refs.owned_lock:
            state = slot.state
            if state == INLINE:
                data = slot.data
                # The refs the value holds were captured by the worker that made it; from now
                # on the GCS releases them when it frees the object (not drop_owned).
                contained, slot.contained = slot.contained or [], None
            elif state == FAILED:
                data = serialization.serialize(serialization.StoredError(slot.data)).to_bytes()
                contained = []
            else:
                return
        args = (object_id, slot, state, data, contained)
        if background:
            threading.Thread(target=self._copy_to_store, args=(*args, trace.get_phase()),
                             name="raysim-promote", daemon=True).start()
        else:
            self._copy_to_store(*args)

    def _copy_to_store(self, object_id: str, slot: OwnedObject, state: str, data: bytes,
                       contained: list[str], phase: int | None = None) -> None:
        if phase is not None:
            trace.set_phase(phase)  # a thread of its own: the call that caused the copy
        trace.emit("object.promoted", obj=object_id, size=len(data))
        copy = OwnedObject()
        try:
            self._store_object(object_id, serialization.SerializedBytes(data), contained,
                               copy, captured=True)
        except exceptions.RayError as e:
            if contained:
                self.refs.release_captured(object_id, contained)
            print(f"raysim: warning: object {object_id} could not be copied into the store "
                  f"for the processes it was passed to, which will wait for it: {e}",
                  file=sys.stderr)
            return
        with self.refs.owned_lock:
            if state == INLINE:
                slot.offset, slot.size = copy.offset, copy.size
                slot.move_to(STORED)
            self.refs.copied_to_store(object_id, slot)
        if state == INLINE and copy.offset >= 0:
            self.reader.grant_lease(slot)

    # ------------------------------------------------------------------------------------
    # Functions and tasks

    def export_function(self, function_id: str, name: str, pickled: bytes,
                        kind: str = "remote function") -> None:
        """Ray's function manager: pickle once, store in the GCS KV, workers fetch it. One
        too large (it captured a big object) is refused, as in Ray."""
        if function_id in self._exported:
            return
        self._check_function_size(kind, name, len(pickled))
        self.conns.ask_gcs("kv_put", {"key": f"fn:{function_id}", "value": pickled})
        trace.emit("function.exported", function_id=function_id, name=name, size=len(pickled))
        self._exported.add(function_id)

    def _check_function_size(self, kind: str, name: str, size: int) -> None:
        mib = size // (1024 * 1024)
        if size >= self.config.function_size_error_threshold:
            limit = self.config.function_size_error_threshold // (1024 * 1024)
            raise ValueError(
                f"The {kind} {name} is too large ({mib} MiB > FUNCTION_SIZE_ERROR_THRESHOLD="
                f"{limit} MiB). Check that its definition is not implicitly capturing a large "
                f"array or other object in scope. Tip: use raysim.put() to put large objects "
                f"in the object store, and pass the ObjectRef as an argument.")
        if size >= self.config.function_size_warn_threshold:
            import warnings
            warnings.warn(f"The {kind} {name} is very large ({mib} MiB). Check that its "
                          f"definition is not implicitly capturing a large array or other "
                          f"object in scope. Tip: use raysim.put() to put large objects in "
                          f"the object store.", UserWarning, stacklevel=4)

    def load_function(self, function_id: str) -> bytes:
        return self.conns.ask_gcs("kv_get", {"key": f"fn:{function_id}"})["value"]

    def new_task_id(self) -> str:
        return self.ids.task_id()

    def cancel(self, object_id: str, force: bool, recursive: bool) -> None:
        """``raysim.cancel``: the task that makes ``object_id``. As in Ray, a task that has
        finished is left alone."""
        self.check_alive()
        task_id = object_id[:16]
        actor_id = self.submitter.call_actor(task_id)
        if actor_id is not None and force:
            raise ValueError(
                "force=True is not supported for actor tasks: killing the actor's process "
                "would end every call and the actor's state with it. Tip: use "
                "raysim.cancel(ref) to cancel a call that has not started, or "
                "raysim.kill(actor) to stop the actor.")
        if self.submitter.cancel_waiting(task_id):
            return
        slot = self.refs.owned.get(object_id)
        if slot is not None and slot.state != PENDING:
            return
        self.conns.tell_raylet("cancel_task", {"task_id": task_id, "force": force,
                                               "recursive": recursive,
                                               "actor_id": actor_id})

    # ------------------------------------------------------------------------------------
    # Results of tasks this worker runs

    def store_result(self, object_id: str, value: Any, owner: str,
                     what: str = "the return value") -> list:
        """Phase 4 step 5: small results go back inline, large ones into the store.

        A stored result belongs to the caller (``owner``), not to this worker: the caller
        holds its first reference."""
        obj = self.serialize_value(value, what)
        contained = self.pass_on(obj.contained_refs)
        threshold = self.config.max_direct_call_object_size
        if obj.total_size < threshold:
            trace.emit("object.inlined", obj=object_id, size=obj.total_size,
                       threshold=threshold)
            if contained:
                # The value goes to the caller's memory, not to the GCS: the caller will
                # release these holds when it drops the value (memory_store.OwnedObject).
                self.refs.capture(object_id, contained)
            return results.inline(obj.to_bytes(), contained)
        trace.emit("object.serialized", obj=object_id, size=obj.total_size,
                   buffers=len(obj.buffers), dur=obj.dur_ns, type=type(value).__name__)
        slot = OwnedObject()
        self._store_object(object_id, obj, contained, slot, owner)
        return results.stored(self.node_id, slot.offset, slot.size)

    # ------------------------------------------------------------------------------------
    # Reporting and shutdown

    def snapshot(self) -> dict:
        gcs = self.conns.ask_gcs("snapshot", {})
        raylet = self.conns.ask_raylet("snapshot", {})
        return {"gcs": gcs, "raylets": {raylet["node_id"]: raylet},
                "refs": {self.holder_name: self.refs.snapshot()}}

    def close(self) -> None:
        self.conns.close()
        self.store.close()
