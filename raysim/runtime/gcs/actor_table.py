"""The GCS actor registry and the actor state machine.

Seed, phase 3 step 8: "Worker #1 registers actor handle with GCS", and the resulting
"Actor Registry: actor_id, location: worker_1, class: BatchPredictor".

States are Ray's (``gcs.proto: ActorTableData.ActorState``)::

    DEPENDENCIES_UNREADY -> PENDING_CREATION -> ALIVE -> RESTARTING -> ALIVE ...
                                                     \\-> DEAD (from any state)

An actor waits in DEPENDENCIES_UNREADY until its constructor's arguments exist, and in
PENDING_CREATION until its ``__init__`` has returned. When its process dies it goes
RESTARTING if ``max_restarts`` allows (also from PENDING_CREATION, when the process died inside
``__init__``, and again from RESTARTING when the new one dies too), else DEAD. DEAD is final:
a named actor's name is free again. Each row counts its restarts and keeps why it died
(``cause``, after Ray's ActorDeathCause kinds: WORKER_DIED, RAY_KILL, OUT_OF_SCOPE,
CREATION_TASK_ERROR, WORKER_STARTUP_FAILED, OWNER_DIED).

Every change goes through ``ActorTable.transition``, which rejects illegal moves and emits one
``gcs.actor_state`` event, so the trace holds the whole life of every actor.

Runs in: the GCS process.
"""

from __future__ import annotations

import dataclasses

from raysim.runtime.common.errors import RaySimInternalError
from raysim.trace import writer as trace
from raysim.trace.schema import ALIVE, DEAD, DEPENDENCIES_UNREADY, PENDING_CREATION, RESTARTING

_LEGAL: dict[str | None, set[str]] = {
    None: {DEPENDENCIES_UNREADY, PENDING_CREATION},
    DEPENDENCIES_UNREADY: {PENDING_CREATION, DEAD},
    PENDING_CREATION: {ALIVE, RESTARTING, DEAD},
    ALIVE: {RESTARTING, DEAD},
    RESTARTING: {RESTARTING, ALIVE, DEAD},
    DEAD: set(),
}


@dataclasses.dataclass
class ActorEntry:
    actor_id: str
    class_name: str
    handle_object: str  # the object whose references are the actor's handles
    owner: str
    name: str | None = None
    namespace: str | None = None
    state: str | None = None
    node: str | None = None
    wid: str | None = None
    pid: int | None = None
    num_restarts: int = 0
    death_cause: str | None = None  # why it died, for people
    cause: str | None = None        # its kind: WORKER_DIED, RAY_KILL, ...
    descriptor: dict = dataclasses.field(default_factory=dict)  # to rebuild a handle

    def row(self) -> dict:
        return {"actor_id": self.actor_id, "class_name": self.class_name, "state": self.state,
                "name": self.name, "namespace": self.namespace, "node": self.node,
                "wid": self.wid, "pid": self.pid, "num_restarts": self.num_restarts,
                "death_cause": self.death_cause, "cause": self.cause}


class ActorTable:
    def __init__(self) -> None:
        self.actors: dict[str, ActorEntry] = {}
        self.by_name: dict[tuple[str, str], str] = {}
        self.by_handle_object: dict[str, str] = {}

    def register(self, entry: ActorEntry) -> None:
        if entry.actor_id in self.actors:
            return
        self.actors[entry.actor_id] = entry
        self.by_handle_object[entry.handle_object] = entry.actor_id
        if entry.name:
            self.by_name[(entry.namespace or "", entry.name)] = entry.actor_id

    def transition(self, actor_id: str, state: str, reason: str | None = None,
                   cause: str | None = None, **info) -> ActorEntry:
        entry = self.actors.get(actor_id)
        if entry is None:
            raise RaySimInternalError(f"state change for unknown actor {actor_id}")
        if state not in _LEGAL[entry.state]:
            raise RaySimInternalError(
                f"illegal actor state change {entry.state} -> {state} for {actor_id}")
        entry.state = state
        for key, value in info.items():
            setattr(entry, key, value)
        if state in (RESTARTING, DEAD):
            entry.death_cause, entry.cause = reason, cause
        if state == DEAD and entry.name:
            if self.by_name.get((entry.namespace or "", entry.name)) == actor_id:
                del self.by_name[(entry.namespace or "", entry.name)]
        trace.emit("gcs.actor_state", actor=actor_id, state=state, class_name=entry.class_name,
                   worker_pid=entry.pid, wid=entry.wid, actor_node=entry.node,
                   name=entry.name, reason=reason, handle_object=entry.handle_object,
                   namespace=entry.namespace, num_restarts=entry.num_restarts, cause=cause)
        return entry

    def lookup_name(self, name: str, namespace: str | None) -> ActorEntry | None:
        actor_id = self.by_name.get((namespace or "", name))
        return self.actors.get(actor_id) if actor_id else None

    def snapshot(self) -> dict:
        return {aid: e.row() for aid, e in self.actors.items()}
