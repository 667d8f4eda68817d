"""Actor faults: the actor state machine, restarts, retried calls, kill, names, cancel."""

import os
import signal
import time

import pytest
from test_actors import Broken  # its constructor raises
from traceutil import load, of, pid_alive, poll, wait_for, wait_for_file

import raysim
from raysim import exceptions
from raysim.runtime.common.errors import RaySimInternalError
from raysim.runtime.gcs import actor_table


@raysim.remote
class Counter:
    def __init__(self, start=0):
        self.value = start

    def incr(self):
        self.value += 1
        return self.value

    def pid(self):
        return os.getpid()

    def die(self):
        os._exit(1)

    def crash_once(self, marker):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return "retried"

    def block(self, started, release):
        open(started, "w").close()
        wait_for_file(release)
        return "released"


@raysim.remote
class CrashesInInit:
    def __init__(self, marker):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        self.ok = True

    def ping(self):
        return "pong"


@raysim.remote
class SlowStart:
    def __init__(self, release):
        wait_for_file(release)

    def ping(self):
        return "pong"


@raysim.remote
class FromRef:
    def __init__(self, data):
        self.total = sum(data)

    def total_and_pid(self):
        return self.total, os.getpid()


def states(events, actor_id):
    return [(e["state"], e.get("cause")) for e in of(events, "gcs.actor_state", actor=actor_id)]


def test_transitions_go_through_one_place_that_rejects_illegal_moves():
    table = actor_table.ActorTable()
    table.register(actor_table.ActorEntry("a1", "Counter", "h1", "driver:x"))
    for state in ("DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE", "RESTARTING",
                  "ALIVE", "DEAD"):
        table.transition("a1", state, cause="WORKER_DIED" if state == "DEAD" else None)
    assert table.actors["a1"].cause == "WORKER_DIED"
    with pytest.raises(RaySimInternalError, match="illegal actor state change DEAD -> ALIVE"):
        table.transition("a1", "ALIVE")
    table.register(actor_table.ActorEntry("a2", "Counter", "h2", "driver:x"))
    with pytest.raises(RaySimInternalError, match="None -> ALIVE"):
        table.transition("a2", "ALIVE")


def test_restart_rebuilds_state_and_calls_in_flight_fail(ray_start, trace_file):
    counter = Counter.options(max_restarts=1).remote(10)
    actor = counter._actor_id
    assert raysim.get([counter.incr.remote(), counter.incr.remote()]) == [11, 12]
    first_pid = raysim.get(counter.pid.remote())
    # Restarting, not dead: Ray 2.60 raises ActorUnavailableError for the call it was running.
    with pytest.raises(exceptions.ActorUnavailableError) as info:
        raysim.get(counter.die.remote(), timeout=30)
    assert "is restarting (restart 1 of 1)" in str(info.value)
    assert str(info.value).endswith("set max_task_retries on the actor to retry calls that "
                                    "a restart interrupts.")
    # A call made while it restarts would fail at once (max_task_retries=0, as in Ray).
    wait_for(trace_file, lambda ev: of(ev, "gcs.actor_state", actor=actor, state="ALIVE",
                                       num_restarts=1), what="the actor alive again")
    assert raysim.get(counter.incr.remote(), timeout=30) == 11, "__init__ ran again"
    assert raysim.get(counter.pid.remote()) != first_pid, "on a new worker process"
    with pytest.raises(exceptions.RayActorError):
        raysim.get(counter.die.remote(), timeout=30)
    with pytest.raises(exceptions.ActorDiedError) as info:
        raysim.get(counter.incr.remote(), timeout=30)
    assert "not restarted (after 1 restart(s), its max_restarts=1)" in str(info.value)
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.actor_state", actor=actor,
                                                state="DEAD")
                      and len(of(ev, "worker.died", actor=actor)) == 2,
                      what="the actor's deaths")
    assert states(events, actor) == [
        ("DEPENDENCIES_UNREADY", None), ("PENDING_CREATION", None), ("ALIVE", None),
        ("RESTARTING", "WORKER_DIED"), ("ALIVE", None), ("DEAD", "WORKER_DIED")]
    restarting, dead = (of(events, "gcs.actor_state", actor=actor, state=s)[0]
                        for s in ("RESTARTING", "DEAD"))
    assert restarting["num_restarts"] == 1 and "exited with code 1" in restarting["reason"]
    deaths = of(events, "worker.died", actor=actor)
    assert [d["exit_code"] for d in deaths] == [1, 1]
    assert deaths[0]["worker_pid"] == first_pid and deaths[0]["role"] == "actor"


def test_max_task_retries_retries_the_interrupted_call(ray_start, trace_file, tmp_path):
    counter = Counter.options(max_restarts=1, max_task_retries=1).remote()
    ref = counter.crash_once.remote(str(tmp_path / "crashed"))
    assert raysim.get(ref, timeout=30) == "retried"
    events = wait_for(trace_file, lambda ev: of(ev, "task.execute", task=ref.task_id(),
                                                ok=True) and of(ev, "task.retry"),
                      what="the retried call")
    (retry,) = of(events, "task.retry", task=ref.task_id())
    assert retry["cause"] == "actor_died" and retry["attempt"] == 1
    assert retry["actor"] == counter._actor_id and retry["proc"] == "driver", \
        "the caller retries actor calls, as in Ray"


def test_sigkill_from_outside_without_restarts_kills_the_actor(ray_start, trace_file):
    counter = Counter.remote()
    pid = raysim.get(counter.pid.remote())
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(exceptions.ActorDiedError) as info:
        raysim.get(counter.incr.remote(), timeout=30)
    message = str(info.value)
    assert f"(pid {pid}) died: it was killed by signal SIGKILL" in message
    assert "max_restarts is 0" in message and message.endswith(
        "to retry the calls that were running.")
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.actor_state",
                                                actor=counter._actor_id, state="DEAD")
                      and of(ev, "worker.died", actor=counter._actor_id),
                      what="the actor's death")
    (died,) = of(events, "worker.died", actor=counter._actor_id)
    assert died["signal"] == "SIGKILL" and died["exit_type"] == "SYSTEM_ERROR"
    assert states(events, counter._actor_id)[-1] == ("DEAD", "WORKER_DIED")


def test_constructor_error_is_final_and_carries_its_traceback(ray_start, trace_file):
    broken = Broken.options(max_restarts=3).remote()
    with pytest.raises(exceptions.ActorDiedError) as info:
        raysim.get(broken.ping.remote(), timeout=30)
    message = str(info.value)
    assert "Traceback" in message and "ValueError: bad constructor" in message
    assert "Tip: fix Broken.__init__" in message
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.actor_state", actor=broken._actor_id,
                                                state="DEAD"), what="the actor's death")
    assert states(events, broken._actor_id) == [
        ("DEPENDENCIES_UNREADY", None), ("PENDING_CREATION", None),
        ("DEAD", "CREATION_TASK_ERROR")], "no restart after a constructor error"
    events = wait_for(trace_file, lambda ev: of(ev, "worker.died", actor=broken._actor_id),
                      what="the worker to go")
    assert of(events, "worker.died", actor=broken._actor_id)[0]["exit_type"] == "USER_ERROR"


def test_a_crash_inside_init_restarts_from_pending_creation(ray_start, trace_file, tmp_path):
    actor = CrashesInInit.options(max_restarts=1).remote(str(tmp_path / "crashed"))
    assert raysim.get(actor.ping.remote(), timeout=30) == "pong"
    events = wait_for(trace_file, lambda ev: len(of(ev, "gcs.actor_state",
                                                    actor=actor._actor_id)) == 4,
                      what="the restart")
    assert [s for s, _ in states(events, actor._actor_id)] == [
        "DEPENDENCIES_UNREADY", "PENDING_CREATION", "RESTARTING", "ALIVE"]


def test_a_restart_gets_the_constructor_arguments_again(ray_start, trace_file):
    data = raysim.put(list(range(100_000)))  # in the store
    object_id = data.id
    actor = FromRef.options(max_restarts=1).remote(data)
    del data  # only the actor's creation holds it now
    total, pid = raysim.get(actor.total_and_pid.remote())
    os.kill(pid, signal.SIGKILL)
    # A call made before the raylet hears of the death would go to the dead process (and,
    # with max_task_retries=0, fail); wait until the actor is alive again.
    wait_for(trace_file, lambda ev: of(ev, "gcs.actor_state", actor=actor._actor_id,
                                       state="ALIVE", num_restarts=1),
             what="the actor alive again")
    total2, pid2 = raysim.get(actor.total_and_pid.remote(), timeout=30)
    assert total2 == total == sum(range(100_000)) and pid2 != pid
    assert not pid_alive(pid)
    # Dead for good, the actor needs its arguments no more: the object is freed.
    raysim.kill(actor)
    poll(lambda: object_id not in raysim.snapshot()["gcs"]["objects"],
         "the constructor's argument to be freed")


@raysim.remote(max_restarts=1)
class RestartsSlowly:
    def __init__(self, started, release):
        if os.path.exists(started):  # a restart: wait to be let in
            wait_for_file(release)
        open(started, "w").close()

    def ping(self):
        return "pong"

    def die(self):
        os._exit(1)


def test_a_call_to_a_restarting_actor_fails_at_once_unless_it_may_be_retried(ray_start,
                                                                            tmp_path):
    release = str(tmp_path / "release")
    hasty = RestartsSlowly.remote(str(tmp_path / "hasty"), release)
    patient = RestartsSlowly.options(max_task_retries=1).remote(str(tmp_path / "patient"),
                                                                release)
    assert raysim.get([hasty.ping.remote(), patient.ping.remote()]) == ["pong", "pong"]
    with pytest.raises(exceptions.ActorUnavailableError):
        raysim.get(hasty.die.remote(), timeout=30)
    # Restarting (its __init__ waits): as in Ray 2.60, with max_task_retries=0 the call is
    # not even sent, it fails at once ...
    with pytest.raises(exceptions.ActorUnavailableError,
                       match=r"is restarting \(restart 1 of 1\), so this call was not sent"):
        raysim.get(hasty.ping.remote(), timeout=30)
    # ... and with retries allowed it waits for the new process.
    raysim.kill(patient, no_restart=False)
    waiting = patient.ping.remote()
    assert raysim.wait([waiting], timeout=0.5)[0] == []
    open(release, "w").close()
    assert raysim.get(waiting, timeout=30) == "pong"


def test_kill_fails_the_running_and_later_calls(ray_start, trace_file, tmp_path):
    counter = Counter.options(max_restarts=2).remote()
    started = str(tmp_path / "started")
    running = counter.block.remote(started, str(tmp_path / "never"))
    poll(lambda: os.path.exists(started), "the call to start")
    raysim.kill(counter)
    with pytest.raises(exceptions.RayActorError) as info:
        raysim.get(running, timeout=30)
    assert isinstance(info.value, exceptions.ActorDiedError)
    assert "was killed: raysim.kill() was called on it" in str(info.value)
    assert str(info.value).endswith("Tip: create a new actor to go on.")
    with pytest.raises(exceptions.ActorDiedError, match="was killed"):
        raysim.get(counter.incr.remote(), timeout=30)
    events = wait_for(trace_file, lambda ev: of(ev, "worker.died", actor=counter._actor_id)
                      and of(ev, "gcs.actor_state", actor=counter._actor_id, state="DEAD"),
                      what="the actor's worker to go")
    assert states(events, counter._actor_id)[-1] == ("DEAD", "RAY_KILL")
    assert not of(events, "gcs.actor_state", actor=counter._actor_id, state="RESTARTING")
    (died,) = of(events, "worker.died", actor=counter._actor_id)
    assert died["exit_type"] == "INTENDED_USER_EXIT" and died["signal"] == "SIGKILL"


def test_kill_with_no_restart_false_restarts(ray_start, trace_file):
    counter = Counter.options(max_restarts=1).remote()
    assert raysim.get(counter.incr.remote()) == 1
    raysim.kill(counter, no_restart=False)
    events = wait_for(trace_file, lambda ev: len(of(ev, "gcs.actor_state",
                                                    actor=counter._actor_id,
                                                    state="ALIVE")) == 2,
                      what="the actor alive again")
    assert ("RESTARTING", "RAY_KILL") in states(events, counter._actor_id)
    assert raysim.get(counter.incr.remote(), timeout=30) == 1, "a fresh instance"


def test_named_actors_in_namespaces(ray_start):
    counter = Counter.options(name="shared", namespace="team").remote()
    assert raysim.get(raysim.get_actor("shared", namespace="team").incr.remote()) == 1
    with pytest.raises(ValueError) as info:
        raysim.get_actor("shared")
    assert "'shared'" in str(info.value) and "default namespace" in str(info.value)
    assert "Tip:" in str(info.value)
    same = Counter.options(name="shared", namespace="team", get_if_exists=True).remote()
    assert same._actor_id == counter._actor_id
    other = Counter.options(name="shared", namespace="elsewhere").remote()
    assert other._actor_id != counter._actor_id
    raysim.kill(counter)

    def lookup_error():
        try:
            raysim.get_actor("shared", namespace="team")
        except ValueError as e:
            return e
        return None

    error = poll(lookup_error, "the killed actor's name to be free")
    assert "'shared' in namespace 'team'" in str(error)
    again = Counter.options(name="shared", namespace="team").remote()
    assert raysim.get(again.incr.remote()) == 1, "a dead actor's name is free again"


def test_init_namespace_is_the_default(trace_file):
    raysim.init(num_cpus=1, trace_path=trace_file, namespace="team")
    try:
        counter = Counter.options(name="c").remote()
        assert raysim.get_actor("c")._actor_id == counter._actor_id
        assert raysim.get_actor("c", namespace="team")._actor_id == counter._actor_id
        with pytest.raises(ValueError, match="'c' in namespace 'other'"):
            raysim.get_actor("c", namespace="other")
    finally:
        raysim.shutdown()


def test_cancel_a_call_that_has_not_started(ray_start, trace_file, tmp_path):
    counter = Counter.remote()
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    running = counter.block.remote(started, release)
    poll(lambda: os.path.exists(started), "the first call to start")
    queued = counter.incr.remote()
    raysim.cancel(queued)
    with pytest.raises(ValueError, match=r"force=True is not supported for actor tasks.*Tip"):
        raysim.cancel(running, force=True)
    raysim.cancel(running)  # a running method is not interrupted, as in Ray...

    def cancel_arrived(events):
        """The actor's worker got the cancel of the running call (the phase it began in)."""
        phases = [e["phase"] for e in of(events, "phase.begin", api="cancel",
                                          detail=running.hex())]
        return phases and of(events, "msg.recv", proc="worker", kind="cancel_task",
                             phase=phases[-1])
    wait_for(trace_file, cancel_arrived, what="the cancel to reach the actor's worker")
    open(release, "w").close()
    with pytest.raises(exceptions.TaskCancelledError, match="while it ran.*dropped"):
        raysim.get(running, timeout=30)  # ...but its caller gets no value (Ray 2.60 too)
    with pytest.raises(exceptions.TaskCancelledError, match="before it ran.*Tip: call the method again"):
        raysim.get(queued, timeout=30)
    assert raysim.get(counter.incr.remote()) == 1, "the cancelled call never ran"
    events = wait_for(trace_file, lambda ev: of(ev, "task.cancelled", task=queued.task_id()),
                      what="the skipped call")
    assert of(events, "task.cancelled", task=queued.task_id())[0]["how"] == "not_started"


def test_kill_while_the_constructor_runs(ray_start, trace_file, tmp_path):
    actor = SlowStart.remote(str(tmp_path / "never"))
    call = actor.ping.remote()
    wait_for(trace_file, lambda ev: of(ev, "process.started", role="actor"),
             what="the actor's process to start")
    raysim.kill(actor)
    with pytest.raises(exceptions.ActorDiedError, match="was killed"):
        raysim.get(call, timeout=30)
    events = wait_for(trace_file, lambda ev: of(ev, "gcs.actor_state", actor=actor._actor_id,
                                                state="DEAD")
                      and of(ev, "worker.died", actor=actor._actor_id),
                      what="the actor's death")
    assert [s for s, _ in states(events, actor._actor_id)] == [
        "DEPENDENCIES_UNREADY", "PENDING_CREATION", "DEAD"]


def test_cancel_a_call_queued_before_the_actor_is_alive(ray_start, trace_file, tmp_path):
    release = str(tmp_path / "release")
    actor = SlowStart.remote(release)
    queued = actor.ping.remote()
    raysim.cancel(queued)
    with pytest.raises(exceptions.TaskCancelledError, match="before it ran.*Tip: call the method again"):
        raysim.get(queued, timeout=30)
    open(release, "w").close()
    assert raysim.get(actor.ping.remote(), timeout=30) == "pong"
    events = wait_for(trace_file, lambda ev: of(ev, "task.cancelled", task=queued.task_id()),
                      what="the cancellation")
    assert of(events, "task.cancelled", task=queued.task_id())[0]["how"] == "queued"


# --------------------------------------------------------------------------------------------
# Calls that raise: retried when the method's retry_exceptions covers the exception


@raysim.remote
class Flaky:
    def __init__(self):
        self.calls = 0

    @raysim.method(retry_exceptions=True, max_task_retries=2)
    def fail_twice(self):
        self.calls += 1
        if self.calls <= 2:
            raise ValueError(f"attempt {self.calls}")
        return self.calls

    @raysim.method(retry_exceptions=[ValueError], max_task_retries=5)
    def raise_type_error(self):
        self.calls += 1
        raise TypeError("not a ValueError")


def test_a_call_that_raises_is_retried_as_its_retry_exceptions_says(trace_file):
    raysim.init(num_cpus=1, trace_path=trace_file,
                _system_config={"task_retry_delay_ms": 20})
    try:
        flaky = Flaky.remote()
        retried = flaky.fail_twice.remote()
        assert raysim.get(retried, timeout=30) == 3, "two failed attempts, then the third"
        # The budget is max_task_retries: here one retry, so the second failure is final.
        other = Flaky.remote()
        with pytest.raises(ValueError, match="attempt 2"):
            raysim.get(other.fail_twice.options(max_task_retries=1).remote(), timeout=30)
        # An exception the list does not name is not retried.
        not_retried = flaky.raise_type_error.remote()
        with pytest.raises(TypeError):
            raysim.get(not_retried, timeout=30)
        assert raysim.get(flaky.fail_twice.options(retry_exceptions=False).remote(),
                          timeout=30) == 5
    finally:
        raysim.shutdown()
    events = load(trace_file)
    retries = of(events, "task.retry", task=retried.task_id())
    assert [(r["attempt"], r["reason"], r["cause"], r["delay_ms"], r["proc"]) for r in retries] \
        == [(1, "ValueError: attempt 1", "exception", 20, "driver"),
            (2, "ValueError: attempt 2", "exception", 20, "driver")]
    runs = of(events, "task.execute", task=retried.task_id())
    assert [r["ok"] for r in runs] == [False, False, True], "the same actor ran it 3 times"
    assert not of(events, "task.retry", task=not_retried.task_id())


@raysim.remote
class Patient:
    def wait_for_cancel(self, started):
        open(started, "w").close()
        context = raysim.get_runtime_context()
        while not context.is_canceled():  # the method's own polling, as Ray's docs show
            time.sleep(0.005)
        return "stopped early"


def test_a_running_call_is_not_interrupted_but_can_see_it_was_cancelled(ray_start, tmp_path):
    started = str(tmp_path / "started")
    patient = Patient.remote()
    ref = patient.wait_for_cancel.remote(started)
    poll(lambda: os.path.exists(started), "the call to start")
    raysim.cancel(ref)
    # It stops early on its own; as in Ray its caller gets TaskCancelledError, not the value.
    with pytest.raises(exceptions.TaskCancelledError):
        raysim.get(ref, timeout=30)
    with pytest.raises(RuntimeError, match="no task is running"):
        raysim.get_runtime_context().is_canceled()
