"""``TaskSpec``: everything needed to run one task, actor creation or actor method call.

Ray's ``TaskSpecification`` (a protobuf) travels from the submitter to the raylet and on to
the worker; raysim's does the same. It is built by the submitter (``remote_function.py``,
``actor.py``), read by the raylet's scheduler and by the worker, and pickled as a plain tuple
so that the hot path of every task pays for values only, not for field names.

Runs in: the driver, the raylet and workers.
"""

from __future__ import annotations

# The task kinds, as the trace schema names them (``TaskSpec.kind``).
from raysim.trace.schema import ACTOR_CREATION, ACTOR_TASK, NORMAL_TASK  # noqa: F401


class TaskSpec:
    __slots__ = (
        "task_id",       # TaskID
        "kind",          # NORMAL_TASK, ACTOR_CREATION or ACTOR_TASK
        "name",          # function or "Class.method", for people
        "function_id",   # key of the pickled function/class in the GCS key-value store
        "args",          # serialized (args, kwargs), top-level refs replaced by _ArgRef
        "deps",          # [[ObjectID, inline bytes or None], ...] for top-level ref args
        "returns",       # [ObjectID, ...] of the return values
        "owner",         # worker id of the submitter (results are routed to it)
        "owner_holder",  # the submitter as a reference holder: "driver:<id>"/"worker:<id>"
        "owner_address", # the submitter's socket, where the worker sends the result
        "phase",         # the driver API call this task belongs to (trace)
        "num_cpus",      # None: the default for the kind
        "resources",     # custom resources {name: amount}
        "max_retries",   # tasks: retries after a crash (-1: forever); actor calls: max_task_retries
        "retry_exceptions",  # False, True, or cloudpickled exception classes (see below)
        "actor_id",      # actor tasks and creations
        "method",        # actor tasks
        "handle_object", # actor creation and calls: the object whose references are the
                         # handles (a call holds it until it finishes, so the actor lives on)
        "descriptor",    # actor creation: what a handle needs (class, methods)
        "actor_name",    # actor creation: named actors
        "namespace",
        "max_restarts",
        "seq",           # actor calls: the caller's send order (on a death, what was pushed)
        "max_calls",     # tasks: a worker that ran this many of the function's tasks exits
        "env_vars",      # runtime_env={"env_vars": ...}: set in the worker that runs it
        "streaming",     # a generator task: each value yielded goes back as it is made
        "strategy",      # where it may run: None, "SPREAD", or ("node", node id, soft)
    )

    def __init__(self, **fields) -> None:
        for name in self.__slots__:
            setattr(self, name, fields.pop(name, None))
        if fields:
            raise TypeError(f"unknown TaskSpec fields {sorted(fields)}")
        if self.resources is None:
            self.resources = {}

    def __reduce__(self):
        return (_rebuild, (tuple(getattr(self, n) for n in self.__slots__),))

    def __repr__(self) -> str:
        return f"TaskSpec({self.kind} {self.name} {self.task_id})"


def _rebuild(values: tuple) -> TaskSpec:
    spec = TaskSpec.__new__(TaskSpec)
    for name, value in zip(TaskSpec.__slots__, values):
        setattr(spec, name, value)
    return spec


# ``retry_exceptions`` may name exception classes. The raylet unpickles every spec with plain
# ``pickle`` and cannot import a class defined in the driver's ``__main__``, so the classes
# travel cloudpickled, as bytes only the worker opens.


def encode_retry_exceptions(value) -> bool | bytes:
    """The ``retry_exceptions`` option as it travels in a spec: a bool, or pickled classes."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(c, type) and issubclass(c, BaseException) for c in value):
        import cloudpickle
        return cloudpickle.dumps(tuple(value))
    raise TypeError(
        f"The retry_exceptions option must be True, False or a non-empty list of exception "
        f"classes, got {value!r}. Tip: pass e.g. retry_exceptions=[ConnectionError].")


def retries_exception(spec: TaskSpec, error: BaseException, attempt: int) -> bool:
    """Should this exception, raised by attempt ``attempt`` (from 0), make the task run again?

    As in Ray, user exceptions are retried only when ``retry_exceptions`` covers them, and
    they use the same budget as crashes: ``max_retries`` (-1: no limit)."""
    max_retries = spec.max_retries or 0
    if max_retries >= 0 and attempt >= max_retries:
        return False
    return exception_is_retryable(spec, error)


def last_line(error_text: str) -> str:
    """The last line of a traceback (``ValueError: transient``): why a retry happens."""
    lines = [line for line in error_text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "it raised an exception"


def exception_is_retryable(spec: TaskSpec, error: BaseException) -> bool:
    """Does the task's ``retry_exceptions`` cover this exception (whatever the budget)?"""
    wanted = spec.retry_exceptions
    if not wanted or not isinstance(error, Exception):
        return False
    if wanted is True:
        return True
    import cloudpickle
    return isinstance(error, cloudpickle.loads(wanted))
