"""The program a worker process runs (Ray's ``default_worker.py``).

Seed, phase 1: the raylet's zygote forks a worker process and calls ``run_forked`` in it.
This module is where the two layers of a worker meet: the core worker
(``runtime/core_worker/worker.py``) serves the tasks the raylet sends, and the API
(``get``, ``put``, ``.remote()`` called inside a task) reaches that core worker through the
session (``session.py``). The core worker does not import the API; this module hands it the
API's ``ObjectRef`` class and the hook that makes it the session's.

The driver names this module to the zygote (``launch.py``: ``preload["worker_module"]``),
as Ray's raylet is given the command that starts its workers.

Runs in: every worker process.
"""

from __future__ import annotations

from raysim import session
from raysim.object_ref import ObjectRef
from raysim.runtime.core_worker import worker


def _attach(core) -> None:
    session.begin(session.Session(core))


def run_forked(wid: str, role: str, actor_id: str | None, config: dict) -> None:
    """Body of a worker process, right after the zygote forked it. Never returns."""
    worker.run_forked(wid, role, actor_id, config, ObjectRef, _attach)
