"""The steps of a sequence diagram in words: what each event did, and what kind of step it is.

Seed: the founding document's "Control Flow" lists are sentences ("Driver serializes the
model", "Object Store registers the location with GCS"). ``action_text`` says what one event
did in such words, naming things as every view names them (``labels.py``): "serialize put#1
(759 B, 1.0 ms)", "GCS: put#1 ref_count=1 (+driver LOCAL_REFERENCE)"; ``message_text`` does
the same for a message. Faults have their words in ``fault_steps.py``.

``step_kind`` is the same step without its particulars ("get (inline)", "run noop",
"submit_task"): steps of one kind are what a phase of 20,000 calls is made of, and are
counted rather than drawn one by one (``step_kinds.py``).

Runs in: the reader's process.
"""

from __future__ import annotations

from typing import Any, Callable

from raysim.trace.fault_steps import FAULT_TEXT
from raysim.trace.labels import Labels

Event = dict[str, Any]


def size_text(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def ms_text(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"


_GET_PATHS = {"inline": "inline, from the owner's memory",
              "local_store": "deserialized from the store"}


def _gcs_actor_state(event: Event, labels: Labels) -> str:
    where = labels.proc(event.get("worker_pid")) if event.get("worker_pid") else ""
    reason = f" ({event['reason']})" if event.get("reason") else ""
    restart = f", restart {event['num_restarts']}" \
        if event["state"] == "RESTARTING" and event.get("num_restarts") else ""
    return (f"GCS actor table: {labels.actor(event['actor'])} {event['state']}"
            + (f" on {where}" if where else "") + restart + reason)


def _scheduler_decision(event: Event, labels: Labels) -> str:
    target = labels.workers.get(event.get("wid") or "", "")
    return (f"scheduler: {labels.task(event['task'])} {event['decision']}"
            + (f" -> {target}" if target else ""))


def _args_resolved(event: Event, labels: Labels) -> str | None:
    objs = ", ".join(labels.obj(o) for o in event["objs"])
    return f"resolve arguments {objs}" if objs else None


def _actor_heap(event: Event, labels: Labels) -> str | None:
    attrs = ", ".join(f"{k}={v}" for k, v in event["attrs"].items() if len(str(v)) <= 24)
    return f"heap of {labels.actor(event['actor'])}: {attrs}" if attrs else None


def _get(event: Event, labels: Labels) -> str:
    how = "zero-copy from the store" if event["zero_copy"] else \
        _GET_PATHS.get(event["path"], event["path"])
    return f"get {labels.obj(event['obj'])} ({size_text(event['size'])}, {how})"


def _lost(event: Event, labels: Labels) -> str:
    why = "its owner died" if event["cause"] == "OWNER_DIED" else "freed already"
    return f"GCS: {labels.obj(event['obj'])} is lost ({why}); readers get an error"


def _obj(event: Event, labels: Labels) -> str:
    return labels.obj(event.get("obj"))


# Event kind -> its step's words. An event of any other kind is no step (messages have
# message_text); a function that returns None says that this event is none either.
ACTION_TEXT: dict[str, Callable[[Event, Labels], str | None]] = {
    "object.serialized": lambda e, l: (f"serialize {_obj(e, l) or 'the arguments'} "
                                       f"({size_text(e['size'])}, {ms_text(e['dur'])})"),
    "object_store.create": lambda e, l: f"store allocates {_obj(e, l)} ({size_text(e['size'])})",
    "object_store.written": lambda e, l: (f"write {_obj(e, l)} into the shared-memory store "
                                          f"({ms_text(e['dur'])})"),
    "object_store.sealed": lambda e, l: f"store seals {_obj(e, l)}: readers may map it",
    "object_store.deleted": lambda e, l: f"store deletes {_obj(e, l)} ({e['reason']})",
    "object_store.spilled": lambda e, l: (f"store spills {_obj(e, l)} to disk to make room "
                                          f"({size_text(e['size'])}, {ms_text(e['dur'])})"),
    "object_store.restored": lambda e, l: (f"store restores {_obj(e, l)} from disk "
                                           f"({size_text(e['size'])}, {ms_text(e['dur'])})"),
    "object_store.evicted": lambda e, l: (f"store evicts {_obj(e, l)} to make room (its copy "
                                          f"on disk remains)"),
    "object_store.full": lambda e, l: (f"store has no room for {_obj(e, l)} "
                                       f"({size_text(e['size'])}): {e['reason']}"),
    "gcs.object_added": lambda e, l: (f"GCS object table: {_obj(e, l)} at node "
                                      f"{e['location'][:8]}"),
    "gcs.object_freed": lambda e, l: f"GCS: {_obj(e, l)} has no references left; free it",
    "gcs.object_lost": _lost,
    "gcs.ref_added": lambda e, l: (f"GCS: {_obj(e, l)} ref_count={e['count']} "
                                   f"(+{l.holder(e['holder'])} {e['ref_type']})"),
    "gcs.ref_removed": lambda e, l: (f"GCS: {_obj(e, l)} ref_count={e['count']} "
                                     f"(-{l.holder(e['holder'])})"),
    "gcs.actor_state": _gcs_actor_state,
    "scheduler.decision": _scheduler_decision,
    "raylet.actor_lookup": lambda e, l: (
        f"look up {l.actor(e['actor'])}: on {l.workers.get(e['wid'], e['wid'])}"
        if e.get("wid") else f"look up {l.actor(e['actor'])} in the GCS: on another node"),
    "gcs.task_placed": lambda e, l: (
        f"GCS places {l.task(e['task'])} on {l.node(e['to_node'])} ({e['reason']})"
        if e.get("to_node") else f"GCS: no node can run {l.task(e['task'])}"),
    "gcs.object_located": lambda e, l: (
        f"GCS: {_obj(e, l)} is on {', '.join(l.node(n) for n in e['locations'])}"),
    "object_manager.pull": lambda e, l: (f"pull {_obj(e, l)} ({size_text(e['size'])}) from "
                                         f"{l.node(e['from_node'])}"),
    "object_manager.pulled": lambda e, l: (f"{_obj(e, l)} arrived from "
                                           f"{l.node(e['from_node'])} ({size_text(e['size'])}, "
                                           f"{ms_text(e['dur'])})"),
    "object_manager.refused": lambda e, l: f"refuse a connection: {e['reason']}",
    "function.loaded": lambda e, l: f"load {e['name']} from the GCS ({size_text(e['size'])})",
    "task.args_resolved": _args_resolved,
    "task.execute": lambda e, l: (f"run {l.task(e['task'])} ({ms_text(e['dur'])}"
                                  f"{'' if e['ok'] else ', raised'})"),
    "actor.state": _actor_heap,
    "object.inlined": lambda e, l: (f"{_obj(e, l)} goes back inline ({size_text(e['size'])} "
                                    f"< {size_text(e['threshold'])})"),
    "object.get": _get,
    "object.promoted": lambda e, l: f"copy {_obj(e, l)} into the store (passed on by reference)",
    **FAULT_TEXT,
}

# Kinds whose words may be None (the event is then no step): is_step must ask them.
_SOMETIMES_A_STEP = {"task.args_resolved", "actor.state", *FAULT_TEXT}


def action_text(event: Event, labels: Labels) -> str | None:
    """What one event did, in words; None for events that are not steps."""
    words = ACTION_TEXT.get(event["ev"])
    return None if words is None else words(event, labels)


def message_text(event: Event, labels: Labels) -> str:
    about = [labels.task(event.get("task")) or labels.obj(event.get("obj"))
             or labels.actor(event.get("actor"))]
    about = [a for a in about if a]
    return f"{event['kind']}{' ' + about[0] if about else ''} ({size_text(event['size'])})"


def is_step(event: Event, labels: Labels) -> bool:
    """Whether the event is a step of a sequence diagram, without putting it in words
    (except for the few kinds that are steps only sometimes)."""
    ev = event["ev"]
    if ev == "msg.send":
        return True
    if ev not in ACTION_TEXT:
        return False
    return ev not in _SOMETIMES_A_STEP or ACTION_TEXT[ev](event, labels) is not None


# Event kind -> the words for its kind of step, where they are not the event's own name.
_KIND_WORDS = {
    "object.serialized": "serialize", "object_store.create": "store allocates",
    "object_store.written": "write into the store", "object_store.sealed": "store seals",
    "object_store.deleted": "store deletes", "object_store.spilled": "store spills to disk",
    "object_store.restored": "store restores from disk", "object_store.evicted": "store evicts",
    "object_store.full": "store has no room", "gcs.object_added": "GCS object table: add",
    "gcs.object_freed": "GCS: free an object", "gcs.object_lost": "GCS: an object is lost",
    "gcs.ref_added": "GCS: a reference more", "gcs.ref_removed": "GCS: a reference less",
    "raylet.actor_lookup": "look up the actor", "function.loaded": "load a function",
    "task.args_resolved": "resolve arguments", "actor.state": "actor's heap after the call",
    "object.inlined": "result goes back inline", "object.promoted": "copy into the store",
    "worker.died": "a worker died", "process.exited": "zygote reaps a worker",
    "task.retry": "retry a task", "task.cancelled": "cancel a task",
    "task.finished": "a task failed", "component.died": "a control process died",
    "api.rejected": "a call refused", "gcs.task_placed": "GCS places a task",
    "gcs.object_located": "GCS: where an object is", "object_manager.pull": "pull an object",
    "object_manager.pulled": "an object arrived", "object_manager.refused":
    "refuse a connection",
}


def step_kind(event: Event) -> str:
    """The kind of step an event is, in words without its particulars: steps of one kind
    between the same processes are counted together."""
    ev = event["ev"]
    if ev == "msg.send":
        return event["kind"]
    if ev == "task.execute":
        return f"run {event['name']}" + ("" if event["ok"] else ", raised")
    if ev == "object.get":
        return "get (zero-copy)" if event["zero_copy"] else f"get ({event['path']})"
    if ev == "gcs.actor_state":
        return f"GCS actor table: {event['state']}"
    if ev == "scheduler.decision":
        return f"scheduler: {event['decision']}"
    return _KIND_WORDS.get(ev, ev)
