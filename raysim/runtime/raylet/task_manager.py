"""Task failures in the raylet: retries, cancellation, and failing a task for good.

Not a step of the founding document, which follows a run where nothing goes wrong; this is
what Ray does when something does (its "Task Fault Tolerance" guide):

* A worker that dies while running a task (it crashed, called ``os._exit``, was SIGKILLed)
  makes the task run again on another worker, up to ``max_retries`` times (default 3, so four
  attempts; -1 for no limit). When none are left, ``get`` raises ``WorkerCrashedError``.
* An exception raised by the task's own code is its result, not a failure to retry, unless
  ``retry_exceptions`` is True or lists its class. The worker decides (it holds the
  exception), and such a retry waits ``task_retry_delay_ms`` first, as Ray's does.
* ``raysim.cancel`` removes a task that has not started from every queue (``get`` raises
  ``TaskCancelledError``); a running one is interrupted in its worker (``KeyboardInterrupt`` in
  the task's thread, so ``get`` raises ``RayTaskError(TaskCancelledError)``), or with
  ``force=True`` its worker is killed (``TaskCancelledError``). Cancelled tasks are never
  retried. ``recursive=True`` also cancels the tasks it submitted, which its worker owns,
  and (without ``force``, which kills the worker) the actor calls it made that have not
  started: its worker cancels those, as their caller.
* When a task's owner (the worker that submitted it) dies, nothing can read its result any
  more: a queued task is dropped and a running one's worker is killed (Ray's raylet kills the
  workers leased to a dead owner), with ``OwnerDiedError`` in the trace, never retried.
* When workers keep dying before they even connect (a broken import, a setup hook that
  raises), the tasks waiting for one fail after ``max_worker_startup_failures`` in a row.

Where raysim differs from Ray: Ray's ``TaskManager`` lives in the *owner's* core worker,
which resubmits a failed task to get a new worker lease. raysim's raylet sees every worker's
death first (the zygote reports it) and already holds each task's spec, so it retries there;
the owner hears only the final result. Retries of actor calls are the caller's business
(``task_submitter.py``), as in Ray, because the actor's restart decides them.

Runs in: the raylet process. Trace events: ``task.retry``, ``task.cancelled``,
``task.finished`` (with the error of a task that failed without finishing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from raysim.runtime.common import results
from raysim.runtime.common.config import Config
from raysim.runtime.common.protocol import LoopConnection
from raysim.runtime.common.task_spec import ACTOR_CREATION, TaskSpec, last_line
from raysim.runtime.raylet.local_task_manager import LocalTaskManager
from raysim.runtime.raylet.scheduler import TaskRecord
from raysim.runtime.raylet.worker_pool import (INTENDED_SYSTEM_EXIT, INTENDED_USER_EXIT,
                                               WorkerDeath, WorkerPool, WorkerRecord)
from raysim.trace import writer as trace

if TYPE_CHECKING:
    from raysim.runtime.raylet.actor_manager import LocalActorManager


class TaskManager:
    def __init__(self, queue: LocalTaskManager, pool: WorkerPool,
                 owner_of: Callable[[TaskSpec], LoopConnection | None], config: Config,
                 call_later: Callable[[float, Callable[[], None]], object],
                 kill_worker: Callable[[WorkerRecord, str, str], None],
                 actors: Callable[[], "LocalActorManager"]) -> None:
        self.queue = queue  # the raylet's task queues (local_task_manager.py)
        self.pool = pool
        self.owner_of = owner_of  # a task's owner (on any node): told it failed
        self.config = config
        self.call_later = call_later  # the raylet's event loop's timer
        self.kill_worker = kill_worker
        self.actors = actors  # the actor manager: creations that cannot start
        # Tasks that raised and wait out task_retry_delay_ms before running again.
        self.backoff: dict[str, TaskRecord] = {}

    # -- the end of an attempt ---------------------------------------------------------------

    def finished(self, record: TaskRecord, body: dict) -> None:
        """A worker reports a task done. It may ask for a retry (``retry_exceptions``)."""
        if body.get("retry") and not record.cancelled:
            delay_ms = self.config.task_retry_delay_ms
            self.retry(record, "exception", last_line(body.get("error_text", "")), delay_ms)
            return
        if record.cancelled and not body["ok"]:
            trace.emit("task.finished", phase=record.phase, task=record.task_id, ok=False,
                       error="TaskCancelledError", reason="interrupted by raysim.cancel()")
            return
        trace.emit("task.finished", phase=record.phase, task=record.task_id, ok=body["ok"])

    def worker_died(self, worker: WorkerRecord, death: WorkerDeath) -> None:
        """The worker running ``worker.task`` is gone: run the task again, or fail it."""
        record: TaskRecord | None = worker.task
        if record is None:
            return
        self.queue.stopped(record, worker)
        spec = record.spec
        if record.cancelled:
            self.fail(spec, *(record.stopped_with or ("TaskCancelledError",
                                                      _cancelled_message(spec))))
            return
        max_retries = spec.max_retries or 0
        if max_retries < 0 or record.attempt < max_retries:
            self.retry(record, "worker_died", f"worker {worker.wid} (pid {death.pid}) died: "
                                              f"{death.cause}")
            return
        self.fail(spec, "WorkerCrashedError",
                  f"The worker running task {spec.name} died unexpectedly: {death.cause}; it "
                  f"was attempt {record.attempt + 1} of {max_retries + 1}. Tip: worker.died "
                  f"in the trace shows each death; if the crash is transient, raise "
                  f"max_retries (-1 retries forever), otherwise fix what kills the worker.")

    def retry(self, record: TaskRecord, cause: str, reason: str, delay_ms: int = 0) -> None:
        record.attempt += 1
        record.worker = None
        spec = record.spec
        trace.emit("task.retry", phase=record.phase, task=record.task_id, name=spec.name,
                   attempt=record.attempt, max_retries=spec.max_retries or 0, cause=cause,
                   reason=reason, delay_ms=delay_ms or None)
        if delay_ms <= 0:
            self.queue.enqueue_ready(record)
            return
        self.backoff[record.task_id] = record
        self.call_later(delay_ms / 1000, lambda: self._backoff_over(record))

    def _backoff_over(self, record: TaskRecord) -> None:
        if self.backoff.pop(record.task_id, None) is None:
            return  # cancelled while it waited
        self.queue.enqueue_ready(record)
        self.queue.schedule()

    def fail(self, spec: TaskSpec, exc_type: str, message: str) -> None:
        """The task will not produce its result: tell its owner, through this raylet, the
        error its get() raises."""
        trace.emit("task.finished", phase=spec.phase, task=spec.task_id, ok=False,
                   error=exc_type, reason=message)
        owner = self.owner_of(spec)
        if owner is not None and spec.kind != ACTOR_CREATION:
            owner.send("task_done", {"task_id": spec.task_id, "ok": False,
                                     "returns": spec.returns, "actor_id": spec.actor_id,
                                     "results": [results.raised(exc_type, message)
                                                 for _ in spec.returns]}, spec.phase)

    def owner_died(self, wid: str, owner: str) -> None:
        """The worker ``wid`` (``owner`` names it) died: stop the tasks it submitted."""
        for task_id in self._owned_by(wid):
            record = self._take_queued(task_id)
            running = record is None
            record = record or self.queue.running.get(task_id)
            if record is None or record.cancelled:
                continue
            message = (f"Task {record.spec.name} ({task_id}) was stopped because its owner, "
                       f"{owner}, died: the owner of a task is the only process that can "
                       f"read its result, so it would run for nobody, as in Ray.")
            if not running:
                self.fail(record.spec, "OwnerDiedError", message)
                continue
            record.cancelled = True
            record.stopped_with = ("OwnerDiedError", message)
            self.kill_worker(record.worker, f"the owner of its task, {owner}, died",
                             INTENDED_SYSTEM_EXIT)

    # -- workers that cannot start -------------------------------------------------------------

    def give_up_starting(self, death: WorkerDeath) -> None:
        """Workers keep dying while they start: fail what waits for one, instead of starting
        more forever. Tasks still waiting for their arguments try again once those arrive."""
        limit = self.config.max_worker_startup_failures
        message = (f"raysim could not start a worker process: {limit} in a row died before "
                   f"connecting to the raylet (the last: {death.cause}). Tip: the workers' "
                   f"error is printed on stderr above; fix it (a module that fails to "
                   f"import? a worker_process_setup_hook that raises?) and submit again.")
        for record in self.queue.drain_ready():
            if record.spec.kind == ACTOR_CREATION:
                self.actors().startup_failed(record, message)
            else:
                self.fail(record.spec, "RaySystemError", message)
        self.pool.startup_failures = 0

    # -- cancellation ---------------------------------------------------------------------------

    def cancel(self, task_id: str, force: bool, recursive: bool) -> None:
        """``raysim.cancel`` of a task (not an actor call; see LocalActorManager.cancel_call)."""
        record = self._take_queued(task_id)
        if record is not None:
            trace.emit("task.cancelled", phase=record.phase, task=task_id,
                       name=record.spec.name, how="queued", force=force)
            self.fail(record.spec, "TaskCancelledError", _cancelled_message(record.spec))
            return
        record = self.queue.running.get(task_id)
        if record is None or record.cancelled:
            return  # finished already, or unknown here: as in Ray, nothing happens
        record.cancelled = True
        worker: WorkerRecord = record.worker
        trace.emit("task.cancelled", phase=record.phase, task=task_id, name=record.spec.name,
                   how="force" if force else "interrupt", force=force)
        if force:
            self.kill_worker(worker, "raysim.cancel(force=True) killed it", INTENDED_USER_EXIT)
        else:
            worker.conn.send("cancel_task", {"task_id": task_id, "recursive": recursive},
                             record.phase)
        if recursive:
            # The tasks it submitted are owned by its worker, and cancelled with it.
            for child in self._owned_by(worker.wid):
                self.cancel(child, force, recursive)

    def _take_queued(self, task_id: str) -> TaskRecord | None:
        """Remove a task that has not started from whichever queue holds it."""
        record = self.backoff.pop(task_id, None)
        if record is not None:
            return record
        return self.queue.take_queued(task_id)

    def _owned_by(self, wid: str) -> list[str]:
        records = self.queue.records(also=self.backoff.values())
        return list(dict.fromkeys(r.task_id for r in records
                                  if r.spec.owner == wid and r.spec.kind != ACTOR_CREATION))


def _cancelled_message(spec: TaskSpec) -> str:
    return (f"Task {spec.name} ({spec.task_id}) was cancelled by raysim.cancel() before it "
            f"finished, so it has no result. Tip: submit it again if you still need it.")
