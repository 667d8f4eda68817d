"""Reading objects: ``get`` and ``wait`` in the driver and every worker.

Seed, phase 5: "ray.get(futures)": a small result is already in this process's memory (it
came back inline, ``memory_store.py``) and is deserialized from there; a result in the
store is mapped zero-copy, at the place the raylet gives, which pins it until it is read
(plasma's Get and Release). Waiting for a result still being computed blocks here until the
I/O thread completes its slot; a worker's task that blocks lends its CPU to other tasks
meanwhile (``worker_blocked``), as Ray's does.

Leases (``local_object_manager.py``): an object this process put, or that a task it
submitted returned into the store, is read where it was stored without asking the raylet,
for as long as this process holds the object's lease. The raylet asks for leases back
(``revoke_leases``) before it spills an object; one being read, or with a zero-copy view
alive, is kept.

Runs in: the driver and every worker (the user's threads, and the I/O thread for leases).
Trace events: ``object.get``.
"""

from __future__ import annotations

import pickle
import threading
import time
from typing import Any, Callable

from raysim import exceptions
from raysim.runtime.common import protocol, results, serialization
from raysim.runtime.common.errors import RaySimInternalError
from raysim.runtime.common.protocol import ConnectionClosed
from raysim.runtime.core_worker.connections import Connections
from raysim.runtime.core_worker.memory_store import (FAILED, INLINE, PENDING, STORED, Callback,
                                                     OwnedObject)
from raysim.runtime.core_worker.reference_counter import ReferenceCounter
from raysim.runtime.core_worker.store_client import StoreClient, store_read_error
from raysim.trace import writer as trace


class ObjectReader:
    def __init__(self, conns: Connections, refs: ReferenceCounter, store: StoreClient,
                 node_id: str, in_task: Callable[[], bool],
                 reconstruct: Callable[[str], bool] = lambda object_id: False) -> None:
        self.conns = conns  # to ask the raylet where objects are
        self.refs = refs  # the owned objects (their values, states and leases) and pins
        self.store = store  # this process's mapping of the node's store
        self.node_id = node_id
        self.in_task = in_task  # a worker runs a task: waiting lends its CPU (worker_blocked)
        self.reconstruct = reconstruct  # runs again the task of an owned object that was lost
        # Guards the leases of owned objects (slot.leased, slot.readers). Never held while
        # waiting for anything: the I/O thread takes it to answer revoke_leases, which a
        # create this process waits for may depend on.
        self.lease_lock = threading.Lock()
        # Owned objects a get() waits for while they are made, and how many gets wait for
        # each (guarded by the owner's table lock): pulled here as soon as they are made.
        self.awaited: dict[str, int] = {}
        # The driver call of the get that waits for each (its pull belongs to that phase).
        self.awaited_phase: dict[str, int | None] = {}

    # ------------------------------------------------------------------------------------
    # Leases: reading owned objects without asking the raylet (local_object_manager.py)

    def grant_lease(self, slot: OwnedObject) -> None:
        """The object is stored and this process knows where: read it there from now on,
        unless the raylet has already asked for the lease back."""
        with self.lease_lock:
            if slot.leased is None:
                slot.leased = True

    def return_leases(self, object_ids: list[str]) -> None:
        """I/O thread: the raylet wants to spill these objects. Give back the lease of each
        unless a read of it is under way or a zero-copy view of it is alive (then it must
        not move: it is kept)."""
        revoked, kept = [], []
        with self.lease_lock:
            for object_id in object_ids:
                slot = self.refs.owned.get(object_id)
                if slot is not None and slot.leased and (
                        slot.readers or self.refs.pinned(object_id)):
                    kept.append(object_id)
                    continue
                if slot is not None:
                    slot.leased = False
                revoked.append(object_id)
        try:
            self.conns.raylet.send("leases_returned", {"revoked": revoked, "kept": kept})
        except ConnectionClosed:
            pass

    def _read_leased(self, object_id: str, slot: OwnedObject) -> tuple[bool, Any]:
        """(True, value) if the object was read at the place this process knows, under its
        lease; (False, None) if the lease is gone (the raylet must say where it is now)."""
        with self.lease_lock:
            if not slot.leased:
                return False, None
            slot.readers += 1
        try:
            return True, self.read_stored(object_id, slot.offset, slot.size, None)
        finally:
            with self.lease_lock:
                slot.readers -= 1

    # ------------------------------------------------------------------------------------
    # get and wait

    def get(self, object_ids: list[str], timeout: float | None) -> list[Any]:
        """An object this process owns is read where it was stored, without asking anyone,
        while this process holds its lease. Any other object in the store is read where
        the raylet says it is now: it may have spilled it to disk and restored it elsewhere
        since it was written. Its answer pins them until they are read (plasma's Get and
        Release)."""
        self.conns.check_alive()
        deadline = None if timeout is None else time.monotonic() + timeout
        # Results still being made: each one stored on another node is pulled here as soon
        # as it is made (prefetch), whichever this get reads first, so that they are pulled
        # side by side, as Ray's pull manager does, not one after the other in list order.
        with self.refs.owned_lock:
            awaited = [oid for oid in object_ids
                       if (slot := self.refs.owned.get(oid)) is not None
                       and slot.state == PENDING]
            phase = trace.get_phase()
            for oid in awaited:
                self.awaited[oid] = self.awaited.get(oid, 0) + 1
                self.awaited_phase[oid] = phase
        in_store = [oid for oid in object_ids if (slot := self.refs.owned.get(oid)) is None
                    or (slot.state == STORED and not slot.leased)]
        places, errors = self._locate(in_store, deadline) if in_store else ({}, {})
        done: list[str] = []
        try:
            return [self._get_one(oid, places, deadline, done, errors) for oid in object_ids]
        finally:
            self.give_back(places, done)
            if awaited:
                with self.refs.owned_lock:
                    for oid in awaited:
                        if self.awaited.get(oid, 0) <= 1:
                            self.awaited.pop(oid, None)
                            self.awaited_phase.pop(oid, None)
                        else:
                            self.awaited[oid] -= 1

    def made_elsewhere(self, object_id: str) -> None:
        """An owned result was stored on another node (I/O thread, owned_lock held): if a
        get waits for it, have the raylet start pulling it here now."""
        if object_id not in self.awaited:
            return
        msg_id = protocol.next_msg_id()
        self.conns.futures[msg_id] = Callback(lambda body: None)  # type: ignore[assignment]
        try:  # nothing pinned: only brought here; the get's own request reads it
            self.conns.raylet.send("get_objects", {"objects": [object_id], "pin": False},
                                   self.awaited_phase.get(object_id), msg_id=msg_id)
        except ConnectionClosed:
            self.conns.futures.pop(msg_id, None)  # the get's own request sees the death

    def _get_one(self, object_id: str, places: dict, deadline: float | None,
                 done: list[str], errors: dict[str, dict]) -> Any:
        try:
            return self._get_one_now(object_id, places, deadline, done, errors)
        except exceptions.ObjectLostError as e:
            # Its only copy went with a node: an object this process owns is made again by
            # running its task once more, then read (Ray's lineage reconstruction).
            if getattr(e, "lost_cause", None) != "NODE_DIED":
                raise
            slot = self.refs.owned.get(object_id)
            if not self.reconstruct(object_id) and (slot is None or slot.state != PENDING):
                raise  # (PENDING: its owner, this process, is making it again already)
            places.pop(object_id, None)
            errors.pop(object_id, None)
            return self._get_one_now(object_id, places, deadline, done, errors)

    def _get_one_now(self, object_id: str, places: dict, deadline: float | None,
                     done: list[str], errors: dict[str, dict]) -> Any:
        slot = self.refs.owned.get(object_id)
        if slot is None:  # borrowed: always in the store
            return self.read_placed(object_id, places, deadline, done, errors)
        if slot.state == PENDING:
            self._wait_for([slot], 1, deadline)
        start = time.perf_counter_ns()
        # The data before the state: a promotion (another thread) makes the slot STORED
        # first and drops the data after, so INLINE here means the data read is the value.
        data = slot.data
        state = slot.state
        if state == INLINE:
            value = serialization.deserialize(memoryview(data))
            trace.emit("object.get", obj=object_id, size=len(data), path="inline",
                       zero_copy=False, dur=time.perf_counter_ns() - start)
            return value
        if state == STORED:
            read, value = self._read_leased(object_id, slot)
            return value if read else self.read_placed(object_id, places, deadline, done,
                                                       errors)
        if state == FAILED:
            raise self.error(slot.data)
        raise RaySimInternalError(f"object {object_id} in unknown state {state}")

    def read_placed(self, object_id: str, places: dict[str, list[int]],
                    deadline: float | None, done: list[str],
                    errors: dict[str, dict] | None = None) -> Any:
        """Read an object at the place the raylet gave, pinned ([offset, size, pins left]).
        If it gave none (the object was not asked for yet, was spilled when a task was
        pushed, or did not fit in the store together with the others asked for at once),
        ask again for this one alone. If it said why it cannot (``errors``: the object is
        lost), raise that."""
        if errors and errors.get(object_id, {}).get("error") == "lost":
            raise store_read_error(object_id, self.node_id, errors[object_id])
        place = places.get(object_id)
        if place is None or not place[2]:
            more, errors = self._locate([object_id], deadline)
            if errors:
                raise store_read_error(object_id, self.node_id, errors[object_id])
            place = places[object_id] = more[object_id]
        place[2] -= 1
        return self.read_stored(object_id, place[0], place[1], done)

    def read_stored(self, object_id: str, offset: int, size: int,
                    done: list[str] | None) -> Any:
        """Deserialize an object the raylet pinned for this read (``done`` given) or that
        this process holds the lease of (None). A copied value is done with the store at
        once (a raylet pin goes back with ``done``); zero-copy views keep the object pinned
        until the last of them is garbage."""
        start = time.perf_counter_ns()
        refs = self.refs

        def unpin() -> None:
            refs.remove_pin(object_id)
            if done is not None:
                self.release_store_pins([object_id])

        value, zero_copy = self.store.read(offset, size, unpin)
        if zero_copy:
            refs.add_pin(object_id)
        elif done is not None:
            done.append(object_id)
        trace.emit("object.get", obj=object_id, size=size, path="local_store",
                   zero_copy=zero_copy, dur=time.perf_counter_ns() - start)
        if type(value) is serialization.StoredError:
            # The task making it failed, and its owner stored the error for readers here.
            raise self.error(value.entry)
        return value

    def give_back(self, places: dict[str, list[int]], done: list[str]) -> None:
        """Release the pins of values read by copy and of places never read."""
        done += [oid for oid, (_, _, left) in places.items() for _ in range(left)]
        if done:
            self.release_store_pins(done)

    def release_store_pins(self, object_ids: list[str]) -> None:
        try:
            self.conns.raylet.send("release_objects", {"objects": object_ids})
        except ConnectionClosed:
            pass  # the raylet is gone, and its pins with it

    def _locate(self, object_ids: list[str], deadline: float | None
                ) -> tuple[dict[str, list[int]], dict[str, dict]]:
        """Ask the raylet where objects are. It answers once all are sealed, restoring any it
        had spilled, with [offset, size, pins] for each (pinned once per time it is listed)
        and, for any it could not bring back into memory, why."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        # A task's worker lends its CPU while it waits, but only if it does wait: the raylet
        # knows whether the objects are there, so it decides ("blocks"), as Ray's does.
        reply = self.conns.ask_raylet("get_objects",
                                  {"objects": object_ids, "blocks": self.in_task()},
                                  timeout=timeout)
        return reply["locations"], reply.get("errors", {})

    def _wait_for(self, slots: list[OwnedObject], num: int, deadline: float | None) -> None:
        """Block until ``num`` of ``slots`` are no longer PENDING (or the deadline passes)."""
        lock = threading.Lock()
        lock.acquire()
        with self.refs.owned_lock:
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
            with self.refs.owned_lock:
                for slot in pending:
                    if slot.waiters and lock in slot.waiters:
                        slot.waiters.remove(lock)

    def _blocked(self):
        return _BlockedNotice(self.conns) if self.in_task() else _NO_NOTICE

    def wait(self, object_ids: list[str], num_returns: int, timeout: float | None) -> list[bool]:
        self.conns.check_alive()
        deadline = None if timeout is None else time.monotonic() + timeout
        slots = []
        for object_id in object_ids:
            slot = self.refs.owned.get(object_id)
            if slot is None:
                slot = self._probe_borrowed(object_id)
            slots.append(slot)
        try:
            self._wait_for(slots, num_returns, deadline)
        except exceptions.GetTimeoutError:
            pass
        # Objects the death failed count as ready; the death itself is the answer.
        self.conns.check_alive()
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
            with self.refs.owned_lock:
                if "locations" in body:
                    slot.move_to(STORED, None)
                elif body.get("error") == "component_died":
                    slot.move_to(FAILED, None)  # wait() raises the death

        msg_id = protocol.next_msg_id()
        self.conns.futures[msg_id] = Callback(on_reply)  # type: ignore[assignment]
        if self.conns.death is not None:  # it died after wait() checked, before the line above
            self.conns.futures.pop(msg_id, None)
            self.conns.check_alive()
        try:
            # Only whether it is ready: nothing is pinned, a spilled object stays on disk.
            self.conns.raylet.send("get_objects", {"objects": [object_id], "pin": False},
                             msg_id=msg_id)
        except ConnectionClosed:
            self.conns.futures.pop(msg_id, None)
            self.conns.await_death(self.conns.raylet)
        return slot

    def error(self, entry: list) -> BaseException:
        """The exception a FAILED object's result entry (common/results.py) raises."""
        if results.kind(entry) == results.ERROR:
            err = pickle.loads(results.error_pickle(entry))
            if isinstance(err, exceptions.RayTaskError):
                return err.as_instanceof_cause()
            return err
        name, message = results.raised_error(entry)
        exc_type = getattr(exceptions, name, exceptions.RaySystemError)
        if exc_type is exceptions.TaskCancelledError:
            return exc_type(None, message)
        if issubclass(exc_type, exceptions.ObjectLostError):
            return exc_type("", message)  # an argument of the task was lost
        return exc_type(message)


class _BlockedNotice:
    """While a worker's task waits in get(), its CPU is lent to other tasks (Ray does this)."""

    __slots__ = ("conns",)

    def __init__(self, conns: Connections) -> None:
        self.conns = conns

    def __enter__(self) -> None:
        self.conns.tell_raylet("worker_blocked", {})

    def __exit__(self, *exc) -> None:
        self.conns.tell_raylet("worker_unblocked", {})


class _NoNotice:
    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        pass


_NO_NOTICE = _NoNotice()
