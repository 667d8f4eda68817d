"""Options of ``@remote`` and ``.options()``: which exist, and what values they accept.

Ray validates these at decoration time and at ``.options()`` (``ray_option_utils.py``); so
does raysim, with Ray's exception types: an unknown keyword raises ``ValueError`` listing the
valid ones, a value of the wrong type ``TypeError`` and one out of range ``ValueError``, each
naming the option and the value.
"""

from __future__ import annotations

import difflib
from numbers import Real
from typing import Any

from raysim.rejections import show

_COMMON = {"num_cpus", "num_gpus", "resources", "memory", "name", "runtime_env",
           "scheduling_strategy", "_metadata", "label_selector", "accelerator_type"}
TASK_OPTIONS = _COMMON | {"num_returns", "max_retries", "retry_exceptions", "max_calls"}
ACTOR_OPTIONS = _COMMON | {"max_restarts", "max_task_retries", "namespace", "lifetime",
                           "get_if_exists", "max_concurrency", "max_pending_calls",
                           "concurrency_groups"}
METHOD_OPTIONS = {"num_returns", "max_task_retries", "retry_exceptions", "name",
                  "concurrency_group"}


def validate(options: dict[str, Any], allowed: set[str], what: str) -> dict[str, Any]:
    for key, value in options.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" Did you mean {close[0]}?" if close else ""
            raise ValueError(
                f"Invalid option keyword {key} for {what}.{hint} Valid ones are "
                f"{sorted(allowed)}.")
        check_value(key, value)
    return options


# Integer options: the least value each takes, and what Ray's message says it accepts.
_INT_OPTIONS = {
    "num_returns": (0, "None, a non-negative integer, 'streaming' (for generators), or "
                       "'dynamic' (raysim: None or a non-negative integer)"),
    "max_calls": (0, "None, 0 or a positive integer"),
    "max_retries": (-1, "None, 0, -1 or a positive integer, where -1 represents infinity."),
    "max_restarts": (-1, "None, 0, -1 or a positive integer, where -1 represents infinity."),
    "max_task_retries": (-1, "None, 0, -1 or a positive integer, where -1 represents "
                             "infinity."),
}


def _check_num_returns_word(value: str) -> None:
    """num_returns='streaming' (a generator task, generator.py) is raysim's too; 'dynamic',
    Ray's older kind of generator, is not modelled."""
    if value == "streaming":
        return
    if value == "dynamic":
        raise NotImplementedError(
            "num_returns='dynamic' (Ray's older dynamic generators) is not modelled by raysim. "
            "Tip: leave num_returns out (a generator function streams its values), or write "
            "num_returns='streaming'.")
    raise ValueError(f"num_returns={value!r} is invalid: The keyword 'num_returns' only accepts "
                     f"None, a non-negative integer, 'streaming' (for generators), or "
                     f"'dynamic'. Tip: write e.g. num_returns=1.")


def check_value(key: str, value: Any) -> None:
    """Raise TypeError (not a number) or ValueError (out of range) naming key and value.
    ``raysim.init`` checks its num_cpus, num_gpus and resources arguments with this too."""
    if key == "scheduling_strategy":
        from raysim.util import scheduling_strategies
        scheduling_strategies.to_spec(value)  # a ValueError that says which ones exist
        return
    if key in ("num_cpus", "num_gpus", "memory"):
        if value is not None:
            example = "memory=500 * 1024**2 (bytes)" if key == "memory" else f"{key}=1"
            _check_quantity(f"{key}={value!r}", key, value, example)
    elif key == "resources":
        if value is None:
            return
        if not isinstance(value, dict):
            raise TypeError(f"resources={value!r} is invalid: resources must be a dict of "
                            f"resource name to amount, got {show(value)}. Tip: write e.g. "
                            f"resources={{'accelerator': 1}}.")
        for name, amount in value.items():
            if name in ("CPU", "GPU"):
                option = "num_cpus" if name == "CPU" else "num_gpus"
                raise ValueError(f"resources={value!r} is invalid: {name} is not set through "
                                 f"resources. Tip: use the {option} option instead, e.g. "
                                 f"{option}={amount!r}.")
            _check_quantity(f"resources={value!r}", f"the amount of resource {name!r}",
                            amount, f"resources={{{name!r}: 1}}")
    elif key in _INT_OPTIONS:
        if value is None:
            return
        types = (int, str, type(None)) if key == "num_returns" else (int, type(None))
        if key == "num_returns" and isinstance(value, str):
            _check_num_returns_word(value)
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{key}={value!r} is invalid: the type of keyword '{key}' must "
                            f"be {types}, but received type {type(value)} (Ray's words: The "
                            f"type of keyword '{key}' must be {types}, but received type "
                            f"{type(value)}). Tip: write e.g. {key}=1.")
        low, accepts = _INT_OPTIONS[key]
        if value < low:
            raise ValueError(f"{key}={value!r} is invalid: The keyword '{key}' only accepts "
                             f"{accepts}. Tip: write e.g. {key}=1.")
    elif key == "runtime_env":
        from raysim.runtime.common import runtime_env
        runtime_env.check(value, runtime_env.TASK_KEYS)
    elif key == "max_concurrency":
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"max_concurrency={value!r} is invalid: it must be an int, got "
                            f"{show(value)}. Tip: write e.g. max_concurrency=4.")
        if value < 1:
            raise ValueError(f"max_concurrency={value!r} is invalid: an actor runs at least "
                             f"one call at a time. Tip: write e.g. max_concurrency=4 to run "
                             f"up to 4 calls at once.")
    elif key == "lifetime":
        if value not in (None, "detached", "non_detached"):
            raise ValueError(f"lifetime={value!r} is invalid: an actor's lifetime must be "
                             f"'detached', 'non_detached' or None (as in Ray). Tip: "
                             f"lifetime='detached' keeps an actor alive after its creator "
                             f"and its handles are gone, until it is killed or the session "
                             f"ends.")


def _check_quantity(given: str, what: str, value: Any, example: str) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{given} is invalid: {what} must be a number, got {show(value)}. "
                        f"Tip: write e.g. {example}.")
    if value < 0:
        raise ValueError(f"{given} is invalid: {what} must be a non-negative number. Tip: "
                         f"use 0 or more, e.g. {example} (fractions such as 0.5 are allowed).")
    if isinstance(value, float) and value and int(value * 10_000) == 0:
        name = what.removeprefix("the amount of resource ").strip("'")
        raise ValueError(f"{given} is invalid: The precision of the fractional quantity of "
                         f"resource {name} cannot go beyond 0.0001 (as in Ray, amounts are "
                         f"counted in ten-thousandths). Tip: round it, e.g. {example}.")


def resources_of(options: dict[str, Any]) -> tuple[float | None, dict[str, float]]:
    """(num_cpus, custom resources including GPU and memory) from validated options."""
    resources = dict(options.get("resources") or {})
    if options.get("num_gpus"):
        resources["GPU"] = options["num_gpus"]
    if options.get("memory"):
        resources["memory"] = options["memory"]
    return options.get("num_cpus"), resources


def async_generator_error(what: str) -> NotImplementedError:
    """Ray runs generator functions as streaming generator tasks (``generator.py``); raysim
    does too, but not async generators: said at the call, instead of failing later when the
    async generator object cannot be pickled."""
    return NotImplementedError(
        f"{what} is an async generator: Ray streams its values, which raysim does not model "
        f"for async generators. Tip: make it a plain generator (def with yield), or return a "
        f"list of the values.")
