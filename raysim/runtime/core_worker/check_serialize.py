"""Finding the part of a value that cannot be pickled (Ray's ``ray.util.check_serialize``).

When cloudpickle fails it names the type it choked on ("cannot pickle '_thread.lock'
object") but not where that object sits inside the value. Ray's ``inspect_serializability``
walks the value to find it; raysim does the same, so that the error raised by ``put``,
``.remote()`` or a task's return can say "attribute .lock of a Holder, in argument 2 of
f()" instead of "cannot pickle". Seed, phase 2 step 1 ("Driver pickles the model") is the
step that fails when a value cannot be pickled.

The walk pickles each part of a failing value: its elements, attributes, the variables a
function captures and the globals it uses. A part that pickles is done with; a part that
fails is opened in turn. The innermost failing part whose own parts all pickle is the
culprit. Pickling a part does not copy its large buffers (protocol 5 keeps them out of band),
so a numpy array beside the culprit costs little. The walk stops at a depth and a time budget
(``Config.serialization_debug_depth`` and ``serialization_debug_time_s``) and then names the
deepest failing part it reached.

Runs in: the driver and workers, only after pickling has already failed.
"""

from __future__ import annotations

import reprlib
import time
import types
from collections import deque
from typing import Any, Iterator

import cloudpickle

_TIP = ("Tip: values passed to raysim are pickled with cloudpickle; create objects such as "
        "locks, sockets, open files and connections inside the task instead, or give their "
        "class a __reduce__ (or __getstate__) that leaves them out.")

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 40


def type_name(value: Any) -> str:
    """``_thread.lock``, ``numpy.ndarray``; builtins without their module: ``list``."""
    t = type(value)
    module = getattr(t, "__module__", "")
    if module in ("builtins", "", None):
        return t.__qualname__
    return f"{module}.{t.__qualname__}"


def _article(name: str) -> str:
    return "an" if name[:1].lower() in "aeiou" else "a"


def value_error(value: Any, where: str, error: BaseException, depth: int,
                time_s: float) -> TypeError:
    """The TypeError for ``where`` (e.g. "the value passed to put()") failing to pickle."""
    return TypeError(f"Could not serialize {where}: "
                     f"{_explain(value, error, depth, time_s)} {_TIP}")


def arguments_error(args: tuple, kwargs: dict, function: str, error: BaseException,
                    depth: int, time_s: float) -> TypeError:
    """The TypeError for a task's arguments failing to pickle, naming the argument."""
    parts = [(f"argument {i + 1} of {function}()", a) for i, a in enumerate(args)]
    parts += [(f"keyword argument {k}= of {function}()", v) for k, v in kwargs.items()]
    for where, value in parts:
        inner = _pickle_error(value)
        if inner is not None:
            return TypeError(f"Could not serialize {where}: "
                             f"{_explain(value, inner, depth, time_s)} {_TIP}")
    # Each argument pickles alone but not together (rare: e.g. a pickler that is stateful).
    return TypeError(f"Could not serialize the arguments of {function}(): {error}. {_TIP}")


def _explain(value: Any, error: BaseException, depth: int, time_s: float) -> str:
    path, culprit, culprit_error = _find_culprit(value, error, depth,
                                                 time.monotonic() + time_s)
    name = type_name(culprit)
    if path:
        where = ", in ".join(reversed(path))
        return f"the {name} at {where}, cannot be pickled ({culprit_error})."
    return f"it is {_article(name)} {name}, which cannot be pickled ({culprit_error})."


def _find_culprit(value: Any, error: BaseException, depth: int,
                  deadline: float) -> tuple[list[str], Any, BaseException]:
    """(labels from the outside in, the innermost unpicklable part, its pickling error)."""
    path: list[str] = []
    seen = {id(value)}
    while len(path) < depth and time.monotonic() < deadline:
        for label, part in _parts(value):
            if id(part) in seen:
                continue
            part_error = _pickle_error(part)
            if part_error is not None:
                seen.add(id(part))
                path.append(label)
                value, error = part, part_error
                break
            if time.monotonic() >= deadline:
                break
        else:
            break  # every part pickles: the value itself is the culprit
    return path, value, error


def _pickle_error(value: Any) -> BaseException | None:
    try:
        # Returning None from buffer_callback keeps large buffers out of the stream: no copy.
        cloudpickle.dumps(value, protocol=5, buffer_callback=lambda buffer: None)
    except Exception as e:  # whatever pickling raises is the answer
        return e
    return None


def _parts(value: Any) -> Iterator[tuple[str, Any]]:
    """(label, part) for each part of ``value`` that pickling it would also pickle."""
    name = type_name(value)
    of = f"of {_article(name)} {name}"
    if isinstance(value, (list, tuple, deque)):
        for i, item in enumerate(value):
            yield f"element [{i}] {of}", item
    elif isinstance(value, (set, frozenset)):
        for item in value:
            yield f"an element {of}", item
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"key {_short.repr(key)} {of}", key
            yield f"the value at key {_short.repr(key)} {of}", item
    elif isinstance(value, types.FunctionType):
        yield from _function_parts(value)
    elif isinstance(value, types.MethodType):
        yield f"the object method {value.__func__.__qualname__} is bound to", value.__self__
    elif isinstance(value, type):
        for key, item in vars(value).items():
            if not (key.startswith("__") and key.endswith("__")):
                yield f"class attribute .{key} of class {value.__qualname__}", item
    else:
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, dict):
            for key, item in attributes.items():
                yield f"attribute .{key} {of}", item
        for slot in getattr(type(value), "__slots__", ()):
            if isinstance(slot, str) and hasattr(value, slot):
                yield f"attribute .{slot} {of}", getattr(value, slot)


def _function_parts(fn: types.FunctionType) -> Iterator[tuple[str, Any]]:
    """What cloudpickle pickles with a function it pickles by value."""
    name = fn.__qualname__
    for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell: the variable was never assigned
            continue
        yield f"variable {var!r} captured by function {name}", contents
    for var in sorted(_global_names(fn.__code__)):
        if var in fn.__globals__ and not isinstance(fn.__globals__[var], types.ModuleType):
            yield f"global {var!r} used by function {name}", fn.__globals__[var]
    for i, default in enumerate(fn.__defaults__ or ()):
        yield f"default value {i + 1} of function {name}", default
    for key, default in (fn.__kwdefaults__ or {}).items():
        yield f"default value of {key}= of function {name}", default


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names
