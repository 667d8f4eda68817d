"""Where objects are and who holds references to them: the one component that knows.

Seed, phase 2 step 4: "Object Store registers this object's location with GCS", and the GCS
records ``{object_id, location, size, ref_count}``. Phase 3: "ref_count now = 4: driver +
3 actors". This module is that table. It runs inside the GCS process, as the founding
document (and the 2018 Ray paper) describe.

Modern Ray does not keep this table in the GCS: the *owner* of each object (the process that
called ``put`` or ``.remote()``) counts its references and knows its locations
(docs/modern-ray.md#ownership). Everything that reads or changes counts and locations goes
through the ``ObjectDirectory`` interface below, and each process's side of it is one module
(``runtime/core_worker/reference_counter.py``), so an ownership mode can run the same table
in each owner instead of in the GCS without touching the rest of the runtime.

A reference count here is the number of *holders*, as ``ray memory`` lists them. A holder is
a process (``driver:<id>`` or ``worker:<id>``) with a reference type:

    LOCAL_REFERENCE       the process holds an ObjectRef (or is the object's owner)
    PINNED_IN_MEMORY      the process holds no ObjectRef but still uses a zero-copy view
    ACTOR_HANDLE          (for an actor's handle object) the process holds an ActorHandle
    USED_BY_PENDING_TASK  ``task:<id>``: a submitted task needs it as an argument
    CAPTURED_IN_OBJECT    ``object:<id>``: another object's value contains the ref

When the count reaches zero the object is freed from every store that holds it, and the refs
its value captured are released in turn.

*Lost objects.* As in Ray, an object dies with its owner: when the process that put it (or
submitted the task that returns it) dies, the object is *lost* although others still hold
refs to it, and reading it raises ``OwnerDiedError``. The owner of any object can be read off
its id (``ids.owner_of``), so this holds even for objects not registered yet: a task's result
stored for a dead owner is lost on arrival. Actors' handle objects are the exception: an actor
lives on while handles to it do (Ray would stop it with its creator). A reference that reaches
the table after its object was freed (it travelled where nobody counted it) cannot be honoured
either: the last freed ids are remembered, and reading one raises
``ReferenceCountingAssertionError``. A raylet waiting for an object that is not in its store
asks to be told if the object is, or becomes, lost (``watch``), so that the reader's ``get``
fails instead of waiting forever.

Runs in: the GCS process (its event loop only: no lock). Trace events: ``gcs.object_added``,
``gcs.ref_added``, ``gcs.ref_removed``, ``gcs.object_freed``, ``gcs.object_lost``.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

from raysim.runtime.common.ids import is_actor_handle, owner_of
from raysim.trace import writer as trace
from raysim.trace.schema import ACTOR_HANDLE, CAPTURED_IN_OBJECT, LOCAL_REFERENCE

# What a release returns: each freed object and the nodes whose stores must delete it.
Freed = tuple[str, list[str]]

# Why an object cannot be read (the ``cause`` of gcs.object_lost), after the Ray error a reader
# gets: OwnerDiedError, ReferenceCountingAssertionError.
OWNER_DIED = "OWNER_DIED"
FREED = "FREED"
NODE_DIED = "NODE_DIED"  # every copy was on nodes that went away: ObjectLostError


@dataclasses.dataclass(frozen=True)
class Lost:
    """What a reader of a lost object is told: why (``cause``) and what to do (``message``)."""

    cause: str
    message: str

    def to_wire(self) -> dict:
        return {"cause": self.cause, "message": self.message}


@dataclasses.dataclass
class ObjectEntry:
    object_id: str
    size: int = 0
    owner: str = ""
    locations: set[str] = dataclasses.field(default_factory=set)  # node ids
    holders: dict[str, str] = dataclasses.field(default_factory=dict)  # holder -> ref type
    contained: list[str] = dataclasses.field(default_factory=list)  # refs inside the value
    registered: bool = False  # a store has sealed it (or it is an actor handle)
    primary: str = ""  # the node whose store sealed it first; the others hold copies
    # Holders whose reference arrived before the registration did (the store's message and
    # the holder's travel on different sockets): holder -> (ref type, driver call). They are
    # counted once the owner's own reference is, so the count reads 1, 2, 3... as it does in
    # Ray, where the owner counts from the moment it creates the object.
    waiting: dict[str, tuple[str, int | None]] = dataclasses.field(default_factory=dict)

    @property
    def ref_count(self) -> int:
        return len(self.holders)


class ObjectDirectory:
    """The GCS object table (seed mode): locations, sizes and reference holders."""

    def __init__(self, freed_remembered: int = 100_000) -> None:
        self.objects: dict[str, ObjectEntry] = {}
        # Releases that arrived before the object was registered: the owner dropped its ref
        # while the store's registration was still in flight on another socket.
        self._early_releases: dict[str, set[str]] = {}
        # The last ids freed -> their owners, oldest first (Config.freed_objects_remembered).
        self._freed: OrderedDict[str, str] = OrderedDict()
        self._freed_remembered = freed_remembered
        # Worker ids of owners that died -> how messages name them.
        self._dead_owners: dict[str, str] = {}
        # Objects raylets wait for and asked about -> those raylets' nodes.
        self._watchers: dict[str, set[str]] = {}
        # Losses not yet told to raylets: (object id, why, nodes to tell). The GCS sends them
        # after each message it handles (take_lost).
        self._lost_now: list[tuple[str, Lost, set[str]]] = []
        # Objects whose every copy went with a node that went away -> why.
        self._lost_with_node: dict[str, Lost] = {}
        # The same, while their owners are asked whether they make them again: raylets that
        # wait for them go on waiting meanwhile.
        self._asking: dict[str, Lost] = {}

    # -- registration ------------------------------------------------------------------------

    def add_object(self, object_id: str, node: str, size: int, owner: str,
                   contained: list[str] = ()) -> list[Freed]:
        """A store sealed an object. The owner holds the first reference. Returns ids to free."""
        # It exists: the raylets waiting for it see it sealed, unless it is lost already.
        watchers = self._watchers.pop(object_id, set())
        lost = self.lost(object_id)
        if lost is not None and lost.cause == OWNER_DIED:
            # A result stored for an owner that died meanwhile: nobody can ever read it.
            self._lost_now.append((object_id, lost, {node} | watchers))
            trace.emit("gcs.object_lost", obj=object_id, cause=lost.cause, owner=owner,
                       holders=[], reason=lost.message)
            return []
        self._freed.pop(object_id, None)  # stored again (a retried task's result)
        entry = self.objects.get(object_id)
        if entry is None:
            entry = self.objects[object_id] = ObjectEntry(object_id)
        first = not entry.registered
        entry.registered = True
        entry.size = size
        entry.owner = owner
        entry.locations.add(node)
        if not entry.primary or entry.primary not in entry.locations:
            entry.primary = node
        trace.emit("gcs.object_added", obj=object_id, location=node, size=size, owner=owner)
        if first:
            self._add(entry, owner, LOCAL_REFERENCE)
            self._count_waiting(entry)
            for inner in contained:
                entry.contained.append(inner)
                self.add_ref(inner, f"object:{object_id}", CAPTURED_IN_OBJECT)
        early = self._early_releases.pop(object_id, set())
        freed: list[Freed] = []
        for holder in early:
            freed += self.remove_ref(object_id, holder)
        return freed

    def add_handle_object(self, object_id: str, owner: str) -> list[Freed]:
        """An actor was registered: its creator holds the first handle."""
        entry = self.objects.get(object_id)
        if entry is None:
            entry = self.objects[object_id] = ObjectEntry(object_id)
        first = not entry.registered
        entry.registered = True
        entry.owner = owner
        self._add(entry, owner, ACTOR_HANDLE)
        if first:
            self._count_waiting(entry)
        freed: list[Freed] = []
        for holder in self._early_releases.pop(object_id, set()):
            freed += self.remove_ref(object_id, holder)
        return freed

    def remove_location(self, object_id: str, node: str) -> None:
        entry = self.objects.get(object_id)
        if entry is not None and node in entry.locations:
            entry.locations.discard(node)
            trace.emit("gcs.location_removed", obj=object_id, location=node)

    def locations(self, object_id: str) -> set[str]:
        entry = self.objects.get(object_id)
        return set(entry.locations) if entry else set()

    def watching(self, object_id: str) -> set[str]:
        """The nodes whose raylets wait for the object (``watch``)."""
        return set(self._watchers.get(object_id, ()))

    # -- references --------------------------------------------------------------------------

    def add_ref(self, object_id: str, holder: str, ref_type: str,
                owner: bool = False) -> None:
        """``owner``: the holder is the object's owner, which the registration counts anyway.
        Its messages may arrive first (they travel directly, the registration via the raylet):
        an add only says which reference type to count it with."""
        if self._gone_holder(holder):
            return  # a dead process, or a value whose owner died: late news of the gone
        entry = self.objects.get(object_id)
        if entry is None:
            lost = self.lost(object_id)
            if lost is not None:
                # Too late: nothing is counted, and a reader will be told (watch). That an
                # owner died is in the trace already (worker.died, and gcs.object_lost for
                # what it owned then); a ref to a freed object is news.
                if lost.cause == FREED:
                    trace.emit("gcs.object_lost", obj=object_id, cause=lost.cause,
                               owner=self._owner_name(object_id), holders=[holder],
                               reason=lost.message)
                self._lost_now.append((object_id, lost, self._watchers.pop(object_id, set())))
                return
            entry = self.objects[object_id] = ObjectEntry(object_id)
        early = self._early_releases.get(object_id)
        if early and holder in early:  # a later add cancels an early release
            early.discard(holder)
            if not owner:
                return
        if not entry.registered and (owner or holder not in entry.holders):
            entry.waiting[holder] = (ref_type, trace.get_phase())
            return
        self._add(entry, holder, ref_type)

    def _add(self, entry: ObjectEntry, holder: str, ref_type: str,
             phase: int | None = None) -> None:
        if entry.holders.get(holder) == ref_type:
            return
        entry.holders[holder] = ref_type
        trace.emit("gcs.ref_added", phase=phase, obj=entry.object_id, holder=holder,
                   ref_type=ref_type, count=entry.ref_count)

    def _count_waiting(self, entry: ObjectEntry) -> None:
        waiting, entry.waiting = entry.waiting, {}
        for holder, (ref_type, phase) in waiting.items():
            self._add(entry, holder, ref_type, phase)

    def remove_ref(self, object_id: str, holder: str, owner: bool = False) -> list[Freed]:
        """Drop one holder. Returns the ids of objects freed as a result (maybe cascading).
        ``owner``: as for add_ref; the registration will count the owner, so an owner's
        release before it is remembered even if an add of its came first."""
        entry = self.objects.get(object_id)
        if entry is None and self.lost(object_id) is not None:
            return []  # lost or freed already: nothing left to count
        if entry is not None and entry.waiting.pop(holder, None) is not None:
            if owner and not entry.registered:
                self._early_releases.setdefault(object_id, set()).add(holder)
            return []  # taken and dropped before the object was registered: never counted
        if entry is None or holder not in entry.holders:
            if entry is None or not entry.registered:
                self._early_releases.setdefault(object_id, set()).add(holder)
            return []
        del entry.holders[holder]
        trace.emit("gcs.ref_removed", obj=object_id, holder=holder, count=entry.ref_count)
        if entry.holders or not entry.registered:
            return []
        return self._free(entry)

    def remove_holder(self, holder: str) -> list[Freed]:
        """A process died: every reference it held goes with it."""
        freed: list[Freed] = []
        for object_id in [oid for oid, e in self.objects.items()
                          if holder in e.holders or holder in e.waiting]:
            freed += self.remove_ref(object_id, holder)
        return freed

    def _free(self, entry: ObjectEntry) -> list[Freed]:
        object_id = entry.object_id
        del self.objects[object_id]
        trace.emit("gcs.object_freed", obj=object_id, locations=sorted(entry.locations))
        self._freed[object_id] = entry.owner
        while len(self._freed) > self._freed_remembered:
            self._freed.popitem(last=False)
        watchers = self._watchers.pop(object_id, None)
        if watchers:
            self._lost_now.append((object_id, self.lost(object_id), watchers))
        freed = [(object_id, sorted(entry.locations))]
        for inner in entry.contained:
            freed += self.remove_ref(inner, f"object:{object_id}")
        return freed

    # -- lost objects ------------------------------------------------------------------------

    def lost(self, object_id: str) -> Lost | None:
        """Why the object can no longer be read, or None if it may still be."""
        dead = self._dead_owners.get(owner_of(object_id))
        if dead is not None and not is_actor_handle(object_id):
            return Lost(OWNER_DIED, (
                f"Object {object_id} is lost: its owner, {dead}. An object's owner (the "
                f"process that put it, or that submitted the task returning it) keeps what "
                f"is needed to read it, so the object goes with it, as in Ray. Tip: keep the "
                f"objects you need owned by a process that outlives their readers: return "
                f"values rather than refs to objects an actor or task put, or put them from "
                f"the driver."))
        if object_id in self._lost_with_node:
            return self._lost_with_node[object_id]
        if object_id in self._freed:
            return Lost(FREED, (
                f"Object {object_id} was freed (its reference count reached zero) before this "
                f"reference to it was counted, so no copy of it remains. Tip: an ObjectRef "
                f"that travels where raysim cannot see it (pickled by hand, kept in a global "
                f"of another process) is not counted; pass refs in task arguments and return "
                f"values, and keep one until every reader has its own."))
        return None

    def node_removed(self, node: str) -> list[tuple[str, str]]:
        """A node went away with its store: the copies there are gone. An object with no copy
        left is lost unless its owner makes it again: (owner, object id) for each, for the
        GCS to ask (``recovering``: the owner re-runs the task that made it, as Ray's owners
        do as soon as they hear of the node; ``unrecoverable``: it will not). Raylets waiting
        for it go on waiting until the owner answers. The row stays: its holders still hold
        it.

        Not covered yet: an object whose node died before the node's registration of it
        reached the GCS. Its owner has its result (the worker sent it straight there) but
        nobody here knows it was lost; Ray's owner, which keeps its objects' locations
        itself, would recover it."""
        asks = []
        for entry in self.objects.values():
            if node not in entry.locations:
                continue
            entry.locations.discard(node)
            if entry.locations or not entry.registered:
                continue
            lost = self._asking[entry.object_id] = Lost(NODE_DIED, (
                f"Object {entry.object_id} is lost: the node that held it ({node}) went "
                f"away with its store, no other node had a copy, and its task may not run "
                f"again (max_retries=0, or a put). Tip: let the task be retried "
                f"(max_retries), or keep a copy where it is read."))
            trace.emit("gcs.object_lost", obj=entry.object_id, cause=NODE_DIED,
                       owner=entry.owner, holders=sorted(entry.holders), reason=lost.message)
            asks.append((entry.owner, entry.object_id))
        return asks

    def recovering(self, object_id: str) -> None:
        """Its owner makes the object again (its task runs once more): not lost any more;
        whoever waits for it is told where it is once it is stored again."""
        self._asking.pop(object_id, None)
        self._lost_with_node.pop(object_id, None)

    def unrecoverable(self, object_id: str) -> None:
        """Its owner cannot make it again: lost, and whoever waits for it is told so."""
        lost = self._asking.pop(object_id, None)
        if lost is None:
            return
        self._lost_with_node[object_id] = lost
        self._lost_now.append((object_id, lost, self._watchers.pop(object_id, set())))

    def watch(self, object_id: str, node: str) -> Lost | None:
        """A raylet waits for an object its store does not have: why it never will, or None
        (then the raylet is told if the object is lost later, see take_lost)."""
        lost = self.lost(object_id)
        if lost is None:
            self._watchers.setdefault(object_id, set()).add(node)
        return lost

    def owner_died(self, worker_id: str, description: str) -> list[Freed]:
        """A worker died: the objects it owned are lost (their stores must delete them), and
        so are the holds of its values and of the tasks it submitted. ``description`` names
        it and its death, for the readers' errors. Returns what that frees in turn."""
        self._dead_owners[worker_id] = description
        freed: list[Freed] = []
        # Its values, and the tasks it submitted (stopped by the raylet), hold no more.
        held_by_it = (f"object:{worker_id}", f"task:{worker_id}")
        for entry in list(self.objects.values()):
            for holder in [h for h in (*entry.holders, *entry.waiting)
                           if h.startswith(held_by_it)]:
                freed += self.remove_ref(entry.object_id, holder)
        for object_id in [oid for oid in self.objects if owner_of(oid) == worker_id]:
            entry = self.objects.get(object_id)
            if entry is not None and not is_actor_handle(object_id):
                freed += self._lose(entry)
        for object_id in [oid for oid in self._watchers if owner_of(oid) == worker_id]:
            if not is_actor_handle(object_id):  # waited for, never registered nor counted
                lost = self.lost(object_id)
                trace.emit("gcs.object_lost", obj=object_id, cause=lost.cause,
                           owner=f"worker:{worker_id}", holders=[], reason=lost.message)
                self._lost_now.append((object_id, lost, self._watchers.pop(object_id)))
        for object_id in [oid for oid in self._early_releases if owner_of(oid) == worker_id]:
            del self._early_releases[object_id]
        return freed

    def _lose(self, entry: ObjectEntry) -> list[Freed]:
        """Its owner died: the object goes, whoever still holds it."""
        object_id = entry.object_id
        lost = self.lost(object_id)
        del self.objects[object_id]
        trace.emit("gcs.object_lost", obj=object_id, cause=lost.cause,
                   owner=entry.owner or self._owner_name(object_id),
                   holders=sorted({*entry.holders, *entry.waiting}), reason=lost.message)
        self._lost_now.append((object_id, lost,
                               entry.locations | self._watchers.pop(object_id, set())))
        freed: list[Freed] = []
        for inner in entry.contained:
            freed += self.remove_ref(inner, f"object:{object_id}")
        return freed

    def _owner_name(self, object_id: str) -> str:
        """The owner as a holder is named, for an object no longer in the table."""
        return self._freed.get(object_id) or f"worker:{owner_of(object_id)}"

    def _gone_holder(self, holder: str) -> bool:
        """Is this holder a dead worker, or a value or task owned by one? (Their messages may
        reach the GCS after the news of the death, which comes from the raylet.)"""
        kind, _, name = holder.partition(":")
        if kind in ("object", "task"):
            return owner_of(name) in self._dead_owners
        return kind == "worker" and name in self._dead_owners

    def take_lost(self) -> list[tuple[str, Lost, set[str]]]:
        """The losses to tell raylets about since the last call: (id, why, nodes)."""
        lost, self._lost_now = self._lost_now, []
        return lost

    # -- reporting ---------------------------------------------------------------------------

    def snapshot(self) -> dict:
        return {oid: {"size": e.size, "owner": e.owner, "locations": sorted(e.locations),
                      **({"primary": e.primary} if e.primary else {}),
                      "ref_count": e.ref_count, "holders": dict(e.holders)}
                for oid, e in self.objects.items() if e.registered}
