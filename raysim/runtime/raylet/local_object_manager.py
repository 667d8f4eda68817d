"""Making room in a full object store: eviction, spilling to disk, restoring (Ray's
``LocalObjectManager`` and plasma's eviction policy).

Ray concept ("Object Spilling" in Ray's documentation): when a node's store is full, the
raylet writes objects that are still referenced to files, frees their shared memory, and
reads them back when a process needs one again (a ``get``, a task's argument). The program
never notices, except in speed. Only when no room can be made does the writer get
``ObjectStoreFullError``.

Runs in: the raylet, which owns the store. Beyond the seed: its phases never fill the store.

What happens when an object does not fit, in order, until it fits:

1. *Evict* secondary copies (pulled from another node, whose primary copy is still there:
   the GCS hears that this node no longer has one) and in-memory copies that are also on
   disk. A spilled object that was restored keeps its file until it is freed (Ray keeps the
   spilled copy too), so its memory can be reused without writing a byte. Nothing else is
   evictable here: the GCS frees an object the moment its reference count reaches zero
   (``free_objects``), so the store never holds objects nobody references.
2. *Spill* sealed objects no process has mapped, least recently used first: write each to
   its own file, then free its space.
3. Fail: what is left cannot move. An object being written (created, not sealed) and an
   object a reader has pinned (``object_store.py``: a zero-copy view, an argument pushed to
   a worker) stay where they are; so does everything if the object is bigger than the store.

*Leases.* An object's owner (the process that put it, or that called the task returning it)
learns its place when it is stored and reads it there without asking the raylet, which
keeps its ``get`` as fast as a memory read. The raylet records that *lease* on the object
(``StoreEntry.lease``) and, before spilling a leased object, asks the owner to give the lease
back (``revoke_leases``); the owner agrees unless it has a zero-copy view of the object alive
or is reading it (``leases_returned``), and from then on asks the raylet where the object is,
as every other reader does. So making room may wait for owners' answers: requests for room
(creates and restores) queue here, in order, and are answered when they can be.

*Restore* is the way back: the raylet answers ``get_objects`` for a spilled object by making
room for it (steps 1 and 2), reading the file into the store and pinning it for the reader.

Where raysim differs from Ray: Ray spills ahead of need, once primary copies fill
``object_spilling_threshold`` (80%) of the store, in batches of at least
``min_spilling_size`` (100 MB) fused into one file, written by I/O worker processes. raysim
spills only when an object does not fit, one file per object, in the raylet's own loop:
slower, but each spill happens right before the create it made room for, which is where the
trace shows it. Ray retries a create that still does not fit for a grace period
(``oom_grace_period_s``); raysim fails it at once. Ray has no leases: its owners ask plasma
for every read.

Files: ``<session_dir>/spill/<object id>``, or ``raysim_spilled_objects_<node id>/`` inside
``object_spilling_directory`` if configured; the directory is 0700 and each file 0600. A file
is deleted when its object is freed, the directory when the raylet exits (and by the driver's
``shutdown()``, should the raylet have died first).

Trace events: ``object_store.evicted``, ``object_store.spilled``, ``object_store.restored``,
``object_store.full``, and ``object_store.deleted`` for a freed object that was on disk.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import shutil
import stat
import time
from collections import deque
from typing import Callable, Union

from raysim.runtime.raylet.object_store import ObjectStore, StoreEntry, StoreFull
from raysim.trace import writer as trace

_CREATE_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclasses.dataclass
class SpilledObject:
    object_id: str
    size: int
    owner: str
    path: str


class RestoreFailed(Exception):
    """A spilled object could not be read back: its file is unreadable, or it was freed."""


# What a request for room ends with: the new (unsealed) entry, or why there is no room.
Outcome = Union[StoreEntry, StoreFull]


@dataclasses.dataclass
class RoomRequest:
    """A create (or a restore) waiting for room, answered through ``done``."""

    object_id: str
    size: int
    owner: str
    client: str  # who asked: its requests go if it dies ("" for a restore)
    done: Callable[[Outcome | RestoreFailed], None]
    asked: set[str] = dataclasses.field(default_factory=set)  # leases it asked back


class LocalObjectManager:
    """The spilled objects of one node's store, and the policy that moves objects out.

    ``revoke(holder, object_ids)`` sends ``revoke_leases`` to a lease holder; it returns
    False if the holder is not connected (then nothing can read at the place it knew)."""

    def __init__(self, store: ObjectStore, directory: str, enabled: bool,
                 revoke: Callable[[str, list[str]], bool],
                 copy_dropped: Callable[[str], None] = lambda object_id: None) -> None:
        self.store = store
        self._copy_dropped = copy_dropped  # the GCS hears that this node's copy is gone
        self.directory = directory
        self.enabled = enabled  # Config.automatic_object_spilling_enabled
        self._revoke = revoke
        # Objects with a copy on disk: spilled, and perhaps restored into memory since.
        self.spilled: dict[str, SpilledObject] = {}
        self._waiting: deque[RoomRequest] = deque()  # in arrival order
        self._revoking: set[str] = set()  # leases asked back, answer not yet in
        self._restoring: dict[str, list[Callable]] = {}  # restores under way -> callbacks
        self._progressing = False
        self._made_directory = False

    def available(self, object_id: str) -> bool:
        """Sealed, in memory or on disk: a reader can have it without waiting for a writer."""
        return self.store.lookup(object_id) is not None or object_id in self.spilled

    # -- requests for room ---------------------------------------------------------------------

    def create(self, object_id: str, size: int, owner: str,
               done: Callable[[Outcome], None]) -> None:
        """``ObjectStore.create``, making room if needed; ``done`` gets the entry or, if no
        room can be made, a StoreFull (after ``object_store.full`` is emitted). The usual
        case, room to spare and nobody waiting, answers at once."""
        if not self._waiting:
            try:
                done(self.store.create(object_id, size, owner))
                return
            except StoreFull:
                pass
        self._waiting.append(RoomRequest(object_id, size, owner, owner, done))
        self.progress()

    def progress(self) -> None:
        """Answer the waiting requests that can be answered now, in order. Called whenever
        room may have appeared: an answer from a lease holder, a free, a release."""
        if self._progressing:
            return  # called back from a request's answer: the loop below goes on
        self._progressing = True
        try:
            while self._waiting:
                request = self._waiting[0]
                outcome = self._try(request)
                if outcome is None:
                    return  # waiting for lease holders' answers
                self._waiting.popleft()
                request.done(outcome)
        finally:
            self._progressing = False

    def _try(self, request: RoomRequest) -> Outcome | RestoreFailed | None:
        """Make room for one request: evict, spill, ask leases back. None: ask again once the
        owners asked have answered."""
        store, size = self.store, request.size
        if not request.client and request.object_id not in self.spilled:
            return RestoreFailed(f"object {request.object_id} was freed")  # a restore
        if size > store.capacity:
            return self._full(request, "the object is bigger than the whole store")
        while True:
            try:
                return store.create(request.object_id, size, request.owner)
            except StoreFull:
                pass
            movable = store.movable()  # least recently used first
            free_now = [e for e in movable if e.lease is None and
                        (self.enabled or e.object_id in self.spilled or e.copy)]
            leased = [e for e in movable if e.lease is not None and self.enabled]
            if store.capacity - store.used + sum(e.size for e in free_now + leased) < size:
                return self._full(request, self._why_full())  # moving all would not do
            if free_now:
                # Copies other nodes hold (secondary copies) and copies already on disk
                # first: free to drop. Then the least recently used.
                free_now.sort(key=lambda e: not (e.copy or e.object_id in self.spilled))
                for entry in free_now:
                    if entry.copy:
                        self._evict(entry, "a copy: another node holds the primary")
                        self._copy_dropped(entry.object_id)
                    elif entry.object_id in self.spilled:
                        self._evict(entry, "its spill file still holds it")
                    else:
                        try:
                            self._spill(entry)
                        except OSError as e:
                            return self._full(request, f"spilling to {self.directory} "
                                                       f"failed ({e.strerror or e})")
                    try:
                        return store.create(request.object_id, size, request.owner)
                    except StoreFull:
                        pass
                continue  # all moved, and still no room: leased objects next
            # Only leased objects could make room: ask their owners to give the leases back,
            # the least recently used first, as many as would make room (at least one).
            unasked = [e for e in leased if e.object_id not in request.asked]
            if not unasked:
                if request.asked & self._revoking:
                    return None
                return self._full(request, self._why_full())
            short = size + mmap.PAGESIZE - store.allocator.largest_free()
            self._ask_leases(request, unasked, short)
            if request.asked & self._revoking:
                return None
            # Their holders were gone: those objects are free to move now.

    def _ask_leases(self, request: RoomRequest, entries: list[StoreEntry], short: int) -> None:
        ask: dict[str, list[str]] = {}
        for entry in entries:
            request.asked.add(entry.object_id)
            if entry.object_id not in self._revoking:
                entry.lease_kept = False
                ask.setdefault(entry.lease, []).append(entry.object_id)
            short -= entry.size
            if short <= 0:
                break
        for holder, object_ids in ask.items():
            if self._revoke(holder, object_ids):
                self._revoking.update(object_ids)
            else:
                self._returned(object_ids, [])  # nobody left to read at the old place

    def leases_returned(self, revoked: list[str], kept: list[str]) -> None:
        """A lease holder answered ``revoke_leases``."""
        self._returned(revoked, kept)
        self.progress()

    def _returned(self, revoked: list[str], kept: list[str]) -> None:
        for object_id in revoked:
            self._revoking.discard(object_id)
            entry = self.store.entries.get(object_id)
            if entry is not None:
                entry.lease = None
        for object_id in kept:  # the owner has it mapped: pinned, in effect
            self._revoking.discard(object_id)
            entry = self.store.entries.get(object_id)
            if entry is not None:
                entry.lease_kept = True

    def client_gone(self, client: str) -> None:
        """A driver or worker died: its waiting creates go, and its leases (nothing can read
        at the places it knew); what waited for its answers may proceed."""
        self._waiting = deque(r for r in self._waiting if r.client != client)
        held = [e.object_id for e in self.store.entries.values() if e.lease == client]
        self._returned(held, [])
        self.progress()

    def _why_full(self) -> str:
        if not self.enabled:
            return "spilling is off (automatic_object_spilling_enabled=False)"
        return ("the objects left in memory cannot move: they are pinned by readers "
                "(zero-copy views, task arguments) or still being written")

    def _full(self, request: RoomRequest, reason: str) -> StoreFull:
        store = self.store
        full = StoreFull(request.size, store.capacity, store.used, store.immovable_bytes(),
                         store.allocator.largest_free(), reason)
        trace.emit("object_store.full", obj=request.object_id, size=request.size,
                   capacity=store.capacity, used=store.used, immovable=full.immovable,
                   reason=reason)
        return full

    # -- moving objects out --------------------------------------------------------------------

    def _evict(self, entry: StoreEntry, reason: str) -> None:
        self.store.delete(entry.object_id)
        trace.emit("object_store.evicted", obj=entry.object_id, size=entry.size,
                   reason=reason, used=self.store.used)

    def _spill(self, entry: StoreEntry) -> None:
        start = time.perf_counter_ns()
        path = os.path.join(self._spill_dir(), entry.object_id)
        fd = os.open(path, _CREATE_FILE, 0o600)
        try:
            with self.store.memory(entry) as data:
                _write_all(fd, data)
        except OSError:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        self.spilled[entry.object_id] = SpilledObject(entry.object_id, entry.size,
                                                      entry.owner, path)
        self.store.delete(entry.object_id)
        trace.emit("object_store.spilled", obj=entry.object_id, size=entry.size, path=path,
                   dur=time.perf_counter_ns() - start, used=self.store.used)

    def _spill_dir(self) -> str:
        """The spill directory, made private on first use."""
        if not self._made_directory:
            os.makedirs(os.path.dirname(self.directory), mode=0o700, exist_ok=True)
            try:
                os.mkdir(self.directory, 0o700)
            except FileExistsError:
                st = os.lstat(self.directory)
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or \
                        st.st_mode & 0o077:
                    raise PermissionError(
                        f"{self.directory} exists and is not a private directory of yours")
            self._made_directory = True
        return self.directory

    # -- reading: pins and restores ------------------------------------------------------------

    def pin(self, object_id: str, client: str, count: int,
            done: Callable[[StoreEntry | Exception], None]) -> None:
        """Pin an object for a reader, restoring it first if it is only on disk; ``done``
        gets the entry, StoreFull (no room to restore it) or RestoreFailed."""
        entry = self.store.lookup(object_id)
        if entry is not None:
            self.store.pin(entry, client, count)
            done(entry)
            return

        def restored(outcome: StoreEntry | Exception) -> None:
            if isinstance(outcome, StoreEntry):
                self.store.pin(outcome, client, count)  # before anything can move it again
            done(outcome)

        if object_id not in self.spilled:
            done(RestoreFailed(f"object {object_id} was freed"))
        elif object_id in self._restoring:  # another reader is restoring it already
            self._restoring[object_id].append(restored)
        else:
            self._restoring[object_id] = [restored]
            spilled = self.spilled[object_id]
            self._waiting.append(RoomRequest(
                object_id, spilled.size, spilled.owner, "",
                lambda outcome: self._restore_into(object_id, outcome)))
            self.progress()

    def _restore_into(self, object_id: str, outcome: Outcome | RestoreFailed) -> None:
        """Room was made for a spilled object (or could not be): read its file into it."""
        result: StoreEntry | Exception = outcome
        if isinstance(outcome, StoreEntry):
            result = self._read_back(outcome)
        for callback in self._restoring.pop(object_id, []):
            callback(result)

    def _read_back(self, entry: StoreEntry) -> StoreEntry | RestoreFailed:
        spilled = self.spilled.get(entry.object_id)
        start = time.perf_counter_ns()
        try:
            if spilled is None:
                raise OSError("it was freed while room was being made for it")
            with open(spilled.path, "rb", buffering=0) as f, self.store.memory(entry) as dest:
                done = 0
                while done < entry.size:
                    n = f.readinto(dest[done:])
                    if not n:
                        raise OSError(f"its file ends after {done:,} of {entry.size:,} bytes")
                    done += n
        except OSError as e:
            self.store.delete(entry.object_id)
            return RestoreFailed(f"object {entry.object_id} could not be read back from "
                                 f"disk: {e}")
        self.store.seal(entry.object_id)
        trace.emit("object_store.restored", obj=entry.object_id, size=entry.size,
                   offset=entry.offset, path=spilled.path,
                   dur=time.perf_counter_ns() - start, used=self.store.used)
        return entry

    # -- freeing and cleanup -------------------------------------------------------------------

    def free(self, object_id: str) -> tuple[StoreEntry | None, SpilledObject | None]:
        """The object's count reached zero: drop it from memory and from disk."""
        entry = self.store.delete(object_id)
        spilled = self.spilled.pop(object_id, None)
        if spilled is not None:
            try:
                os.unlink(spilled.path)
            except FileNotFoundError:
                pass
        return entry, spilled

    def cleanup(self) -> None:
        """The raylet is exiting: every spilled object goes with the session."""
        self.spilled.clear()
        if self._made_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def snapshot(self) -> dict:
        return {oid: {"size": s.size, "owner": s.owner, "path": s.path}
                for oid, s in self.spilled.items()}


def _write_all(fd: int, data: memoryview) -> None:
    done = 0
    while done < len(data):
        done += os.write(fd, data[done:])
