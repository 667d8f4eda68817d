"""The core worker: the part of every driver and worker process that speaks to the runtime.

Ray links the same C++ ``CoreWorker`` into drivers and workers; raysim has this class. It
holds the process's two connections (to its raylet and to the GCS), its mapping of the object
store, the objects it *owns* (the return values of tasks it submitted and the objects it
``put``), and its reference counts. The public API (``raysim.put/get/wait``, ``.remote()``)
is a thin layer over it.

Seed steps implemented here:

* phase 2: serialize the model, write it into the store, get an ObjectRef (``put``);
* phase 4 step 5: a worker's result goes back inline or into the store (``store_result``);
* phase 5: ``get`` reads inline bytes from this process's memory, or maps the store zero-copy.

Submitting tasks is ``task_submitter.py``'s part; the table of owned objects is
``memory_store.py``'s; counting references is ``reference_counter.py``'s.

Threads: the user's thread(s) call the API; one I/O thread reads every connection and
completes what waits on it (replies, task results), so that a task whose arguments were
pending is submitted as soon as they are ready, even while the user's thread is busy
elsewhere (Ray's io_service thread does the same).

Runs in: the driver and every worker. Trace events: ``object.serialized``,
``object_store.written``, ``object.get``, ``object.inlined``, ``object.promoted``,
``function.exported``, ``phase.begin`` (driver).
"""

from __future__ import annotations

import itertools
import linecache
import os
import pickle
import selectors
import socket
import sys
import threading
import time
from typing import Any, Callable

from raysim import exceptions
from raysim.runtime import ids, memory_store, protocol, serialization
from raysim.runtime.config import Config
from raysim.runtime.errors import RaySimInternalError
from raysim.runtime.protocol import BlockingConnection, ConnectionClosed, connect_unix
from raysim.runtime.reference_counter import LOCAL_REFERENCE, ReferenceCounter
from raysim.runtime.memory_store import (FAILED, INLINE, PENDING, STORED, Callback, Future,
                                         OwnedObject)
from raysim.runtime.store_client import StoreClient
from raysim.runtime.task_spec import TaskSpec
from raysim.runtime.task_submitter import TaskSubmitter
from raysim.trace import writer as trace

_RAYSIM_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_site_cache: dict[tuple, tuple[str, str]] = {}
# Set by a tool that calls raysim on the user's behalf (``raysim trace`` shutting the runtime
# down after the script): the site its calls are reported at.
site_override: tuple[str, str] | None = None


def user_call_site() -> tuple[str, str]:
    """("file.py:12", "that line's code") of the user code that called into raysim."""
    if site_override is not None:
        return site_override
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_RAYSIM_DIR):
        frame = frame.f_back
    if frame is None:
        return "", ""
    key = (frame.f_code, frame.f_lineno)
    cached = _site_cache.get(key)
    if cached is None:
        filename = frame.f_code.co_filename
        code = linecache.getline(filename, frame.f_lineno).strip()
        cached = (f"{os.path.basename(filename)}:{frame.f_lineno}", code)
        _site_cache[key] = cached
    return cached


class ComponentDied(exceptions.RaySystemError):
    pass


class CoreWorker:
    def __init__(self, role: str, wid: str, node_id: str, session_dir: str,
                 raylet: BlockingConnection, gcs: BlockingConnection, store_fd: int,
                 store_capacity: int, config: Config, job_id: str) -> None:
        self.role = role  # "driver" or "worker"
        self.wid = wid
        self.holder_name = f"{role}:{wid}"  # how the GCS and raylet name this process
        self.node_id = node_id
        self.session_dir = session_dir
        self.job_id = job_id
        self.config = config
        self.raylet = raylet
        self.gcs = gcs
        self.store = StoreClient(store_fd, store_capacity)
        self.ids = ids.IdFactory()
        self.refs = ReferenceCounter(self._on_held_changed)
        self.owned: dict[str, OwnedObject] = {}
        self.owned_handles: set[str] = set()
        self.owned_lock = threading.RLock()
        self._futures: dict[int, Future] = {}
        self._reported: dict[str, str] = {}  # borrowed ids -> ref type the GCS knows
        self._deferred: set[str] | None = None  # borrowed ids changed during a task
        self._exported: set[str] = set()
        self._released_since_put = False
        self._io_thread: threading.Thread | None = None
        self._owner_conns: dict[str, BlockingConnection] = {}  # results we send, by owner
        self.owner_path = os.path.join(session_dir, f"owner-{wid}.sock")
        self._phase_counter = itertools.count(1)
        self.dead_component: str | None = None
        self.closing = False
        # Set by the worker process: runs push_task / exit_worker messages.
        self.on_task: Callable[[dict], None] | None = None
        self.current_task_id: str | None = None
        self.current_actor_id: str | None = None
        self.in_task = False  # a worker is executing a task (lends its CPU back when blocked)
        self.submitter = TaskSubmitter(self)

    # ------------------------------------------------------------------------------------
    # Connections and the I/O thread

    def start(self) -> None:
        """Listen for results and start the I/O thread.

        Results come straight from the worker that ran the task, as the founding document
        says ("sends directly back to driver's memory"; "Worker #1 returns ObjectRef(result_0)
        to driver"): each owner listens on ``owner-<id>.sock`` in the session directory and
        workers connect to it on their first result. Errors the raylet detects (a crashed
        worker, a dead actor) still come from the raylet.
        """
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.owner_path)
        os.chmod(self.owner_path, 0o600)
        self._listener.listen(64)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._io_thread = threading.Thread(target=self._io_loop, name="raysim-io", daemon=True)
        self._io_thread.start()

    def _io_loop(self) -> None:
        """One thread reads every connection of this process: raylet, GCS and result senders."""
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        selector.register(self._listener, selectors.EVENT_READ, "accept")
        for conn in (self.raylet, self.gcs):
            selector.register(conn.sock, selectors.EVENT_READ, conn)
            if conn.backlog:  # read during registration, behind its reply
                self._dispatch(conn, conn.recv_messages())
        try:
            while not self.closing:
                trace.flush()
                for key, _ in selector.select():
                    what = key.data
                    if what == "wake":
                        return
                    if what == "accept":
                        sock, _ = self._listener.accept()
                        conn = BlockingConnection(sock, "worker")
                        selector.register(sock, selectors.EVENT_READ, conn)
                        continue
                    try:
                        messages = what.recv_messages()
                    except ConnectionClosed:
                        selector.unregister(what.sock)
                        if what is self.raylet or what is self.gcs:
                            if not self.closing:
                                self._component_died(what.peer_kind)
                            return
                        what.close()  # a worker that sent us results went away
                        continue
                    self._dispatch(what, messages)
        finally:
            trace.flush()
            selector.close()

    def _dispatch(self, conn: BlockingConnection, messages: list[tuple]) -> None:
        for kind, msg_id, phase, body in messages:
            if conn.peer_id is None and "worker_id" in body:
                conn.peer_id = body["worker_id"]
            if trace.enabled():
                trace.set_phase(phase)
                conn.trace_recv(kind, msg_id, phase)
            if kind == "reply":
                future = self._futures.pop(body["reply_to"], None)
                if future is not None:
                    future.set(body)
            elif kind == "task_done":
                self.submitter.task_done(body)
            elif kind == "push_task" or kind == "exit_worker":
                if self.on_task is not None:
                    self.on_task(dict(body, kind=kind, phase=phase))
            elif kind == "actor_died":
                self.submitter.actor_died(body["actor_id"], body["message"])
            elif kind == "task_infeasible":
                print(f"raysim: warning: task {body['name']} cannot be scheduled: "
                      f"{body['reason']}", file=sys.stderr)
            else:
                raise RaySimInternalError(f"unexpected message {kind!r}")
        # What this thread does next (a garbage-collected ref, say) is no message's doing.
        trace.set_phase(None)

    def send_to_owner(self, spec: TaskSpec, kind: str, body: dict) -> None:
        """Send a task's result straight to the process that owns it."""
        owner_address = spec.owner_address
        conn = self._owner_conns.get(owner_address)
        try:
            if conn is None:
                role, _, owner_id = spec.owner_holder.partition(":")
                conn = connect_unix(owner_address, role, timeout_s=1.0)
                conn.peer_id = owner_id
                self._owner_conns[owner_address] = conn
            conn.send(kind, body)
        except (ConnectionClosed, OSError):
            # The owner is gone, and with it everyone who could want the result.
            self._owner_conns.pop(owner_address, None)

    def _component_died(self, component: str) -> None:
        self.dead_component = component
        error = ["raised", "RaySystemError",
                 f"The {component} process of this raysim session died, so the result can "
                 f"never arrive. Tip: the trace (process.exited, process.stopping) shows why; "
                 f"call raysim.shutdown() and raysim.init() to start a new session."]
        with self.owned_lock:
            for slot in self.owned.values():
                if slot.state == PENDING:
                    self.complete(slot, FAILED, error)
        for future in list(self._futures.values()):
            future.set({"error": "component_died", "component": component})
        self._futures.clear()
        if self.on_task is not None:
            self.on_task({"kind": "exit_worker", "reason": f"{component} died"})

    def request(self, conn: BlockingConnection, kind: str, body: dict,
                timeout: float | None = None) -> dict:
        """Send a request and wait for its reply (delivered by the I/O thread)."""
        if self.dead_component is not None:
            self._raise_dead()
        future = Future()
        msg_id = next_id = protocol.next_msg_id()
        self._futures[next_id] = future
        try:
            conn.send(kind, body, msg_id=msg_id)
        except ConnectionClosed:
            self._futures.pop(next_id, None)
            self._raise_dead(conn.peer_kind)
        trace.flush()  # about to wait: what happened so far goes to the file first
        if not future.wait(timeout):
            self._futures.pop(next_id, None)
            raise exceptions.GetTimeoutError(f"{kind} timed out after {timeout} s")
        if future.value.get("error") == "component_died":
            self._raise_dead()
        return future.value

    def _raise_dead(self, component: str | None = None) -> None:
        component = component or self.dead_component or "runtime"
        raise ComponentDied(
            f"The {component} process of this raysim session is gone. Tip: the trace "
            f"(process.exited, process.stopping) shows why; call raysim.shutdown() and "
            f"raysim.init() to start again.")

    def send(self, conn: BlockingConnection, kind: str, body: dict) -> None:
        try:
            conn.send(kind, body)
        except ConnectionClosed:
            if not self.closing:
                self._raise_dead(conn.peer_kind)

    # ------------------------------------------------------------------------------------
    # Phases: each driver API call opens one (trace only)

    def begin_phase(self, api: str, detail: str | None = None) -> None:
        if self.role != "driver" or not trace.enabled():
            return
        phase = next(self._phase_counter)
        trace.set_phase(phase)
        site, code = user_call_site()
        trace.emit("phase.begin", phase=phase, api=api, site=site, code=code, detail=detail)


    # ------------------------------------------------------------------------------------
    # References

    def _on_held_changed(self, object_id: str, held: str | None) -> None:
        if self.closing:
            return
        slot = self.owned.get(object_id)
        if slot is not None:
            self._owned_held_changed(object_id, slot, held)
            return
        if object_id in self.owned_handles:
            if held is None:
                self.owned_handles.discard(object_id)
                self.gcs_send("remove_ref", {"objects": [object_id]})
            return
        # A borrowed object or a handle to someone else's actor.
        if self._deferred is not None and threading.current_thread() is threading.main_thread():
            self._deferred.add(object_id)
            return
        self._report_borrow(object_id, held)

    def _owned_held_changed(self, object_id: str, slot: OwnedObject, held: str | None) -> None:
        with self.owned_lock:
            if slot.state == STORED and held != slot.reported:
                if held is None:
                    self.gcs_send("remove_ref", {"objects": [object_id]})
                    self._released_since_put = True
                else:
                    self.gcs_send("add_ref", {"objects": [object_id], "ref_type": held})
                slot.reported = held
            if held is None:
                if slot.state == PENDING:
                    slot.released = True
                elif not slot.dependents:
                    self.owned.pop(object_id, None)

    def _report_borrow(self, object_id: str, held: str | None, sync: bool = True) -> None:
        known = self._reported.get(object_id)
        if held == known:
            return
        if held is None:
            self._reported.pop(object_id, None)
            self.gcs_send("remove_ref", {"objects": [object_id]})
            return
        self._reported[object_id] = held
        on_receiver = threading.current_thread() is self._io_thread
        if known is None and sync and not on_receiver:
            # The first reference must be registered before whoever passed it on can drop
            # theirs, or the object could be freed under us: wait for the GCS to confirm.
            self.request(self.gcs, "borrow_ref", {"objects": [object_id], "ref_type": held})
        else:
            self.gcs_send("add_ref", {"objects": [object_id], "ref_type": held})

    def begin_deferring_borrows(self) -> None:
        self._deferred = set()

    def flush_deferred_borrows(self) -> None:
        """End of a task: register what it still holds, in one batch, before its result goes."""
        deferred, self._deferred = self._deferred, None
        if not deferred:
            return
        adds: dict[str, list[str]] = {}
        for object_id in deferred:
            held = self.refs.held_type(object_id)
            known = self._reported.get(object_id)
            if held == known:
                continue
            if held is None:
                self._reported.pop(object_id, None)
                self.gcs_send("remove_ref", {"objects": [object_id]})
            else:
                self._reported[object_id] = held
                adds.setdefault(held, []).append(object_id)
        for ref_type, objects in adds.items():
            self.request(self.gcs, "borrow_ref", {"objects": objects, "ref_type": ref_type})

    def gcs_send(self, kind: str, body: dict) -> None:
        try:
            self.gcs.send(kind, body)
        except ConnectionClosed:
            pass  # the session is going away; nothing left to count for
        # Reference changes often happen outside any API call (a ref garbage-collected):
        # write the events now rather than at the next call.
        trace.flush()

    # ------------------------------------------------------------------------------------
    # put

    def put(self, value: Any) -> str:
        """Seed phase 2: serialize, write into the store, register. Returns the object id."""
        obj = self.serialize_value(value, "put")
        big = obj.total_size >= self.config.object_store_page_align_threshold
        if self._released_since_put and big:
            # The space of an object this process just dropped is freed by the GCS telling
            # the raylet, while this put goes straight to the raylet. Let the GCS catch up
            # first, so the new object can reuse that space, whose pages this process has
            # already touched (a fresh page costs a fault; a reused one, a memcpy).
            self._released_since_put = False
            self.request(self.gcs, "sync", {})
        object_id = self.ids.put_object_id()
        trace.emit("object.serialized", obj=object_id, size=obj.total_size,
                   buffers=len(obj.buffers), dur=obj.dur_ns, type=type(value).__name__)
        contained = self.pass_on(obj.contained_refs)
        slot = OwnedObject(STORED)
        self._store_object(object_id, obj, contained, slot)
        with self.owned_lock:
            self.owned[object_id] = slot
        return object_id

    def serialize_value(self, value: Any, what: str) -> serialization.SerializedObject:
        try:
            return serialization.serialize(value)
        except Exception as e:
            raise TypeError(
                f"Could not serialize the {what} value of type {type(value).__name__}: {e}. "
                f"Tip: values passed to raysim must be picklable by cloudpickle; create "
                f"things such as locks, sockets or open files inside the task instead."
            ) from e

    def _store_object(self, object_id: str, obj: serialization.SerializedObject,
                      contained: list[str], slot: OwnedObject, owner: str | None = None) -> None:
        """create -> write -> seal, as plasma does; readers never see a partial object."""
        reply = self.request(self.raylet, "create_object",
                             {"object_id": object_id, "size": obj.total_size})
        if reply.get("error") == "full":
            raise exceptions.ObjectStoreFullError(
                f"The object store of node {self.node_id} is full: the object "
                f"{object_id} needs {obj.total_size:,} bytes, {reply['used']:,} of "
                f"{reply['capacity']:,} are in use and the largest free block is "
                f"{reply['largest_free']:,}. Tip: release ObjectRefs you no longer need, or "
                f"start raysim with a larger object_store_memory.")
        start = time.perf_counter_ns()
        self.store.write(reply["offset"], obj)
        trace.emit("object_store.written", obj=object_id, size=obj.total_size,
                   dur=time.perf_counter_ns() - start)
        self.send(self.raylet, "seal_object", {"object_id": object_id,
                                               "owner": owner or self.holder_name,
                                               "contained": contained})
        slot.offset, slot.size = reply["offset"], obj.total_size
        slot.state = STORED
        slot.reported = LOCAL_REFERENCE

    def pass_on(self, refs: list) -> list[str]:
        """Refs captured in a value being sent elsewhere: make sure others can read them.

        An inline value lives only in its owner's memory, so when its ref leaves this process
        the value is copied into the store (Ray: PromoteObjectToPlasma).
        """
        out = []
        for ref in refs:
            object_id = ref.id if hasattr(ref, "id") else ref._handle_object
            out.append(object_id)
            slot = self.owned.get(object_id)
            if slot is None:
                continue
            with self.owned_lock:
                if slot.state == INLINE:
                    self.promote(object_id, slot)
                elif slot.state == PENDING:
                    slot.promote = True
        return out

    def promote(self, object_id: str, slot: OwnedObject) -> None:
        data = slot.data
        view = memoryview(data)
        obj = serialization.SerializedObject(b"", [], [])
        obj.total_size = len(data)
        obj.write_into = lambda dest: dest.__setitem__(slice(0, len(data)), view)  # type: ignore
        trace.emit("object.promoted", obj=object_id, size=len(data))
        self._store_object(object_id, obj, [], slot)
        slot.data = None

    # ------------------------------------------------------------------------------------
    # get and wait

    def get(self, object_ids: list[str], timeout: float | None) -> list[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        borrowed = [oid for oid in object_ids if oid not in self.owned]
        located = self._locate(borrowed, deadline) if borrowed else {}
        return [self._get_one(oid, located, deadline) for oid in object_ids]

    def _get_one(self, object_id: str, located: dict, deadline: float | None) -> Any:
        slot = self.owned.get(object_id) or located.get(object_id)
        if slot is None:
            raise exceptions.ObjectFreedError(object_id)
        if slot.state == PENDING:
            self._wait_for([slot], 1, deadline)
        start = time.perf_counter_ns()
        state = slot.state
        if state == INLINE:
            data = slot.data
            value = serialization.deserialize(memoryview(data))
            trace.emit("object.get", obj=object_id, size=len(data), path="inline",
                       zero_copy=False, dur=time.perf_counter_ns() - start)
            return value
        if state == STORED:
            return self.read_stored(object_id, slot.offset, slot.size, start)
        if state == FAILED:
            raise self._error(slot.data)
        raise RaySimInternalError(f"object {object_id} in unknown state {state}")

    def read_stored(self, object_id: str, offset: int, size: int, start: int | None = None) -> Any:
        start = start or time.perf_counter_ns()
        refs = self.refs
        value, zero_copy = self.store.read(offset, size, lambda: refs.remove_pin(object_id))
        if zero_copy:
            refs.add_pin(object_id)
        trace.emit("object.get", obj=object_id, size=size, path="local_store",
                   zero_copy=zero_copy, dur=time.perf_counter_ns() - start)
        return value

    def _locate(self, object_ids: list[str], deadline: float | None) -> dict[str, OwnedObject]:
        """Objects this process does not own are always in the store: ask the raylet where
        (it answers once they are sealed)."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        with self._blocked():
            reply = self.request(self.raylet, "get_objects", {"objects": object_ids},
                                 timeout=timeout)
        located = {}
        for object_id, (offset, size) in reply["locations"].items():
            slot = OwnedObject(STORED)
            slot.offset, slot.size = offset, size
            located[object_id] = slot
        return located

    def _wait_for(self, slots: list[OwnedObject], num: int, deadline: float | None) -> None:
        """Block until ``num`` of ``slots`` are no longer PENDING (or the deadline passes)."""
        lock = threading.Lock()
        lock.acquire()
        with self.owned_lock:
            pending = [s for s in slots if s.state == PENDING]
            if len(slots) - len(pending) >= num:
                return
            for slot in pending:
                if slot.waiters is None:
                    slot.waiters = []
                slot.waiters.append(lock)
        trace.flush()
        try:
            with self._blocked():
                while True:
                    if sum(1 for s in slots if s.state != PENDING) >= num:
                        return
                    if deadline is None:
                        lock.acquire()
                    else:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0 or not lock.acquire(timeout=remaining):
                            if sum(1 for s in slots if s.state != PENDING) >= num:
                                return
                            raise exceptions.GetTimeoutError(
                                "Get timed out: some object(s) not ready.")
        finally:
            with self.owned_lock:
                for slot in pending:
                    if slot.waiters and lock in slot.waiters:
                        slot.waiters.remove(lock)

    def _blocked(self):
        return _BlockedNotice(self) if self.in_task else _NO_NOTICE

    def wait(self, object_ids: list[str], num_returns: int, timeout: float | None) -> list[bool]:
        deadline = None if timeout is None else time.monotonic() + timeout
        slots = []
        for object_id in object_ids:
            slot = self.owned.get(object_id)
            if slot is None:
                slot = self._probe_borrowed(object_id)
            slots.append(slot)
        try:
            self._wait_for(slots, num_returns, deadline)
        except exceptions.GetTimeoutError:
            pass
        ready = [s.state != PENDING for s in slots]
        # Ray returns at most num_returns ready refs.
        count = 0
        for i, is_ready in enumerate(ready):
            if is_ready:
                count += 1
                if count > num_returns:
                    ready[i] = False
        return ready

    def _probe_borrowed(self, object_id: str) -> OwnedObject:
        """A slot that turns STORED when the raylet reports the object sealed."""
        slot = OwnedObject(PENDING)

        def on_reply(body: dict) -> None:
            with self.owned_lock:
                if "locations" in body:
                    slot.offset, slot.size = body["locations"][object_id]
                    self.complete(slot, STORED, None)

        msg_id = protocol.next_msg_id()
        self._futures[msg_id] = Callback(on_reply)  # type: ignore[assignment]
        try:
            self.raylet.send("get_objects", {"objects": [object_id]}, msg_id=msg_id)
        except ConnectionClosed:
            self._raise_dead("raylet")
        return slot

    def _error(self, entry: list) -> BaseException:
        if entry[0] == "error":
            err = pickle.loads(entry[1])
            if isinstance(err, exceptions.RayTaskError):
                return err.as_instanceof_cause()
            return err
        exc_type = getattr(exceptions, entry[1], exceptions.RaySystemError)
        return exc_type(entry[2])

    # ------------------------------------------------------------------------------------
    # Functions and tasks

    def export_function(self, function_id: str, name: str, pickled: bytes) -> None:
        """Ray's function manager: pickle once, store in the GCS KV, workers fetch it."""
        if function_id in self._exported:
            return
        self.request(self.gcs, "kv_put", {"key": f"fn:{function_id}", "value": pickled})
        trace.emit("function.exported", function_id=function_id, name=name, size=len(pickled))
        self._exported.add(function_id)

    def load_function(self, function_id: str) -> bytes:
        return self.request(self.gcs, "kv_get", {"key": f"fn:{function_id}"})["value"]

    def new_task_id(self) -> str:
        return self.ids.task_id()

    def complete(self, slot: OwnedObject, state: int, data: Any) -> None:
        memory_store.complete(slot, state, data)

    # ------------------------------------------------------------------------------------
    # Results of tasks this worker runs

    def store_result(self, object_id: str, value: Any, owner: str) -> list:
        """Phase 4 step 5: small results go back inline, large ones into the store.

        A stored result belongs to the caller (``owner``), not to this worker: the caller
        holds its first reference."""
        obj = self.serialize_value(value, "return")
        contained = self.pass_on(obj.contained_refs)
        threshold = self.config.max_direct_call_object_size
        if obj.total_size < threshold:
            trace.emit("object.inlined", obj=object_id, size=obj.total_size,
                       threshold=threshold)
            return ["inline", obj.to_bytes()]
        trace.emit("object.serialized", obj=object_id, size=obj.total_size,
                   buffers=len(obj.buffers), dur=obj.dur_ns, type=type(value).__name__)
        slot = OwnedObject(STORED)
        self._store_object(object_id, obj, contained, slot, owner)
        return ["stored", self.node_id, slot.offset, slot.size]

    # ------------------------------------------------------------------------------------
    # Reporting and shutdown

    def snapshot(self) -> dict:
        gcs = self.request(self.gcs, "snapshot", {})
        raylet = self.request(self.raylet, "snapshot", {})
        return {"gcs": gcs, "raylets": {raylet["node_id"]: raylet},
                "refs": {self.holder_name: self.refs.snapshot()}}

    def close(self) -> None:
        self.closing = True
        if self._io_thread is not None:
            os.write(self._wake_w, b"x")
            if self._io_thread is not threading.current_thread():
                self._io_thread.join(timeout=2)
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._listener.close()
            try:
                os.unlink(self.owner_path)
            except FileNotFoundError:
                pass
        for conn in [self.raylet, self.gcs, *self._owner_conns.values()]:
            conn.close()
        self.store.close()


class _BlockedNotice:
    """While a worker's task waits in get(), its CPU is lent to other tasks (Ray does this)."""

    __slots__ = ("cw",)

    def __init__(self, cw: CoreWorker) -> None:
        self.cw = cw

    def __enter__(self) -> None:
        self.cw.send(self.cw.raylet, "worker_blocked", {})

    def __exit__(self, *exc) -> None:
        self.cw.send(self.cw.raylet, "worker_unblocked", {})


class _NoNotice:
    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        pass


_NO_NOTICE = _NoNotice()

