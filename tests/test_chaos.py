"""Chaos: hundreds of tasks while workers are SIGKILLed from outside and some tasks crash.

Every result must be right, the trace must show each death and each retry, and the session
must leave nothing behind: no process, no shared memory, no socket.
"""

import os
import random
import signal
import threading
import time

import numpy as np
from traceutil import of, pid_alive, poll, wait_for

import raysim

N_TASKS = 300
KILL_EVERY = 15  # results between two kills
BIG = 20_000  # float64s: 160 KB, over the inline limit, so written to the store


@raysim.remote(max_retries=50)
def work(i, marker_dir):
    if i % 10 == 0:
        # Crash on the first attempt: the marker says a later attempt may go on.
        marker = os.path.join(marker_dir, str(i))
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
    time.sleep(0.004)  # some work, so that the killer finds workers busy
    if i % 25 == 0:
        return np.full(BIG, i, dtype=np.float64)
    return i * i


def expected(i):
    return float(i) * BIG if i % 25 == 0 else i * i


class Killer(threading.Thread):
    """SIGKILLs a random busy task worker each time KILL_EVERY more results are in."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.progress = threading.Condition()
        self.results = 0
        self.finished = False
        self.killed: list[int] = []
        self.rng = random.Random(7)

    def advance(self, n: int, finished: bool = False) -> None:
        with self.progress:
            self.results += n
            self.finished = finished
            self.progress.notify()

    def run(self) -> None:
        next_kill = KILL_EVERY
        while True:
            with self.progress:
                self.progress.wait_for(lambda: self.finished or self.results >= next_kill)
                if self.finished:
                    return
            next_kill += KILL_EVERY
            (raylet,) = raysim.snapshot()["raylets"].values()
            busy = [w["pid"] for w in raylet["workers"]
                    if w["role"] == "task" and w["state"] == "BUSY" and w["pid"]
                    and w["pid"] not in self.killed]
            if not busy:
                continue
            pid = self.rng.choice(busy)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue  # it finished and went between the snapshot and the kill
            self.killed.append(pid)


def test_chaos_every_result_right_every_death_retried_nothing_leaked(trace_file, tmp_path):
    shm_before = set(os.listdir("/dev/shm"))
    ctx = raysim.init(num_cpus=2, trace_path=trace_file)
    session_dir = ctx["session_dir"]
    killer = Killer()
    try:
        refs = [work.remote(i, str(tmp_path)) for i in range(N_TASKS)]
        task_of = {ref.task_id(): i for i, ref in enumerate(refs)}
        killer.start()
        results: dict[int, object] = {}
        pending = list(refs)
        while pending:
            ready, pending = raysim.wait(pending, num_returns=min(5, len(pending)),
                                         timeout=60)
            assert ready, "no progress for 60 s"
            for ref, value in zip(ready, raysim.get(ready)):
                results[task_of[ref.task_id()]] = value
            killer.advance(len(ready), finished=not pending)
        killer.join(timeout=30)
        for i in range(N_TASKS):
            value = results[i]
            if i % 25 == 0:
                assert value.shape == (BIG,) and value.sum() == expected(i), i
            else:
                assert value == expected(i), i
        assert len(killer.killed) >= 5, "the killer found busy workers to kill"

        # Every death and every retry is in the trace.
        crashers = {ref.task_id() for i, ref in enumerate(refs) if i % 10 == 0}
        killed = set(killer.killed)

        def complete(events):
            died = of(events, "worker.died")
            return ({d["worker_pid"] for d in died} >= killed
                    and crashers <= {d["task"] for d in died}
                    and len(of(events, "task.retry")) == sum(1 for d in died if d["task"]))

        events = wait_for(trace_file, complete, timeout=20,
                          what="every death and every retry in the trace")
        deaths = of(events, "worker.died")
        for death in deaths:
            if death["signal"] is not None:
                assert death["signal"] == "SIGKILL" and death["worker_pid"] in killed, death
                assert death["exit_type"] == "SYSTEM_ERROR"
            else:
                # A crash on a first attempt (also when the killer's signal came too late).
                assert death["exit_code"] == 1 and death["task"] in crashers, death
        for task in {d["task"] for d in deaths if d["task"]}:
            task_deaths = [d for d in deaths if d["task"] == task]
            retries = of(events, "task.retry", task=task)
            assert [r["attempt"] for r in retries] == list(range(1, len(task_deaths) + 1))
            assert all(r["cause"] == "worker_died" for r in retries)
            for death, retry in zip(task_deaths, retries):
                assert death["ts"] < retry["ts"]
                assert str(death["worker_pid"]) in retry["reason"]
        assert not of(events, "task.finished", ok=False), "no task failed for good"

        # What killed writers left half-written in the store was freed; once the results
        # are dropped the store is empty.
        worker_pids = {e["worker_pid"] for e in of(events, "worker.registered")
                       if e["role"] != "driver"}
        zygotes = {e["pid"] for e in of(events, "process.started") if e["role"] == "zygote"}
        del refs, ready, pending, results, value
        (node,) = raysim.snapshot()["raylets"]
        poll(lambda: not raysim.snapshot()["raylets"][node]["store"]["objects"],
             "the store to be empty")
    finally:
        killer.advance(0, finished=True)
        raysim.shutdown()

    # Nothing leaked: processes, shared memory, sockets.
    processes = worker_pids | zygotes | {ctx["address_info"]["gcs"],
                                        ctx["address_info"]["raylet"]}
    poll(lambda: not [pid for pid in processes if pid_alive(pid)],
         "every process of the session to be gone")
    assert not [n for n in set(os.listdir("/dev/shm")) - shm_before if "raysim" in n]
    with open("/proc/self/maps") as maps:
        assert "raysim-object-store" not in maps.read(), "the driver unmapped the store"
    leftovers = [n for n in os.listdir(session_dir) if n.endswith(".sock")]
    assert not leftovers, f"sockets left in the session directory: {leftovers}"
