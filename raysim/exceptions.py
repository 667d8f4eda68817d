"""Ray's exception types, under Ray's names (``ray.exceptions``).

Each message says what happened and ends with what to do, as Ray's "Tip:" messages do.
``RayTaskError`` is special: ``get`` raises an instance that is *also* an instance of the
user's exception class, so ``except ZeroDivisionError`` catches a remote division by zero.
"""

from __future__ import annotations


class RayError(Exception):
    """Base of every raysim error."""


class RaySystemError(RayError):
    """The runtime itself failed (a process died, a socket closed)."""


class RayTaskError(RayError):
    """A task or actor method raised; ``cause`` is the exception it raised.

    Its text names the remote function, the process it ran in and the remote traceback.
    """

    def __init__(self, function_name: str, traceback_str: str, cause: BaseException | None,
                 pid: int = 0, node: str = "") -> None:
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        self.node = node
        super().__init__(self._text())

    def _text(self) -> str:
        return (f"raysim::{self.function_name}() (pid={self.pid}, node={self.node})\n"
                f"{self.traceback_str.rstrip()}")

    def __str__(self) -> str:
        return self._text()

    def __reduce__(self):
        return (_rebuild_task_error,
                (self.function_name, self.traceback_str, self.cause, self.pid, self.node))

    def as_instanceof_cause(self) -> "RayTaskError":
        """Return an error that is both a RayTaskError and an instance of the cause's class."""
        if self.cause is None or isinstance(self.cause, RayTaskError):
            return self
        cause_cls = type(self.cause)
        try:
            cls = _dual_class(cause_cls)
            err = cls.__new__(cls)
        except TypeError:
            return self  # the user's class cannot be subclassed (e.g. final C types)
        RayTaskError.__init__(err, self.function_name, self.traceback_str, self.cause,
                              self.pid, self.node)
        err.args = self.cause.args if self.cause is not None else ()
        return err


_dual_classes: dict[type, type] = {}


def _dual_class(cause_cls: type) -> type:
    cls = _dual_classes.get(cause_cls)
    if cls is None:
        name = f"RayTaskError({cause_cls.__name__})"

        def __str__(self) -> str:
            return RayTaskError._text(self)

        cls = type(name, (RayTaskError, cause_cls),
                   {"__str__": __str__, "__init__": lambda self, *a, **k: None,
                    "__reduce__": RayTaskError.__reduce__,
                    "__module__": "raysim.exceptions"})
        _dual_classes[cause_cls] = cls
    return cls


def _rebuild_task_error(function_name, traceback_str, cause, pid, node):
    return RayTaskError(function_name, traceback_str, cause, pid, node)


class RayActorError(RayError):
    """The actor is dead or unreachable, so the method call could not run."""

    def __init__(self, message: str = "The actor died unexpectedly before finishing this "
                 "task.", actor_id: str | None = None) -> None:
        self.actor_id = actor_id
        super().__init__(message)


class ActorDiedError(RayActorError):
    """The actor died: killed, out of scope, its process crashed, or its __init__ raised."""


class ActorUnavailableError(RayActorError):
    """The actor is temporarily unreachable (restarting)."""


class TaskCancelledError(RayError):
    def __init__(self, task_id: str | None = None) -> None:
        self.task_id = task_id
        super().__init__(f"Task {task_id} was cancelled." if task_id else "Task was cancelled.")


class GetTimeoutError(RayError, TimeoutError):
    """``get`` timed out before the objects were ready."""


class WorkerCrashedError(RayError):
    def __init__(self, message: str = "The worker died unexpectedly while executing this "
                 "task. Tip: check the worker's exit code in the trace (process.exited); "
                 "raise max_retries if the crash is transient.") -> None:
        super().__init__(message)


class ObjectStoreFullError(RayError):
    """The node's shared-memory store has no room for the object."""


class ObjectLostError(RayError):
    def __init__(self, object_id: str = "", message: str | None = None) -> None:
        self.object_id = object_id
        super().__init__(message or f"Object {object_id} is lost: no copy of it remains.")


class OwnerDiedError(ObjectLostError):
    """The process that owned the object died, taking the object's metadata with it."""


class ObjectFreedError(ObjectLostError):
    """The object was freed (its reference count reached zero) before it was read."""


class OutOfMemoryError(RayError):
    pass


class RaySimNotInitializedError(RaySystemError):
    """A raysim API was used before ``raysim.init()`` or after ``raysim.shutdown()``."""


__all__ = [name for name in dir() if name.endswith("Error") and not name.startswith("_")]
