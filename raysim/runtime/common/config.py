"""Every tunable of the raysim runtime, in one place (like xv6's ``param.h``).

Where Ray has a config key for the same knob (``src/ray/common/ray_config_def.h``), the
name here is Ray's. Each value can be overridden for one session through
``raysim.init(_system_config={...})``, as in Ray, and read back from the trace header.

Runs in: every process (the driver sends the resolved config to GCS and raylet, which pass it
on to workers).
"""

from __future__ import annotations

import dataclasses
import os


@dataclasses.dataclass
class Config:
    # Task return values whose serialized size is below this go back inline to the caller;
    # at or above it they are written to the shared-memory store (Ray: 100 KiB).
    max_direct_call_object_size: int = 100 * 1024

    # A pickled remote function or actor class this big is refused: it captures a large
    # object in its closure, which every worker would load (Ray's
    # FUNCTION_SIZE_ERROR_THRESHOLD, 100 MB). Past the warning threshold (10 MB), a warning.
    function_size_error_threshold: int = 10 ** 8
    function_size_warn_threshold: int = 10 ** 7

    # Size of each node's shared-memory object store. None: 30% of system memory, as Ray.
    object_store_memory: int | None = None

    # Objects at least this big are placed on a page boundary in the store, so that the
    # pages a writer touched for one object are reused, already mapped, by the next.
    object_store_page_align_threshold: int = 64 * 1024

    # An object another node holds is pulled into this node's store in chunks of this size,
    # each read from the holder's store and written into this one (Ray's key, 5 MiB).
    object_manager_default_chunk_size: int = 5 * 1024 * 1024

    # When an object does not fit in the store, write objects no process has mapped to disk
    # to make room, and read them back when needed (Ray's key; on by default in Ray too).
    # Off: the put or task return that does not fit raises ObjectStoreFullError. Ray also
    # spills ahead of need (object_spilling_threshold, 0.8); raysim only when a create
    # does not fit (local_object_manager.py).
    automatic_object_spilling_enabled: bool = True

    # Where spilled objects go. None: <session_dir>/spill. A directory: a subdirectory
    # raysim_spilled_objects_<node id> in it (Ray's key and ray.init() argument of this name).
    object_spilling_directory: str | None = None

    # Default retries of a task whose worker died (Ray: max_retries=3).
    task_max_retries: int = 3

    # How long a task that raised an exception its retry_exceptions covers waits before it
    # runs again. Ray's key of the same name is 1000 ms; raysim waits less so that runs and
    # tests stay quick. Retries after a worker died start at once, as in Ray.
    task_retry_delay_ms: int = 100

    # Worker processes that die before connecting to the raylet this many times in a row (a
    # broken import, a worker_process_setup_hook that raises) make the raylet fail the tasks
    # waiting for a worker instead of starting more forever. Ray keeps trying.
    max_worker_startup_failures: int = 3

    # How long a process waits for the GCS or raylet to come up before init() gives up.
    process_startup_timeout_s: float = 10.0

    # How long shutdown() waits for a process to exit by itself before SIGKILL.
    process_shutdown_timeout_s: float = 2.0

    # A trace event batch is written to the file once it holds this many events, and in
    # any case whenever the process is about to wait for something.
    trace_flush_events: int = 512

    # Worker processes are forked from a preloaded "zygote" process. Modules the driver had
    # imported from site-packages when it called init() are imported there too, so new
    # workers start with them (Ray instead starts each worker as a fresh interpreter): those
    # the program's code names before the first fork, the others between requests.
    worker_preload_driver_modules: bool = True

    # Number of idle task workers the raylet starts ahead of demand. None: num_cpus.
    num_prestart_workers: int | None = None

    # How many freed object ids the GCS remembers, so that a reference to one that arrives
    # too late (it travelled where nobody counted it) makes get() raise
    # ReferenceCountingAssertionError instead of waiting forever. Ray's owners know every
    # object they own and need no such list.
    freed_objects_remembered: int = 100_000

    # Longest reprs of an actor attribute recorded in `actor.state` events.
    actor_state_repr_limit: int = 80

    # When a value cannot be pickled, raysim looks inside it for the part that cannot (Ray's
    # inspect_serializability) this many levels deep, for at most this long, to name it.
    serialization_debug_depth: int = 8
    serialization_debug_time_s: float = 1.0

    def spill_directory(self, session_dir: str, node_id: str) -> str:
        """Where a node's spilled objects go (its raylet writes there; stopping the session
        removes it)."""
        if self.object_spilling_directory:
            return os.path.join(os.path.abspath(self.object_spilling_directory),
                                f"raysim_spilled_objects_{node_id}")
        return os.path.join(session_dir, "spill")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"Unknown raysim config key(s) {sorted(unknown)!r}; "
                f"known keys are {sorted(known)!r}."
            )
        return cls(**values)


def default_object_store_memory() -> int:
    """Ray's default: 30% of the machine's memory."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(total * 0.3)


def default_heap_memory(object_store_memory: int) -> int:
    """Ray's ``memory`` resource: what the machine has available for workers' heaps, less
    the object store's share (MemAvailable, as Ray reads it, minus the store)."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(0, available - object_store_memory)
