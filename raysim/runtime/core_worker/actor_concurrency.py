"""How an actor's calls run in its worker: one at a time, on threads, or on an event loop.

Seed, phase 4 step 3: "actors process methods serially". That is Ray's default for an actor
whose methods are plain functions: its worker runs one call at a time, in the order each
caller submitted them. Ray has two other kinds of actor, and so does raysim:

* a **threaded actor** (``@ray.remote(max_concurrency=N)``, N > 1, plain methods) runs up to
  N calls at once, each on a thread of a pool of N (Ray's ``BoundedExecutor``). The calls
  share the actor's heap: guarding its state is the user's business, as in Ray;
* an **async actor** (any ``async def`` method) runs its calls as coroutines on one event
  loop, in a thread of its own, up to ``max_concurrency`` at once (Ray's default is 1,000).
  A plain method of an async actor, and its constructor, run on the loop's thread too
  (blocking it meanwhile), as in Ray. ``raysim.cancel`` of a running call cancels its
  asyncio task: the coroutine gets ``CancelledError`` where it awaits, and the caller
  ``RayTaskError(TaskCancelledError)``.

The worker's main thread keeps receiving calls in order and hands each over; the arguments of
an async call are read before it reaches the loop, so that the loop never waits for the
store (Ray resolves an actor task's arguments before it is scheduled, too).

Runs in: an actor's worker process. Trace events: none of its own; each call's
``task.execute`` spans overlap on the timeline, which is how a reader sees the concurrency.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any, Protocol

from raysim.runtime.common.task_spec import TaskSpec
from raysim.trace import writer as trace


class Call:
    """One task or actor call as it runs here: what to run, and how it ended."""

    __slots__ = ("spec", "attempt", "target", "args", "kwargs", "start_ts", "end_ts", "ok",
                 "retry", "retryable", "error_text", "results")

    def __init__(self, spec: TaskSpec, attempt: int) -> None:
        self.spec = spec
        self.attempt = attempt
        self.target: Any = None
        self.args: tuple = ()
        self.kwargs: dict = {}
        self.start_ts = self.end_ts = trace.now()
        self.ok = True
        self.retry = False  # a task's exception its retry_exceptions covers: it runs again
        self.retryable = False  # an actor call's exception its caller may retry
        self.error_text: str | None = None
        self.results: list | None = None  # one entry per return; None until it ends




class Worker(Protocol):
    """What the ways of running calls need of the worker (``worker.py``'s ``Worker``)."""

    core: Any
    cancelled_calls: set[str]

    def execute(self, spec: TaskSpec, locations: dict, attempt: int) -> None: ...
    def begin(self, spec: TaskSpec, locations: dict, attempt: int) -> Call | None: ...
    def run_actor_code(self, call: Call) -> Any: ...
    def succeeded(self, call: Call, value: Any) -> None: ...
    def interrupted(self, call: Call, interrupt: BaseException) -> None: ...
    def failed(self, call: Call, e: Exception) -> None: ...
    def exited(self, call: Call) -> None: ...
    def end(self, call: Call) -> None: ...


# Ray's default max_concurrency for an async actor (threaded actors default to 1).
DEFAULT_ASYNC_MAX_CONCURRENCY = 1000


def for_actor(worker: Worker, descriptor: dict) -> SerialCalls | ThreadedCalls | AsyncCalls:
    """The way this actor runs its calls, from its class and options."""
    max_concurrency = descriptor.get("max_concurrency")
    if descriptor.get("is_async"):
        return AsyncCalls(worker, max_concurrency or DEFAULT_ASYNC_MAX_CONCURRENCY)
    if max_concurrency and max_concurrency > 1:
        return ThreadedCalls(worker, max_concurrency)
    return SerialCalls(worker)


class SerialCalls:
    """One call at a time, on the worker's main thread, in the order they arrive."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def create(self, spec: TaskSpec, locations: dict, attempt: int) -> None:
        self.worker.execute(spec, locations, attempt)

    def submit(self, spec: TaskSpec, locations: dict, attempt: int) -> None:
        self.worker.execute(spec, locations, attempt)

    def cancel_running(self, task_id: str) -> bool:
        return False  # a running method is never interrupted

    def drain(self) -> None:
        pass

    def stop(self) -> None:
        pass


class ThreadedCalls:
    """Up to ``max_concurrency`` calls at once, each on a thread of the actor's pool."""

    def __init__(self, worker: Worker, max_concurrency: int) -> None:
        from concurrent.futures import ThreadPoolExecutor  # only concurrent actors need it
        self.worker = worker
        self.pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="raysim-actor")

    def create(self, spec: TaskSpec, locations: dict, attempt: int) -> None:
        self.worker.execute(spec, locations, attempt)  # before any call: on the main thread

    def submit(self, spec: TaskSpec, locations: dict, attempt: int) -> None:
        self.pool.submit(self._run, spec, locations, attempt)

    def _run(self, spec: TaskSpec, locations: dict, attempt: int) -> None:
        try:
            self.worker.execute(spec, locations, attempt)
        finally:
            trace.flush()

    def cancel_running(self, task_id: str) -> bool:
        return False  # threads cannot be interrupted: the method may poll is_canceled()

    def drain(self) -> None:
        """The actor is exiting: let the calls it was given finish first."""
        self.pool.shutdown(wait=True)

    def stop(self) -> None:
        """The actor ends itself (exit_actor()): calls not started never start; those
        running on other threads cannot be interrupted, and end with the process."""
        self.pool.shutdown(wait=False, cancel_futures=True)


class AsyncCalls:
    """Calls as coroutines on the actor's own event loop, up to ``max_concurrency`` at once."""

    def __init__(self, worker: Worker, max_concurrency: int) -> None:
        import asyncio  # imported by the actors that need it: most workers never do
        self.worker = worker
        self.loop = asyncio.new_event_loop()
        self.running: dict[str, asyncio.Task] = {}  # task id -> its asyncio task (loop thread)
        self.pending: set = set()  # futures of calls handed over and not finished
        self._lock = threading.Lock()
        self.slots = asyncio.Semaphore(max_concurrency)  # bound to the loop at first use
        self.thread = threading.Thread(target=self._run_loop, name="raysim-asyncio",
                                       daemon=True)
        self.thread.start()

    def _run_loop(self) -> None:
        import asyncio
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def create(self, spec: TaskSpec, locations: dict, attempt: int) -> None:
        """The constructor runs on the loop, like the methods, and before them: it may
        start tasks on the loop (``asyncio.create_task``), as in Ray."""
        self.submit(spec, locations, attempt)

    def submit(self, spec: TaskSpec, locations: dict, attempt: int) -> None:
        import asyncio

        # On the main thread: arguments are read here, so the loop never blocks on the store.
        call = self.worker.begin(spec, locations, attempt)
        self.worker.core.current_task = None
        trace.set_phase(None)
        if call is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._run(call), self.loop)
        with self._lock:
            self.pending.add(future)
        future.add_done_callback(self._finished)

    def _finished(self, future) -> None:
        with self._lock:
            self.pending.discard(future)

    async def _run(self, call: Call) -> None:
        worker, spec = self.worker, call.spec
        # This coroutine's own context: its phase and task, whatever else runs on the loop.
        trace.set_phase(spec.phase)
        worker.core.current_task = spec
        try:
            if call.results is None:
                async with self.slots:
                    await self._invoke(call)
        finally:
            worker.end(call)
            trace.flush()

    async def _invoke(self, call: Call) -> None:
        import asyncio
        worker, spec = self.worker, call.spec
        if spec.task_id in worker.cancelled_calls:  # cancelled while it waited for a slot
            worker.interrupted(call, asyncio.CancelledError())
            return
        self.running[spec.task_id] = asyncio.current_task()
        call.start_ts = trace.now()
        try:
            value = worker.run_actor_code(call)
            if inspect.iscoroutine(value):  # (asyncio.iscoroutine also takes generators)
                value = await value
            worker.succeeded(call, value)
        except asyncio.CancelledError as e:  # raysim.cancel reached it (cancel_running)
            worker.interrupted(call, e)
        except Exception as e:  # exit_actor() raises AsyncioActorExit: end() sees the exit
            worker.failed(call, e)
        except SystemExit:
            worker.exited(call)
        finally:
            self.running.pop(spec.task_id, None)

    def cancel_running(self, task_id: str) -> bool:
        """I/O thread: cancel the asyncio task of a call that runs or waits for a slot."""
        def cancel() -> None:
            task = self.running.get(task_id)
            if task is not None:
                task.cancel()
        self.loop.call_soon_threadsafe(cancel)
        return True

    def drain(self) -> None:
        """The actor is exiting: let the calls it was given finish first."""
        with self._lock:
            pending = list(self.pending)
        for future in pending:
            try:
                future.result()
            except BaseException:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)

    def stop(self, timeout: float = 2.0) -> None:
        """The actor ends itself (exit_actor()): every coroutine still on the loop is
        cancelled (its caller gets ActorDiedError), then the loop stops, so that nothing
        holds the actor any more and its ``__del__`` runs."""
        import asyncio

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(
                asyncio.wait_for(cancel_all(), timeout), self.loop).result(timeout + 1)
        except BaseException:
            pass  # a plain method blocks the loop: the process ends under it anyway
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
