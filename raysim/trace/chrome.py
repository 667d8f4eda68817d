"""A trace as a Chrome/Perfetto trace: open it in ui.perfetto.dev or chrome://tracing.

Ray's ``ray.timeline()`` writes task slices only (RAY_BEHAVIOUR.md). raysim's has every
process as a track, with slices for the work whose duration it recorded, arrows for every
message from its send to its receive, and a counter of each store's bytes in use:

    driver    phases (one slice per API call: put, actor_creation, get...) on one thread;
              serialization, store writes and gets on another
    worker    task and method executions (a concurrent actor's simultaneous calls each on a
              thread of their own), argument fetches, result serialization
    any       "messages": a 1 ns slice at each send and receive, joined by a flow arrow
    raylet    "object store used (bytes)" counter

Format: the Trace Event Format's JSON object form (``traceEvents``), times in microseconds.

Runs in: the reader's process.
"""

from __future__ import annotations

import json

from raysim.trace.overlap import execution_rows

_US = 1000  # trace timestamps are nanoseconds; Chrome wants microseconds

# Thread ids inside each process's track; a concurrent actor's n-th simultaneous call runs
# on _CONCURRENT + n.
_MAIN, _WORK, _MESSAGES, _CONCURRENT = 0, 1, 2, 100

# Events that record a duration that ended when they were emitted.
_ENDED_SLICES = {"object.serialized": "serialize", "object_store.written": "write to store",
                 "object.get": "get", "task.args_resolved": "fetch arguments",
                 "object_store.spilled": "spill to disk",
                 "object_store.restored": "restore from disk"}
# Events after which the store's usage is known (their ``used`` field).
_STORE_USAGE = ("object_store.sealed", "object_store.deleted", "object_store.spilled",
                "object_store.restored", "object_store.evicted")


def to_chrome(trace) -> dict:
    """The trace as a Trace Event Format object."""
    records = trace.records
    t0 = records[0]["ts"] if records else 0
    out: list[dict] = []
    _process_names(trace, out)
    _phases(trace, t0, out)
    # A message sent as its receiver stopped (at shutdown, or a crash) has no receive:
    # draw arrows only between ends that both exist.
    sent = {e["msg"] for e in records if e["ev"] == "msg.send"}
    delivered = {e["msg"] for e in records if e["ev"] == "msg.recv"} & sent
    # Calls running at once in one process (a threaded or async actor): a thread each.
    rows, rows_used = execution_rows(records)
    for pid, used in rows_used.items():
        for row in range(1, used):
            out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": _CONCURRENT + row,
                        "args": {"name": f"call running at once #{row + 1}"}})
    for i, event in enumerate(records):
        ev = event["ev"]
        pid = event["pid"]
        if ev == "task.execute":
            row = rows[i]
            out.append({"ph": "X", "name": event["name"], "cat": "task", "pid": pid,
                        "tid": _MAIN if row == 0 else _CONCURRENT + row,
                        "ts": (event["ts"] - t0) / _US,
                        "dur": event["dur"] / _US,
                        "args": {"task": event["task"], "ok": event["ok"]}})
        elif ev in _ENDED_SLICES:
            start = event["ts"] - event.get("dur", 0)
            out.append({"ph": "X", "name": _ENDED_SLICES[ev], "cat": "object", "pid": pid,
                        "tid": _WORK, "ts": (start - t0) / _US,
                        "dur": event.get("dur", 0) / _US,
                        "args": {k: event[k] for k in ("obj", "size", "path") if k in event}})
        elif ev in ("msg.send", "msg.recv"):
            _message(event, t0, out, arrow=event["msg"] in delivered)
        if ev in _STORE_USAGE:
            out.append({"ph": "C", "name": "object store used (bytes)", "pid": pid,
                        "ts": (event["ts"] - t0) / _US, "args": {"used": event["used"]}})
    return {"traceEvents": out, "displayTimeUnit": "ms",
            "otherData": {"source": "raysim", "session": trace.header.get("session")}}


def _process_names(trace, out: list[dict]) -> None:
    """Each process's track, named; in a trace of several nodes, the tracks of one node
    together, labelled with it (node1, node2...)."""
    for rank, (pid, name) in enumerate(trace.process_names().items()):
        out.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                    "args": {"name": f"{name} (pid {pid})"}})
        out.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                    "args": {"sort_index": rank}})
        if "@" in name:
            out.append({"ph": "M", "name": "process_labels", "pid": pid, "tid": 0,
                        "args": {"labels": name.partition("@")[2]}})
        for tid, label in ((_MAIN, "phases" if name == "driver" else "main"),
                           (_WORK, "objects"), (_MESSAGES, "messages")):
            out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                        "args": {"name": label}})


def _phases(trace, t0: int, out: list[dict]) -> None:
    """One slice per driver API call, from its start to the next call's (never overlapping)."""
    phases = trace.phases()
    driver_pid = next((e["pid"] for e in trace.records if e["proc"] == "driver"), 0)
    for phase in phases:
        out.append({"ph": "X", "name": phase.api, "cat": "phase", "pid": driver_pid,
                    "tid": _MAIN, "ts": (phase.ts_begin - t0) / _US,
                    "dur": (phase.ts_end - phase.ts_begin) / _US,
                    "args": {"phase": phase.number, "code": phase.code or ""}})


def _message(event: dict, t0: int, out: list[dict], arrow: bool) -> None:
    """A 1 ns slice at each end of a message, and the flow arrow that joins them (flows
    attach to slices, so each end needs one)."""
    send = event["ev"] == "msg.send"
    ts = (event["ts"] - t0) / _US
    pid = event["pid"]
    out.append({"ph": "X", "name": event["kind"], "cat": "message", "pid": pid,
                "tid": _MESSAGES, "ts": ts, "dur": 0.001,
                "args": {"msg": event["msg"], ("to" if send else "from"):
                         event["to"] if send else event["src"]}})
    if not arrow:
        return
    out.append({"ph": "s" if send else "f", "name": event["kind"], "cat": "message",
                "id": event["msg"], "pid": pid, "tid": _MESSAGES, "ts": ts,
                **({} if send else {"bp": "e"})})


def write_chrome(trace, path: str) -> None:
    with open(path, "w") as f:
        json.dump(to_chrome(trace), f)
