"""Ray's core API, as functions: ``init``, ``shutdown``, ``put``, ``get``, ``wait``, ...

Each function checks its arguments the way Ray does (same exception types, similar
messages, each naming the bad value and ending with what to do; a refused call is recorded
as ``api.rejected``, see ``rejections.py``), starts a session if none is running where Ray
would, opens a trace *phase* (in the driver), and hands the work to the process's core
worker. ``import raysim as ray`` gives a Ray program everything it needs.

Runs in: the driver, and in workers for calls made from inside tasks.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from typing import Any, Sequence

from raysim import exceptions, option_utils
from raysim.object_ref import ObjectRef
from raysim.rejections import rejected, rejecting, show
from raysim.runtime.common import ids
from raysim.runtime.common.config import Config, default_heap_memory, default_object_store_memory
from raysim.runtime.core_worker.core_worker import CoreWorker, user_call_site
from raysim.trace import writer as trace

_core: CoreWorker | None = None
_node = None  # NodeProcesses, in the driver
_context: "RaySimContext | None" = None
_lock = threading.RLock()
# Where each remote function and actor class was defined: the zygote imports what these
# modules import before it forks workers (node.driver_modules).
_remote_code_modules: set[str] = set()


def note_remote_code(module: str | None) -> None:
    if module:
        _remote_code_modules.add(module)


class RaySimContext(dict):
    """What ``init`` returns (Ray returns a RayContext); also a dict of the same facts."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __enter__(self) -> "RaySimContext":
        return self

    def __exit__(self, *exc) -> None:
        shutdown()


def _require_core(api: str) -> CoreWorker:
    core = _core
    if core is None:
        raise exceptions.RaySimNotInitializedError(
            f"{api}() needs a running raysim session, and none is running (raysim.init() "
            f"was not called, or raysim.shutdown() was). Tip: call raysim.init() first (or "
            f"run the script with `raysim trace script.py`).")
    return core


def _auto_init(api: str) -> CoreWorker:
    """The core worker, starting a session first if none is running, as Ray does.

    Ray calls ``ray.init()`` with its defaults on the first ``put``, ``get``, ``wait``,
    ``get_actor``, ``kill``, ``cancel``, ``get_runtime_context`` or ``.remote()`` of a program
    that did not call it (and again after ``shutdown``); ``RAY_ENABLE_AUTO_CONNECT=0`` turns
    that off. raysim does the same, with ``RAYSIM_ENABLE_AUTO_CONNECT=0``. The other calls
    (``cluster_resources``, ``nodes``, ``timeline``, ...) raise RaySimNotInitializedError.
    """
    core = _core
    if core is not None:
        return core
    if os.environ.get("RAYSIM_ENABLE_AUTO_CONNECT", "") == "0":
        return _require_core(api)
    with _lock:
        if _core is None:
            print(f"raysim: {api}() started a session with raysim.init()'s defaults, as Ray "
                  f"does when none is running. Tip: call raysim.init() first to choose its "
                  f"options.", file=sys.stderr)
            init()
    return _require_core(api)


def _check_session(value: Any, where: str, api: str) -> None:
    """Refuse an ObjectRef or actor handle left over from a session that was shut down.

    Its object or actor went with that session; using it would wait forever."""
    core = getattr(value, "_core", None)
    if core is not None and core is not _core:
        what = "actor" if hasattr(value, "_actor_id") else "object"
        redo = "create the actor again" if what == "actor" else \
            "put the value or submit the task again"
        raise rejected(api, ValueError(
            f"{where[0].upper()}{where[1:]} is {value!r}, from a raysim session that has "
            f"been shut down; its {what} ended with that session. Tip: {redo} in the "
            f"current session."))


def _check_arguments_session(args: tuple, kwargs: dict, call: str, api: str) -> None:
    """Top-level ObjectRef arguments of ``.remote()`` must be of the current session."""
    for i, arg in enumerate(args):
        if type(arg) is ObjectRef:
            _check_session(arg, f"argument {i + 1} of {call}", api)
    for key, arg in kwargs.items():
        if type(arg) is ObjectRef:
            _check_session(arg, f"keyword argument {key}= of {call}", api)


def _check_refs(refs: list, api: str) -> None:
    for i, ref in enumerate(refs):
        if not isinstance(ref, ObjectRef):
            raise rejected(api, TypeError(
                f"{api}() expects a list of ObjectRefs, but element [{i}] is {show(ref)}. "
                f"Tip: pass only ObjectRefs, as returned by .remote() and put()."))
        _check_session(ref, f"element [{i}] of the list", api)


def _attach_worker(core: CoreWorker) -> None:
    """A worker process sets its core worker, so the API works inside tasks."""
    global _core
    _core = core


# ----------------------------------------------------------------------------------------
# init / shutdown


def init(address: str | None = None, *, num_cpus: int | None = None,
         num_gpus: int | None = None, resources: dict[str, float] | None = None,
         object_store_memory: int | None = None, ignore_reinit_error: bool = False,
         namespace: str | None = None, trace_path: str | None = None, tracing: bool = True,
         include_dashboard: bool | None = None, log_to_driver: bool = True,
         _temp_dir: str | None = None, _system_config: dict | None = None,
         runtime_env: dict | None = None, local_mode: bool = False,
         labels: dict[str, str] | None = None, dashboard_host: str = "127.0.0.1",
         dashboard_port: int | None = None, job_config: Any = None,
         configure_logging: bool = True, logging_level: Any = "info",
         logging_format: str | None = None, logging_config: Any = None,
         **unsupported: Any) -> RaySimContext:
    """Start a raysim session on this machine: GCS, raylet with its object store, workers.

    ``trace_path`` (or the ``RAYSIM_TRACE`` environment variable) chooses the trace file;
    by default it is ``trace.jsonl`` in the session directory. ``tracing=False`` (or
    ``RAYSIM_TRACE=off``) turns tracing off. Of Ray's ``runtime_env`` raysim knows
    ``env_vars`` and ``worker_process_setup_hook`` (``runtime_env.py``).

    Ray's arguments for what raysim does not have (a dashboard, logging setup, node labels,
    a job config) are accepted and have no effect, so that Ray programs and tests run
    unchanged; ``local_mode=True`` is refused, as Ray 2.60 refuses it.
    """
    global _core, _node, _context
    with _lock:
        # Bad arguments are refused even when a session is already running.
        with rejecting("init"):
            if local_mode:
                raise RuntimeError(
                    "`local_mode` is no longer supported (Ray 2.60 refuses it too): raysim "
                    "always runs tasks in worker processes. Tip: call raysim.init() without "
                    "local_mode, and debug a task with print() or a breakpoint in a test "
                    "that calls the function directly.")
            _check_init_arguments(address, unsupported, num_cpus, num_gpus, resources,
                                  object_store_memory)
            from raysim.runtime.common.runtime_env import setup_hook_for_workers
            setup_hook = setup_hook_for_workers(runtime_env)
            job_env_vars = (runtime_env or {}).get("env_vars") or None
        if _core is not None:
            if ignore_reinit_error:
                return _context
            raise rejected("init", RuntimeError(
                "Maybe you called raysim.init twice by accident? This error can be suppressed "
                "by passing in 'ignore_reinit_error=True' or by calling 'raysim.shutdown()' "
                "prior to 'raysim.init()'."))
        from raysim.runtime.node import NodeProcesses, driver_modules, make_session_dir

        config = Config.from_dict(dict(_system_config or {}))
        if object_store_memory is not None:
            config.object_store_memory = object_store_memory
        capacity = config.object_store_memory or default_object_store_memory()
        total = {"CPU": float(os.cpu_count() if num_cpus is None else num_cpus)}
        if num_gpus:
            total["GPU"] = float(num_gpus)
        # As Ray reports them: heap memory for tasks that ask for memory=..., the store's
        # size, and one unit of the node's own resource (127.0.0.1: raysim's nodes are local).
        total["memory"] = float(default_heap_memory(capacity))
        total["object_store_memory"] = float(capacity)
        total["node:127.0.0.1"] = 1.0
        total["node:__internal_head__"] = 1.0
        total.update(resources or {})
        session_dir = make_session_dir(_temp_dir)
        session = os.path.basename(session_dir)
        env_trace = os.environ.get("RAYSIM_TRACE")
        if env_trace in ("0", "off", "false", "no"):
            tracing = False
        path = None
        if tracing:
            path = os.path.abspath(trace_path or env_trace or
                                   os.path.join(session_dir, "trace.jsonl"))
            with open(path, "wb"):  # a new session starts a new trace
                pass
            os.chmod(path, 0o600)
        node_id = ids.NodeID(ids.random_hex(8))
        job_id = ids.JobID(ids.random_hex(4))
        wid = ids.random_hex(8)
        trace.open_trace(path, "driver", node_id, config.trace_flush_events)
        if path:
            trace.emit("trace.header", phase=0,
                       **trace.header(session, session_dir, config.to_dict(), "seed"))
            trace.set_phase(0)
            site, code = user_call_site()
            trace.emit("phase.begin", phase=0, api="init", site=site, code=code, detail=None)
            trace.flush()  # the header is the file's first line: written before any process starts
        trace.emit("process.started", ppid=os.getppid(), role="driver", wid=wid)
        # What the zygote imports before forking workers, and where workers run: known now, so
        # the zygote starts importing while the driver is still connecting.
        first, later = ([], [])
        if config.worker_preload_driver_modules:
            first, later = driver_modules(_remote_code_modules)
        preload = {"sys_path": list(sys.path), "cwd": os.getcwd(), "modules": first,
                   "modules_when_idle": later, "worker_process_setup_hook": setup_hook,
                   "env_vars": job_env_vars}
        node = NodeProcesses(session_dir, node_id, path, config, total, capacity, job_id,
                             preload)
        try:
            gcs = node.connect_gcs()
            gcs.request("register_driver", {"job": job_id, "wid": wid})
            raylet, reply, store_fd = node.connect_raylet({"role": "driver", "wid": wid})
        except BaseException:
            node.stop(config.process_shutdown_timeout_s)
            trace.close_trace()
            raise
        core = CoreWorker("driver", wid, node_id, session_dir, raylet, gcs, store_fd,
                          reply["store_capacity"], config, job_id)
        os.close(store_fd)  # the mapping keeps the memory; the fd is no longer needed
        core.namespace = namespace  # where named actors go when .options() names none
        core.exit_code_of = node.exit_code  # how a GCS or raylet that died ended
        core.start()
        trace.flush()
        _core, _node = core, node
        _context = RaySimContext(session_dir=session_dir, trace_path=path, node_id=node_id,
                                 job_id=job_id, namespace=namespace,
                                 address_info={"node_id": node_id, "session_dir": session_dir,
                                               **node.pids()})
        return _context


_INIT_ARGUMENTS = ("address, num_cpus, num_gpus, resources, object_store_memory, "
                   "ignore_reinit_error, namespace, runtime_env (env_vars, "
                   "worker_process_setup_hook), "
                   "_temp_dir, _system_config, and raysim's trace_path and tracing; "
                   "include_dashboard, dashboard_host, dashboard_port, log_to_driver, "
                   "configure_logging, logging_level, logging_format, logging_config, labels, "
                   "job_config and local_mode=False are accepted without effect")


def _check_init_arguments(address, unsupported, num_cpus, num_gpus, resources,
                          object_store_memory) -> None:
    if address not in (None, "local"):
        raise ValueError(
            f"raysim starts its own local session; it cannot connect to address="
            f"{address!r}. Tip: call raysim.init() without an address.")
    if unsupported:
        given = ", ".join(f"{k}={v!r}" for k, v in sorted(unsupported.items()))
        raise TypeError(f"raysim.init() got unsupported argument(s) {given}. Tip: raysim "
                        f"supports Ray's core arguments only: {_INIT_ARGUMENTS}.")
    # The same checks, and messages, as the options of @remote (option_utils).
    option_utils.check_value("num_cpus", num_cpus)
    option_utils.check_value("num_gpus", num_gpus)
    option_utils.check_value("resources", resources)
    if object_store_memory is not None and (isinstance(object_store_memory, bool) or
                                            not isinstance(object_store_memory, int) or
                                            object_store_memory < 1 << 20):
        raise ValueError(f"object_store_memory={object_store_memory!r} is invalid: it must "
                         f"be an int of at least 1 MiB (bytes). Tip: write e.g. "
                         f"object_store_memory=500 * 1024**2.")


def shutdown() -> None:
    """Stop every process of the session; the store's memory goes with them."""
    global _core, _node, _context
    with _lock:
        core, node = _core, _node
        if core is None or node is None:
            return
        core.begin_phase("shutdown")
        core.stopping = True  # from now on, GCS and raylet going away is what was asked
        timeout = core.config.process_shutdown_timeout_s
        for component, conn in (("raylet", core.raylet), ("gcs", core.gcs)):
            try:
                core.request(conn, "shutdown", {}, timeout=timeout)
            except Exception:
                continue  # already gone (or dead): stop() below makes sure
            # The raylet stops its workers before it exits. Only then does the GCS go: a
            # worker that saw its GCS vanish first would take that for a death.
            node.exit_code(component, timeout)
        core.close()
        node.stop(core.config.process_shutdown_timeout_s)
        trace.emit("process.stopping", reason="shutdown")
        trace.close_trace()
        _core, _node, _context = None, None, None


atexit.register(shutdown)


def is_initialized() -> bool:
    return _core is not None


# ----------------------------------------------------------------------------------------
# Objects


def put(value: Any, *, _owner: Any = None) -> ObjectRef:
    """Seed phase 2: store ``value`` in the node's shared-memory object store."""
    if isinstance(value, ObjectRef):
        raise rejected("put", TypeError(
            f"Calling 'put' on an ObjectRef ({value!r}) is not allowed. If you really want "
            f"to do this, you can wrap the ObjectRef in a list and call 'put' on it."))
    core = _auto_init("raysim.put")
    core.begin_phase("put", type(value).__name__)
    with rejecting("put", in_phase=True):  # a value that cannot be pickled
        object_id = core.put(value)
    ref = ObjectRef(object_id, core.wid)
    trace.flush()  # a driver writes its events when each API call returns
    return ref


def get(object_refs: ObjectRef | Sequence[ObjectRef], *, timeout: float | None = None) -> Any:
    """Seed phase 5: the values of the objects, waiting for them if needed."""
    single = isinstance(object_refs, ObjectRef)
    if single:
        refs = [object_refs]
        _check_session(object_refs, "the ObjectRef passed to get()", "get")
    elif isinstance(object_refs, list):
        refs = object_refs
        _check_refs(refs, "get")
    else:
        # Ray's types: ValueError for anything that is not a ref or a list (a tuple too).
        tip = "pass a list instead: get(list(refs))" if isinstance(object_refs, tuple) else \
            "pass the ObjectRef that .remote() or put() returned, or a list of them"
        raise rejected("get", ValueError(
            f"get() expects an ObjectRef or a list of ObjectRefs, got {show(object_refs)}. "
            f"Tip: {tip}."))
    if timeout is not None and (isinstance(timeout, bool) or
                                not isinstance(timeout, (int, float)) or timeout < 0):
        raise rejected("get", ValueError(
            f"get(timeout={timeout!r}) is invalid: timeout must be a non-negative number of "
            f"seconds. Tip: write e.g. timeout=10, or leave it out to wait as long as it "
            f"takes."))
    core = _auto_init("raysim.get")
    core.begin_phase("get", f"{len(refs)} object(s)")
    try:
        values = core.reader.get([r.id for r in refs], timeout)
    finally:
        trace.flush()
    return values[0] if single else values


def wait(object_refs: list[ObjectRef], *, num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Return (ready, not ready) once ``num_returns`` objects are ready or on timeout."""
    if isinstance(object_refs, ObjectRef):
        raise rejected("wait", TypeError(
            f"wait() expected a list of ObjectRef, got a single ObjectRef {object_refs!r}. "
            f"Tip: pass [ref]."))
    if not isinstance(object_refs, list):
        raise rejected("wait", TypeError(
            f"wait() expected a list of ObjectRef, got {show(object_refs)}. Tip: pass a "
            f"list of the ObjectRefs that .remote() or put() returned."))
    _check_refs(object_refs, "wait")
    if not object_refs:
        return [], []
    with rejecting("wait"):
        _check_wait(object_refs, num_returns, timeout)
    core = _auto_init("raysim.wait")
    core.begin_phase("wait", f"{num_returns} of {len(object_refs)}")
    ready_flags = core.reader.wait([r.id for r in object_refs], num_returns, timeout)
    trace.flush()
    ready = [r for r, ok in zip(object_refs, ready_flags) if ok]
    not_ready = [r for r, ok in zip(object_refs, ready_flags) if not ok]
    return ready, not_ready


def _check_wait(object_refs: list[ObjectRef], num_returns: Any, timeout: Any) -> None:
    if len(set(object_refs)) != len(object_refs):
        twice = next(r for r in object_refs if object_refs.count(r) > 1)
        raise ValueError(f"Wait requires a list of unique object refs; {twice!r} is in it "
                         f"more than once. Tip: pass list(dict.fromkeys(refs)).")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns!r}. Tip: pass "
                         f"num_returns=1 or more.")
    if num_returns > len(object_refs):
        raise ValueError("num_returns cannot be greater than the number of objects provided "
                         f"to raysim.wait ({num_returns} > {len(object_refs)}). Tip: pass "
                         f"num_returns={len(object_refs)} or fewer.")
    if timeout is not None and (isinstance(timeout, bool) or
                                not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"The 'timeout' argument must be nonnegative, got {timeout!r}. Tip: "
                         f"pass a number of seconds, or leave it out to wait without limit.")


# ----------------------------------------------------------------------------------------
# Remote functions and actors


def remote(*args, **options):
    """``@raysim.remote`` or ``@raysim.remote(num_cpus=..., ...)`` on a function or class."""
    from raysim.actor import ActorClass
    from raysim.remote_function import RemoteFunction

    def decorate(target):
        if isinstance(target, type):
            return ActorClass(target, options)
        if callable(target):
            return RemoteFunction(target, options)
        raise rejected("remote", TypeError(
            f"@raysim.remote decorates functions and classes, not {show(target)}. Tip: put "
            f"it on the line above a def or class statement."))

    if len(args) == 1 and not options and callable(args[0]):
        return decorate(args[0])
    if args:
        raise rejected("remote", TypeError(
            f"The @raysim.remote decorator must be applied either with no arguments and no "
            f"parentheses, or with keyword arguments only, e.g. @raysim.remote(num_cpus=1); "
            f"got positional argument(s) {', '.join(show(a) for a in args)}."))
    return decorate


def _lookup_actor(core: CoreWorker, name: str, namespace: str | None):
    from raysim.actor import ActorHandle
    reply = core.request(core.gcs, "get_actor", {"name": name, "namespace": namespace})
    if not reply["found"]:
        return None
    return ActorHandle(reply["descriptor"])


def get_actor(name: str, namespace: str | None = None):
    """The handle of the live actor created with ``.options(name=name)``."""
    if not isinstance(name, str) or not name:
        raise rejected("get_actor", ValueError(
            f"Please supply a non-empty string name, got {show(name)}. Tip: pass the name "
            f"given with .options(name=...) when the actor was created."))
    core = _auto_init("raysim.get_actor")
    core.begin_phase("get_actor", name)
    if namespace is None:
        namespace = core.namespace  # Ray: the current job's namespace
    handle = _lookup_actor(core, name, namespace)
    if handle is None:
        raise rejected("get_actor", ValueError(_no_such_actor(core, name, namespace)),
                       in_phase=True)
    return handle


def _no_such_actor(core: CoreWorker, name: str, namespace: str | None) -> str:
    where = f"namespace {namespace!r}" if namespace else "the default namespace"
    actors = core.request(core.gcs, "snapshot", {})["actors"].values()
    names = sorted(repr(a["name"]) for a in actors if a["name"] and a["state"] != "DEAD"
                   and (a["namespace"] or "") == (namespace or ""))
    alive = f"Named actors alive there: {', '.join(names)}." if names else \
        "No named actor is alive there."
    return (f"Failed to look up actor with name {name!r} in {where}. {alive} This could be "
            f"because 1. You are trying to look up a named actor you didn't create. 2. The "
            f"named actor died. 3. You did not use a namespace matching the namespace of the "
            f"actor. Tip: create it first with .options(name={name!r}), or pass the "
            f"namespace= it was created in.")


def kill(actor, *, no_restart: bool = True) -> None:
    """Stop an actor now; its pending and later calls raise ``RayActorError``."""
    from raysim.actor import ActorHandle
    if not isinstance(actor, ActorHandle):
        raise rejected("kill", ValueError(
            f"raysim.kill() only supported for actors. For tasks, try raysim.cancel(). "
            f"Got: {show(actor)}."))
    _check_session(actor, "the actor handle passed to kill()", "kill")
    core = _auto_init("raysim.kill")
    core.begin_phase("kill", actor._actor_id)
    core.send(core.raylet, "kill_actor", {"actor_id": actor._actor_id,
                                          "no_restart": no_restart,
                                          "reason": "raysim.kill() was called on it"})
    trace.flush()


def cancel(object_ref, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that makes ``object_ref``, as Ray's ``ray.cancel``.

    A task that has not started never runs (``get`` raises ``TaskCancelledError``). A running
    one gets a ``KeyboardInterrupt`` in its worker (``get`` raises
    ``RayTaskError(TaskCancelledError)``), or with ``force=True`` its worker is killed
    (``TaskCancelledError``). ``recursive`` also cancels the tasks it submitted, and the
    actor calls it made (not with ``force``). An actor call is cancelled only if it has not
    started; ``force=True`` is refused for it."""
    if not isinstance(object_ref, ObjectRef):
        raise rejected("cancel", TypeError(
            f"raysim.cancel() only supported for object refs, got {show(object_ref)}. Tip: "
            f"pass the ObjectRef that .remote() returned; to stop an actor, use "
            f"raysim.kill()."))
    for flag, value in (("force", force), ("recursive", recursive)):
        if not isinstance(value, bool):
            raise rejected("cancel", TypeError(
                f"raysim.cancel()'s {flag} must be True or False, got {show(value)}. Tip: "
                f"write e.g. raysim.cancel(ref, {flag}=True)."))
    _check_session(object_ref, "the ObjectRef passed to cancel()", "cancel")
    core = _auto_init("raysim.cancel")
    core.begin_phase("cancel", object_ref.id)
    with rejecting("cancel", in_phase=True):  # force=True on an actor call
        core.cancel(object_ref.id, force, recursive)
    trace.flush()


# ----------------------------------------------------------------------------------------
# Cluster state


def cluster_resources() -> dict[str, float]:
    core = _require_core("raysim.cluster_resources")
    snap = core.request(core.raylet, "snapshot", {})
    return snap["resources"]["total"]


def available_resources() -> dict[str, float]:
    core = _require_core("raysim.available_resources")
    snap = core.request(core.raylet, "snapshot", {})
    return {k: v for k, v in snap["resources"]["available"].items() if v > 0}


def nodes() -> list[dict]:
    core = _require_core("raysim.nodes")
    snap = core.request(core.gcs, "snapshot", {})
    return [{"NodeID": node_id, "Alive": info.get("alive", True),
             "Resources": info["resources"]} for node_id, info in snap["nodes"].items()]


def snapshot() -> dict:
    """The live runtime's own tables: GCS, each raylet's store and scheduler, this process's
    references. The tracer rebuilds the same tables from a trace."""
    return _require_core("raysim.snapshot").snapshot()


def trace_path() -> str | None:
    """The file this session's trace is written to (None if tracing is off)."""
    _require_core("raysim.trace_path")
    writer = trace.writer()
    return writer.path if writer is not None else None


def timeline(filename: str | None = None) -> list[dict] | None:
    """The session so far as Chrome/Perfetto trace events, as Ray's ``ray.timeline()``.

    With ``filename`` the events are written there as JSON (open it in ui.perfetto.dev or
    chrome://tracing); without, they are returned. raysim's timeline holds every process,
    message and store counter of the trace, not only task slices.
    """
    from raysim.trace import chrome, load

    _require_core("raysim.timeline")
    writer = trace.writer()
    if writer is None:
        raise RuntimeError("raysim.timeline() needs a trace; this session runs with tracing "
                           "off. Tip: call raysim.init() without tracing=False.")
    trace.flush()
    events = chrome.to_chrome(load(writer.path))["traceEvents"]
    if filename is None:
        return events
    with open(filename, "w") as f:
        json.dump(events, f)
    return None


def get_gpu_ids() -> list[int]:
    """Ray's ``ray.get_gpu_ids()``: the GPUs assigned to the calling task. raysim schedules
    ``num_gpus`` as a resource but binds no physical device, so the list is empty."""
    _auto_init("raysim.get_gpu_ids")
    return []


def get_runtime_context():
    """Who and where the calling code runs (``runtime_context.py``)."""
    from raysim.runtime_context import RuntimeContext
    core = _auto_init("raysim.get_runtime_context")
    return RuntimeContext(core, _context.get("namespace") if _context else None)
