"""Starting and stopping a session from the driver: the body of ``init()`` and ``shutdown()``.

Seed, phase 1: "When ray.init() is called, several processes start on your machine". This
module starts them (``runtime/node.py``: session directory, GCS, raylet with its object store
and zygote), opens the trace, connects the driver's core worker to them and makes the
``Session`` (``session.py``) every API call then reaches. ``stop`` undoes it. ``auto_init``
starts a session with the defaults when a program calls the API without ``init()``, as Ray
does.

Runs in: the driver. Trace events: ``trace.header``, the ``init`` and ``shutdown`` phases,
the driver's ``process.started`` and ``process.stopping``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator

from raysim import session
from raysim.call_site import user_call_site
from raysim.object_ref import ObjectRef
from raysim.runtime import node as node_processes
from raysim.runtime.common import ids
from raysim.runtime.common.config import Config, default_heap_memory, default_object_store_memory
from raysim.runtime.common.runtime_env import setup_hook_for_workers
from raysim.runtime.core_worker.core_worker import CoreWorker
from raysim.session import Session
from raysim.trace import writer as trace

# Where each remote function and actor class was defined: the zygote imports what these
# modules import before it forks workers (node.driver_modules).
_remote_code_modules: set[str] = set()
# Options a tool that runs the user's script gives the init() that script makes
# (``raysim trace`` chooses the trace file): ``init_defaults``.
_defaults: dict[str, Any] = {}
# The clusters made in this process (cluster_utils.Cluster), by address.
clusters: dict[str, Any] = {}


def cluster_at(address: str):
    """The ``Cluster`` made in this process that ``address`` names."""
    cluster = clusters.get(address)
    if cluster is None:
        raise ValueError(
            f"raysim cannot connect to address={address!r}: raysim starts its own local "
            f"session, and the only addresses it knows are those of the clusters made in "
            f"this process (raysim.cluster_utils.Cluster(...).address). Tip: call "
            f"raysim.init() without an address, or pass cluster.address.")
    return cluster


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
        stop()


def note_remote_code(module: str | None) -> None:
    if module:
        _remote_code_modules.add(module)


@contextlib.contextmanager
def init_defaults(**options: Any) -> Iterator[None]:
    """Options for the sessions started inside the block that ``init()`` was not given
    (``raysim trace`` passes ``trace_path``)."""
    saved = dict(_defaults)
    _defaults.update(options)
    try:
        yield
    finally:
        _defaults.clear()
        _defaults.update(saved)


def auto_init(api: str) -> CoreWorker:
    """The core worker, starting a session first if none is running, as Ray does.

    Ray calls ``ray.init()`` with its defaults on the first ``put``, ``get``, ``wait``,
    ``get_actor``, ``kill``, ``cancel``, ``get_runtime_context`` or ``.remote()`` of a program
    that did not call it (and again after ``shutdown``); ``RAY_ENABLE_AUTO_CONNECT=0`` turns
    that off. raysim does the same, with ``RAYSIM_ENABLE_AUTO_CONNECT=0``. The other calls
    (``cluster_resources``, ``nodes``, ``timeline``, ...) raise RaySimNotInitializedError.
    """
    current = session.current()
    if current is not None:
        return current.core
    if os.environ.get("RAYSIM_ENABLE_AUTO_CONNECT", "") == "0":
        return session.require_core(api)
    with session.lock:
        if session.current() is None:
            print(f"raysim: {api}() started a session with raysim.init()'s defaults, as Ray "
                  f"does when none is running. Tip: call raysim.init() first to choose its "
                  f"options.", file=sys.stderr)
            start()
    return session.require_core(api)


# ----------------------------------------------------------------------------------------
# Starting and stopping


def node_resources(num_cpus: float | None = None, num_gpus: float | None = None,
                   resources: dict[str, float] | None = None, capacity: int = 0,
                   head: bool = False) -> dict[str, float]:
    """A node's resources as Ray reports them: CPUs (all of the machine's by default), GPUs,
    heap memory for tasks that ask for memory=..., the store's size, one unit of the node's
    own resource (127.0.0.1: raysim's nodes are all on this machine), and the head's mark."""
    total = {"CPU": float(os.cpu_count() if num_cpus is None else num_cpus)}
    if num_gpus:
        total["GPU"] = float(num_gpus)
    total["memory"] = float(default_heap_memory(capacity))
    total["object_store_memory"] = float(capacity)
    total["node:127.0.0.1"] = 1.0
    if head:
        total["node:__internal_head__"] = 1.0
    total.update(resources or {})
    return total


def start(*, num_cpus: int | None = None, num_gpus: int | None = None,
          resources: dict[str, float] | None = None, object_store_memory: int | None = None,
          namespace: str | None = None, trace_path: str | None = None, tracing: bool = True,
          temp_dir: str | None = None, system_config: dict | None = None,
          runtime_env: dict | None = None, cluster=None) -> RaySimContext:
    """Start the session's processes and connect the driver to them (the arguments are
    ``init()``'s, already checked). ``cluster`` (``raysim.cluster_utils.Cluster``): its head
    node's arguments replace init's, and its other nodes start with the session."""
    with session.lock:
        cluster = cluster or _defaults.get("cluster")
        object_manager_port = 0  # the system picks one (a cluster's head node may choose)
        if cluster is not None:
            head = cluster.head_args({"num_cpus": num_cpus, "num_gpus": num_gpus,
                                      "resources": resources,
                                      "object_store_memory": object_store_memory})
            num_cpus, num_gpus = head.get("num_cpus"), head.get("num_gpus")
            resources = head.get("resources")
            object_store_memory = head.get("object_store_memory")
            object_manager_port = head.get("object_manager_port") or 0
        setup_hook = setup_hook_for_workers(runtime_env)
        job_env_vars = (runtime_env or {}).get("env_vars") or None
        trace_path = trace_path or _defaults.get("trace_path")
        config = Config.from_dict(dict(system_config or {}))
        if object_store_memory is not None:
            config.object_store_memory = object_store_memory
        capacity = config.object_store_memory or default_object_store_memory()
        total = node_resources(num_cpus, num_gpus, resources, capacity, head=True)
        session_dir = node_processes.make_session_dir(temp_dir)
        name = os.path.basename(session_dir)
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
                       **trace.header(name, session_dir, config.to_dict(), "seed"))
            trace.set_phase(0)
            site, code = user_call_site()
            trace.emit("phase.begin", phase=0, api="init", site=site, code=code, detail=None)
            trace.flush()  # the header is the file's first line: written before any process starts
        trace.emit("process.started", ppid=os.getppid(), role="driver", wid=wid)
        # What the zygote imports before forking workers, and where workers run: known now, so
        # the zygote starts importing while the driver is still connecting. Like Ray's raylet,
        # which is told the command that starts a worker, the zygote is told the module a
        # worker runs.
        first, later = ([], [])
        if config.worker_preload_driver_modules:
            first, later = node_processes.driver_modules(_remote_code_modules)
        preload = {"sys_path": list(sys.path), "cwd": os.getcwd(), "modules": first,
                   "modules_when_idle": later, "worker_process_setup_hook": setup_hook,
                   "env_vars": job_env_vars, "worker_module": "raysim.default_worker"}
        node = node_processes.NodeProcesses(session_dir, node_id, path, config, total, capacity,
                                            job_id, preload, cluster=cluster is not None,
                                            object_manager_port=object_manager_port)
        try:
            gcs = node.connect_gcs()
            gcs.request("register_driver", {"job": job_id, "wid": wid})
            raylet, reply, store_fd = node.connect_raylet({"role": "driver", "wid": wid})
        except BaseException:
            node.stop(config.process_shutdown_timeout_s)
            trace.close_trace()
            raise
        core = CoreWorker("driver", wid, node_id, session_dir, raylet, gcs, store_fd,
                          reply["store_capacity"], config, job_id, ObjectRef)
        os.close(store_fd)  # the mapping keeps the memory; the fd is no longer needed
        core.namespace = namespace  # where named actors go when .options() names none
        core.conns.exit_code_of = node.exit_code  # how a GCS or raylet that died ended
        core.start()
        if cluster is not None:
            try:
                cluster.started(node, core)  # its other nodes join
            except BaseException:
                core.close()
                node.stop(config.process_shutdown_timeout_s)
                trace.close_trace()
                raise
        trace.flush()
        context = RaySimContext(session_dir=session_dir, trace_path=path, node_id=node_id,
                                job_id=job_id, namespace=namespace,
                                address_info={"node_id": node_id, "session_dir": session_dir,
                                              **node.pids()})
        session.begin(Session(core, node, context, namespace,
                              actor_strategy=_defaults.get("actor_strategy")))
        return context


def stop() -> None:
    """Stop every process of the session; the store's memory goes with them."""
    with session.lock:
        current = session.current()
        if current is None or current.node is None:
            return
        core, node = current.core, current.node
        current.begin_phase("shutdown")
        core.conns.stopping = True  # from now on, GCS and raylet going away is what was asked
        timeout = core.config.process_shutdown_timeout_s
        try:  # nodes that go from now on are stopped, not lost: the GCS mourns none
            core.conns.request(core.conns.gcs, "session_stopping", {}, timeout=timeout)
        except Exception:
            pass  # the GCS is gone (or dead): nothing to tell
        # The other nodes' raylets first (SIGTERM: each stops its workers), while the GCS
        # they report to still runs.
        for node_id in [n for n in node.raylets if n != node.node_id]:
            node.remove_raylet(node_id)
        for component, conn in (("raylet", core.conns.raylet), ("gcs", core.conns.gcs)):
            try:
                core.conns.request(conn, "shutdown", {}, timeout=timeout)
            except Exception:
                continue  # already gone (or dead): stop() below makes sure
            # The raylet stops its workers before it exits. Only then does the GCS go: a
            # worker that saw its GCS vanish first would take that for a death.
            node.exit_code(component, timeout)
        core.close()
        node.stop(core.config.process_shutdown_timeout_s)
        trace.emit("process.stopping", reason="shutdown")
        trace.close_trace()
        session.end()
