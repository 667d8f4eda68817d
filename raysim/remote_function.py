"""``@raysim.remote`` on a function: a ``RemoteFunction`` whose ``.remote()`` submits a task.

The function is pickled with cloudpickle the first time it is called remotely in a session
and exported once to the GCS key-value store; each task then names it by id, and a worker
fetches and unpickles it on first use (Ray's function manager does the same).
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any, Callable

from raysim import launch, option_utils, session, signature
from raysim.generator import ObjectRefGenerator
from raysim.object_ref import ObjectRef, check_arguments
from raysim.rejections import rejected, rejecting
from raysim.runtime.common import ids, runtime_env, serialization, task_spec
from raysim.runtime.common.task_spec import TaskSpec
from raysim.trace import writer as trace
from raysim.util import scheduling_strategies


class RemoteFunction:
    def __init__(self, function: Callable, options: dict[str, Any]) -> None:
        self._function = function
        launch.note_remote_code(getattr(function, "__module__", None))
        with rejecting("remote"):
            self._options = option_utils.validate(dict(options), option_utils.TASK_OPTIONS,
                                                  "remote functions")
        self._name = getattr(function, "__qualname__", repr(function))
        self._params = signature.extract(function)
        self._pickled: bytes | None = None
        self._captured: list = []  # the ObjectRefs its pickle captured, kept alive
        self._function_id: str | None = None
        self.__doc__ = function.__doc__
        self.__name__ = getattr(function, "__name__", self._name)
        self.__wrapped__ = function
        # A generator function without num_returns is a streaming generator task, as in Ray.
        self._streaming = inspect.isgeneratorfunction(function) and \
            options.get("num_returns", "streaming") == "streaming"

    def __call__(self, *args, **kwargs):
        raise rejected("RemoteFunction.__call__", TypeError(
            f"Remote functions cannot be called directly. Instead of running "
            f"'{self.__name__}()', try '{self.__name__}.remote()'."))

    def options(self, **options: Any) -> "RemoteFunction":
        merged = dict(self._options)
        with rejecting("RemoteFunction.options"):
            merged.update(option_utils.validate(options, option_utils.TASK_OPTIONS,
                                                "remote functions"))
        clone = RemoteFunction.__new__(RemoteFunction)
        clone.__dict__.update(self.__dict__)
        clone._options = merged
        clone._streaming = inspect.isgeneratorfunction(self._function) and \
            merged.get("num_returns", "streaming") == "streaming"
        clone._parent = self
        return clone

    def _export(self, core) -> str:
        source = getattr(self, "_parent", self)
        if source._pickled is None:
            try:
                # The refs it captures stay alive as long as this process does: Ray pins
                # them for good when it pickles a function (ray-project/ray#15058).
                source._captured = []
                source._pickled = serialization.dumps_function(self._function, source._captured)
            except Exception as e:
                # A function defined in __main__ travels by value, with what it captures.
                raise core.serialization_error(
                    self._function, f"the remote function {self._name}", e) from None
            source._function_id = hashlib.sha1(source._pickled).hexdigest()[:16]
        core.export_function(source._function_id, self._name, source._pickled)
        return source._function_id

    def remote(self, *args, **kwargs) -> Any:
        call = f"{self._name}.remote()"
        with rejecting("RemoteFunction.remote"):
            if inspect.isasyncgenfunction(self._function):
                raise option_utils.async_generator_error(f"The remote function {self._name}")
            signature.check_call(self._params, args, kwargs, call, self._name)
        check_arguments(args, kwargs, call, "RemoteFunction.remote")
        core = launch.auto_init(f"{self._name}.remote")
        session.begin_phase("task_submission", self._name)
        with rejecting("RemoteFunction.remote", in_phase=True):  # cannot be pickled
            function_id = self._export(core)
            args_bytes, deps, nested, keep = core.submitter.serialize_args(args, kwargs,
                                                                           self._name)
        options = self._options
        num_returns = 1 if self._streaming else options.get("num_returns", 1)  # (its end)
        if num_returns == "streaming":
            raise rejected("RemoteFunction.remote", ValueError(
                f"num_returns='streaming' is for generator functions, and {self._name} does "
                f"not yield. Tip: leave num_returns out, or make {self._name} yield its "
                f"values."))
        task_id = core.new_task_id()
        returns = [ids.return_object_id(task_id, i + 1) for i in range(num_returns)]
        num_cpus, resources = option_utils.resources_of(options)
        spec = TaskSpec(
            task_id=task_id, kind=task_spec.NORMAL_TASK,
            name=options.get("name") or self._name,  # .options(name=...), as Ray names it
            function_id=function_id, args=args_bytes, returns=returns,
            owner=core.wid, owner_holder=core.holder_name,
            owner_address=core.conns.owner_path, num_cpus=num_cpus,
            resources=resources,
            max_retries=options.get("max_retries", core.config.task_max_retries),
            max_calls=options.get("max_calls") or None,
            env_vars=runtime_env.env_vars_of(options.get("runtime_env")),
            retry_exceptions=task_spec.encode_retry_exceptions(
                options.get("retry_exceptions", False)),
            phase=trace.get_phase(), streaming=self._streaming,
            strategy=scheduling_strategies.to_spec(options.get("scheduling_strategy")))
        if self._streaming:
            core.generators.expect(task_id)  # before its first value can arrive
        core.submitter.submit(spec, deps, nested)
        del keep  # large arguments put for this task: the task holds them now
        refs = [ObjectRef(oid, core.wid, _announce=False) for oid in returns]
        if self._streaming:  # its one return is its end; the values come one by one
            return ObjectRefGenerator(refs[0], core.generators)
        if num_returns == 0:
            return None
        return refs[0] if num_returns == 1 else refs

