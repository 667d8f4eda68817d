"""Options of ``@remote`` and ``.options()``: which exist, and what values they accept.

Ray validates these at decoration time and at ``.options()`` (``ray_option_utils.py``); so
does raysim, with Ray's messages: an unknown keyword raises ``ValueError``, a bad value
raises ``TypeError`` or ``ValueError`` showing the value.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

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
            raise ValueError(
                f"Invalid option keyword {key} for {what}. Valid ones are "
                f"{sorted(allowed)}.")
        _check_value(key, value)
    return options


def _check_value(key: str, value: Any) -> None:
    if key in ("num_cpus", "num_gpus", "memory"):
        if value is not None and (isinstance(value, bool) or not isinstance(value, Real)
                                  or value < 0):
            raise ValueError(f"The {key} option must be a non-negative number, got "
                             f"{value!r}.")
    elif key == "resources":
        if value is None:
            return
        if not isinstance(value, dict):
            raise TypeError(f"The resources option must be a dict of resource name to "
                            f"amount, got {value!r}.")
        for name, amount in value.items():
            if name in ("CPU", "GPU"):
                raise ValueError(f"Use the num_cpus and num_gpus options instead of "
                                 f"resources={{{name!r}: ...}}.")
            if isinstance(amount, bool) or not isinstance(amount, Real) or amount < 0:
                raise ValueError(f"Resource quantities must be non-negative numbers; "
                                 f"resources[{name!r}] is {amount!r}.")
    elif key in ("num_returns", "max_retries", "max_restarts", "max_task_retries"):
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"The {key} option must be an int, got {value!r}.")
        low = 0 if key == "num_returns" else -1
        if value < low:
            raise ValueError(f"The {key} option must be >= {low}, got {value!r}.")


def resources_of(options: dict[str, Any]) -> tuple[float | None, dict[str, float]]:
    """(num_cpus, custom resources including GPU) from validated options."""
    resources = dict(options.get("resources") or {})
    if options.get("num_gpus"):
        resources["GPU"] = options["num_gpus"]
    return options.get("num_cpus"), resources
