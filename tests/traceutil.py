"""Helpers for tests that assert on a trace: load it, wait for an event, follow messages."""

from __future__ import annotations

import time
from typing import Callable

import orjson

from raysim.trace import schema


def load(path: str) -> list[dict]:
    """Every event of the trace, validated, in timestamp order."""
    events = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            event = orjson.loads(line)
            try:
                schema.validate_event(event)
            except schema.TraceFormatError as e:
                raise AssertionError(f"{path}:{number}: {e}") from None
            events.append(event)
    events.sort(key=lambda e: e["ts"])
    return events


def wait_for(path: str, predicate: Callable[[list[dict]], bool], timeout: float = 10.0,
             what: str = "condition") -> list[dict]:
    """Re-read the trace until ``predicate(events)`` holds. Processes write their events
    when they go idle, so a condition about another process's events becomes true shortly
    after the work is done; this polls for it with a deadline instead of sleeping."""
    deadline = time.monotonic() + timeout
    while True:
        events = load(path)
        if predicate(events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def of(events: list[dict], ev: str, **match) -> list[dict]:
    return [e for e in events if e["ev"] == ev and all(e.get(k) == v for k, v in match.items())]


def messages(events: list[dict]) -> list[tuple[dict, dict | None]]:
    """Each msg.send with its msg.recv (None if not received)."""
    received = {e["msg"]: e for e in events if e["ev"] == "msg.recv"}
    return [(e, received.get(e["msg"])) for e in events if e["ev"] == "msg.send"]


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
