"""Helpers for tests that assert on a trace: load it, wait for an event, follow messages."""

from __future__ import annotations

import os
import re
import time
from typing import Callable

import orjson

from raysim.trace import schema


def load(path: str) -> list[dict]:
    """Every event of the trace, validated, in timestamp order. A last line without its
    newline is one a process is writing right now (a test reads the trace of a running
    session): it is left for the next read."""
    events = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break
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


def poll(condition, what: str, timeout: float = 10.0):
    """Wait for an effect outside the trace (a file, a pid), with a deadline; returns the
    condition's first true value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def wait_for_file(path: str) -> None:
    """Inside a task or an actor: block until the test creates ``path``."""
    while not os.path.exists(path):
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


def _same_width(placeholder: str):
    return lambda m: (placeholder * len(m.group(0)))[:len(m.group(0))]


_NORMALISE = [
    # What has a fixed width becomes a placeholder as wide, so that tables keep their shape.
    (re.compile(r"(?<=node )[0-9a-f]{8}\b"), _same_width("N")),       # node ids
    (re.compile(r"(?<=at 0x)[0-9a-f]+"), _same_width("?")),            # reprs
    (re.compile(r"(?<=pid )\d+"), _same_width("P")),
    # What varies in width (times, message sizes, the host's store capacity) changes the
    # padding before a panel's right border: that border and its padding are dropped.
    (re.compile(r"\b\d+\.\d ms\b"), "T ms"),                          # durations
    (re.compile(r"\+\d+\.\d{3} ms\b"), "+T ms"),                      # offsets
    (re.compile(r"\bof [\d,]+ B used"), "of C B used"),
    (re.compile(r"\((\d+(\.\d)?) (B|KB|MB)\)"), "(n B)"),              # message sizes
]


def normalise(text: str) -> str:
    """Rendered text with what differs from run to run (ids, times, message sizes, the
    host's store capacity) replaced by placeholders, and trailing borders dropped."""
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return "\n".join(re.sub(r"\s*│?\s*$", "", line) for line in text.splitlines())
