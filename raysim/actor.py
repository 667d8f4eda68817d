"""Actors: ``@raysim.remote`` on a class, ``.remote()`` to create one, handles to call it.

Seed, phase 3: ``actors = [BatchPredictor.remote(model_ref) for _ in range(3)]`` — each call
submits an actor creation task and returns an ``ActorHandle`` at once; the actor comes alive
in its own worker process. Phase 4: ``actors[i].predict.remote(path)`` submits a method call.

An actor lives while any handle to it exists anywhere (the creator's, or copies passed to
tasks and other actors), and while any call made through a handle has not finished. Handles
are counted like ObjectRefs, through a per-actor "handle object" with reference type
``ACTOR_HANDLE``, as ``ray memory`` shows them; a process whose handles are gone but whose calls
are still pending holds it as ``USED_BY_PENDING_TASK`` (Ray's pending actor tasks hold the
handle the same way), so ``A.remote().f.remote()`` gets its answer. When the count reaches
zero the GCS asks the raylet to stop the actor once its queued calls are done.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
from typing import Any

from raysim import exceptions, launch, option_utils, session, signature
from raysim.generator import ObjectRefGenerator
from raysim.object_ref import ObjectRef, check_arguments
from raysim.rejections import rejected, rejecting
from raysim.runtime.common import ids, runtime_env, serialization, task_spec
from raysim.runtime.common.task_spec import TaskSpec
from raysim.trace import writer as trace
from raysim.trace.schema import ACTOR_HANDLE
from raysim.util import scheduling_strategies


def exit_actor() -> None:
    """Ray's ``ray.actor.exit_actor()``: end the actor this code runs in, on purpose.

    The actor is not restarted, whatever its ``max_restarts``; the call that exits, and the
    calls queued behind it, fail with ``ActorDiedError``; its ``__ray_shutdown__``,
    ``__del__`` and ``atexit`` handlers run before its process exits. Raises ``SystemExit``
    (``AsyncioActorExit`` in a coroutine), which ends the method; catching it does not stop
    the exit."""
    core = session.current_core()
    hooks = core.hooks if core is not None else None
    if hooks is None or core.actor_creation is None:
        raise TypeError("exit_actor API is called on a non-actor worker: the driver or a "
                        "task. Tip: call exit_actor() inside an actor's method; to stop an "
                        "actor from outside, use raysim.kill(handle).")
    hooks.exit_actor("exit_actor() was called")
    try:
        import asyncio
        in_loop = asyncio.get_running_loop() is not None
    except RuntimeError:
        in_loop = False
    if in_loop:
        raise exceptions.AsyncioActorExit("exit_actor() is called: the actor exits.")
    raise SystemExit("exit_actor() is called: the actor exits.")


def method(*args, **options):
    """``@raysim.method(num_returns=2)``: options for one actor method."""
    with rejecting("method"):
        option_utils.validate(options, option_utils.METHOD_OPTIONS, "actor methods")
    if args:
        raise rejected("method", ValueError(
            "@raysim.method takes keyword arguments only, e.g. @raysim.method(num_returns=2)."))

    def decorate(fn):
        fn.__raysim_method_options__ = options
        return fn

    return decorate


def _method_options(options: dict[str, Any]) -> dict[str, Any]:
    """A method's options as they travel in its actor's descriptor (to the GCS, which
    unpickles with plain pickle): exception classes to retry on, pickled (task_spec.py)."""
    if "retry_exceptions" in options:
        options = {**options, "retry_exceptions": task_spec.encode_retry_exceptions(
            options["retry_exceptions"])}
    return options


class ActorClass:
    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        self._cls = cls
        launch.note_remote_code(getattr(cls, "__module__", None))
        with rejecting("remote"):
            self._options = option_utils.validate(dict(options), option_utils.ACTOR_OPTIONS,
                                                  "actors")
        self._pickled: bytes | None = None
        self._captured: list = []  # the ObjectRefs its pickle captured, kept alive
        self._function_id: str | None = None
        self.__name__ = cls.__name__
        self.__doc__ = cls.__doc__
        self._methods = {}
        self._signatures = {}  # method name -> its parameters, to check calls (signature.py)
        for name, member in inspect.getmembers(cls, callable):
            if name.startswith("__") and name != "__call__":
                continue
            opts = getattr(member, "__raysim_method_options__", {})
            self._methods[name] = _method_options({"num_returns": 1, **opts})
            if opts.get("num_returns", "streaming") == "streaming" and (
                    inspect.isgeneratorfunction(member) or inspect.isasyncgenfunction(member)):
                # A streaming generator (generator.py); an async one is refused at the call.
                self._methods[name]["generator"] = \
                    "async" if inspect.isasyncgenfunction(member) else "sync"
            self._signatures[name] = signature.method_params(cls, name, member)
        # Every actor has these two (Ray's): answered by its worker (worker.py).
        self._methods["__ray_ready__"] = {"num_returns": 1}
        self._methods["__ray_terminate__"] = {"num_returns": 1}
        self._init_params = signature.extract(cls.__init__, ignore_first=True)
        # Ray: an actor with any async method is an async actor (actor_concurrency.py).
        self._is_async = any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
                             for _, m in inspect.getmembers(cls, callable))

    def __call__(self, *args, **kwargs):
        raise rejected("ActorClass.__call__", TypeError(
            f"Actors cannot be instantiated directly. Instead of '{self.__name__}()', use "
            f"'{self.__name__}.remote()'."))

    def options(self, **options: Any) -> "ActorClass":
        clone = ActorClass.__new__(ActorClass)
        clone.__dict__.update(self.__dict__)
        clone._options = dict(self._options)
        with rejecting("ActorClass.options"):
            clone._options.update(option_utils.validate(options, option_utils.ACTOR_OPTIONS,
                                                        "actors"))
        clone._parent = self
        return clone

    def _export(self, core) -> str:
        source = getattr(self, "_parent", self)
        if source._pickled is None:
            try:
                # The refs it captures stay alive as long as this process does: Ray pins
                # them for good when it pickles a function (ray-project/ray#15058).
                source._captured = []
                source._pickled = serialization.dumps_function(self._cls, source._captured)
            except Exception as e:
                # A class defined in __main__ travels by value, with what its methods use.
                raise core.serialization_error(
                    self._cls, f"the actor class {self.__name__}", e) from None
            source._function_id = hashlib.sha1(source._pickled).hexdigest()[:16]
        core.export_function(source._function_id, self.__name__, source._pickled, "actor")
        return source._function_id

    def remote(self, *args, **kwargs) -> "ActorHandle":
        call = f"{self.__name__}.remote()"
        with rejecting("ActorClass.remote"):
            signature.check_call(self._init_params, args, kwargs, call,
                                 f"{self.__name__}.__init__")
        check_arguments(args, kwargs, call, "ActorClass.remote")
        core = launch.auto_init(f"{self.__name__}.remote")
        session.begin_phase("actor_creation", self.__name__)
        options = self._options
        name = options.get("name")
        namespace = options.get("namespace") or core.namespace  # default: init(namespace=)
        with rejecting("ActorClass.remote", in_phase=True):  # cannot be pickled
            function_id = self._export(core)
            args_bytes, deps, nested, keep = core.submitter.serialize_args(
                args, kwargs, f"{self.__name__}.__init__")
        task_id = core.new_task_id()
        actor_id = ids.random_hex(12)
        handle_object = ids.return_object_id(task_id, ids.HANDLE_INDEX)
        descriptor = {"actor_id": actor_id, "class_name": self.__name__,
                      "function_id": function_id, "methods": self._methods,
                      "signatures": self._signatures,
                      "handle_object": handle_object, "owner": core.wid,
                      "max_task_retries": options.get("max_task_retries", 0),
                      "max_concurrency": options.get("max_concurrency"),
                      "is_async": self._is_async,
                      # Ray: a detached actor outlives its creator and its handles.
                      "detached": options.get("lifetime") == "detached"}
        if name is not None:
            # Ray registers a named actor with the GCS before returning, so that the name is
            # claimed (or refused) at the call and get_actor finds it at once.
            reply = core.conns.ask_gcs("register_actor", {
                "actor_id": actor_id, "class_name": self.__name__, "name": name,
                "namespace": namespace, "handle_object": handle_object,
                "owner": core.holder_name, "descriptor": descriptor})
            if not reply["ok"]:
                if options.get("get_if_exists"):
                    return ActorHandle(reply["descriptor"])
                raise ValueError(f"The name {name} (namespace={namespace}) is already taken "
                                 f"by another actor. Tip: pick another name, or pass "
                                 f"get_if_exists=True to get the existing actor.")
        num_cpus, resources = option_utils.resources_of(options)
        spec = TaskSpec(
            task_id=task_id, kind=task_spec.ACTOR_CREATION, name=self.__name__,
            function_id=function_id, args=args_bytes, returns=[],
            owner=core.wid, owner_holder=core.holder_name, owner_address=core.conns.owner_path,
            num_cpus=num_cpus,
            resources=resources, actor_id=actor_id, handle_object=handle_object,
            descriptor=descriptor, actor_name=name, namespace=namespace,
            max_restarts=options.get("max_restarts", 0), phase=trace.get_phase(),
            env_vars=runtime_env.env_vars_of(options.get("runtime_env")),
            strategy=scheduling_strategies.to_spec(
                options.get("scheduling_strategy") or session.current().actor_strategy))
        core.refs.owned_handle(handle_object, ACTOR_HANDLE)  # what the GCS counts for us
        core.submitter.submit(spec, deps, nested)
        del keep
        return ActorHandle(descriptor)


class ActorHandle:
    """A handle to an actor; pass it around freely, to tasks and to other actors."""

    def __init__(self, descriptor: dict) -> None:
        self._descriptor = descriptor
        self._actor_id = descriptor["actor_id"]
        self._handle_object = descriptor["handle_object"]
        core = session.current_core()
        self._core = core
        if core is not None:
            core.refs.add_local(self._handle_object, ACTOR_HANDLE)

    def __del__(self) -> None:
        core = getattr(self, "_core", None)
        if core is not None and not core.conns.closing:
            try:
                core.refs.remove_local(self._handle_object)
            except Exception:
                pass

    def __getattr__(self, name: str) -> "ActorMethod":
        descriptor = self.__dict__.get("_descriptor", {})
        methods = descriptor.get("methods", {})
        if name in methods:
            return ActorMethod(self, name, methods[name])
        class_name = descriptor.get("class_name", "ActorHandle")
        public = sorted(m for m in methods if not m.startswith("_"))
        close = difflib.get_close_matches(name, list(methods), n=3)
        hint = f" Did you mean {' or '.join(repr(m) for m in close)}?" if close else ""
        error = AttributeError(
            f"'{class_name}' actor has no method '{name}'.{hint} Its methods are: "
            f"{', '.join(public) or '(none)'}. Tip: call one of those, or define {name} on "
            f"class {class_name}.")
        if name.startswith("_"):
            raise error  # Python's own probes (copy, pickle, hasattr): not the user's misuse
        raise rejected("ActorHandle.__getattr__", error)

    def __reduce__(self):
        serialization.note_ref_serialized(self)
        return (ActorHandle, (self._descriptor,))

    def __repr__(self) -> str:
        return f"Actor({self._descriptor['class_name']}, {self._actor_id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)


class ActorMethod:
    def __init__(self, handle: ActorHandle, name: str, options: dict) -> None:
        self._handle = handle
        self._name = name
        self._options = options

    def __call__(self, *args, **kwargs):
        raise rejected("ActorMethod.__call__", TypeError(
            f"Actor methods cannot be called directly. Instead of running "
            f"'object.{self._name}()', try 'object.{self._name}.remote()'."))

    def options(self, **options: Any) -> "ActorMethod":
        with rejecting("ActorMethod.options"):
            option_utils.validate(options, option_utils.METHOD_OPTIONS, "actor methods")
            options = _method_options(options)
        merged = {**self._options, **options}
        if options.get("num_returns", "streaming") != "streaming":
            merged.pop("generator", None)  # a generator yielding num_returns values is fine
        return ActorMethod(self._handle, self._name, merged)

    def remote(self, *args, **kwargs):
        descriptor = self._handle._descriptor
        name = f"{descriptor['class_name']}.{self._name}"
        call = f"{name}.remote()"
        with rejecting("ActorMethod.remote"):
            if self._options.get("generator") == "async":
                raise option_utils.async_generator_error(f"The actor method {name}")
            signature.check_call(descriptor.get("signatures", {}).get(self._name), args,
                                 kwargs, call, name)
        # A handle needs its session: no auto-init here (Ray has none for method calls).
        session.check_same_session(self._handle, f"the actor handle of {call}",
                                   "ActorMethod.remote")
        check_arguments(args, kwargs, call, "ActorMethod.remote")
        core = session.require_core(call[:-2])
        session.begin_phase("method_call", name)
        with rejecting("ActorMethod.remote", in_phase=True):  # cannot be pickled
            args_bytes, deps, nested, keep = core.submitter.serialize_args(args, kwargs, name)
        task_id = core.new_task_id()
        streaming = self._options.get("generator") == "sync"  # a streaming generator method
        num_returns = 1 if streaming else self._options.get("num_returns", 1)  # (its end)
        returns = [ids.return_object_id(task_id, i + 1) for i in range(num_returns)]
        spec = TaskSpec(
            task_id=task_id, kind=task_spec.ACTOR_TASK, name=name,
            function_id=descriptor["function_id"], args=args_bytes,
            returns=returns, owner=core.wid, owner_holder=core.holder_name,
            owner_address=core.conns.owner_path, actor_id=descriptor["actor_id"], method=self._name,
            handle_object=descriptor["handle_object"],
            # Retries of this call if the actor dies running it and restarts, or if it raises
            # an exception retry_exceptions covers (Ray's options).
            max_retries=self._options.get("max_task_retries",
                                          descriptor.get("max_task_retries", 0)),
            retry_exceptions=self._options.get("retry_exceptions", False),
            phase=trace.get_phase(), streaming=streaming)
        if streaming:
            core.generators.expect(task_id)  # before its first value can arrive
        core.submitter.submit(spec, deps, nested)
        del keep
        refs = [ObjectRef(oid, core.wid, _announce=False) for oid in returns]
        if streaming:  # its one return is its end; the values come one by one
            return ObjectRefGenerator(refs[0], core.generators)
        if num_returns == 0:
            return None
        return refs[0] if num_returns == 1 else refs

