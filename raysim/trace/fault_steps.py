"""Faults as steps of the sequence diagrams: their words, and the phase each belongs to.

A worker that died, a task retried, cancelled or failed, a GCS or raylet gone, an API call
refused: each is a step of the phase it hit, in words, on the lifeline of the process that
recorded it (``FAULT_TEXT``, used by ``step_text.action_text``). Some of them happen outside
any driver call (the raylet hears of a worker's death from the zygote, not from a message
that carries a phase); such an event is drawn in the phase of what it hit: the task or actor
call the worker was running, and for a dead GCS or raylet, the driver's latest call
(``fault_phases``).

Beyond the founding document, whose run has no faults; the Ray concepts are those of its
"Fault Tolerance" guides (worker death and task retries, actor restarts, cancellation). Ray
shows them as task states in its dashboard, not as steps of a call.

Runs in: the reader's process.
"""

from __future__ import annotations

import signal

from raysim.trace.index import index_of
from raysim.trace.labels import Labels


def _worker_name(labels: Labels, pid: int, wid: str | None) -> str:
    """A worker by its process name; one that died before it wrote any event has none."""
    return labels.processes.get(pid) or labels.workers.get(wid or "") or f"worker (pid {pid})"


def _worker_died(event, labels: Labels) -> str:
    who = _worker_name(labels, event["worker_pid"], event["wid"])
    if event.get("task"):
        doing = f" running {labels.task(event['task'])}"
    elif event.get("actor"):
        doing = f" hosting {labels.actor(event['actor'])}"
    else:
        doing = ""
    return f"{who} died{doing} ({event['exit_type']}): {event['cause']}"


def _process_exited(event, labels: Labels) -> str | None:
    code = event.get("exit_code")
    if not code:  # a clean exit, or one whose status nobody saw: nothing went wrong
        return None
    who = _worker_name(labels, event["child_pid"], event.get("wid"))
    if code > 0:
        return f"zygote reaps {who}: exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"zygote reaps {who}: killed by {name}"


# Why a task runs again (task.retry's ``cause``). The reason of a death names the worker by
# its id; the step's lifelines name it already.
_RETRY_CAUSES = {"worker_died": "its worker died", "actor_died": "its actor died",
                 "object_lost": "its result was lost with its node (lineage reconstruction)"}


def _task_retry(event, labels: Labels) -> str:
    # attempt counts from 0: attempt 1 is the second run.
    limit = event["max_retries"]
    out_of = f" of {limit + 1}" if limit >= 0 else " (retried without limit)"
    delay = f" in {event['delay_ms']} ms" if event.get("delay_ms") else ""
    if event["cause"] == "exception":
        why = f"it raised {event['reason']}"
    else:
        why = _RETRY_CAUSES.get(event["cause"], event["reason"])
    return (f"retry {labels.task(event['task'])}{delay}, attempt {event['attempt'] + 1}"
            f"{out_of}: {why}")


# How raysim.cancel() reached a task (task.cancelled's ``how``).
_CANCELLED = {
    "queued": "drop it from the queue; it never runs",
    "waiting_for_arguments": "it waited for its arguments; it never runs",
    "not_started": "skip it; it had not started",
    "interrupt": "interrupt it while it runs (KeyboardInterrupt)",
    "force": "kill the worker running it (force=True)",
}


def _task_cancelled(event, labels: Labels) -> str:
    how = _CANCELLED.get(event["how"], event["how"])
    return f"cancel {labels.task(event['task'])}: {how}"


def _task_finished(event, labels: Labels) -> str | None:
    if not event.get("error"):
        return None  # a task that ran to the end: its run is the step
    return f"{labels.task(event['task'])} failed: get() raises {event['error']}"


# What the process that saw a GCS or raylet go does next (component.died's detected_by);
# the driver raises an error naming which one died.
_AFTER_DEATH = {"raylet": "the raylet stops", "worker": "the worker exits"}
_DRIVER_RAISES = {"gcs": "RaySystemError", "raylet": "LocalRayletDiedError"}


def _component_died(event, labels: Labels) -> str:
    # Only the process's parent (the driver) learns how it ended.
    if event.get("signal"):
        how = f" (killed by {event['signal']})"
    elif event.get("exit_code") is not None:
        how = f" (exit code {event['exit_code']})"
    else:
        how = ""
    component = event["component"]
    if event["detected_by"] == "driver":
        after = f"every blocking call raises {_DRIVER_RAISES.get(component, 'RaySystemError')}"
    else:
        after = _AFTER_DEATH.get(event["detected_by"], "its connection closed")
    return f"{component} died{how}: {after}"


def refusal(event) -> str:
    """The first sentence of an ``api.rejected``'s message: it names the bad value (the rest
    is the tip)."""
    return event["message"].split(" Tip:")[0].split(". ")[0].rstrip(".")


def _api_rejected(event, labels: Labels) -> str:
    return f"{event['api']}() refused ({event['error']}): {refusal(event)}"


FAULT_TEXT = {
    "worker.died": _worker_died,
    "process.exited": _process_exited,
    "task.retry": _task_retry,
    "task.cancelled": _task_cancelled,
    "task.finished": _task_finished,
    "component.died": _component_died,
    "api.rejected": _api_rejected,
}


def fault_phases(trace) -> dict[int, int]:
    """Event index -> phase, for the fault events that carry no phase of their own.

    A worker's death reaches the raylet from the zygote, and a dead GCS or raylet is seen
    when a connection closes: no message with a phase led there. Such an event goes to the
    phase of what it hit, as the runtime's own fault events do (``task.retry`` and
    ``task.cancelled`` carry the phase that submitted their task):

    - a worker's death: its task's phase; for an actor's worker, the phase of a call pushed
      to it and not yet answered, else the phase that last touched the actor (a kill);
    - the zygote's report of that death, and the actor's RESTARTING or DEAD row that it
      caused: the death's phase;
    - a GCS or raylet death: the driver's latest call (the one under way, if any).

    Computed once per trace (one pass) and kept on it."""
    cached = getattr(trace, "_fault_phases", None)
    if cached is not None:
        return cached
    if not _has_faults(trace):
        trace._fault_phases = {}
        return trace._fault_phases
    found: dict[int, int | None] = {}
    submitted: dict[str, int] = {}              # task -> the phase that submitted it
    actor_phase: dict[str, int] = {}            # actor -> the last phase that touched it
    pushed: dict[int, dict[str, int]] = {}      # worker pid -> unanswered task -> phase
    died_in: dict[str, int | None] = {}         # wid -> the phase its death went to
    exits: list[tuple[int, str | None]] = []
    driver_call: int | None = None
    for i, event in enumerate(trace.records):
        ev, phase = event["ev"], event.get("phase")
        if ev == "msg.send" and event.get("task"):
            if event["kind"] == "push_task" and phase is not None:
                pushed.setdefault(event["to_pid"], {})[event["task"]] = phase
            elif event["kind"] == "task_done":
                pushed.get(event["pid"], {}).pop(event["task"], None)
        if phase is not None:
            if ev == "phase.begin":
                driver_call = phase
            elif ev == "task.submitted":
                submitted.setdefault(event["task"], phase)
            if event.get("actor"):
                actor_phase[event["actor"]] = phase
            continue
        if ev == "worker.died":
            task, actor = event.get("task"), event.get("actor")
            calls = list(pushed.pop(event["worker_pid"], {}).values())
            if task in submitted:
                found[i] = submitted[task]
            elif calls:
                found[i] = calls[0]
            else:
                found[i] = actor_phase.get(actor)
            died_in[event["wid"]] = found[i]
        elif ev == "process.exited":
            exits.append((i, event.get("wid")))
        elif ev == "gcs.actor_state" and event["state"] in ("RESTARTING", "DEAD"):
            wid = event.get("wid") or ""
            found[i] = died_in[wid] if wid in died_in else actor_phase.get(event["actor"])
        elif ev == "component.died":
            found[i] = driver_call
    for i, wid in exits:  # the zygote's report comes just before the death it reports
        found[i] = died_in.get(wid or "")
    phases = {i: phase for i, phase in found.items() if phase is not None}
    trace._fault_phases = phases
    return phases


def _has_faults(trace) -> bool:
    """Whether the trace has any event that ``fault_phases`` files (most runs have none, and
    the pass it makes over every event is then saved)."""
    index = index_of(trace)
    if any(index.count(kind) for kind in ("worker.died", "process.exited", "component.died")):
        return True
    records = trace.records
    return any(records[i]["state"] in ("RESTARTING", "DEAD") and records[i].get("phase") is None
               for i in index.of("gcs.actor_state"))
