"""The one narrow hook through which the runtime records what it does: ``emit()``.

Every runtime process (driver, GCS, raylet, zygote, workers) calls ``open_trace()`` once at
start; from then on ``emit(kind, **fields)`` appends one event to an in-memory batch, and the
batch is written to the shared trace file with a single ``write()`` whenever the process is
about to wait for something (``flush()``), or when it grows past a limit. When no trace is
open, ``emit`` is a function that does nothing, like trio's instrumentation hooks.

All processes append to the same file opened with ``O_APPEND``: the kernel places each
``write()`` whole at the end of the file, so batches from different processes never
interleave inside a line. Lines are therefore ordered per process, not globally; readers sort
by ``ts``, which comes from CLOCK_MONOTONIC, one clock for every process on the machine.

Events are encoded with orjson: at tens of thousands of events per second the standard
library's encoder would cost more than the work being traced.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections import deque

import orjson

from raysim.trace import schema

_monotonic_ns = time.monotonic_ns
_dumps = orjson.dumps
_phase: contextvars.ContextVar[int | None] = contextvars.ContextVar("phase", default=None)
_NEWLINE = orjson.OPT_APPEND_NEWLINE


class TraceWriter:
    def __init__(self, path: str, proc: str, node: str, flush_events: int = 512) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        # Lines waiting to be written. deque.append is atomic, so emit() takes no lock; only
        # flushes exclude each other.
        self._buf: deque[bytes] = deque()
        self._flush_lock = threading.RLock()  # re-entrant: __del__ may emit inside a flush
        self._flush_events = flush_events
        self.events_written = 0
        self.set_identity(proc, node)

    def set_identity(self, proc: str, node: str) -> None:
        self.proc = proc
        self.node = node
        self.pid = os.getpid()
        # The common fields as JSON, for lines formatted without orjson (message events).
        self.common_part = b'"proc":%s,"node":%s,"pid":%d,' % (
            _dumps(proc), _dumps(node), self.pid)

    # The phase is per thread, and per coroutine (a context variable): the driver's API
    # thread sets it when a call begins, a thread handling a message sets it to the phase
    # the message carries, and an async actor's calls, interleaved on one event loop, each
    # keep their own.
    def set_phase(self, phase: int | None) -> None:
        _phase.set(phase)

    def get_phase(self) -> int | None:
        return _phase.get()

    def append(self, line: bytes) -> None:
        """Append a line already encoded (it must be one JSON object and end with \\n)."""
        buf = self._buf
        buf.append(line)
        if len(buf) >= self._flush_events:
            self.flush()

    def flush(self) -> None:
        buf = self._buf
        if not buf:
            return
        with self._flush_lock:
            count = len(buf)
            if not count:
                return
            popleft = buf.popleft
            lines = []
            try:
                for _ in range(count):
                    lines.append(popleft())
            except IndexError:
                # A garbage-collected ref emitted an event while we popped, which flushed
                # (the lock is re-entrant, for that) and wrote the rest already.
                pass
            data = b"".join(lines)
            self.events_written += len(lines)
            # One write() per batch: O_APPEND keeps it whole. Loop in case of a short write.
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]

    def drop_inherited(self, proc: str) -> None:
        """After fork: forget the parent's unwritten events and take on the child's identity."""
        self._buf = deque()
        self._flush_lock = threading.RLock()
        self.set_identity(proc, self.node)

    def close(self) -> None:
        self.flush()
        os.close(self._fd)


_writer: TraceWriter | None = None


def open_trace(path: str | None, proc: str, node: str, flush_events: int = 512) -> None:
    global _writer
    close_trace()
    if path:
        _writer = TraceWriter(path, proc, node, flush_events)


def close_trace() -> None:
    global _writer
    if _writer is not None:
        _writer.close()
        _writer = None


def writer() -> TraceWriter | None:
    return _writer


def enabled() -> bool:
    return _writer is not None


def emit(ev: str, phase: int | None = None, ts: int | None = None, **fields) -> None:
    """Record one event. Costs one global test when no trace is open.

    The common fields are added to the caller's keyword dict and the line is made by one
    orjson call: the cheapest way found (they land after the event's own fields; JSON
    readers do not mind)."""
    w = _writer
    if w is None:
        return
    fields["ts"] = _monotonic_ns() if ts is None else ts
    fields["ev"] = ev
    fields["proc"] = w.proc
    fields["node"] = w.node
    fields["pid"] = w.pid
    fields["phase"] = _phase.get() if phase is None else phase
    w.append(_dumps(fields, option=_NEWLINE, default=repr))


def flush() -> None:
    w = _writer
    if w is not None:
        w.flush()


def set_phase(phase: int | None) -> None:
    w = _writer
    if w is not None:
        w.set_phase(phase)


def get_phase() -> int | None:
    w = _writer
    return w.get_phase() if w is not None else None


def now() -> int:
    return _monotonic_ns()


def header(session: str, session_dir: str, config: dict, mode: str) -> dict:
    return {
        "schema": schema.SCHEMA_NAME,
        "schema_version": schema.SCHEMA_VERSION,
        "session": session,
        "session_dir": session_dir,
        "wall_time_ns": time.time_ns(),
        "config": config,
        "mode": mode,
    }
