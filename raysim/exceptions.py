"""Ray's exception types, under Ray's names (``ray.exceptions``).

Each message says what happened and ends with what to do, as Ray's "Tip:" messages do.
``RayTaskError`` is special: ``get`` raises an instance that is *also* an instance of the
user's exception class, so ``except ZeroDivisionError`` catches a remote division by zero.
"""

from __future__ import annotations

import logging
import signal


class RayError(Exception):
    """Base of every raysim error."""


class RaySystemError(RayError):
    """The runtime itself failed (a process died, a socket closed).

    Raised as such when the session's GCS died (``component`` "gcs"); its subclass
    ``LocalRayletDiedError`` when the raylet did. Then ``pid`` is the process that died and
    ``exit_code`` how it ended (minus the signal number if a signal killed it, as
    ``subprocess`` reports it; None if this process cannot know)."""

    def __init__(self, message: str = "", component: str | None = None,
                 pid: int | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.component = component
        self.pid = pid
        self.exit_code = exit_code

    def __reduce__(self):
        return (type(self), (str(self), self.component, self.pid, self.exit_code))


class LocalRayletDiedError(RaySystemError):
    """The raylet of this process's node died (Ray's name; Ray derives it from RayError,
    raysim from RaySystemError, so that one ``except`` catches the death of either
    control-plane process)."""


def control_plane_died(component: str, pid: int, exit_code: int | None,
                       trace_path: str | None) -> RaySystemError:
    """The error every blocking call raises once the GCS or the raylet is gone.

    Ray without GCS fault tolerance cannot go on without its GCS either, nor a node without
    its raylet: the session is over, and a new one must be started."""
    if component == "gcs":
        what, cls = f"The GCS (pid {pid}) of this raysim session", RaySystemError
        lost = ("the GCS held the tables every process depends on (actors, object "
                "locations and references, exported functions), and raysim, like Ray "
                "without GCS fault tolerance, cannot rebuild them")
    else:
        what, cls = f"The raylet (pid {pid}) of this raysim node", LocalRayletDiedError
        lost = ("the raylet owned this node's object store, scheduler and worker "
                "processes, and they went with it")
    where = f"the trace ({trace_path})" if trace_path else "the trace (if tracing is on)"
    return cls(
        f"{what} died: {describe_exit(exit_code)}. The session is unusable: {lost}. Tip: "
        f"call raysim.shutdown(), then raysim.init() to start a new session; the last "
        f"events of pid {pid} in {where} show what it was doing when it died.",
        component, pid, exit_code)


def describe_exit(exit_code: int | None) -> str:
    """"it was killed by signal SIGKILL", "it exited with code 1", or that it is unknown."""
    if exit_code is None:
        return "how it ended is not known to this process (it is not its parent)"
    if exit_code < 0:
        return f"it was killed by signal {signal_name(-exit_code)}"
    return f"it exited with code {exit_code}"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


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
        # Exception's own __init__, not super()'s: in the class that is also the user's
        # exception, super() would reach the user's __init__ with the wrong arguments.
        Exception.__init__(self, self._text())

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
        if self.cause is None or issubclass(RayTaskError, type(self.cause)):
            return self
        cause_cls = type(self.cause)
        try:
            cls = _dual_class(cause_cls)
            err = cls.__new__(cls)
        except Exception as e:  # the user's class cannot be subclassed (final, say)
            logging.getLogger(__name__).warning(
                f"User exception type {cause_cls} in RayTaskError can't be subclassed! This "
                f"exception is raised as RayTaskError only. You can use "
                f"`ray_task_error.cause` to access the user exception. Failure in "
                f"subclassing: {e}")
            return self
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

        def __getattr__(self, name: str):
            # The user's exception's own attributes (``e.code``), as Ray's dual class does.
            cause = self.__dict__.get("cause")
            if cause is None:
                raise AttributeError(name)
            return getattr(cause, name)

        cls = type(name, (RayTaskError, cause_cls),
                   {"__str__": __str__, "__init__": lambda self, *a, **k: None,
                    "__getattr__": __getattr__, "__reduce__": RayTaskError.__reduce__,
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


class UnserializableException(RayError):
    """A remote exception could be pickled but not unpickled (its ``__init__`` takes other
    arguments than its ``args``, say): raised instead, with the original's text and
    traceback (Ray's name and behaviour)."""

    def __init__(self, original_stack_trace: str) -> None:
        self._original_stack_trace = original_stack_trace
        super().__init__(original_stack_trace)

    def __str__(self) -> str:
        return ("Failed to deserialize exception: it pickles, but cannot be rebuilt from its "
                "pickle. Tip: give the exception class a __reduce__ (or an __init__ whose "
                "arguments are its args), so it can travel between processes.\n"
                f"Original exception:\n{self._original_stack_trace}")


class AsyncioActorExit(RayError):
    """Raised by ``exit_actor()`` in an async actor's coroutine: the actor is exiting
    (Ray's name). Catching it does not stop the exit."""


class TaskCancelledError(RayError):
    """The task was cancelled with ``raysim.cancel`` before it could finish (Ray's name and
    signature)."""

    def __init__(self, task_id: str | None = None, error_message: str | None = None) -> None:
        self.task_id = task_id
        what = f"Task {task_id}" if task_id else "The task"
        super().__init__(error_message or (
            f"{what} was cancelled by raysim.cancel(), so it has no result. Tip: submit it "
            f"again if you still need its result."))

    def __reduce__(self):
        return (TaskCancelledError, (self.task_id, str(self)))


class TaskUnschedulableError(RayError):
    """The task can run on no node: the node its ``NodeAffinitySchedulingStrategy`` names
    (``soft=False``) is dead, or could never run it (Ray's name and message)."""

    def __init__(self, error_message: str) -> None:
        self.error_message = error_message
        super().__init__(error_message)

    def __str__(self) -> str:
        return f"The task is not schedulable: {self.error_message}"

    def __reduce__(self):
        return (TaskUnschedulableError, (self.error_message,))


class ActorUnschedulableError(RayError):
    """The actor can be placed on no node: the node its ``NodeAffinitySchedulingStrategy``
    names (``soft=False``) is dead, or could never host it (Ray's name and message). Its
    calls raise it too."""

    def __init__(self, error_message: str) -> None:
        self.error_message = error_message
        super().__init__(error_message)

    def __str__(self) -> str:
        return f"The actor is not schedulable: {self.error_message}"

    def __reduce__(self):
        return (ActorUnschedulableError, (self.error_message,))


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


class ReferenceCountingAssertionError(ObjectLostError, AssertionError):
    """The object was freed while a reference to it still existed: the reference reached
    the reference table after the last counted one had gone (Ray's name and bases)."""


class OutOfMemoryError(RayError):
    pass


class RaySimNotInitializedError(RaySystemError):
    """A raysim API was used before ``raysim.init()`` or after ``raysim.shutdown()``."""


__all__ = [name for name in dir() if name.endswith("Error") and not name.startswith("_")]
