"""Checking a call's arguments against the function's signature (Ray's ``_common/signature.py``).

Ray binds the arguments of ``.remote()`` to the function's signature before it submits
anything, so ``f.remote(1)`` for ``def f(a, b)`` raises ``TypeError`` at the call rather than
in a worker later; the same holds for an actor's constructor and its methods. raysim does the
same, before the first step of the founding document's phases 3 and 4 (the submission to
the raylet), so a wrong call never reaches the runtime.

A signature travels with an actor's handle (to tasks, other actors, and through the GCS for
``get_actor``) as a short list of ``[name, kind, has_default]`` per parameter: enough to check
a call. Default values stay behind; they may be large, or impossible to pickle.

Runs in: the driver and workers (wherever ``.remote()`` is called).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

Params = list[list]  # [[name, kind (inspect.Parameter kind as int), has_default], ...]


class _Default:
    """Stands for a default value when a signature is rebuilt from ``Params``."""

    def __repr__(self) -> str:
        return "..."


_DEFAULT = _Default()


def extract(function: Callable, ignore_first: bool = False) -> Params | None:
    """The parameters of ``function`` (without ``self`` if ``ignore_first``); None if Python
    cannot tell them (some builtins), in which case calls are not checked."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return None
    if ignore_first:
        parameters = parameters[1:]
    return [[p.name, int(p.kind), p.default is not inspect.Parameter.empty]
            for p in parameters]


def method_params(cls: type, name: str, member: Any) -> Params | None:
    """The parameters a caller passes to method ``name`` of ``cls`` (``self`` left out)."""
    raw = inspect.getattr_static(cls, name, None)
    # Looked up on the class, a plain method still has its self; a classmethod is already
    # bound (it has __self__), and a staticmethod has none.
    bound = getattr(member, "__self__", None) is not None
    return extract(member, ignore_first=not (bound or isinstance(raw, staticmethod)))


def check_call(params: Params | None, args: tuple, kwargs: dict, call: str,
               display_name: str) -> None:
    """Raise TypeError if ``args``/``kwargs`` do not fit ``params``, as Python would.

    ``call`` is what the user wrote (``f.remote()``), ``display_name`` the function shown
    with its signature in the message (``f``, ``Counter.incr``)."""
    if params is None or (not kwargs and _positional_fits(params, len(args))):
        return
    signature = _rebuild(params)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(
            f"Wrong arguments for {call}: {e}. It runs {display_name}{signature}. "
            f"Tip: pass arguments that fit that signature.") from None


_POSITIONAL = (int(inspect.Parameter.POSITIONAL_ONLY),
               int(inspect.Parameter.POSITIONAL_OR_KEYWORD))
_VAR_POSITIONAL = int(inspect.Parameter.VAR_POSITIONAL)
_VAR_KEYWORD = int(inspect.Parameter.VAR_KEYWORD)


def _positional_fits(params: Params, count: int) -> bool:
    """Whether ``count`` positional arguments, and no keyword ones, surely fit: the common
    call, checked without building a Signature (which costs as much as the rest of a
    ``.remote()``). False means "let inspect decide", not "wrong"."""
    required = allowed = 0
    for _, kind, has_default in params:
        if kind in _POSITIONAL:
            allowed += 1
            required += not has_default
        elif kind == _VAR_POSITIONAL:
            allowed = count if count > allowed else allowed
        elif kind != _VAR_KEYWORD and not has_default:
            return False  # a keyword-only parameter without a default
    return required <= count <= allowed


def _rebuild(params: Params) -> inspect.Signature:
    return inspect.Signature([
        inspect.Parameter(name, inspect._ParameterKind(kind),
                          default=_DEFAULT if has_default else inspect.Parameter.empty)
        for name, kind, has_default in params])
