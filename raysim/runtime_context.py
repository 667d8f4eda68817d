"""``raysim.get_runtime_context()``: who and where the calling code runs (Ray's
``ray/runtime_context.py``).

Beyond the founding document's phases, which never ask. In the driver it names the job, the
node and the namespace; inside a task or an actor call it also names the task (its id, its
name, its function), the actor, and the resources the raylet granted it. Each answer comes
from the process's own core worker, which knows the task it runs on this thread or in this
coroutine (a threaded or async actor runs several at once), so asking costs no message.

Runs in: the driver and every worker. Trace events: none.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

from raysim.runtime.common import ids
from raysim.runtime.common.task_spec import ACTOR_TASK
from raysim.runtime.raylet import scheduler

if TYPE_CHECKING:
    from raysim.runtime.core_worker.core_worker import CoreWorker


def _deprecated(what: str, instead: str) -> None:
    warnings.warn(f"{what} is deprecated and may be removed in a later version, as in Ray. "
                  f"Use {instead}() instead", DeprecationWarning, stacklevel=3)


class RuntimeContext:
    """``raysim.get_runtime_context()``: who and where the caller is."""

    def __init__(self, core: CoreWorker, namespace: str | None) -> None:
        self._core = core
        self._namespace = namespace

    # -- where: job, node, worker, session -------------------------------------------------

    def get_job_id(self) -> str:
        return self._core.job_id

    def get_node_id(self) -> str:
        return self._core.node_id

    def get_worker_id(self) -> str:
        return self._core.wid

    def get_session_name(self) -> str:
        return os.path.basename(self._core.session_dir)

    @property
    def namespace(self) -> str | None:
        """The namespace named actors are created and looked up in: the driver's
        ``init(namespace=...)``, inherited by everything it runs."""
        return self._namespace or self._core.namespace

    @property
    def gcs_address(self) -> str:
        return os.path.join(self._core.session_dir, "gcs.sock")

    @property
    def job_id(self) -> ids.JobID:
        _deprecated("runtime_context.job_id", "get_job_id")
        return ids.JobID(self.get_job_id())

    @property
    def node_id(self) -> ids.NodeID:
        _deprecated("runtime_context.node_id", "get_node_id")
        return ids.NodeID(self.get_node_id())

    # -- what runs: task, actor --------------------------------------------------------------

    def get_task_id(self) -> str | None:
        return self._core.current_task_id

    def get_task_name(self) -> str | None:
        """The task's name: its function's, or the one given with ``.options(name=...)``;
        ``Class.method`` for an actor call. None in the driver."""
        spec = self._core.current_task
        return spec.name if spec is not None else None

    def get_task_function_name(self) -> str | None:
        """The full name of the function the task runs (``module.function``,
        ``module.Class.method``). None in the driver."""
        spec, hooks = self._core.current_task, self._core.hooks
        return hooks.function_name_of(spec) if spec is not None and hooks is not None else None

    def get_actor_id(self) -> str | None:
        return self._core.current_actor_id

    def get_actor_name(self) -> str | None:
        """The name the actor was created with, "" if it has none; None outside an actor."""
        creation = self._core.actor_creation
        if creation is None:
            return None
        return creation.actor_name or ""

    @property
    def current_actor(self):
        """A handle to the actor this code runs in."""
        creation = self._core.actor_creation
        if creation is None:
            raise RuntimeError("current_actor is only available inside an actor's methods; "
                               "this code runs in a task or the driver. Tip: pass the actor "
                               "handle in as an argument instead.")
        from raysim.actor import ActorHandle
        return ActorHandle(creation.descriptor)

    @property
    def was_current_actor_reconstructed(self) -> bool:
        """Whether this actor's process is a restart (``max_restarts``) of an earlier one."""
        return self._core.actor_restarts > 0

    @property
    def task_id(self) -> ids.TaskID | None:
        _deprecated("runtime_context.task_id", "get_task_id")
        task_id = self.get_task_id()
        return ids.TaskID(task_id) if task_id is not None else None

    @property
    def actor_id(self) -> ids.ActorID | None:
        _deprecated("runtime_context.actor_id", "get_actor_id")
        actor_id = self.get_actor_id()
        return ids.ActorID(actor_id) if actor_id is not None else None

    def get_assigned_resources(self) -> dict[str, float]:
        """What the raylet granted the task running here: a task holds 1 CPU by default,
        an actor none (it needed one free to be placed, then gave it back)."""
        spec = self._core.current_task
        if spec is None:
            return {}
        if spec.kind == ACTOR_TASK:
            spec = self._core.actor_creation or spec
        held = scheduler.from_fixed(scheduler.task_request(spec))
        return {name: float(amount) for name, amount in held.items() if amount > 0}

    def get_placement_group_id(self) -> str | None:
        return None  # raysim has no placement groups

    def is_canceled(self) -> bool:
        """Whether ``raysim.cancel()`` reached the task or actor call running here. A running
        sync actor method is not interrupted; it may check this and stop early (Ray's API)."""
        core = self._core
        if core.current_task_id is None:
            raise RuntimeError(
                "is_canceled() tells a task or an actor method whether it was cancelled; "
                "called here, no task is running (the driver runs none). Tip: call it inside "
                "the remote function or actor method that may be cancelled.")
        return core.hooks is not None and core.current_task_id in core.hooks.cancelled

    def get(self) -> dict[str, Any]:
        """Ray's dict of ids: job, node and namespace; the task's id inside a task, and the
        actor's inside an actor. The ids read as text with ``.hex()``, as Ray's."""
        context: dict[str, Any] = {"job_id": ids.JobID(self.get_job_id()),
                                   "node_id": ids.NodeID(self.get_node_id()),
                                   "namespace": self.namespace}
        task_id = self.get_task_id()
        if task_id is not None:
            context["task_id"] = ids.TaskID(task_id)
        actor_id = self.get_actor_id()
        if actor_id is not None:
            context["actor_id"] = ids.ActorID(actor_id)
        return context

