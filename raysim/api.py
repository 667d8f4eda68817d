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
from typing import TYPE_CHECKING, Any, Sequence

from raysim import launch, option_utils, session
from raysim.actor import ActorClass, ActorHandle
from raysim.launch import RaySimContext
from raysim.object_ref import ObjectRef
from raysim.rejections import rejected, rejecting, show
from raysim.remote_function import RemoteFunction
from raysim.runtime.common.runtime_env import setup_hook_for_workers
from raysim.runtime_context import RuntimeContext
from raysim.trace import writer as trace

if TYPE_CHECKING:
    from raysim.runtime.core_worker.core_worker import CoreWorker


def _check_refs(refs: list, api: str) -> None:
    for i, ref in enumerate(refs):
        if not isinstance(ref, ObjectRef):
            raise rejected(api, TypeError(
                f"{api}() expects a list of ObjectRefs, but element [{i}] is {show(ref)}. "
                f"Tip: pass only ObjectRefs, as returned by .remote() and put()."))
        session.check_same_session(ref, f"element [{i}] of the list", api)


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
    with session.lock:
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
            setup_hook_for_workers(runtime_env)  # refuses a bad runtime_env
        current = session.current()
        if current is not None:
            if ignore_reinit_error:
                return current.context
            raise rejected("init", RuntimeError(
                "Maybe you called raysim.init twice by accident? This error can be suppressed "
                "by passing in 'ignore_reinit_error=True' or by calling 'raysim.shutdown()' "
                "prior to 'raysim.init()'."))
        cluster = launch.cluster_at(address) if address not in (None, "local") else None
        return launch.start(num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
                            object_store_memory=object_store_memory, namespace=namespace,
                            trace_path=trace_path, tracing=tracing, temp_dir=_temp_dir,
                            system_config=_system_config, runtime_env=runtime_env,
                            cluster=cluster)


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
        launch.cluster_at(address)  # a Cluster of this process, or a ValueError that says so
        if any(v is not None for v in (num_cpus, num_gpus, resources, object_store_memory)):
            raise ValueError(
                "When connecting to an existing cluster, num_cpus, num_gpus, resources and "
                "object_store_memory must not be provided (Ray refuses them too). Tip: give "
                "them to the cluster's nodes: Cluster(head_node_args={...}), add_node(...).")
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
    launch.stop()


atexit.register(shutdown)


def is_initialized() -> bool:
    return session.current() is not None


# ----------------------------------------------------------------------------------------
# Objects


def put(value: Any, *, _owner: Any = None) -> ObjectRef:
    """Seed phase 2: store ``value`` in the node's shared-memory object store."""
    if isinstance(value, ObjectRef):
        raise rejected("put", TypeError(
            f"Calling 'put' on an ObjectRef ({value!r}) is not allowed. If you really want "
            f"to do this, you can wrap the ObjectRef in a list and call 'put' on it."))
    core = launch.auto_init("raysim.put")
    session.begin_phase("put", type(value).__name__)
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
        session.check_same_session(object_refs, "the ObjectRef passed to get()", "get")
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
    launch.auto_init("raysim.get")
    values = session.get_values(refs, timeout, "get")
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
    core = launch.auto_init("raysim.wait")
    session.begin_phase("wait", f"{num_returns} of {len(object_refs)}")
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
    reply = core.conns.ask_gcs("get_actor", {"name": name, "namespace": namespace})
    if not reply["found"]:
        return None
    return ActorHandle(reply["descriptor"])


def get_actor(name: str, namespace: str | None = None):
    """The handle of the live actor created with ``.options(name=name)``."""
    if not isinstance(name, str) or not name:
        raise rejected("get_actor", ValueError(
            f"Please supply a non-empty string name, got {show(name)}. Tip: pass the name "
            f"given with .options(name=...) when the actor was created."))
    core = launch.auto_init("raysim.get_actor")
    session.begin_phase("get_actor", name)
    if namespace is None:
        namespace = core.namespace  # Ray: the current job's namespace
    handle = _lookup_actor(core, name, namespace)
    if handle is None:
        raise rejected("get_actor", ValueError(_no_such_actor(core, name, namespace)),
                       in_phase=True)
    return handle


def _no_such_actor(core: CoreWorker, name: str, namespace: str | None) -> str:
    where = f"namespace {namespace!r}" if namespace else "the default namespace"
    actors = core.conns.ask_gcs("snapshot", {})["actors"].values()
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
    if not isinstance(actor, ActorHandle):
        raise rejected("kill", ValueError(
            f"raysim.kill() only supported for actors. For tasks, try raysim.cancel(). "
            f"Got: {show(actor)}."))
    session.check_same_session(actor, "the actor handle passed to kill()", "kill")
    core = launch.auto_init("raysim.kill")
    session.begin_phase("kill", actor._actor_id)
    core.conns.tell_raylet("kill_actor", {"actor_id": actor._actor_id,
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
    session.check_same_session(object_ref, "the ObjectRef passed to cancel()", "cancel")
    core = launch.auto_init("raysim.cancel")
    session.begin_phase("cancel", object_ref.id)
    with rejecting("cancel", in_phase=True):  # force=True on an actor call
        core.cancel(object_ref.id, force, recursive)
    trace.flush()


# ----------------------------------------------------------------------------------------
# Cluster state


def cluster_resources() -> dict[str, float]:
    """Every alive node's resources, added up (the GCS node table)."""
    core = session.require_core("raysim.cluster_resources")
    total: dict[str, float] = {}
    for info in core.conns.ask_gcs("snapshot", {})["nodes"].values():
        if info.get("alive", True):
            for name, amount in info["resources"].items():
                total[name] = total.get(name, 0.0) + amount
    return total


def available_resources() -> dict[str, float]:
    """What is free now, summed over every alive node (as Ray's)."""
    core = session.require_core("raysim.available_resources")
    total: dict[str, float] = {}
    for available in _nodes_available(core):
        for name, amount in available.items():
            total[name] = total.get(name, 0.0) + amount
    return {k: v for k, v in total.items() if v > 0}


def _nodes_available(core) -> list[dict[str, float]]:
    """Each alive node's free resources: its raylet's own count. This node's raylet is
    asked on the driver's connection; another node's, on a connection made for the
    question (its socket is in the same session directory, on this machine)."""
    from raysim.runtime.common import protocol

    nodes = core.conns.ask_gcs("snapshot", {})["nodes"]
    found = [core.conns.ask_raylet("snapshot", {})["resources"]["available"]]
    for node_id, info in nodes.items():
        if node_id == core.node_id or not info.get("alive", True):
            continue
        path = os.path.join(core.session_dir, f"raylet-{node_id}.sock")
        try:
            conn = protocol.connect_unix(path, "raylet", timeout_s=1.0)
        except OSError:
            continue  # it went away meanwhile
        try:
            found.append(conn.request("snapshot", {})["resources"]["available"])
        except (OSError, protocol.ConnectionClosed):
            pass
        finally:
            conn.close()
    return found


def nodes() -> list[dict]:
    core = session.require_core("raysim.nodes")
    snap = core.conns.ask_gcs("snapshot", {})
    return [{"NodeID": node_id, "Alive": info.get("alive", True),
             "Resources": info["resources"]} for node_id, info in snap["nodes"].items()]


def snapshot() -> dict:
    """The live runtime's own tables: GCS, each raylet's store and scheduler, this process's
    references. The tracer rebuilds the same tables from a trace."""
    return session.require_core("raysim.snapshot").snapshot()


def trace_path() -> str | None:
    """The file this session's trace is written to (None if tracing is off)."""
    session.require_core("raysim.trace_path")
    writer = trace.writer()
    return writer.path if writer is not None else None


def timeline(filename: str | None = None) -> list[dict] | None:
    """The session so far as Chrome/Perfetto trace events, as Ray's ``ray.timeline()``.

    With ``filename`` the events are written there as JSON (open it in ui.perfetto.dev or
    chrome://tracing); without, they are returned. raysim's timeline holds every process,
    message and store counter of the trace, not only task slices.
    """
    from raysim.trace import chrome, load

    session.require_core("raysim.timeline")
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
    launch.auto_init("raysim.get_gpu_ids")
    return []


def get_runtime_context():
    """Who and where the calling code runs (``runtime_context.py``)."""
    core = launch.auto_init("raysim.get_runtime_context")
    return RuntimeContext(core, session.current().namespace)
