"""Make ``import ray`` mean raysim, so a Ray script runs unmodified under ``raysim trace``.

Only the modules a Ray program imports for the core API are aliased: ``ray``,
``ray.exceptions``, ``ray.actor``, ``ray.remote_function``, ``ray.util`` with
``ray.util.actor_pool`` (``ActorPool``), and ``ray.cluster_utils`` (``Cluster``). A script that imports more of Ray (``ray.util.queue``,
``ray.data``, ``ray.tune``) gets a clear ``ImportError`` naming the module.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

_ALIASES = {
    "ray": "raysim",
    "ray.exceptions": "raysim.exceptions",
    "ray.actor": "raysim.actor",
    "ray.remote_function": "raysim.remote_function",
    "ray.util": "raysim.util",
    "ray.util.actor_pool": "raysim.util.actor_pool",
    "ray.cluster_utils": "raysim.cluster_utils",
    "ray.util.scheduling_strategies": "raysim.util.scheduling_strategies",
}


class _RayFinder(importlib.abc.MetaPathFinder):
    """Refuses the parts of Ray that raysim does not implement, saying so."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith("ray.") and fullname not in sys.modules:
            raise ImportError(
                f"raysim implements Ray's core API only; {fullname!r} is not part of it. "
                f"Tip: run this script with real Ray to use {fullname}.")
        return None


def install() -> None:
    """Alias the modules (idempotent)."""
    for alias, target in _ALIASES.items():
        sys.modules[alias] = importlib.import_module(target)
    if not any(isinstance(f, _RayFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _RayFinder())


def uninstall() -> None:
    for alias in _ALIASES:
        sys.modules.pop(alias, None)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RayFinder)]
