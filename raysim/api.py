"""Ray's core API, as functions: ``init``, ``shutdown``, ``put``, ``get``, ``wait``, ...

Each function checks its arguments the way Ray does (same exception types, similar
messages), opens a trace *phase* (in the driver), and hands the work to the process's core
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

from raysim import exceptions
from raysim.object_ref import ObjectRef
from raysim.runtime import ids
from raysim.runtime.config import Config, default_object_store_memory
from raysim.runtime.core_worker import CoreWorker, user_call_site
from raysim.trace import writer as trace

_core: CoreWorker | None = None
_node = None  # NodeProcesses, in the driver
_context: "RaySimContext | None" = None
_lock = threading.RLock()


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


def _require_core() -> CoreWorker:
    core = _core
    if core is None:
        raise exceptions.RaySimNotInitializedError(
            "raysim is not initialized. Tip: call raysim.init() first (or run the script "
            "with `raysim trace script.py`).")
    return core


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
         **unsupported: Any) -> RaySimContext:
    """Start a raysim session on this machine: GCS, raylet with its object store, workers.

    ``trace_path`` (or the ``RAYSIM_TRACE`` environment variable) chooses the trace file;
    by default it is ``trace.jsonl`` in the session directory. ``tracing=False`` (or
    ``RAYSIM_TRACE=off``) turns tracing off.
    """
    global _core, _node, _context
    with _lock:
        if _core is not None:
            if ignore_reinit_error:
                return _context
            raise RuntimeError(
                "Maybe you called raysim.init twice by accident? This error can be suppressed "
                "by passing in 'ignore_reinit_error=True' or by calling 'raysim.shutdown()' "
                "prior to 'raysim.init()'.")
        if address not in (None, "local"):
            raise ValueError(
                f"raysim starts its own local session; it cannot connect to address="
                f"{address!r}. Tip: call raysim.init() without an address.")
        if unsupported:
            raise TypeError(f"raysim.init() got unsupported argument(s) "
                            f"{sorted(unsupported)}; raysim supports Ray's core arguments only.")
        _check_resources(num_cpus, num_gpus, resources, object_store_memory)
        from raysim.runtime.node import NodeProcesses, driver_modules, make_session_dir

        config = Config.from_dict(dict(_system_config or {}))
        if object_store_memory is not None:
            config.object_store_memory = object_store_memory
        capacity = config.object_store_memory or default_object_store_memory()
        total = {"CPU": float(os.cpu_count() if num_cpus is None else num_cpus)}
        if num_gpus:
            total["GPU"] = float(num_gpus)
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
        preload = {"sys_path": list(sys.path), "cwd": os.getcwd(),
                   "modules": driver_modules() if config.worker_preload_driver_modules else []}
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
        core.start()
        trace.flush()
        _core, _node = core, node
        _context = RaySimContext(session_dir=session_dir, trace_path=path, node_id=node_id,
                                 job_id=job_id, namespace=namespace,
                                 address_info={"node_id": node_id, "session_dir": session_dir,
                                               **node.pids()})
        return _context


def _check_resources(num_cpus, num_gpus, resources, object_store_memory) -> None:
    for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or value < 0):
            raise ValueError(f"{name} must be a non-negative number, got {value!r}.")
    for key, value in (resources or {}).items():
        if key in ("CPU", "GPU"):
            raise ValueError(f"Use num_cpus/num_gpus instead of resources={{{key!r}: ...}}.")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"resources[{key!r}] must be a non-negative number, got "
                             f"{value!r}.")
    if object_store_memory is not None and (not isinstance(object_store_memory, int)
                                            or object_store_memory < 1 << 20):
        raise ValueError(f"object_store_memory must be an int of at least 1 MiB, got "
                         f"{object_store_memory!r}.")


def shutdown() -> None:
    """Stop every process of the session; the store's memory goes with them."""
    global _core, _node, _context
    with _lock:
        core, node = _core, _node
        if core is None or node is None:
            return
        core.begin_phase("shutdown")
        for conn in (core.raylet, core.gcs):
            try:
                core.request(conn, "shutdown", {}, timeout=core.config.process_shutdown_timeout_s)
            except Exception:
                pass  # already gone; stop() below makes sure
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
    core = _require_core()
    if isinstance(value, ObjectRef):
        raise TypeError(
            "Calling 'put' on an ObjectRef is not allowed. If you really want to do this, "
            "you can wrap the ObjectRef in a list and call 'put' on it.")
    core.begin_phase("put", type(value).__name__)
    ref = ObjectRef(core.put(value), core.wid)
    trace.flush()  # a driver writes its events when each API call returns
    return ref


def get(object_refs: ObjectRef | Sequence[ObjectRef], *, timeout: float | None = None) -> Any:
    """Seed phase 5: the values of the objects, waiting for them if needed."""
    core = _require_core()
    single = isinstance(object_refs, ObjectRef)
    if single:
        refs = [object_refs]
    elif isinstance(object_refs, list):
        refs = object_refs
        for i, ref in enumerate(refs):
            if not isinstance(ref, ObjectRef):
                raise TypeError(
                    f"get() expects a list of ObjectRefs, but element {i} is "
                    f"{type(ref).__name__}: {ref!r}.")
    else:
        raise ValueError(
            f"Invalid type of object refs, {type(object_refs)}, is given. 'object_refs' must "
            f"either be an ObjectRef or a list of ObjectRefs.")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"The 'timeout' argument must be a non-negative number, got "
                         f"{timeout!r}.")
    core.begin_phase("get", f"{len(refs)} object(s)")
    try:
        values = core.get([r.id for r in refs], timeout)
    finally:
        trace.flush()
    return values[0] if single else values


def wait(object_refs: list[ObjectRef], *, num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Return (ready, not ready) once ``num_returns`` objects are ready or on timeout."""
    core = _require_core()
    if isinstance(object_refs, ObjectRef):
        raise TypeError("wait() expected a list of ObjectRef, got a single ObjectRef "
                        f"{object_refs!r}. Tip: pass [ref].")
    if not isinstance(object_refs, list):
        raise TypeError(f"wait() expected a list of ObjectRef, got {type(object_refs)}.")
    for i, ref in enumerate(object_refs):
        if not isinstance(ref, ObjectRef):
            raise TypeError(f"wait() expected a list of ObjectRef, but element {i} is "
                            f"{type(ref).__name__}: {ref!r}.")
    if not object_refs:
        return [], []
    if len(set(object_refs)) != len(object_refs):
        raise ValueError("Wait requires a list of unique object refs.")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns!r}.")
    if num_returns > len(object_refs):
        raise ValueError("num_returns cannot be greater than the number of objects provided "
                         f"to raysim.wait ({num_returns} > {len(object_refs)}).")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"The 'timeout' argument must be nonnegative, got {timeout!r}.")
    core.begin_phase("wait", f"{num_returns} of {len(object_refs)}")
    ready_flags = core.wait([r.id for r in object_refs], num_returns, timeout)
    trace.flush()
    ready = [r for r, ok in zip(object_refs, ready_flags) if ok]
    not_ready = [r for r, ok in zip(object_refs, ready_flags) if not ok]
    return ready, not_ready


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
        raise TypeError(f"@raysim.remote decorates functions and classes, not "
                        f"{type(target).__name__}.")

    if len(args) == 1 and not options and callable(args[0]):
        return decorate(args[0])
    if args:
        raise TypeError("The @raysim.remote decorator must be applied either with no "
                        "arguments and no parentheses, or with keyword arguments only, "
                        "e.g. @raysim.remote(num_cpus=1).")
    return decorate


def _lookup_actor(core: CoreWorker, name: str, namespace: str | None):
    from raysim.actor import ActorHandle
    reply = core.request(core.gcs, "get_actor", {"name": name, "namespace": namespace})
    if not reply["found"]:
        return None
    return ActorHandle(reply["descriptor"])


def get_actor(name: str, namespace: str | None = None):
    """The handle of the live actor created with ``.options(name=name)``."""
    core = _require_core()
    if not isinstance(name, str) or not name:
        raise ValueError(f"Please supply a non-empty string name, got {name!r}.")
    core.begin_phase("get_actor", name)
    handle = _lookup_actor(core, name, namespace)
    if handle is None:
        raise ValueError(f"Failed to look up actor with name '{name}'. This could because 1. "
                         f"You are trying to look up a named actor you didn't create. 2. The "
                         f"named actor died. 3. You did not use a namespace matching the "
                         f"namespace of the actor.")
    return handle


def kill(actor, *, no_restart: bool = True) -> None:
    """Stop an actor now; its pending and later calls raise ``RayActorError``."""
    from raysim.actor import ActorHandle
    core = _require_core()
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"raysim.kill() only supported for actors. For tasks, try "
                         f"raysim.cancel(). Got: {type(actor).__name__}.")
    core.begin_phase("kill", actor._actor_id)
    core.send(core.raylet, "kill_actor", {"actor_id": actor._actor_id,
                                          "no_restart": no_restart,
                                          "reason": "raysim.kill() was called on it"})
    trace.flush()


# ----------------------------------------------------------------------------------------
# Cluster state


def cluster_resources() -> dict[str, float]:
    core = _require_core()
    snap = core.request(core.raylet, "snapshot", {})
    return snap["resources"]["total"]


def available_resources() -> dict[str, float]:
    core = _require_core()
    snap = core.request(core.raylet, "snapshot", {})
    return {k: v for k, v in snap["resources"]["available"].items() if v > 0}


def nodes() -> list[dict]:
    core = _require_core()
    snap = core.request(core.gcs, "snapshot", {})
    return [{"NodeID": node_id, "Alive": info.get("alive", True),
             "Resources": info["resources"]} for node_id, info in snap["nodes"].items()]


def snapshot() -> dict:
    """The live runtime's own tables: GCS, each raylet's store and scheduler, this process's
    references. The tracer rebuilds the same tables from a trace."""
    return _require_core().snapshot()


def trace_path() -> str | None:
    """The file this session's trace is written to (None if tracing is off)."""
    _require_core()
    writer = trace.writer()
    return writer.path if writer is not None else None


def timeline(filename: str | None = None) -> list[dict] | None:
    """The session so far as Chrome/Perfetto trace events, as Ray's ``ray.timeline()``.

    With ``filename`` the events are written there as JSON (open it in ui.perfetto.dev or
    chrome://tracing); without, they are returned. raysim's timeline holds every process,
    message and store counter of the trace, not only task slices.
    """
    from raysim.trace import chrome, load

    _require_core()
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


class RuntimeContext:
    """``raysim.get_runtime_context()``: who and where the caller is."""

    def __init__(self, core: CoreWorker) -> None:
        self._core = core

    def get_job_id(self) -> str:
        return self._core.job_id

    def get_node_id(self) -> str:
        return self._core.node_id

    def get_worker_id(self) -> str:
        return self._core.wid

    def get_task_id(self) -> str | None:
        return self._core.current_task_id

    def get_actor_id(self) -> str | None:
        return self._core.current_actor_id

    @property
    def namespace(self) -> str | None:
        return _context.get("namespace") if _context else None

    @property
    def gcs_address(self) -> str:
        return os.path.join(self._core.session_dir, "gcs.sock")

    def get(self) -> dict:
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(),
                "worker_id": self.get_worker_id(), "task_id": self.get_task_id(),
                "actor_id": self.get_actor_id()}


def get_runtime_context() -> RuntimeContext:
    return RuntimeContext(_require_core())
