"""Ray's ``runtime_env``, as far as raysim goes: the hook every worker runs first.

Beyond the founding document's phases. Ray's ``ray.init(runtime_env=...)`` can install
packages, ship a working directory and set environment variables for every worker; raysim's
workers are forked from the driver's own interpreter and see what it sees, so of all that
it keeps ``worker_process_setup_hook``: a function (or the dotted name of one) that every
worker process runs before it connects to its raylet. A hook that fails makes the worker die
while starting, which the raylet counts (``max_worker_startup_failures``).

Runs in: the driver (checking ``init``'s argument) and every worker (running the hook).
Trace events: none of its own (a worker that dies starting is ``worker.died``).
"""

from __future__ import annotations

import base64
import importlib
import os
import sys

import cloudpickle

RUNTIME_ENV_KEYS = ("worker_process_setup_hook",)


def setup_hook_for_workers(runtime_env: dict | None) -> dict | None:
    """In the driver: ``init(runtime_env=...)`` as it travels to the zygote (JSON). raysim
    knows one key of Ray's runtime_env, the hook every worker runs before it connects: a
    function (pickled by value) or the dotted name of one."""
    if runtime_env is None:
        return None
    if not isinstance(runtime_env, dict):
        raise TypeError(f"runtime_env must be a dict, got {type(runtime_env).__name__} "
                        f"{runtime_env!r}. Tip: pass e.g. runtime_env="
                        f"{{'worker_process_setup_hook': setup}}.")
    unknown = sorted(set(runtime_env) - set(RUNTIME_ENV_KEYS))
    if unknown:
        raise ValueError(f"raysim does not support the runtime_env key(s) {unknown}; it "
                         f"knows only {list(RUNTIME_ENV_KEYS)}. Tip: install packages and set "
                         f"environment variables before raysim.init(); workers inherit them.")
    hook = runtime_env.get("worker_process_setup_hook")
    if hook is None:
        return None
    if isinstance(hook, str) and "." in hook:
        return {"path": hook}
    if callable(hook):
        return {"pickled": base64.b64encode(cloudpickle.dumps(hook)).decode()}
    raise TypeError(f"worker_process_setup_hook must be a function or the dotted name of "
                    f"one, got {type(hook).__name__} {hook!r}. Tip: pass e.g. "
                    f"runtime_env={{'worker_process_setup_hook': 'mypackage.setup'}}.")


def run_setup_hook(hook: dict | None) -> None:
    """Ray's ``worker_process_setup_hook``: run once in every worker before it connects."""
    if hook is None:
        return
    try:
        if "pickled" in hook:
            function = cloudpickle.loads(base64.b64decode(hook["pickled"]))
        else:
            module, _, name = hook["path"].rpartition(".")
            function = getattr(importlib.import_module(module), name)
        function()
    except BaseException:
        print(f"raysim worker (pid {os.getpid()}): its worker_process_setup_hook failed, so "
              f"it exits; fix the hook given to raysim.init(runtime_env=...):",
              file=sys.stderr, flush=True)
        raise
