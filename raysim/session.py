"""The session: what ``init()`` makes and ``shutdown()`` undoes, reached through ``current()``.

Seed, phase 1: "When ray.init() is called, several processes start on your machine". In the
driver a session is the processes ``init()`` started (``runtime/node.py``) and the driver's
own core worker connected to them; in a worker process it is that worker's core worker,
attached when the process starts (``raysim/default_worker.py``), so that ``get``, ``put`` and
``.remote()`` work inside tasks too.

Every API class reaches the session through this module's functions, never through another
module's globals: an ``ObjectRef`` made in a process counts as a reference held by that
process's core worker (``current_core()``), and a ref or handle left over from a session that
was shut down is refused (``check_same_session``).

Ray keeps the same facts in ``ray._private.worker.global_worker`` and its ``mode`` integer;
raysim keeps one object, made in one place (``launch.start``, the body of ``init()``) and
undone in one place (``launch.stop``).

Runs in: the driver, and in every worker. Trace events: ``phase.begin`` (each driver API
call opens a phase: ``begin_phase``).
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

from raysim import exceptions
from raysim.call_site import user_call_site
from raysim.rejections import rejected
from raysim.trace import writer as trace

if TYPE_CHECKING:
    from raysim.runtime.core_worker.core_worker import CoreWorker


class Session:
    """One running session, as this process sees it."""

    def __init__(self, core: CoreWorker, node=None, context: dict | None = None,
                 namespace: str | None = None, actor_strategy: str | None = None) -> None:
        self.core = core
        self.node = node  # NodeProcesses: in the driver, which started them; None in a worker
        self.context = context  # what init() returned (driver)
        self.namespace = namespace  # as init() named it (None: anonymous)
        # Where actors go when their options say nothing: "SPREAD" under raysim trace
        # --nodes, so that a script's actors land on different nodes.
        self.actor_strategy = actor_strategy
        self._phases = itertools.count(1)

    def begin_phase(self, api: str, detail: str | None = None) -> None:
        """Open the trace phase of one driver API call (``phase.begin``), at the user's line."""
        if self.core.role != "driver" or not trace.enabled():
            return
        phase = next(self._phases)
        trace.set_phase(phase)
        site, code = user_call_site()
        trace.emit("phase.begin", phase=phase, api=api, site=site, code=code, detail=detail)


_current: Session | None = None
lock = threading.RLock()  # init() and shutdown(): one at a time (launch.py)


def current() -> Session | None:
    return _current


def current_core() -> CoreWorker | None:
    """This process's core worker, if a session is running (where each ObjectRef counts)."""
    session = _current
    return session.core if session is not None else None


def require_core(api: str) -> CoreWorker:
    session = _current
    if session is None:
        raise exceptions.RaySimNotInitializedError(
            f"{api}() needs a running raysim session, and none is running (raysim.init() "
            f"was not called, or raysim.shutdown() was). Tip: call raysim.init() first (or "
            f"run the script with `raysim trace script.py`).")
    return session.core


def begin_phase(api: str, detail: str | None = None) -> None:
    session = _current
    if session is not None:
        session.begin_phase(api, detail)


def check_same_session(value: Any, where: str, api: str) -> None:
    """Refuse an ObjectRef or actor handle left over from a session that was shut down.

    Its object or actor went with that session; using it would wait forever."""
    core = getattr(value, "_core", None)
    if core is not None and core is not current_core():
        what = "actor" if hasattr(value, "_actor_id") else "object"
        redo = "create the actor again" if what == "actor" else \
            "put the value or submit the task again"
        raise rejected(api, ValueError(
            f"{where[0].upper()}{where[1:]} is {value!r}, from a raysim session that has "
            f"been shut down; its {what} ended with that session. Tip: {redo} in the "
            f"current session."))


def get_values(refs: list, timeout: float | None, api: str) -> list:
    """Seed phase 5: the values of ``refs``, in a phase of their own."""
    core = require_core(f"raysim.{api}")
    begin_phase(api, f"{len(refs)} object(s)")
    try:
        return core.reader.get([r.id for r in refs], timeout)
    finally:
        trace.flush()  # a driver writes its events when each API call returns


def begin(session: Session) -> None:
    """The session ``init()`` started, or a worker process's (``default_worker.py``)."""
    global _current
    _current = session


def end() -> None:
    global _current
    _current = None
