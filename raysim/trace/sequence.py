"""Sequence diagrams: who sent what to whom, and what each process did, step by step.

Seed: every phase of the founding document has a "Control Flow": numbered steps such as
"1. Driver serializes the model object", "2. Driver writes to local Object Store shared
memory", "4. Object Store registers the location with GCS". This module rebuilds those
steps from a trace for any program: each message sent (``msg.send``) is an arrow from the
sender's lifeline to the receiver's, and each event that changes something a learner should
see (an object serialized, written, sealed, registered; a reference counted; a task
scheduled or run; an actor's state) is a step on its process's own lifeline. Steps are
numbered from 1 within each phase, in the order they happened (one clock for all processes,
``ts``). Replies are drawn, but not a message's arrival (``msg.recv``): the arrow shows both.

Faults are steps too: a worker that died, a task retried, cancelled or failed, a GCS or raylet
gone, an API call refused. Some of them happen outside any driver call (the raylet hears of a
worker's death from the zygote, not from a message that carries a phase); such an event is
drawn in the phase of what it hit: the task or actor call the worker was running (see
``fault_phases``), and for a dead GCS or raylet, the driver's latest call.

Phases here are ``PhaseGroup``s: consecutive driver calls of one kind from one line of code
(the three ``BatchPredictor.remote(...)`` of a list comprehension are one phase, as in the
founding document).

Two renderings: ``SequenceDiagram`` is a rich renderable (lifelines as columns, one row per
step, arrow heads ``▶``/``◀``, ``●`` for a step within one process) and ``sequence_figure``
draws the same with matplotlib. Runs in: the reader's process.
"""

from __future__ import annotations

import dataclasses
import signal

from rich.console import Group
from rich.text import Text

from raysim.trace.labels import Labels
from raysim.trace.render import RichView


@dataclasses.dataclass
class PhaseGroup:
    """Consecutive driver calls of one kind from one line of code."""

    api: str
    site: str | None
    code: str | None
    numbers: list[int]
    last_index: int  # the group's last event (any process), where its tables are read


@dataclasses.dataclass(frozen=True)
class Step:
    """One numbered step of a phase: a message (``dst`` set) or an action of ``src``."""

    number: int
    index: int  # the event's position in the trace
    ts: int
    src: str
    dst: str | None
    text: str


# Events that change the tables of "What's stored where" (messages and process bookkeeping
# do not): a group's snapshot is taken once the last of these it caused has happened.
_TABLE_EVENTS = ("gcs.", "object_store.", "actor.state", "ref.", "task.submitted")


def phase_groups(trace) -> list[PhaseGroup]:
    """The trace's phases, numbered from 1 as every view numbers them. Computed once per
    trace (one pass over its events) and kept on it: every view asks."""
    cached = getattr(trace, "_phase_groups", None)
    if cached is not None:
        return cached
    groups: list[PhaseGroup] = []
    last_event_of: dict[int, int] = {}
    for i, event in enumerate(trace.records):
        phase = event.get("phase")
        if phase is not None and event["ev"].startswith(_TABLE_EVENTS):
            last_event_of[phase] = i
    for phase in trace.phases():
        # At least until the driver moved on; later if the call's effects came later.
        last = max(last_event_of.get(phase.number, 0), phase.last_index)
        previous = groups[-1] if groups else None
        if previous and previous.api == phase.api and previous.site == phase.site \
                and phase.api != "init":
            previous.numbers.append(phase.number)
            previous.last_index = max(previous.last_index, last)
        else:
            groups.append(PhaseGroup(phase.api, phase.site, phase.code, [phase.number], last))
    trace._phase_groups = groups
    return groups


def phase_group(trace, number: int) -> PhaseGroup:
    """Phase ``number`` (from 1), or a ValueError naming the numbers there are."""
    groups = phase_groups(trace)
    if not 1 <= number <= len(groups):
        raise ValueError(f"this trace has phases 1 to {len(groups)}; there is no phase "
                         f"{number}. Pick one of those numbers.")
    return groups[number - 1]


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"


_GET_PATHS = {"inline": "inline, from the owner's memory",
              "local_store": "deserialized from the store"}


def action_text(event, labels: Labels) -> str | None:
    """What one event did, in words; None for events that are not steps."""
    ev = event["ev"]
    obj = labels.obj(event.get("obj"))
    if ev == "object.serialized":
        what = obj or "the arguments"
        return f"serialize {what} ({_size(event['size'])}, {_ms(event['dur'])})"
    if ev == "object_store.create":
        return f"store allocates {obj} ({_size(event['size'])})"
    if ev == "object_store.written":
        return f"write {obj} into the shared-memory store ({_ms(event['dur'])})"
    if ev == "object_store.sealed":
        return f"store seals {obj}: readers may map it"
    if ev == "object_store.deleted":
        return f"store deletes {obj} ({event['reason']})"
    if ev == "object_store.spilled":
        return f"store spills {obj} to disk to make room ({_size(event['size'])}, " \
               f"{_ms(event['dur'])})"
    if ev == "object_store.restored":
        return f"store restores {obj} from disk ({_size(event['size'])}, {_ms(event['dur'])})"
    if ev == "object_store.evicted":
        return f"store evicts {obj} to make room (its copy on disk remains)"
    if ev == "object_store.full":
        return f"store has no room for {obj} ({_size(event['size'])}): {event['reason']}"
    if ev == "gcs.object_added":
        return f"GCS object table: {obj} at node {event['location'][:8]}"
    if ev == "gcs.object_freed":
        return f"GCS: {obj} has no references left; free it"
    if ev == "gcs.object_lost":
        why = "its owner died" if event["cause"] == "OWNER_DIED" else "freed already"
        return f"GCS: {obj} is lost ({why}); readers get an error"
    if ev == "gcs.ref_added":
        return (f"GCS: {obj} ref_count={event['count']} "
                f"(+{labels.holder(event['holder'])} {event['ref_type']})")
    if ev == "gcs.ref_removed":
        return f"GCS: {obj} ref_count={event['count']} (-{labels.holder(event['holder'])})"
    if ev == "gcs.actor_state":
        where = labels.proc(event.get("worker_pid")) if event.get("worker_pid") else ""
        reason = f" ({event['reason']})" if event.get("reason") else ""
        restart = f", restart {event['num_restarts']}" \
            if event["state"] == "RESTARTING" and event.get("num_restarts") else ""
        return (f"GCS actor table: {labels.actor(event['actor'])} {event['state']}"
                + (f" on {where}" if where else "") + restart + reason)
    if ev == "scheduler.decision":
        target = labels.workers.get(event.get("wid") or "", "")
        return (f"scheduler: {labels.task(event['task'])} {event['decision']}"
                + (f" -> {target}" if target else ""))
    if ev == "raylet.actor_lookup":
        return (f"look up {labels.actor(event['actor'])}: on "
                f"{labels.workers.get(event['wid'], event['wid'])}")
    if ev == "function.loaded":
        return f"load {event['name']} from the GCS ({_size(event['size'])})"
    if ev == "task.args_resolved":
        objs = ", ".join(labels.obj(o) for o in event["objs"])
        return f"resolve arguments {objs}" if objs else None
    if ev == "task.execute":
        ok = "" if event["ok"] else ", raised"
        return f"run {labels.task(event['task'])} ({_ms(event['dur'])}{ok})"
    if ev == "actor.state":
        attrs = ", ".join(f"{k}={v}" for k, v in event["attrs"].items()
                          if len(str(v)) <= 24)
        return f"heap of {labels.actor(event['actor'])}: {attrs}" if attrs else None
    if ev == "object.inlined":
        return (f"{obj} goes back inline ({_size(event['size'])} < "
                f"{_size(event['threshold'])})")
    if ev == "object.get":
        how = "zero-copy from the store" if event["zero_copy"] else \
            _GET_PATHS.get(event["path"], event["path"])
        return f"get {obj} ({_size(event['size'])}, {how})"
    if ev == "object.promoted":
        return f"copy {obj} into the store (passed on by reference)"
    if ev in _FAULT_TEXT:
        return _FAULT_TEXT[ev](event, labels)
    return None


# -- faults and their recovery ---------------------------------------------------------------


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
_RETRY_CAUSES = {"worker_died": "its worker died", "actor_died": "its actor died"}


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


def _api_rejected(event, labels: Labels) -> str:
    # The message's first sentence names the bad value; the rest is the tip.
    first = event["message"].split(" Tip:")[0].split(". ")[0].rstrip(".")
    return f"{event['api']}() refused ({event['error']}): {first}"


_FAULT_TEXT = {
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


def message_text(event, labels: Labels) -> str:
    about = [labels.task(event.get("task")) or labels.obj(event.get("obj"))
             or labels.actor(event.get("actor"))]
    about = [a for a in about if a]
    return f"{event['kind']}{' ' + about[0] if about else ''} ({_size(event['size'])})"


def group_indices(trace, group: PhaseGroup) -> list[int]:
    """The indices of the group's events: those of its phases, and the fault events filed
    under them (``fault_phases``)."""
    wanted = set(group.numbers)
    attributed = fault_phases(trace)  # only events without a phase of their own
    return [index for index, event in enumerate(trace.records)
            if attributed.get(index, event.get("phase")) in wanted]


def steps(trace, group: PhaseGroup, labels: Labels | None = None) -> list[Step]:
    """The group's steps in the order they happened, numbered from 1."""
    labels = labels or Labels.of(trace)
    records = trace.records
    out: list[Step] = []
    for index in group_indices(trace, group):
        event = records[index]
        src = labels.proc(event["pid"])
        if event["ev"] == "msg.send":
            dst = labels.endpoint(event["to_pid"], event["to"])
            text = message_text(event, labels)
        else:
            dst = None
            text = action_text(event, labels)
            if text is None:
                continue
        out.append(Step(len(out) + 1, index, event["ts"], src, dst, text))
    return out


class SequenceDiagram(RichView):
    """A phase's steps as a text sequence diagram (a rich renderable).

    One column per process that takes part, in the order driver, gcs, raylet, zygote,
    workers; ``max_steps`` caps the rows (the rest are counted)."""

    def __init__(self, trace, group: PhaseGroup, labels: Labels | None = None,
                 max_steps: int | None = None) -> None:
        self.labels = labels or Labels.of(trace)
        self.steps = steps(trace, group, self.labels)
        self.max_steps = max_steps
        order = list(dict.fromkeys(self.labels.processes.values()))
        used = {s.src for s in self.steps} | {s.dst for s in self.steps if s.dst}
        self.lanes = [name for name in order if name in used] + \
            sorted(used - set(order))

    def __rich__(self) -> Group:
        # In a Group, so that the console keeps each row on one line (a bare Text printed
        # at top level is re-joined and wrapped).
        return Group(self.text())

    def text(self) -> Text:
        if not self.steps:
            return Text("(no steps)")
        width = max(len(name) for name in self.lanes) + 2
        centre = {name: i * width + width // 2 for i, name in enumerate(self.lanes)}
        total = width * len(self.lanes)
        number_width = len(str(len(self.steps))) + 2
        text = Text(no_wrap=True, overflow="ellipsis")
        header = "".join(name.center(width) for name in self.lanes)
        text.append(" " * number_width + header + "\n", style="bold")
        shown = self.steps if self.max_steps is None else self.steps[:self.max_steps]
        for step in shown:
            row = [" "] * total
            for name in self.lanes:
                row[centre[name]] = "│"
            a = centre[step.src]
            if step.dst is None or step.dst == step.src:
                row[a] = "●"
            else:
                b = centre[step.dst]
                lo, hi = min(a, b), max(a, b)
                for c in range(lo, hi + 1):
                    row[c] = "─"
                row[a] = "•"
                row[b] = "▶" if b > a else "◀"
            text.append(f"{step.number}.".rjust(number_width - 1) + " ", style="dim")
            text.append("".join(row))
            text.append(" " + step.text + "\n")
        if len(shown) < len(self.steps):
            text.append(f"... and {len(self.steps) - len(shown)} more steps\n", style="dim")
        text.rstrip()
        return text

    def plain(self) -> str:
        return self.text().plain

    def figure(self):
        return sequence_figure(self.steps, self.lanes)

    def _repr_png_(self) -> bytes:
        from raysim.trace.figures import png_bytes

        return png_bytes(self.figure())


def sequence_figure(steps: list[Step], lanes: list[str], max_steps: int = 80):
    """The steps as a matplotlib figure: lifelines down, arrows across, labels beside."""
    from matplotlib.figure import Figure

    shown = steps[:max_steps]
    height = 1.2 + 0.28 * max(len(shown), 1)
    fig = Figure(figsize=(2.0 + 1.3 * len(lanes) + 4.5, height))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.94))
    x = {name: i for i, name in enumerate(lanes)}
    n = len(shown)
    for name, i in x.items():
        ax.plot([i, i], [0.5, n + 0.5], color="0.75", linewidth=1, zorder=1)
        ax.text(i, 0, name, ha="center", va="bottom", fontsize=9, fontweight="bold")
    right = len(lanes) - 0.5
    for row, step in enumerate(shown, 1):
        a = x[step.src]
        if step.dst is None or step.dst == step.src:
            ax.plot([a], [row], marker="o", color="tab:orange", markersize=5, zorder=3)
        else:
            ax.annotate("", xy=(x[step.dst], row), xytext=(a, row),
                        arrowprops={"arrowstyle": "-|>", "color": "tab:blue", "lw": 1.2},
                        zorder=2)
        ax.text(right, row, f"{step.number}. {step.text}", va="center", fontsize=8)
    ax.set_xlim(-0.6, len(lanes) + 4.5)
    ax.set_ylim(n + 0.8, -0.6)
    ax.axis("off")
    if len(steps) > n:
        ax.text(right, n + 0.6, f"... and {len(steps) - n} more steps", fontsize=8,
                color="0.4")
    return fig
