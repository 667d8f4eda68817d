"""A worker process: runs tasks, or hosts one actor, for its raylet.

Seed, phase 3 steps 4-8 (for an actor): the worker receives the class and the constructor's
arguments, resolves ``model_ref`` from the store, calls ``__init__``, and the actor's state
(``self.model``, ``self.prediction_count``) lives in this process's heap. Phase 4 step 4-8:
it runs ``predict``, updates ``prediction_count``, and sends the result back inline or
through the store.

A worker is forked from the zygote (``zygote.py``), connects to its raylet and to the GCS,
and then loops: take the next ``push_task`` (delivered by the core worker's I/O thread),
run it, send ``task_done``. Methods of one actor therefore run one at a time, in the order the
raylet pushed them, which is the order the caller submitted them; a threaded or async actor
hands them to its threads or its event loop instead (``actor_concurrency.py``).

Faults, the worker's side (as in Ray):

* an exception the task's ``retry_exceptions`` covers, with retries left, is not sent to the
  caller: the raylet is asked to run the task again (``task_manager.py``). An actor call's
  error goes to its caller marked ``retryable``: the caller keeps the call's count of
  retries, and sends it again or takes the error (``task_submitter.py``);
* ``raysim.cancel`` of the running task raises ``KeyboardInterrupt`` in the thread running it
  (a signal to the main thread, so a ``time.sleep`` or a blocking ``get`` is interrupted
  too), and the caller's ``get`` raises ``RayTaskError(TaskCancelledError)``. A task that had
  not started yet does not start. An actor's running method is not interrupted (unless it is
  a coroutine: its asyncio task is cancelled), but its caller gets ``TaskCancelledError``
  instead of its value, as in Ray; a call cancelled before it started is skipped;
* ``worker_process_setup_hook`` (``raysim.init(runtime_env=...)``) runs before the worker
  connects: if it fails, the worker dies while starting, which the raylet counts;
* when its raylet or the GCS dies, the worker exits at once, even in the middle of a task
  (``component.died``, then ``process.stopping``). Should it miss that (busy in C code),
  the kernel kills it anyway when its parent, the zygote, dies with the raylet
  (``procutil.die_with_parent``).

Differences from Ray: the actor keeps a reference to its constructor's ``ObjectRef``
arguments for as long as it lives, which is what makes the founding document's count of 4
(driver + 3 actors) true. Ray resolves such arguments before ``__init__`` and keeps no
reference afterwards (docs/modern-ray.md#constructor-references).

Runs in: each worker process. Trace events: ``process.started``, ``function.loaded``,
``task.args_resolved``, ``task.execute``, ``actor.state``, ``object.inlined``,
``task.cancelled`` (a call skipped), ``component.died``, and the store events of large
results.
"""

from __future__ import annotations

import atexit
import gc
import inspect
import os
import queue
import reprlib
import signal
import threading
import time
import traceback
from collections import Counter
from typing import Any, Callable

import cloudpickle

from raysim import exceptions
from raysim.runtime.common import (ids, procutil, protocol, results, runtime_env, serialization,
                                   task_spec)
from raysim.runtime.common.config import Config
from raysim.runtime.common.protocol import connect_unix
from raysim.runtime.common.task_spec import ACTOR_TASK, TaskSpec
from raysim.runtime.core_worker import actor_concurrency
from raysim.runtime.core_worker.actor_concurrency import Call
from raysim.runtime.core_worker.core_worker import CoreWorker, WorkerHooks
from raysim.runtime.core_worker.task_submitter import _ArgRef
from raysim.trace import writer as trace

_RAYSIM_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_forked(wid: str, role: str, actor_id: str | None, session: dict, ref_class: type,
               attach: Callable[[CoreWorker], None]) -> None:
    """Body of a worker process, right after the zygote forked it. Never returns.

    ``ref_class`` is the API's ObjectRef, and ``attach`` makes the new core worker the one
    the API in this process reaches (``raysim/default_worker.py`` passes both)."""
    code = 0
    worker = None
    try:
        procutil.die_with_parent(signal.SIGKILL)
        procutil.set_process_name("raysim::Actor" if role == "actor" else "raysim::worker")
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
        procutil.exit_on_sigterm()  # shutdown: write the last events, then go
        atexit._clear()  # the zygote's exit handlers are not this worker's to run
        if trace.writer() is not None:
            trace.writer().drop_inherited("worker")
        protocol.reset_after_fork()
        preload = session.get("preload", {})
        runtime_env.apply_env_vars(preload.get("env_vars"))  # the job's, before its hook
        runtime_env.run_setup_hook(preload.get("worker_process_setup_hook"))
        worker = Worker(wid, role, actor_id, session, ref_class, attach)
        worker.run()
        worker.goodbye()
    except (SystemExit, KeyboardInterrupt, protocol.ConnectionClosed) as e:
        reason = "shutdown" if isinstance(e, SystemExit) else type(e).__name__
        if isinstance(e, SystemExit) and worker is not None:
            worker.goodbye()
        trace.emit("process.stopping", reason=reason)
    except BaseException:  # pragma: no cover - printed to the worker's stderr
        traceback.print_exc()
        code = 1
    finally:
        trace.flush()
        os._exit(code)


class Worker:
    def __init__(self, wid: str, role: str, actor_id: str | None, session: dict,
                 ref_class: type, attach: Callable[[CoreWorker], None]) -> None:
        self.role = role
        self.actor_id = actor_id
        self.session = session
        node_id = session["node_id"]
        session_dir = session["session_dir"]
        raylet = connect_unix(os.path.join(session_dir, f"raylet-{node_id}.sock"), "raylet")
        raylet.peer_id = node_id
        raylet.request("register_client", {"role": "worker", "wid": wid})
        gcs = connect_unix(os.path.join(session_dir, "gcs.sock"), "gcs")
        gcs.request("register_client", {"role": "worker", "wid": wid, "node": node_id})
        trace.emit("process.started", ppid=os.getppid(), role=role, wid=wid)
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        # Cancellation: ids cancelled (the I/O thread adds them), and the normal task whose
        # user code the main thread runs now, the only moment a KeyboardInterrupt is sent.
        self._cancelled: set[str] = set()
        self._in_user_code: str | None = None
        self._main_thread = threading.main_thread().ident
        signal.signal(signal.SIGINT, self._on_sigint)
        hooks = WorkerHooks(actor_id, self._tasks.put, self._on_cancel, self._cancelled,
                            self._function_name, self.request_exit)
        self.core = CoreWorker("worker", wid, node_id, session_dir, raylet, gcs,
                               session["store_fd"], session["store_capacity"],
                               Config.from_dict(session["config"]), session["job_id"], ref_class,
                               hooks)
        self.core.conns.on_death.append(self._control_plane_died)
        attach(self.core)  # the API in this process (get, put, .remote()) now reaches it
        self.functions: dict[str, Any] = {}
        self.actor: Any = None
        self.calls = actor_concurrency.SerialCalls(self)  # how an actor runs its calls
        # Why the actor is exiting on its own (exit_actor(), __ray_terminate__, sys.exit()),
        # once it is: every call that ends from then on fails with ActorDiedError.
        self.exit_reason: str | None = None
        self._exit_lock = threading.Lock()
        self.actor_calls = 0
        self._state_lock = threading.Lock()  # actor_calls and actor.state, for concurrent calls
        self.actor_arg_refs: list = []
        self._repr = reprlib.Repr()
        self._repr.maxstring = self._repr.maxother = self.core.config.actor_state_repr_limit
        self.core.start()

    def run(self) -> None:
        while True:
            trace.flush()
            body = self._tasks.get()
            if body["kind"] == "exit_worker":
                self.calls.drain()  # an actor's calls already given to threads or its loop
                return
            if body["kind"] == "exit_self":
                self.calls.stop()  # exit_actor(): calls queued or running are failed, not run
                return
            spec = body["spec"]
            if spec.kind == "actor_creation":
                # One at a time, on threads, or on an event loop (actor_concurrency.py). An
                # async actor's __init__ runs on its loop too, so it may start tasks there.
                self.calls = actor_concurrency.for_actor(self, spec.descriptor)
                self.calls.create(spec, body["locations"], body.get("attempt", 0))
                continue
            if spec.kind == ACTOR_TASK:
                self.calls.submit(spec, body["locations"], body.get("attempt", 0))
                continue
            self.execute(spec, body["locations"], body.get("attempt", 0))

    def _control_plane_died(self, error: BaseException) -> None:
        """I/O thread: the raylet or the GCS is gone, and with it whoever could use what
        this worker computes. Exit now, even in the middle of a task: a worker left running
        without its raylet would be an orphan nobody stops (Ray's workers exit with their
        raylet too)."""
        death = self.core.conns.death
        trace.emit("process.stopping",
                   reason=f"the {death.component if death else 'control plane'} died")
        trace.flush()
        os._exit(1)

    # -- one task ------------------------------------------------------------------------------

    @property
    def cancelled_calls(self) -> set[str]:
        """Ids of the calls ``raysim.cancel`` reached here (the I/O thread adds them)."""
        return self._cancelled

    def execute(self, spec: TaskSpec, locations: dict, attempt: int) -> None:
        """Run one task or actor call here, on this thread, from its arguments to its
        result's sending."""
        call = self.begin(spec, locations, attempt)
        if call is None:
            return
        if call.results is None:
            self.invoke(call)
        self.end(call)

    def begin(self, spec: TaskSpec, locations: dict, attempt: int) -> Call | None:
        """Phase 3 step 5 / phase 4 step 4: load the function and resolve the arguments.
        None if the call was cancelled before it started (and has been answered)."""
        core = self.core
        trace.set_phase(spec.phase)
        if spec.kind == ACTOR_TASK and spec.task_id in self._cancelled:
            self.core.reader.give_back(_pinned_places(spec, locations), [])
            self._skip_cancelled_call(spec)
            return None
        core.current_task = spec
        core.namespace = spec.namespace
        runtime_env.apply_env_vars(spec.env_vars)  # this worker runs only this environment
        if spec.kind == "actor_creation":
            core.actor_creation, core.actor_restarts = spec, attempt
        if spec.kind == "task":
            core.in_task = True
        core.refs.begin_deferring()
        call = Call(spec, attempt)
        try:
            try:
                function = self._function(spec)
            except BaseException:
                # Never to be read: give the places back.
                self.core.reader.give_back(_pinned_places(spec, locations), [])
                raise
            call.args, call.kwargs = self._resolve_args(spec, locations)
            if spec.kind == ACTOR_TASK:
                function = self._builtin_method(spec.method) or getattr(self.actor, spec.method)
            call.target = function
        except Exception as e:  # the function could not be loaded or an argument read
            self.failed(call, e)
        return call

    def invoke(self, call: Call) -> None:
        """Run the user's code on this thread (an async actor's calls run on its event loop
        instead: actor_concurrency.AsyncCalls)."""
        spec = call.spec
        call.start_ts = trace.now()
        try:
            if spec.kind == "task":
                value = self._run_cancellable(spec, call.target, call.args, call.kwargs)
            else:
                value = self.run_actor_code(call)
            self.succeeded(call, value)
        except KeyboardInterrupt as e:  # raysim.cancel interrupted it (see _on_sigint)
            self.interrupted(call, e)
        except Exception as e:  # the user's code raised (or its result could not be sent)
            self.failed(call, e)
        except SystemExit:
            if spec.kind == "task":
                raise  # a task's worker exits, as in Ray
            self.exited(call)

    def run_actor_code(self, call: Call) -> Any:
        """The constructor (the actor is what it returns) or a method."""
        value = call.target(*call.args, **call.kwargs)
        if call.spec.kind == "actor_creation":
            self.actor, value = value, None
        return value

    def exited(self, call: Call) -> None:
        """An actor's code raised SystemExit: exit_actor(), or sys.exit() (Ray takes both
        for the actor's wish to exit)."""
        call.end_ts = trace.now()
        call.ok = False
        self.request_exit(f"sys.exit() was called in {call.spec.name}")

    def succeeded(self, call: Call, value: Any) -> None:
        call.end_ts = trace.now()
        spec = call.spec
        if spec.kind == ACTOR_TASK and spec.task_id in self._cancelled:
            # Cancelled while it ran: it was not interrupted and ran to its end (its effects
            # stay, task.execute says ok), but as in Ray its caller gets TaskCancelledError,
            # not the value.
            message = (f"The call {spec.name} ({spec.task_id}) was cancelled by "
                       f"raysim.cancel() while it ran: it ran to its end, but its result is "
                       f"dropped. Tip: call the method again if you still need it.")
            call.results = [results.raised("TaskCancelledError", message) for _ in spec.returns]
            return
        if spec.streaming:
            value = self._stream(spec, value)  # the values go back one by one; then the count
        call.results = self._results(spec, value)

    def _stream(self, spec: TaskSpec, values) -> int:
        """A generator task (``generator.py``): run it, sending each value to the caller as
        soon as it is made, inline or through the store like any result. Its own return is
        how many it made; an exception stops it and becomes that return's error."""
        core, count = self.core, 0
        for value in values:
            object_id = ids.item_object_id(spec.task_id, count)
            result = core.store_result(object_id, value, spec.owner_holder,
                                       f"value {count + 1} yielded by {spec.name}()")
            core.conns.send_to_owner(spec, "task_done", {
                "task_id": spec.task_id, "worker_id": core.wid, "ok": True, "item": count,
                "returns": [object_id], "results": [result], "actor_id": spec.actor_id})
            count += 1
        return count

    def interrupted(self, call: Call, interrupt: BaseException) -> None:
        call.end_ts = trace.now()
        call.ok = False
        call.error_text, entry = self._cancelled_entry(call.spec, interrupt)
        call.results = [entry for _ in call.spec.returns]

    def failed(self, call: Call, e: Exception) -> None:
        call.end_ts = trace.now()
        call.ok = False
        spec = call.spec
        call.retry = spec.kind == "task" and task_spec.retries_exception(spec, e, call.attempt)
        call.retryable = spec.kind == ACTOR_TASK and task_spec.exception_is_retryable(spec, e)
        call.error_text, entry = self._error_entry(spec, e)
        call.results = [entry for _ in spec.returns]

    def end(self, call: Call) -> None:
        """Phase 4 steps 5-8: record the run, and send the result straight to the caller."""
        core = self.core
        spec, kind = call.spec, call.spec.kind
        self._cancelled.discard(spec.task_id)
        if self.exit_reason is not None and kind != "task":
            call.ok = False
            message = (f"The actor {self.actor_id} exited on purpose while running "
                       f"{spec.name}: {self.exit_reason}. Its pending and later calls fail. "
                       f"Tip: create a new actor to go on.")
            call.results = [results.raised("ActorDiedError", message) for _ in spec.returns]
            call.retryable = False
        trace.emit("task.execute", ts=call.start_ts, task=spec.task_id, name=spec.name,
                   dur=call.end_ts - call.start_ts, ok=call.ok, actor=spec.actor_id,
                   attempt=call.attempt)
        if kind != "task" and self.actor is not None:
            with self._state_lock:
                if kind == ACTOR_TASK:
                    self.actor_calls += 1
                trace.emit("actor.state", actor=spec.actor_id, task=spec.task_id,
                           attrs=self._actor_attrs(), calls=self.actor_calls)
        core.in_task = False
        core.refs.flush_deferred()
        core.current_task = None
        if not call.retry:
            # Phase 4 steps 5-8: the result goes straight back to the caller (for a creation,
            # the news that the arguments it held for the task can be released). A task
            # about to run again has no result yet.
            body = {"task_id": spec.task_id, "worker_id": core.wid, "ok": call.ok,
                    "results": call.results, "returns": spec.returns,
                    "actor_id": spec.actor_id}
            if call.retryable:
                # The caller retries it if the call's max_task_retries allows (it keeps the
                # count, as for retries after the actor's death), or gets the error.
                body["retryable"] = task_spec.last_line(call.error_text or "")
            core.conns.send_to_owner(spec, "task_done", body)
        if kind != ACTOR_TASK:
            # The raylet frees the task's resources (or, for a creation, marks the actor
            # alive and sends it the calls that waited). Actor calls hold no resources.
            body = {"task_id": spec.task_id, "task_kind": kind, "ok": call.ok,
                    "retry": call.retry}
            if call.error_text is not None:
                body["error_text"] = call.error_text
            core.conns.tell_raylet("task_done", body)
        if kind == "actor_creation" and call.ok:
            # Seed phase 3 step 8: the worker registers the actor with the GCS. (After its
            # raylet hears: whoever learns from the GCS that the actor is alive finds its
            # raylet ready to push calls, not still restarting it.)
            core.conns.tell_gcs("actor_update", {
                "actor_id": spec.actor_id, "state": "ALIVE", "pid": os.getpid(),
                "wid": core.wid, "node": core.node_id})
        trace.set_phase(None)  # until the next task, nothing here belongs to a driver call

    # -- the actor's own end ---------------------------------------------------------------

    def _builtin_method(self, name: str):
        """The methods every actor has (Ray's): ``__ray_ready__`` answers once the actor is
        alive; ``__ray_terminate__`` ends it after the calls submitted before it."""
        if name == "__ray_ready__":
            return lambda: True
        if name == "__ray_terminate__":
            return lambda: self.request_exit("__ray_terminate__ was called")
        return None

    def request_exit(self, reason: str) -> None:
        """The actor ends itself (``exit_actor()``, ``__ray_terminate__``, ``sys.exit()``),
        from whichever thread runs its code: the raylet marks it DEAD for good (no restart)
        and fails what its callers still wait for; then this process leaves its loop, runs
        the actor's ``__ray_shutdown__``, ``__del__`` and exit handlers, and exits."""
        with self._exit_lock:
            if self.exit_reason is not None:
                return
            self.exit_reason = reason
        self.core.conns.ask_raylet("kill_actor", {
            "actor_id": self.actor_id, "reason": reason, "self_exit": True})
        self._tasks.put({"kind": "exit_self"})

    def goodbye(self) -> None:
        """A graceful end (out of scope, exit_actor(), shutdown): the user's clean-up runs,
        as in Ray: the actor's ``__ray_shutdown__`` and ``__del__``, then ``atexit``
        handlers. A killed process (raysim.kill, a crash) runs none of them."""
        actor, self.actor = self.actor, None
        hook = getattr(actor, "__ray_shutdown__", None)
        try:
            if callable(hook):
                hook()
        except Exception:
            traceback.print_exc()
        del actor, hook
        gc.collect()
        atexit._run_exitfuncs()

    # -- cancellation ----------------------------------------------------------------------

    def _run_cancellable(self, spec, function, args, kwargs) -> Any:
        """Run a task's function where raysim.cancel can interrupt it."""
        self._in_user_code = spec.task_id
        try:
            if spec.task_id in self._cancelled:  # cancelled before it could start
                raise KeyboardInterrupt
            return function(*args, **kwargs)
        finally:
            self._in_user_code = None

    def _on_cancel(self, body: dict) -> None:
        """I/O thread: the raylet forwards raysim.cancel of a task pushed to this worker.
        ``recursive``: the actor calls the task made are cancelled too (its child tasks the
        raylet cancels itself); like any actor call, only those that have not started."""
        task_id = body["task_id"]
        self._cancelled.add(task_id)
        self.calls.cancel_running(task_id)  # an async actor's call: its asyncio task
        if body.get("recursive"):
            for call, actor_id in self.core.submitter.calls_made_by(task_id):
                self.core.conns.tell_raylet("cancel_task", {
                    "task_id": call, "actor_id": actor_id, "force": False, "recursive": True})
        if self._in_user_code == task_id:
            # A real signal, not only a flag: it also wakes the main thread from a blocking
            # call (sleep, a lock, get), which then raises KeyboardInterrupt, as in Ray.
            signal.pthread_kill(self._main_thread, signal.SIGINT)

    def _on_sigint(self, signum, frame) -> None:
        # Ctrl-C in the terminal reaches workers too; only a cancel interrupts a task.
        if self._in_user_code is not None and self._in_user_code in self._cancelled:
            raise KeyboardInterrupt

    def _cancelled_entry(self, spec, interrupt: KeyboardInterrupt) -> tuple[str, list]:
        """RayTaskError(TaskCancelledError), with where the task was interrupted."""
        text = _user_traceback(interrupt)
        cause = exceptions.TaskCancelledError(
            spec.task_id, f"Task {spec.name} ({spec.task_id}) was cancelled by "
                          f"raysim.cancel() while it ran, so it has no result. Tip: submit "
                          f"it again if you still need it.")
        err = exceptions.RayTaskError(spec.name, f"{text}{cause}", cause, os.getpid(),
                                      self.core.node_id)
        return text, results.error(cloudpickle.dumps(err))

    def _skip_cancelled_call(self, spec) -> None:
        """An actor call cancelled after it was pushed here but before it started."""
        self._cancelled.discard(spec.task_id)
        trace.emit("task.cancelled", task=spec.task_id, name=spec.name, how="not_started",
                   force=False)
        message = (f"The call {spec.name} ({spec.task_id}) was cancelled by raysim.cancel() "
                   f"before it ran, so it has no result. Tip: call the method again if you "
                   f"still need it.")
        self.core.conns.send_to_owner(spec, "task_done", {
            "task_id": spec.task_id, "worker_id": self.core.wid, "ok": False,
            "results": [results.raised("TaskCancelledError", message) for _ in spec.returns],
            "returns": spec.returns, "actor_id": spec.actor_id})
        trace.set_phase(None)

    # -- functions and arguments -------------------------------------------------------------

    def _function(self, spec: dict) -> Any:
        function_id = spec.function_id
        function = self.functions.get(function_id)
        if function is None:
            pickled = self.core.load_function(function_id)
            function = cloudpickle.loads(pickled)
            self.functions[function_id] = function
            trace.emit("function.loaded", function_id=function_id, name=spec.name,
                       size=len(pickled))
        return function

    def _function_name(self, spec: TaskSpec) -> str:
        """``module.function``, or ``module.Class.method`` for an actor call (an async
        method by its qualified name, as Ray reports it)."""
        function = self.functions.get(spec.function_id)
        module = getattr(function, "__module__", None) or "__main__"
        if spec.kind != ACTOR_TASK:
            return f"{module}.{getattr(function, '__name__', spec.name)}"
        method = getattr(function, spec.method, None)
        if inspect.iscoroutinefunction(method):
            return f"{module}.{method.__qualname__}"
        return f"{module}.{function.__name__}.{spec.method}"

    def _resolve_args(self, spec: dict, locations: dict) -> tuple[tuple, dict]:
        """Phase 3 step 5: turn argument references into values, zero-copy from the store."""
        start = time.perf_counter_ns()
        args, kwargs = serialization.deserialize(memoryview(spec.args))
        deps = spec.deps
        if not deps:
            return args, kwargs
        values = []
        places, done = _pinned_places(spec, locations), []
        try:
            for object_id, inline in deps:
                if inline is not None:
                    values.append(serialization.deserialize(memoryview(inline)))
                else:
                    values.append(
                        self.core.reader.read_placed(object_id, places, None, done))
        finally:
            self.core.reader.give_back(places, done)
        if spec.kind == "actor_creation":
            self.actor_arg_refs = [self.core.ref_class(oid, spec.owner) for oid, inline in deps
                                   if inline is None]
        trace.emit("task.args_resolved", task=spec.task_id, objs=[oid for oid, _ in deps],
                   dur=time.perf_counter_ns() - start)
        args = tuple(values[a.index] if type(a) is _ArgRef else a for a in args)
        kwargs = {k: values[v.index] if type(v) is _ArgRef else v for k, v in kwargs.items()}
        return args, kwargs

    def _results(self, spec: dict, value: Any) -> list:
        returns = spec.returns
        if not returns:
            return []
        if len(returns) == 1:
            values = [value]
            where = [f"the return value of {spec.name}()"]
        else:
            values = _split_returns(spec.name, value, len(returns))
            where = [f"return value {i + 1} of {spec.name}()" for i in range(len(returns))]
        owner = spec.owner_holder
        return [self.core.store_result(oid, v, owner, what)
                for oid, v, what in zip(returns, values, where)]

    def _error_entry(self, spec: dict, e: Exception) -> tuple[str, list]:
        """The error every return of the task becomes. Its cause is the user's exception:
        for a nested task's error re-raised through ``get``, the innermost one, so that
        ``except IndexError`` in the driver catches an IndexError raised two tasks down (the
        text keeps both tracebacks), as in Ray. A cause that cannot be pickled becomes a
        ``RayError`` that says so and carries its traceback, and one that cannot be
        unpickled an ``UnserializableException``, as in Ray."""
        text = _user_traceback(e)
        cause = e.cause if isinstance(e, exceptions.RayTaskError) and e.cause else e
        err = exceptions.RayTaskError(spec.name, text, cause, os.getpid(), self.core.node_id)
        try:
            data = cloudpickle.dumps(err)
        except Exception as why:
            kind = f"{type(cause).__module__}.{type(cause).__name__}"
            err.cause = exceptions.RayError(
                f"Exception {kind} isn't serializable: {why}.\nOriginal exception "
                f"details:\n{text}Tip: keep what cannot be pickled (locks, sockets, open "
                f"files) out of exceptions raised in tasks, or raise a plain exception with "
                f"a message.")
            return text, results.error(cloudpickle.dumps(err))
        try:
            cloudpickle.loads(data)  # the caller must be able to rebuild it
        except Exception:
            # Pickles, but cannot be rebuilt (an __init__ that takes other arguments than
            # its args): Ray's UnserializableException, with the original's traceback.
            return text, results.raised("UnserializableException",
                                        f"raysim::{spec.name}() (pid={os.getpid()})\n{text}")
        return text, results.error(data)

    def _actor_attrs(self) -> dict:
        try:
            items = vars(self.actor).items()
        except TypeError:
            return {}
        return {k: self._repr.repr(v) for k, v in items}


def _pinned_places(spec, locations: dict) -> dict[str, list[int]]:
    """The arguments' places pushed with the task, each pinned by the raylet once per time
    the task lists it: {object id: [offset, size, pins]}."""
    counts = Counter(oid for oid, inline in spec.deps if inline is None)
    return {oid: [offset, size, counts[oid]] for oid, (offset, size) in locations.items()}


def _split_returns(name: str, value: Any, num_returns: int) -> list:
    """The values of a task with num_returns > 1: its result must hold exactly that many
    (Ray: "Task returned 3 objects, but num_returns=2.")."""
    try:
        values = list(value)
    except TypeError:
        raise ValueError(
            f"{name}() returned a single {type(value).__name__} ({reprlib.repr(value)}), but "
            f"it was declared with num_returns={num_returns}. Tip: return a tuple of exactly "
            f"{num_returns} values, or remove num_returns.") from None
    if len(values) != num_returns:
        raise ValueError(
            f"{name}() returned {len(values)} values (a {type(value).__name__}), but it was "
            f"declared with num_returns={num_returns}. Tip: return exactly {num_returns} "
            f"values, or set num_returns={len(values)}.")
    return values


def _user_traceback(e: BaseException) -> str:
    """The traceback as the user wrote it: raysim's own frames left out."""
    tb = traceback.TracebackException.from_exception(e)
    tb.stack = traceback.StackSummary.from_list(
        [f for f in tb.stack if not f.filename.startswith(_RAYSIM_DIR)])
    return "".join(tb.format())

