"""Task faults: workers that die, retries, exceptions, cancellation, workers that cannot start.

Tasks here coordinate with the test through files: a task writes a marker when it starts
(the test polls for it, with a deadline), or waits until the test creates one.
"""

import os
import signal
import time

import pytest
from traceutil import of, pid_alive, poll, wait_for, wait_for_file

import raysim
from raysim import exceptions
from raysim.runtime.common.config import Config


def count_attempt(path: str) -> int:
    """Inside a task: how many attempts ran before this one (kept in a file)."""
    n = int(open(path).read()) if os.path.exists(path) else 0
    with open(path, "w") as f:
        f.write(str(n + 1))
    return n


@raysim.remote
def crash_first_time(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return "second attempt"


@raysim.remote
def pid_then_block(pid_file, release):
    """First attempt: say where it runs, then wait (until killed). Later ones return."""
    if os.path.exists(pid_file):
        return "survived"
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    wait_for_file(release)
    return "not killed"


@raysim.remote
def always_crash():
    os._exit(3)


@raysim.remote
def crash_n_times(counter, n):
    if count_attempt(counter) < n:
        os._exit(2)
    return "done"


@raysim.remote
def raise_value_error(counter):
    count_attempt(counter)
    raise ValueError("user code failed")


@raysim.remote
def flaky(counter, failures, exc_name):
    if count_attempt(counter) < failures:
        raise {"ValueError": ValueError, "ConnectionError": ConnectionError,
               "KeyError": KeyError}[exc_name]("transient")
    return "recovered"


@raysim.remote
def add_one(x, marker=None):
    if marker:
        open(marker, "w").close()
    return x + 1


@raysim.remote
def start_then_sleep(marker):
    open(marker, "w").close()
    time.sleep(60)  # the work being cancelled
    return "finished"


@raysim.remote
def gate(path):
    wait_for_file(path)
    return "released"


def test_crashed_worker_is_seen_at_once_and_the_task_retried(ray_start, trace_file, tmp_path):
    ref = crash_first_time.remote(str(tmp_path / "crashed"))
    assert raysim.get(ref) == "second attempt"
    task = ref.task_id()
    events = wait_for(trace_file, lambda ev: of(ev, "task.execute", task=task, ok=True)
                      and of(ev, "task.retry", task=task) and of(ev, "process.exited"),
                      what="the death, the retry and the second attempt")
    (died,) = of(events, "worker.died", task=task)
    assert died["exit_code"] == 1 and died["signal"] is None
    assert died["exit_type"] == "SYSTEM_ERROR" and died["role"] == "task"
    assert died["starting"] is False
    (retry,) = of(events, "task.retry", task=task)
    assert retry["attempt"] == 1 and retry["cause"] == "worker_died"
    assert retry["max_retries"] == 3 and "exited with code 1" in retry["reason"]
    (run,) = of(events, "task.execute", task=task)
    assert run["attempt"] == 1, "only the second attempt finished running"
    assert died["ts"] < retry["ts"] < run["ts"]
    (exited,) = of(events, "process.exited", child_pid=died["worker_pid"])
    assert exited["exit_code"] == 1


def test_worker_sigkilled_from_outside_is_retried(ray_start, trace_file, tmp_path):
    pid_file, release = str(tmp_path / "pid"), str(tmp_path / "release")
    ref = pid_then_block.remote(pid_file, release)
    pid = int(poll(lambda: os.path.exists(pid_file) and open(pid_file).read(),
                   "the task to start"))
    os.kill(pid, signal.SIGKILL)
    assert raysim.get(ref, timeout=30) == "survived"
    events = wait_for(trace_file, lambda ev: of(ev, "task.retry", task=ref.task_id()),
                      what="the retry")  # emitted after the death, by the same process
    (died,) = of(events, "worker.died", worker_pid=pid)
    assert died["signal"] == "SIGKILL" and died["exit_code"] is None
    assert died["task"] == ref.task_id() and "signal SIGKILL" in died["cause"]
    assert not pid_alive(pid)


def test_retries_exhausted_raise_worker_crashed_error(ray_start, trace_file):
    ref = always_crash.options(max_retries=2).remote()
    with pytest.raises(exceptions.WorkerCrashedError) as info:
        raysim.get(ref, timeout=30)
    message = str(info.value)
    assert "exited with code 3" in message and "attempt 3 of 3" in message
    assert message.rstrip().endswith("otherwise fix what kills the worker."), \
        "the error says what to do"
    task = ref.task_id()
    events = wait_for(trace_file, lambda ev: of(ev, "task.finished", task=task, ok=False),
                      what="the task's failure")
    assert len(of(events, "worker.died", task=task)) == 3
    assert [e["attempt"] for e in of(events, "task.retry", task=task)] == [1, 2]
    (finished,) = of(events, "task.finished", task=task)
    assert finished["error"] == "WorkerCrashedError" and finished["reason"] == message


def test_default_is_four_attempts_and_minus_one_retries_forever(ray_start, trace_file,
                                                               tmp_path):
    default = crash_n_times.remote(str(tmp_path / "a"), 4)
    with pytest.raises(exceptions.WorkerCrashedError, match="attempt 4 of 4"):
        raysim.get(default, timeout=30)
    forever = crash_n_times.options(max_retries=-1).remote(str(tmp_path / "b"), 5)
    assert raysim.get(forever, timeout=30) == "done"
    events = wait_for(trace_file, lambda ev: len(of(ev, "task.retry",
                                                    task=forever.task_id())) == 5,
                      what="five retries")
    assert len(of(events, "worker.died", task=default.task_id())) == 4
    assert {e["max_retries"] for e in of(events, "task.retry", task=forever.task_id())} \
        == {-1}


def test_user_exceptions_are_not_retried_by_default(ray_start, trace_file, tmp_path):
    counter = str(tmp_path / "count")
    ref = raise_value_error.remote(counter)
    with pytest.raises(ValueError, match="user code failed"):
        raysim.get(ref)
    assert open(counter).read() == "1", "one attempt only"
    events = wait_for(trace_file, lambda ev: of(ev, "task.finished", task=ref.task_id()),
                      what="the task to finish")
    assert not of(events, "task.retry", task=ref.task_id())


def test_retry_exceptions_true_retries_after_a_delay(ray_start, trace_file, tmp_path):
    ref = flaky.options(retry_exceptions=True).remote(str(tmp_path / "c"), 2, "ValueError")
    assert raysim.get(ref, timeout=30) == "recovered"
    events = wait_for(trace_file, lambda ev: len(of(ev, "task.execute",
                                                    task=ref.task_id())) == 3
                      and len(of(ev, "task.retry", task=ref.task_id())) == 2,
                      what="three attempts and two retries")
    retries = of(events, "task.retry", task=ref.task_id())
    assert [(r["attempt"], r["cause"]) for r in retries] == [(1, "exception"),
                                                            (2, "exception")]
    assert all(r["delay_ms"] == Config().task_retry_delay_ms for r in retries)
    assert retries[0]["reason"] == "ValueError: transient"
    runs = of(events, "task.execute", task=ref.task_id())
    assert [(r["attempt"], r["ok"]) for r in runs] == [(0, False), (1, False), (2, True)]


def test_retry_exceptions_list_retries_only_those_classes(ray_start, tmp_path):
    listed = flaky.options(retry_exceptions=[ConnectionError])
    assert raysim.get(listed.remote(str(tmp_path / "a"), 1, "ConnectionError"),
                      timeout=30) == "recovered"
    with pytest.raises(KeyError):
        raysim.get(listed.remote(str(tmp_path / "b"), 1, "KeyError"), timeout=30)
    assert open(tmp_path / "b").read() == "1", "KeyError is not in the list: no retry"


def test_retried_exceptions_use_the_max_retries_budget(ray_start, tmp_path):
    counter = str(tmp_path / "c")
    ref = flaky.options(retry_exceptions=True, max_retries=1).remote(counter, 5, "ValueError")
    with pytest.raises(ValueError, match="transient"):
        raysim.get(ref, timeout=30)
    assert open(counter).read() == "2", "two attempts: the first and one retry"


def test_bad_retry_exceptions_value_says_what_to_pass(ray_start):
    with pytest.raises(TypeError, match=r"retry_exceptions.*got 'yes'.*Tip: pass e\.g\."):
        flaky.options(retry_exceptions="yes").remote("x", 0, "KeyError")


def test_dependents_of_a_failed_task_fail_without_running(ray_start, trace_file, tmp_path):
    upstream = always_crash.options(max_retries=0).remote()
    marker = str(tmp_path / "ran")
    downstream = add_one.remote(upstream, marker)
    with pytest.raises(exceptions.WorkerCrashedError):
        raysim.get(downstream, timeout=30)
    assert not os.path.exists(marker)
    events = wait_for(trace_file, lambda ev: of(ev, "task.finished", task=upstream.task_id()),
                      what="the upstream failure")
    assert not of(events, "task.execute", task=downstream.task_id())


# -- cancellation --------------------------------------------------------------------------


def test_cancel_a_queued_task_it_never_runs(ray_start, trace_file, tmp_path):
    release = str(tmp_path / "release")
    blockers = [gate.remote(release) for _ in range(2)]  # both CPUs busy
    marker = str(tmp_path / "ran")
    queued = add_one.remote(1, marker)
    raysim.cancel(queued)
    with pytest.raises(exceptions.TaskCancelledError) as info:
        raysim.get(queued, timeout=30)
    assert not isinstance(info.value, exceptions.RayTaskError), "it never ran"
    assert "Tip: submit it again" in str(info.value)
    open(release, "w").close()
    assert raysim.get(blockers) == ["released"] * 2
    assert not os.path.exists(marker)
    events = wait_for(trace_file, lambda ev: of(ev, "task.cancelled", task=queued.task_id()),
                      what="the cancellation")
    (cancelled,) = of(events, "task.cancelled", task=queued.task_id())
    assert cancelled["how"] == "queued" and cancelled["force"] is False
    assert not of(events, "task.execute", task=queued.task_id())


def test_cancel_a_task_waiting_for_its_arguments(ray_start, trace_file, tmp_path):
    release = str(tmp_path / "release")
    upstream = gate.remote(release)
    waiting = add_one.remote(upstream)
    raysim.cancel(waiting)
    with pytest.raises(exceptions.TaskCancelledError,
                       match="waited for its arguments.*Tip: submit it again"):
        raysim.get(waiting, timeout=30)
    open(release, "w").close()
    assert raysim.get(upstream) == "released"
    events = wait_for(trace_file, lambda ev: of(ev, "task.cancelled", task=waiting.task_id()),
                      what="the cancellation")
    assert of(events, "task.cancelled", task=waiting.task_id())[0]["how"] == \
        "waiting_for_arguments"


def test_cancel_a_running_task_interrupts_it(ray_start, trace_file, tmp_path):
    marker = str(tmp_path / "started")
    ref = start_then_sleep.remote(marker)
    poll(lambda: os.path.exists(marker), "the task to start")
    raysim.cancel(ref)
    with pytest.raises(exceptions.TaskCancelledError) as info:
        raysim.get(ref, timeout=30)
    # As in Ray: the task raised KeyboardInterrupt, so the error is a RayTaskError too.
    assert isinstance(info.value, exceptions.RayTaskError)
    # Raised inside the running task (anywhere in it: the interrupt may land before the
    # sleep, while the marker file is being written).
    assert "KeyboardInterrupt" in str(info.value) and ", in start_then_sleep" in str(info.value)
    assert str(info.value).endswith("Tip: submit it again if you still need it.")
    assert raysim.get(add_one.remote(1)) == 2, "the worker goes on"
    task = ref.task_id()
    events = wait_for(trace_file, lambda ev: of(ev, "task.finished", task=task),
                      what="the interrupted task to finish")
    (cancelled,) = of(events, "task.cancelled", task=task)
    assert cancelled["how"] == "interrupt"
    (finished,) = of(events, "task.finished", task=task)
    assert finished["ok"] is False and finished["error"] == "TaskCancelledError"
    assert not of(events, "worker.died", task=task), "interrupted, not killed"
    assert not of(events, "task.retry", task=task), "cancelled tasks are never retried"


def test_force_cancel_kills_the_worker(ray_start, trace_file, tmp_path):
    pid_file = str(tmp_path / "pid")
    ref = pid_then_block.remote(pid_file, str(tmp_path / "never"))
    pid = int(poll(lambda: os.path.exists(pid_file) and open(pid_file).read(),
                   "the task to start"))
    raysim.cancel(ref, force=True)
    with pytest.raises(exceptions.TaskCancelledError) as info:
        raysim.get(ref, timeout=30)
    assert not isinstance(info.value, exceptions.RayTaskError)
    assert "before it finished" in str(info.value) and "Tip: submit it again" in str(info.value)
    task = ref.task_id()
    events = wait_for(trace_file, lambda ev: of(ev, "task.finished", task=task),
                      what="the cancelled task to fail")
    (died,) = of(events, "worker.died", task=task)
    assert died["worker_pid"] == pid and died["signal"] == "SIGKILL"
    assert died["exit_type"] == "INTENDED_USER_EXIT"
    assert of(events, "task.cancelled", task=task)[0]["how"] == "force"
    assert not of(events, "task.retry", task=task)
    assert not pid_alive(pid)
    assert raysim.get(add_one.remote(1)) == 2, "a new worker takes its place"


@raysim.remote
def parent_of_sleeper(marker, child_id_file):
    child = start_then_sleep.remote(marker)
    with open(child_id_file, "w") as f:
        f.write(child.task_id())
    return raysim.get(child)


def test_recursive_cancel_reaches_the_tasks_it_submitted(ray_start, trace_file, tmp_path):
    marker, child_file = str(tmp_path / "child_started"), str(tmp_path / "child_id")
    parent = parent_of_sleeper.remote(marker, child_file)
    poll(lambda: os.path.exists(marker), "the child task to start")
    # (The child can start before its parent has written its id down.)
    child = poll(lambda: os.path.exists(child_file) and open(child_file).read(),
                 "the parent to write its child's id")
    raysim.cancel(parent)
    with pytest.raises(exceptions.TaskCancelledError):
        raysim.get(parent, timeout=30)
    events = wait_for(trace_file, lambda ev: of(ev, "task.cancelled", task=child),
                      what="the child's cancellation")
    assert of(events, "task.cancelled", task=parent.task_id())[0]["how"] == "interrupt"
    assert of(events, "task.cancelled", task=child)[0]["how"] == "interrupt"


@raysim.remote
class Gate:
    def hold(self, started, release):
        open(started, "w").close()
        wait_for_file(release)
        return "held"

    def value(self, v):
        return v


@raysim.remote
def calls_a_gate(gate, started, release, ids_file, ready):
    first = gate.hold.remote(started, release)
    queued = [gate.value.remote(v) for v in (2, 3)]  # wait behind the first, in the actor
    wait_for_file(started)
    with open(ids_file, "w") as f:
        f.write(" ".join(r.task_id() for r in [first, *queued]))
    open(ready, "w").close()
    return raysim.get(first)


def test_recursive_cancel_reaches_the_actor_calls_it_made(ray_start, trace_file, tmp_path):
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    ids_file, ready = str(tmp_path / "ids"), str(tmp_path / "ready")
    gate = Gate.remote()
    parent = calls_a_gate.remote(gate, started, release, ids_file, ready)
    poll(lambda: os.path.exists(ready), "the task to make its calls")
    first, *queued = open(ids_file).read().split()
    raysim.cancel(parent)  # recursive by default, as in Ray
    with pytest.raises(exceptions.TaskCancelledError):
        raysim.get(parent, timeout=30)

    def delivered_to_the_actor(events):
        sent = [e for e in of(events, "msg.send", kind="cancel_task", proc="raylet")
                if e.get("task") in queued]
        received = {e["msg"] for e in of(events, "msg.recv", kind="cancel_task")}
        return len(sent) == len(queued) and all(e["msg"] in received for e in sent)

    # The task's worker, their caller, cancels them; the actor skips them when it gets
    # to them, after the call that holds it now.
    wait_for(trace_file, delivered_to_the_actor, what="the calls' cancellation to arrive")
    open(release, "w").close()  # the running call is not interrupted: it finishes
    events = wait_for(trace_file, lambda ev: all(of(ev, "task.cancelled", task=t)
                                                 for t in queued),
                      what="the queued calls to be skipped")
    (run,) = of(events, "task.execute", task=first)
    assert run["ok"]
    assert not of(events, "task.cancelled", task=first)
    assert not [e for e in of(events, "task.execute") if e["task"] in queued]
    assert raysim.get(gate.value.remote(4), timeout=30) == 4, "the actor lives on"


def test_cancel_of_a_finished_task_does_nothing(ray_start):
    ref = add_one.remote(41)
    assert raysim.get(ref) == 42
    raysim.cancel(ref)
    assert raysim.get(ref) == 42


def test_cancel_bad_arguments_say_what_to_pass(ray_start):
    with pytest.raises(TypeError, match=r"only supported for object refs.*Tip: pass"):
        raysim.cancel(42)
    ref = add_one.remote(1)
    with pytest.raises(TypeError, match=r"force must be True or False.*Tip"):
        raysim.cancel(ref, force="yes")
    assert raysim.get(ref) == 2


# -- workers that cannot start ---------------------------------------------------------------


@raysim.remote
class Starter:
    def ping(self):
        return "pong"


def broken_setup():
    raise ImportError("No module named 'missing_dependency'")


def test_workers_dying_while_starting_fail_the_task_instead_of_looping(trace_file, capfd):
    raysim.init(num_cpus=2, trace_path=trace_file,
                runtime_env={"worker_process_setup_hook": broken_setup})
    try:
        with pytest.raises(exceptions.RaySystemError) as info:
            raysim.get(add_one.remote(1), timeout=30)
        message = str(info.value)
        assert "could not start a worker process: 3 in a row died" in message
        assert "exited with code 1 before it connected" in message
        assert message.endswith("fix it (a module that fails to import? a "
                                "worker_process_setup_hook that raises?) and submit again.")
        events = wait_for(trace_file, lambda ev: len(of(ev, "worker.died", starting=True)) >= 3
                          and of(ev, "task.finished", ok=False),
                          what="three start-up deaths and the task's failure")
        deaths = of(events, "worker.died", starting=True)
        assert all(d["task"] is None and d["exit_code"] == 1 for d in deaths)
        (failed,) = [e for e in of(events, "task.finished", ok=False)
                     if e.get("error") == "RaySystemError"]
        assert failed["reason"] == message
        # An actor's worker cannot start either: after a few tries the actor is dead.
        actor = Starter.remote()
        with pytest.raises(exceptions.ActorDiedError, match="could not start.*Tip: the "
                                                            "workers' error"):
            raysim.get(actor.ping.remote(), timeout=30)
        events = wait_for(trace_file, lambda ev: of(ev, "gcs.actor_state",
                                                    actor=actor._actor_id, state="DEAD")
                          and len(of(ev, "worker.died", actor=actor._actor_id)) == 3,
                          what="the actor's death")
        (dead,) = of(events, "gcs.actor_state", actor=actor._actor_id, state="DEAD")
        assert dead["cause"] == "WORKER_STARTUP_FAILED"
        assert len(of(events, "worker.died", actor=actor._actor_id, starting=True)) == 3
    finally:
        raysim.shutdown()
    assert "missing_dependency" in capfd.readouterr().err, "the workers' error is shown"


def test_runtime_env_is_checked_at_init(trace_file):
    with pytest.raises(ValueError, match=r"runtime_env key\(s\) \['pip'\].*Tip"):
        raysim.init(num_cpus=1, trace_path=trace_file, runtime_env={"pip": ["numpy"]})
    with pytest.raises(TypeError, match="setup_hook must be a function.*got int 42.*Tip"):
        raysim.init(num_cpus=1, trace_path=trace_file,
                    runtime_env={"worker_process_setup_hook": 42})
    assert not raysim.is_initialized()


def setup_marks_the_worker():
    os.environ["RAYSIM_TEST_SETUP_HOOK_RAN"] = "yes"


@raysim.remote
def read_env(name):
    return os.environ.get(name)


def test_setup_hook_runs_in_every_worker(trace_file):
    raysim.init(num_cpus=1, trace_path=trace_file,
                runtime_env={"worker_process_setup_hook": setup_marks_the_worker})
    try:
        assert raysim.get(read_env.remote("RAYSIM_TEST_SETUP_HOOK_RAN")) == "yes"
    finally:
        raysim.shutdown()
