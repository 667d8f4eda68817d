"""Ray's ``runtime_env``, as far as raysim goes: environment variables, and a hook every
worker runs first.

Beyond the founding document's phases. Ray's ``runtime_env`` can install packages, ship a
working directory and set environment variables for the processes that run a job's tasks;
raysim's workers are forked from the driver's own interpreter and see what it sees, so of
all that it keeps:

* ``env_vars``: for the whole job (``init(runtime_env=...)``, set in every worker as it
  starts), or for one function or actor (``.options(runtime_env=...)``, ``@remote(...)``).
  As in Ray, a task whose environment differs runs in a worker of its own: a task worker is
  bound to the environment of its first task (``worker_pool.py``), and an actor has its
  process anyway;
* ``worker_process_setup_hook`` (job only): a function, or the dotted name of one, that
  every worker runs before it connects to its raylet. A hook that fails makes the worker die
  while starting, which the raylet counts (``max_worker_startup_failures``).

Runs in: the driver (checking the argument) and every worker (applying it). Trace events:
none of its own.
"""

from __future__ import annotations

import base64
import importlib
import os
import sys

import cloudpickle

JOB_KEYS = ("env_vars", "worker_process_setup_hook")  # init(runtime_env=...)
TASK_KEYS = ("env_vars",)  # .options(runtime_env=...), @remote(runtime_env=...)


def check(runtime_env: dict | None, keys: tuple[str, ...] = JOB_KEYS) -> dict:
    """A runtime_env as raysim takes it, or TypeError/ValueError naming what is wrong."""
    if runtime_env is None:
        return {}
    if not isinstance(runtime_env, dict):
        raise TypeError(f"runtime_env must be a dict, got {type(runtime_env).__name__} "
                        f"{runtime_env!r}. Tip: pass e.g. runtime_env="
                        f"{{'env_vars': {{'MY_FLAG': '1'}}}}.")
    unknown = sorted(set(runtime_env) - set(keys))
    if unknown:
        raise ValueError(f"raysim does not support the runtime_env key(s) {unknown} here; it "
                         f"knows only {list(keys)}. Tip: install packages before "
                         f"raysim.init(); workers run in the driver's interpreter and see what "
                         f"it sees.")
    env_vars = runtime_env.get("env_vars") or {}
    if not isinstance(env_vars, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()):
        raise TypeError(f"runtime_env['env_vars'] must be a dict of str to str, got "
                        f"{env_vars!r}. Tip: write e.g. {{'env_vars': {{'OMP_NUM_THREADS': "
                        f"'1'}}}} (values are strings, as in os.environ).")
    return runtime_env


def env_vars_of(runtime_env: dict | None) -> dict[str, str] | None:
    """The environment variables a task's or actor's runtime_env sets (None: none)."""
    return dict(check(runtime_env, TASK_KEYS).get("env_vars") or {}) or None


def setup_hook_for_workers(runtime_env: dict | None) -> dict | None:
    """In the driver: ``init(runtime_env=...)``'s hook as it travels to the zygote (JSON):
    a function (pickled by value) or the dotted name of one."""
    hook = check(runtime_env).get("worker_process_setup_hook")
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


def apply_env_vars(env_vars: dict[str, str] | None) -> None:
    """In a worker: set the variables (the job's as it starts; a task's or an actor's before
    its code runs: the worker runs only tasks of that environment from then on)."""
    if env_vars:
        os.environ.update(env_vars)
