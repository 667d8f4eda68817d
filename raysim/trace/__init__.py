"""raysim's trace: the schema every process writes, and the tools that read it back.

``raysim.trace.schema`` defines the format and ``raysim.trace.writer`` is the runtime's
``emit()`` hook; both use only the standard library and orjson, so runtime processes import
them without paying for pandas. ``raysim.trace.load(path)`` reads a trace back as a
``Trace`` (``loader.py``) whose ``state_at(i)`` rebuilds the cluster's tables (``state.py``);
it is imported on first use.
"""

from __future__ import annotations

import importlib


def __getattr__(name: str):
    if name in ("load", "Trace", "Phase"):
        module = importlib.import_module("raysim.trace.loader")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'raysim.trace' has no attribute {name!r}")
