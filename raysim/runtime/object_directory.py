"""Where objects are and who holds references to them: the one component that knows.

Seed, phase 2 step 4: "Object Store registers this object's location with GCS", and the GCS
records ``{object_id, location, size, ref_count}``. Phase 3: "ref_count now = 4: driver +
3 actors". This module is that table. It runs inside the GCS process, as the founding
document (and the 2018 Ray paper) describe.

Modern Ray does not keep this table in the GCS: the *owner* of each object (the process that
called ``put`` or ``.remote()``) counts its references and knows its locations
(ACCURACY.md #1). Everything that reads or changes counts and locations goes through the
``ObjectDirectory`` interface below, so an ownership mode can run the same table in each owner
instead of in the GCS without touching the rest of the runtime.

A reference count here is the number of *holders*, as ``ray memory`` lists them. A holder is
a process (``driver:<id>`` or ``worker:<id>``) with a reference type:

    LOCAL_REFERENCE       the process holds an ObjectRef (or is the object's owner)
    PINNED_IN_MEMORY      the process holds no ObjectRef but still uses a zero-copy view
    ACTOR_HANDLE          (for an actor's handle object) the process holds an ActorHandle
    USED_BY_PENDING_TASK  ``task:<id>``: a submitted task needs it as an argument
    CAPTURED_IN_OBJECT    ``object:<id>``: another object's value contains the ref

When the count reaches zero the object is freed from every store that holds it, and the refs
its value captured are released in turn.

Trace events: ``gcs.object_added``, ``gcs.ref_added``, ``gcs.ref_removed``,
``gcs.object_freed``.
"""

from __future__ import annotations

import dataclasses

from raysim.trace import writer as trace

LOCAL_REFERENCE = "LOCAL_REFERENCE"
PINNED_IN_MEMORY = "PINNED_IN_MEMORY"
ACTOR_HANDLE = "ACTOR_HANDLE"
USED_BY_PENDING_TASK = "USED_BY_PENDING_TASK"
CAPTURED_IN_OBJECT = "CAPTURED_IN_OBJECT"
# What a release returns: each freed object and the nodes whose stores must delete it.
Freed = tuple[str, list[str]]

REFERENCE_TYPES = (LOCAL_REFERENCE, PINNED_IN_MEMORY, ACTOR_HANDLE, USED_BY_PENDING_TASK,
                   CAPTURED_IN_OBJECT)


@dataclasses.dataclass
class ObjectEntry:
    object_id: str
    size: int = 0
    owner: str = ""
    locations: set[str] = dataclasses.field(default_factory=set)  # node ids
    holders: dict[str, str] = dataclasses.field(default_factory=dict)  # holder -> ref type
    contained: list[str] = dataclasses.field(default_factory=list)  # refs inside the value
    registered: bool = False  # a store has sealed it (or it is an actor handle)
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

    def __init__(self) -> None:
        self.objects: dict[str, ObjectEntry] = {}
        # Releases that arrived before the object was registered: the owner dropped its ref
        # while the store's registration was still in flight on another socket.
        self._early_releases: dict[str, set[str]] = {}

    # -- registration ------------------------------------------------------------------------

    def add_object(self, object_id: str, node: str, size: int, owner: str,
                   contained: list[str] = ()) -> list[Freed]:
        """A store sealed an object. The owner holds the first reference. Returns ids to free."""
        entry = self.objects.get(object_id)
        if entry is None:
            entry = self.objects[object_id] = ObjectEntry(object_id)
        first = not entry.registered
        entry.registered = True
        entry.size = size
        entry.owner = owner
        entry.locations.add(node)
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
        if entry is not None:
            entry.locations.discard(node)

    def locations(self, object_id: str) -> set[str]:
        entry = self.objects.get(object_id)
        return set(entry.locations) if entry else set()

    # -- references --------------------------------------------------------------------------

    def add_ref(self, object_id: str, holder: str, ref_type: str) -> None:
        entry = self.objects.get(object_id)
        if entry is None:
            entry = self.objects[object_id] = ObjectEntry(object_id)
        early = self._early_releases.get(object_id)
        if early and holder in early:  # a later add cancels an early release
            early.discard(holder)
            return
        if not entry.registered and holder not in entry.holders:
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

    def remove_ref(self, object_id: str, holder: str) -> list[Freed]:
        """Drop one holder. Returns the ids of objects freed as a result (maybe cascading)."""
        entry = self.objects.get(object_id)
        if entry is not None and entry.waiting.pop(holder, None) is not None:
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
        del self.objects[entry.object_id]
        trace.emit("gcs.object_freed", obj=entry.object_id, locations=sorted(entry.locations))
        freed = [(entry.object_id, sorted(entry.locations))]
        for inner in entry.contained:
            freed += self.remove_ref(inner, f"object:{entry.object_id}")
        return freed

    # -- reporting ---------------------------------------------------------------------------

    def snapshot(self) -> dict:
        return {oid: {"size": e.size, "owner": e.owner, "locations": sorted(e.locations),
                      "ref_count": e.ref_count, "holders": dict(e.holders)}
                for oid, e in self.objects.items() if e.registered}
