"""``ObjectRef``: a reference to an object that exists, or will, somewhere in the cluster.

Seed, phase 2 step 3: "Object Store returns an ObjectRef (e.g. ObjectRef(a1b2c3d4...))";
phase 4 step 9: "Driver receives the ObjectRef (this is the 'future')".

An ObjectRef is only an id plus the id of its owner. Creating one in a process counts as a
reference held by that process, and garbage-collecting the last one releases it; the
reference counter (``runtime/reference_counter.py``) turns those into the counts the founding
document shows. Pickling one inside a value is noticed, so that the value's receiver can be
counted as a holder too.
"""

from __future__ import annotations

from raysim.runtime import serialization


class ObjectRef:
    __slots__ = ("id", "_owner", "_core", "__weakref__")

    def __init__(self, object_id: str, owner: str | None = None, _announce: bool = True) -> None:
        from raysim import api
        self.id = object_id
        self._owner = owner
        core = api._core
        self._core = core
        if core is not None:
            core.refs.add_local(object_id, announce=_announce)

    def __del__(self) -> None:
        core = self._core
        if core is not None and not core.closing:
            try:
                core.refs.remove_local(self.id)
            except Exception:  # interpreter shutdown: modules may already be gone
                pass

    def __reduce__(self):
        serialization.note_ref_serialized(self)
        return (ObjectRef, (self.id, self._owner))

    def hex(self) -> str:
        return self.id

    def binary(self) -> bytes:
        return bytes.fromhex(self.id)

    def task_id(self) -> str:
        return self.id[:16]

    def owner(self) -> str | None:
        return self._owner

    def __repr__(self) -> str:
        return f"ObjectRef({self.id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)
