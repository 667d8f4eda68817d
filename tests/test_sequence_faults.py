"""Faults in the sequence diagrams: a dead worker, a retry, a cancellation, a refused call
and a dead GCS are numbered steps of the phase they hit, in words.

Each test runs one session, provokes its faults deterministically (a task that exits on its
first attempt, a cancel once the task has written its marker file, a GCS killed once a task
runs), waits for the trace to show them, and reads the diagrams' text.
"""

import os
import re
import signal
import time

import pytest
from test_faults_tasks import crash_first_time  # exits on its first attempt
from traceutil import of, poll, wait_for

import raysim
from raysim import exceptions
from raysim.runtime.common.config import Config
from raysim.trace import load
from raysim.trace.sequence import phase_groups
from raysim.trace.stepper import Stepper


@raysim.remote
def always_crash():
    os._exit(3)


@raysim.remote
def raise_first_time(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise ValueError("transient")
    return "recovered"


@raysim.remote
def start_then_sleep(marker):
    open(marker, "w").close()
    time.sleep(60)  # the work being cancelled, or outlived
    return "finished"


@raysim.remote
def add_one(x):
    return x + 1


@raysim.remote
def refuse_inside():
    """Two calls a worker makes wrongly; both are turned away at the API."""
    refused = []
    try:
        raysim.get(42)
    except ValueError:
        refused.append("get")
    try:
        add_one.options(num_cpus=-1)
    except (TypeError, ValueError):
        refused.append("options")
    return refused


@raysim.remote
class Counter:
    def crash_once(self, marker):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return "retried"

    def ping(self):
        return "pong"


class Unpicklable:
    def __reduce__(self):
        raise TypeError("holds a lock")


# A row of a diagram: its number, the lifelines, then the step's words.
_ROW = re.compile(r"^\s*\d+\. [│●•─▶◀ ]+ (.*)$")


def diagram(trace, api: str, nth: int = 1):
    """The sequence diagram of the ``nth`` phase whose driver call is ``api``."""
    numbers = [n for n, group in enumerate(phase_groups(trace), 1) if group.api == api]
    return trace.sequence(numbers[nth - 1])


def rows(view) -> list[str]:
    """The words of each step, as the diagram prints them."""
    return [_ROW.match(line).group(1) for line in view.plain().splitlines()[1:]]


def in_order(found: list[str], expected: list[str]) -> bool:
    """Each expected row appears among ``found``, in this order (others may come between)."""
    rest = iter(found)
    return all(any(row.startswith(want) for row in rest) for want in expected)


def lane(view, words: str) -> str:
    """The lifeline a step is drawn on."""
    (step,) = [s for s in view.steps if s.text.startswith(words)]
    return step.src


def test_dead_worker_retry_and_failure_are_steps(ray_start, trace_file, tmp_path):
    crashed = crash_first_time.remote(str(tmp_path / "crashed"))
    assert raysim.get(crashed) == "second attempt"
    failed = always_crash.options(max_retries=0).remote()
    with pytest.raises(exceptions.WorkerCrashedError):
        raysim.get(failed, timeout=30)
    raised = raise_first_time.options(retry_exceptions=True).remote(str(tmp_path / "raised"))
    assert raysim.get(raised, timeout=30) == "recovered"
    events = wait_for(trace_file, lambda ev: of(ev, "task.finished", task=failed.task_id())
                      and of(ev, "task.execute", task=crashed.task_id(), ok=True)
                      and of(ev, "task.execute", task=raised.task_id(), ok=True),
                      what="the three tasks to end")
    trace = load(trace_file)
    died = {e["task"]: trace.labels().proc(e["worker_pid"]) for e in of(events, "worker.died")}
    first, second = died[crashed.task_id()], died[failed.task_id()]

    view = diagram(trace, "task_submission", 1)
    found = rows(view)
    assert in_order(found, [
        "push_task crash_first_time#1",
        f"zygote reaps {first}: exit code 1",
        f"{first} died running crash_first_time#1 (SYSTEM_ERROR): it exited with code 1",
        "retry crash_first_time#1, attempt 2 of 4: its worker died",
        "push_task crash_first_time#1",
        "run crash_first_time#1",
    ]), view.plain()
    assert lane(view, f"{first} died") == "raylet"
    assert lane(view, "retry crash_first_time#1") == "raylet"
    assert not [r for r in found if "failed" in r], "it recovered: no failure step"

    view = diagram(trace, "task_submission", 2)
    found = rows(view)
    assert in_order(found, [
        f"{second} died running always_crash#1 (SYSTEM_ERROR): it exited with code 3",
        "always_crash#1 failed: get() raises WorkerCrashedError",
    ]), view.plain()
    assert not [r for r in found if r.startswith("retry")], "max_retries=0: no retry"
    # `raysim replay --step --phase N` walks the same events, the death among them.
    number = [n for n, g in enumerate(phase_groups(trace), 1) if g.api == "task_submission"][1]
    (death,) = [i for i, e in enumerate(trace.records)
                if e["ev"] == "worker.died" and e["task"] == failed.task_id()]
    assert death in Stepper(trace, number).indices

    view = diagram(trace, "task_submission", 3)
    assert in_order(rows(view), [
        "run raise_first_time#1 (",
        f"retry raise_first_time#1 in {Config().task_retry_delay_ms} ms, attempt 2 of 4: "
        f"it raised ValueError: transient",
        "run raise_first_time#1 (",
    ]), view.plain()
    assert not [r for r in rows(view) if " died " in r], "an exception kills no worker"


def test_cancelled_tasks_show_how_they_were_stopped(ray_start, trace_file, tmp_path):
    interrupted = start_then_sleep.remote(str(tmp_path / "a"))
    poll(lambda: os.path.exists(tmp_path / "a"), "the first task to start")
    raysim.cancel(interrupted)
    with pytest.raises(exceptions.TaskCancelledError):
        raysim.get(interrupted, timeout=30)
    killed = start_then_sleep.remote(str(tmp_path / "b"))
    poll(lambda: os.path.exists(tmp_path / "b"), "the second task to start")
    raysim.cancel(killed, force=True)
    with pytest.raises(exceptions.TaskCancelledError):
        raysim.get(killed, timeout=30)
    events = wait_for(trace_file, lambda ev: of(ev, "task.finished", task=killed.task_id())
                      and of(ev, "worker.died", task=killed.task_id())
                      and of(ev, "task.execute", task=interrupted.task_id()),
                      what="the interrupted run and the killed task's end")
    trace = load(trace_file)
    (died,) = of(events, "worker.died")
    worker = trace.labels().proc(died["worker_pid"])

    # Cancellation steps belong to the phase that submitted the task, as its run does.
    view = diagram(trace, "task_submission", 1)
    found = rows(view)
    assert in_order(found, [
        "run start_then_sleep#1 (",
        "cancel start_then_sleep#1: interrupt it while it runs (KeyboardInterrupt)",
        "cancel_task start_then_sleep#1",
        "start_then_sleep#1 failed: get() raises TaskCancelledError",
    ]), view.plain()
    assert not [r for r in found if " died " in r], "interrupted, not killed"

    view = diagram(trace, "task_submission", 2)
    assert in_order(rows(view), [
        "push_task start_then_sleep#2",
        "cancel start_then_sleep#2: kill the worker running it (force=True)",
        f"zygote reaps {worker}: killed by SIGKILL",
        f"{worker} died running start_then_sleep#2 (INTENDED_USER_EXIT): "
        f"raysim.cancel(force=True) killed it (it was killed by signal SIGKILL)",
        "start_then_sleep#2 failed: get() raises TaskCancelledError",
    ]), view.plain()
    assert not [r for r in rows(view) if r.startswith("retry")], "cancelled: never retried"


def test_actor_death_restart_retry_and_kill_are_steps(ray_start, trace_file, tmp_path):
    counter = Counter.options(max_restarts=1, max_task_retries=1).remote()
    actor = counter._actor_id
    crash = counter.crash_once.remote(str(tmp_path / "c"))
    assert raysim.get(crash, timeout=30) == "retried"
    wait_for(trace_file, lambda ev: of(ev, "task.execute", task=crash.task_id(), ok=True),
             what="the retried call's run")
    raysim.kill(counter)
    # The next call must come after the death is handled: a call to the dead actor is
    # itself a phase that touches it.
    wait_for(trace_file, lambda ev: len(of(ev, "worker.died", actor=actor)) == 2,
             what="the killed actor's worker to be reaped")
    ping = counter.ping.remote()
    with pytest.raises(exceptions.RayActorError):
        raysim.get(ping, timeout=30)
    events = wait_for(trace_file, lambda ev: of(ev, "task.finished", task=ping.task_id()),
                      what="the call to the dead actor to fail")
    trace = load(trace_file)
    crashed, killed = (trace.labels().proc(e["worker_pid"])
                       for e in of(events, "worker.died", actor=actor))

    # The GCS and the caller hear of the death at once: each goes on in its own order.
    view = diagram(trace, "method_call", 1)
    death = f"{crashed} died hosting Counter#1 (SYSTEM_ERROR): it exited with code 1"
    assert in_order(rows(view), [
        "push_task Counter#1.crash_once",
        death,
        f"GCS actor table: Counter#1 RESTARTING on {crashed}, restart 1 "
        f"(it exited with code 1)",
    ]), view.plain()
    assert in_order(rows(view), [
        death,
        "retry Counter#1.crash_once, attempt 2 of 2: its actor died",
        "run Counter#1.crash_once (",
    ]), view.plain()
    assert lane(view, "retry Counter#1.crash_once") == "driver", "the caller retries"

    view = diagram(trace, "kill")
    assert in_order(rows(view), [
        "kill_actor Counter#1",
        "GCS actor table: Counter#1 DEAD",
        f"zygote reaps {killed}: killed by SIGKILL",
        f"{killed} died hosting Counter#1 (INTENDED_USER_EXIT): raysim.kill() was called "
        f"on it",
    ]), view.plain()

    view = diagram(trace, "method_call", 2)
    assert "Counter#1.ping failed: get() raises ActorDiedError" in rows(view), view.plain()


def test_refused_calls_and_a_dead_gcs_are_steps(ray_start, trace_file, tmp_path):
    refusing = refuse_inside.remote()
    assert raysim.get(refusing) == ["get", "options"]
    wait_for(trace_file, lambda ev: of(ev, "task.execute", task=refusing.task_id())
             and len(of(ev, "api.rejected")) == 2, what="the worker's refused calls")
    with pytest.raises(TypeError, match="cannot be pickled"):
        raysim.put(Unpicklable())
    sleeper = start_then_sleep.remote(str(tmp_path / "started"))
    poll(lambda: os.path.exists(tmp_path / "started"), "the task to start")
    os.kill(ray_start["address_info"]["gcs"], signal.SIGKILL)
    wait_for(trace_file, lambda ev: {e["detected_by"] for e in of(ev, "component.died")}
             == {"driver", "raylet", "worker"}, what="the driver, raylet and worker to see "
             "the GCS go")
    with pytest.raises(exceptions.RaySystemError):
        raysim.get(sleeper, timeout=30)
    trace = load(trace_file)

    # In a worker, a refused call belongs to the task's phase.
    view = diagram(trace, "task_submission", 1)
    assert in_order(rows(view), [
        "run refuse_inside#1 (",
        "get() refused (ValueError): get() expects an ObjectRef or a list of ObjectRefs, "
        "got int 42",
        "RemoteFunction.options() refused (",
    ]), view.plain()
    assert lane(view, "get() refused") == trace.labels().proc(
        of(trace.records, "api.rejected", api="get")[0]["pid"])

    # In the driver, a call refused after it began (its value could not be pickled).
    view = diagram(trace, "put")
    (row,) = rows(view)
    assert re.fullmatch(r"put\(\) refused \(TypeError\): Could not serialize the value passed "
                        r"to put\(\): it is a [\w.]*Unpicklable, which cannot be pickled "
                        r"\(holds a lock\)", row), view.plain()
    assert lane(view, "put() refused") == "driver"

    # The GCS died while the sleeper ran: the driver's latest call was its submission.
    # Each process that saw it go says so on its own lifeline (each worker connected to it).
    view = diagram(trace, "task_submission", 2)
    found = sorted((step.src, step.text) for step in view.steps if "gcs died" in step.text)
    workers = {trace.labels().proc(e["pid"])
               for e in of(trace.records, "component.died", detected_by="worker")}
    assert found == sorted([
        ("driver", "gcs died (killed by SIGKILL): every blocking call raises RaySystemError"),
        ("raylet", "gcs died: the raylet stops"),
    ] + [(worker, "gcs died: the worker exits") for worker in workers]), view.plain()
    assert in_order(rows(view), ["push_task start_then_sleep#1", "gcs died: the raylet stops"]), \
        view.plain()
