"""A worker process: runs tasks, or hosts one actor, for its raylet.

Seed, phase 3 steps 4-8 (for an actor): the worker receives the class and the constructor's
arguments, resolves ``model_ref`` from the store, calls ``__init__``, and the actor's state
(``self.model``, ``self.prediction_count``) lives in this process's heap. Phase 4 step 4-8:
it runs ``predict``, updates ``prediction_count``, and sends the result back inline or
through the store.

A worker is forked from the zygote (``zygote.py``), connects to its raylet and to the GCS,
and then loops: take the next ``push_task`` (delivered by the core worker's I/O thread),
run it, send ``task_done``. Methods of one actor therefore run one at a time, in the order the
raylet pushed them, which is the order the caller submitted them.

Differences from Ray: the actor keeps a reference to its constructor's ``ObjectRef``
arguments for as long as it lives, which is what makes the founding document's count of 4
(driver + 3 actors) true. Ray resolves such arguments before ``__init__`` and keeps no
reference afterwards (ACCURACY.md #8).

Runs in: each worker process. Trace events: ``process.started``, ``function.loaded``,
``task.args_resolved``, ``task.execute``, ``actor.state``, ``object.inlined``, and the store
events of large results.
"""

from __future__ import annotations

import os
import queue
import reprlib
import signal
import time
import traceback
from typing import Any

import cloudpickle

from raysim import exceptions
from raysim.runtime import procutil, protocol, serialization
from raysim.runtime.config import Config
from raysim.runtime.core_worker import CoreWorker
from raysim.runtime.task_submitter import _ArgRef
from raysim.runtime.protocol import connect_unix
from raysim.runtime.task_spec import ACTOR_TASK
from raysim.trace import writer as trace

_RAYSIM_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_forked(wid: str, role: str, actor_id: str | None, session: dict) -> None:
    """Body of a worker process, right after the zygote forked it. Never returns."""
    code = 0
    try:
        procutil.die_with_parent(signal.SIGKILL)
        procutil.set_process_name("raysim::Actor" if role == "actor" else "raysim::worker")
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
        procutil.exit_on_sigterm()  # shutdown: write the last events, then go
        if trace.writer() is not None:
            trace.writer().drop_inherited("worker")
        protocol.reset_after_fork()
        Worker(wid, role, actor_id, session).run()
    except (SystemExit, KeyboardInterrupt, protocol.ConnectionClosed) as e:
        reason = "shutdown" if isinstance(e, SystemExit) else type(e).__name__
        trace.emit("process.stopping", reason=reason)
    except BaseException:  # pragma: no cover - printed to the worker's stderr
        traceback.print_exc()
        code = 1
    finally:
        trace.flush()
        os._exit(code)


class Worker:
    def __init__(self, wid: str, role: str, actor_id: str | None, session: dict) -> None:
        self.role = role
        self.actor_id = actor_id
        self.session = session
        node_id = session["node_id"]
        session_dir = session["session_dir"]
        raylet = connect_unix(os.path.join(session_dir, f"raylet-{node_id}.sock"), "raylet")
        raylet.peer_id = node_id
        raylet.request("register_client", {"role": "worker", "wid": wid})
        gcs = connect_unix(os.path.join(session_dir, "gcs.sock"), "gcs")
        gcs.request("register_client", {"role": "worker", "wid": wid})
        trace.emit("process.started", ppid=os.getppid(), role=role, wid=wid)
        self.core = CoreWorker("worker", wid, node_id, session_dir, raylet, gcs,
                               session["store_fd"], session["store_capacity"],
                               Config.from_dict(session["config"]), session["job_id"])
        self.core.current_actor_id = actor_id
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.core.on_task = self._tasks.put
        from raysim import api
        api._attach_worker(self.core)
        self.functions: dict[str, Any] = {}
        self.actor: Any = None
        self.actor_calls = 0
        self.actor_arg_refs: list = []
        self._repr = reprlib.Repr()
        self._repr.maxstring = self._repr.maxother = self.core.config.actor_state_repr_limit
        self.core.start()

    def run(self) -> None:
        while True:
            trace.flush()
            body = self._tasks.get()
            if body["kind"] == "exit_worker":
                return
            self.execute(body["spec"], body["locations"], body.get("attempt", 0))

    # -- one task ------------------------------------------------------------------------------

    def execute(self, spec: dict, locations: dict, attempt: int) -> None:
        core = self.core
        trace.set_phase(spec.phase)
        core.current_task_id = spec.task_id
        core.in_task = spec.kind == "task"
        core.begin_deferring_borrows()
        kind = spec.kind
        ok = True
        error_text = None
        start_ts = trace.now()
        try:
            function = self._function(spec)
            args, kwargs = self._resolve_args(spec, locations)
            start_ts = trace.now()
            if kind == "actor_creation":
                self.actor = function(*args, **kwargs)
                value = None
            elif kind == "actor_task":
                value = getattr(self.actor, spec.method)(*args, **kwargs)
            else:
                value = function(*args, **kwargs)
            end_ts = trace.now()
            results = self._results(spec, value)
        except Exception as e:  # the user's code raised (or its result could not be sent)
            end_ts = trace.now()
            ok = False
            error_text, entry = self._error_entry(spec, e)
            results = [entry for _ in spec.returns]
        trace.emit("task.execute", ts=start_ts, task=spec.task_id, name=spec.name,
                   dur=end_ts - start_ts, ok=ok, actor=spec.actor_id, attempt=attempt)
        if kind != "task" and self.actor is not None:
            if kind == "actor_task":
                self.actor_calls += 1
            trace.emit("actor.state", actor=spec.actor_id, task=spec.task_id,
                       attrs=self._actor_attrs(), calls=self.actor_calls)
        core.in_task = False
        core.flush_deferred_borrows()
        if kind == "actor_creation" and ok:
            # Seed phase 3 step 8: the worker registers the actor with the GCS.
            core.send(core.gcs, "actor_update", {
                "actor_id": spec.actor_id, "state": "ALIVE", "pid": os.getpid(),
                "wid": core.wid, "node": core.node_id})
        core.current_task_id = None
        # Phase 4 steps 5-8: the result goes straight back to the caller (for a creation, the
        # news that the arguments it held for the task can be released).
        core.send_to_owner(spec, "task_done", {
            "task_id": spec.task_id, "worker_id": core.wid, "ok": ok,
            "results": results, "returns": spec.returns, "actor_id": spec.actor_id})
        if kind != ACTOR_TASK:
            # The raylet frees the task's resources (or, for a creation, marks the actor
            # alive and sends it the calls that waited). Actor calls hold no resources.
            body = {"task_id": spec.task_id, "task_kind": kind, "ok": ok}
            if error_text is not None:
                body["error_text"] = error_text
            core.send(core.raylet, "task_done", body)
        trace.set_phase(None)  # until the next task, nothing here belongs to a driver call

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

    def _resolve_args(self, spec: dict, locations: dict) -> tuple[tuple, dict]:
        """Phase 3 step 5: turn argument references into values, zero-copy from the store."""
        start = time.perf_counter_ns()
        args, kwargs = serialization.deserialize(memoryview(spec.args))
        deps = spec.deps
        if not deps:
            return args, kwargs
        values = []
        for object_id, inline in deps:
            if inline is not None:
                values.append(serialization.deserialize(memoryview(inline)))
            else:
                offset, size = locations[object_id]
                values.append(self.core.read_stored(object_id, offset, size))
        if spec.kind == "actor_creation":
            from raysim.object_ref import ObjectRef
            self.actor_arg_refs = [ObjectRef(oid, spec.owner) for oid, inline in deps
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
        else:
            try:
                values = list(value)
            except TypeError:
                values = None
            if values is None or len(values) != len(returns):
                raise ValueError(
                    f"Task {spec.name} returned {type(value).__name__} but num_returns="
                    f"{len(returns)}; return a sequence of exactly {len(returns)} values or "
                    f"change num_returns.")
        owner = spec.owner_holder
        return [self.core.store_result(oid, v, owner) for oid, v in zip(returns, values)]

    def _error_entry(self, spec: dict, e: Exception) -> tuple[str, list]:
        text = _user_traceback(e)
        err = exceptions.RayTaskError(spec.name, text, e, os.getpid(), self.core.node_id)
        try:
            return text, ["error", cloudpickle.dumps(err)]
        except Exception:
            plain = exceptions.RayTaskError(spec.name, text, None, os.getpid(),
                                            self.core.node_id)
            return text, ["error", cloudpickle.dumps(plain)]

    def _actor_attrs(self) -> dict:
        try:
            items = vars(self.actor).items()
        except TypeError:
            return {}
        return {k: self._repr.repr(v) for k, v in items}


def _user_traceback(e: BaseException) -> str:
    """The traceback as the user wrote it: raysim's own frames left out."""
    tb = traceback.TracebackException.from_exception(e)
    tb.stack = traceback.StackSummary.from_list(
        [f for f in tb.stack if not f.filename.startswith(_RAYSIM_DIR)])
    return "".join(tb.format())

