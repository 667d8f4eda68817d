"""``ObjectRef``: a reference to an object that exists, or will, somewhere in the cluster.

Seed, phase 2 step 3: "Object Store returns an ObjectRef (e.g. ObjectRef(a1b2c3d4...))";
phase 4 step 9: "Driver receives the ObjectRef (this is the 'future')".

An ObjectRef is only an id plus the id of its owner. Creating one in a process counts as a
reference held by that process, and garbage-collecting the last one releases it; the
reference counter (``runtime/core_worker/reference_counter.py``) turns those into the counts
the founding document shows. Pickling one inside a value is noticed, so that the value's
receiver can be counted as a holder too.
"""

from __future__ import annotations

from raysim import session
from raysim.runtime.common import serialization


class ObjectRef:
    __slots__ = ("id", "_owner", "_core", "__weakref__")

    def __init__(self, object_id: str, owner: str | None = None, _announce: bool = True) -> None:
        self.id = object_id
        self._owner = owner
        core = session.current_core()
        self._core = core
        if core is not None:
            core.refs.add_local(object_id, announce=_announce)

    def __del__(self) -> None:
        core = self._core
        if core is not None and not core.conns.closing:
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

    # -- as a future (Ray's ``ref.future()`` and ``await ref``) ------------------------------

    def future(self):
        """A ``concurrent.futures.Future`` of the object's value: ``get`` on a thread of its
        own, so the caller can wait in any way it likes."""
        import concurrent.futures
        import threading

        future: concurrent.futures.Future = concurrent.futures.Future()

        def fetch() -> None:
            try:
                session.check_same_session(self, "the ObjectRef passed to get()", "get")
                future.set_result(session.get_values([self], None, "get")[0])
            except BaseException as e:
                future.set_exception(e)

        threading.Thread(target=fetch, name="raysim-ref-future", daemon=True).start()
        return future

    def __await__(self):
        """``await ref`` in a coroutine (an async actor's method): waits without blocking
        the event loop, as in Ray."""
        import asyncio
        return asyncio.wrap_future(self.future()).__await__()

    def __repr__(self) -> str:
        return f"ObjectRef({self.id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


# Ray's old name for ObjectRef, still exported by Ray 2.x (``ray.ObjectID``).
ObjectID = ObjectRef


def check_arguments(args: tuple, kwargs: dict, call: str, api: str) -> None:
    """Top-level ObjectRef arguments of ``.remote()`` must be of the current session."""
    for i, arg in enumerate(args):
        if type(arg) is ObjectRef:
            session.check_same_session(arg, f"argument {i + 1} of {call}", api)
    for key, arg in kwargs.items():
        if type(arg) is ObjectRef:
            session.check_same_session(arg, f"keyword argument {key}= of {call}", api)
