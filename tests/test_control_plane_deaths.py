"""Control-plane deaths: when the GCS or the raylet dies, the driver's blocking calls fail
with an error naming it instead of hanging; shutdown still leaves nothing behind, and a new
session starts in the same process.

Each test SIGKILLs a process of a live session from a thread, once a task has begun (the
task writes a marker file), while the main thread is blocked in a raysim call. A watchdog
(SIGALRM) turns a call that would hang into a failure: the assertions are that it returned,
and how, never how fast.
"""

import contextlib
import gc
import os
import signal
import threading
import time

import pytest
from traceutil import load, of, pid_alive

import raysim
from raysim import exceptions
from raysim.runtime.common.config import Config

_WATCHDOG_S = 30  # generous: the call must return, however loaded the machine

_RAISES = {"gcs": exceptions.RaySystemError, "raylet": exceptions.LocalRayletDiedError}
_NAMED = {"gcs": "The GCS (pid {pid})", "raylet": "The raylet (pid {pid})"}


def begin_and_sleep(marker: str) -> int:
    """Say it has begun (its pid, written atomically), then outlast any test."""
    with open(marker + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(marker + ".tmp", marker)
    time.sleep(600)
    return 0


sleeper = raysim.remote(begin_and_sleep)


@raysim.remote
class Sleeper:
    def work(self, marker: str) -> int:
        return begin_and_sleep(marker)


@raysim.remote
def square(x: int) -> int:
    return x * x


@pytest.fixture
def session(tmp_path):
    ctx = raysim.init(num_cpus=2, trace_path=str(tmp_path / "trace.jsonl"))
    try:
        yield ctx
    finally:
        raysim.shutdown()


@contextlib.contextmanager
def must_return(what: str):
    """Fail, instead of hanging, if the block does not finish within the watchdog."""

    def on_alarm(signum, frame):
        raise AssertionError(f"{what} was still blocked {_WATCHDOG_S} s after the kill")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(_WATCHDOG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def descendants(root: int) -> set[int]:
    """Every process below ``root`` now: GCS, raylet, zygote, workers."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


class Killer:
    """SIGKILLs ``pid`` from a thread as soon as ``marker`` exists (the task has begun),
    noting first every process of the session, to check later that none is left."""

    def __init__(self, marker: str, pid: int) -> None:
        self.marker, self.pid = marker, pid
        self.session_pids: set[int] = set()
        self.task_pid = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + _WATCHDOG_S
        while not os.path.exists(self.marker):  # poll for the task's start
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
        with open(self.marker) as f:
            self.task_pid = int(f.read())
        self.session_pids = descendants(os.getpid())
        os.kill(self.pid, signal.SIGKILL)


def wait_gone(pids: set[int], what: str) -> None:
    deadline = time.monotonic() + _WATCHDOG_S
    while [p for p in pids if pid_alive(p)]:
        assert time.monotonic() < deadline, \
            f"{what}: {sorted(p for p in pids if pid_alive(p))} still alive"
        time.sleep(0.02)


def check_error(error: BaseException, component: str, pid: int) -> None:
    """The error names the process that died, how, that the session is over, what to do."""
    assert type(error) is _RAISES[component]
    assert isinstance(error, exceptions.RaySystemError)
    assert (error.component, error.pid, error.exit_code) == (component, pid, -signal.SIGKILL)
    text = str(error)
    assert text.startswith(_NAMED[component].format(pid=pid) + " of this raysim ")
    assert "killed by signal SIGKILL" in text
    assert "The session is unusable" in text
    assert "Tip: call raysim.shutdown(), then raysim.init()" in text
    assert f"the last events of pid {pid} in the trace (" in text


def check_cleaned_up(ctx, session_pids: set[int]) -> None:
    wait_gone(session_pids, "after shutdown")
    session_dir = ctx["session_dir"]
    assert [f for f in os.listdir(session_dir) if f.endswith(".sock")] == []
    assert not os.path.exists(Config().spill_directory(session_dir, ctx["node_id"]))
    # Arrays read zero-copy by earlier tests and left in reference cycles (an exception's
    # traceback, say) keep the mapping until Python's collector runs: collect first, so
    # that what is checked is raysim's own hold on the store.
    gc.collect()
    with open("/proc/self/maps") as f:
        assert "memfd:raysim" not in f.read(), "the driver still maps the store"
    assert not [f for f in os.listdir("/dev/shm") if "raysim" in f]


# --------------------------------------------------------------------------------------------
# A driver blocked in get() when the GCS or the raylet dies


@pytest.mark.parametrize("component", ["gcs", "raylet"])
def test_blocked_get_fails_naming_the_dead_process_and_init_works_again(
        session, component, tmp_path):
    marker = str(tmp_path / "started")
    pid = session["address_info"][component]
    ref = sleeper.remote(marker)
    killer = Killer(marker, pid)
    with must_return("get()"), pytest.raises(exceptions.RaySystemError) as info:
        raysim.get(ref)
    check_error(info.value, component, pid)

    # Every call after the death raises the same error at once.
    actor_name = "never-created"
    calls = {
        "put": lambda: raysim.put(1),
        "get(timeout=)": lambda: raysim.get(ref, timeout=60),
        "wait": lambda: raysim.wait([ref]),
        ".remote()": lambda: square.remote(2),
        "actor creation": lambda: Sleeper.options(name=actor_name).remote(),
        "get_actor": lambda: raysim.get_actor(actor_name),
    }
    for what, call in calls.items():
        with must_return(what), pytest.raises(exceptions.RaySystemError) as after:
            call()
        assert type(after.value) is type(info.value), what
        assert str(after.value) == str(info.value), what

    # The task's worker, the zygote and the idle workers exit without being told: none is
    # left orphaned by its raylet. (The GCS outlives a dead raylet until shutdown.)
    survivors = {session["address_info"]["gcs"]} if component == "raylet" else set()
    wait_gone(killer.session_pids - survivors - {pid}, f"after the {component} died")
    assert killer.task_pid in killer.session_pids

    events = load(session["trace_path"])
    [died] = of(events, "component.died", detected_by="driver")
    assert (died["component"], died["component_pid"], died["signal"], died["exit_code"]) == \
        (component, pid, "SIGKILL", None)
    if component == "gcs":  # the raylet saw it too, and stopped
        assert of(events, "component.died", proc="raylet", component="gcs")

    with must_return("shutdown()"):
        raysim.shutdown()
    check_cleaned_up(session, killer.session_pids)

    raysim.init(num_cpus=2, trace_path=str(tmp_path / "second.jsonl"))
    try:
        assert raysim.get(square.remote(7)) == 49
        assert raysim.get(raysim.put("again")) == "again"
    finally:
        raysim.shutdown()


# --------------------------------------------------------------------------------------------
# Other blocking calls


def _get_with_timeout(refs):
    return raysim.get(refs[0], timeout=600)


def _wait(refs):
    return raysim.wait(refs, num_returns=1)


@pytest.mark.parametrize("component, blocked_in, on_actor", [
    ("gcs", _wait, False),
    ("raylet", _get_with_timeout, False),
    ("raylet", _wait, True),
    ("gcs", _get_with_timeout, True),
], ids=["wait-gcs", "get_timeout-raylet", "wait-actor-raylet", "get_timeout-actor-gcs"])
def test_other_blocking_calls_fail_too(session, component, blocked_in, on_actor, tmp_path):
    marker = str(tmp_path / "started")
    pid = session["address_info"][component]
    actor = Sleeper.remote() if on_actor else None  # held: a dropped handle stops it
    ref = actor.work.remote(marker) if on_actor else sleeper.remote(marker)
    killer = Killer(marker, pid)
    with must_return(blocked_in.__name__), pytest.raises(exceptions.RaySystemError) as info:
        blocked_in([ref])
    check_error(info.value, component, pid)
    with must_return("shutdown()"):
        raysim.shutdown()
    check_cleaned_up(session, killer.session_pids)
