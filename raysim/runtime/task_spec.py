"""``TaskSpec``: everything needed to run one task, actor creation or actor method call.

Ray's ``TaskSpecification`` (a protobuf) travels from the submitter to the raylet and on to
the worker; raysim's does the same. It is built by the submitter (``remote_function.py``,
``actor.py``), read by the raylet's scheduler and by the worker, and pickled as a plain tuple
so that the hot path of every task pays for values only, not for field names.

Runs in: the driver, the raylet and workers.
"""

from __future__ import annotations

NORMAL_TASK = "task"
ACTOR_CREATION = "actor_creation"
ACTOR_TASK = "actor_task"


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
        "max_retries",
        "retry_exceptions",
        "actor_id",      # actor tasks and creations
        "method",        # actor tasks
        "handle_object", # actor creation: the object whose references are the handles
        "descriptor",    # actor creation: what a handle needs (class, methods)
        "actor_name",    # actor creation: named actors
        "namespace",
        "max_restarts",
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
