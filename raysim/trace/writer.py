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

import os
import threading
import time

import orjson

from raysim.trace import schema

_monotonic_ns = time.monotonic_ns
_dumps = orjson.dumps
_NEWLINE = orjson.OPT_APPEND_NEWLINE


class TraceWriter:
    def __init__(self, path: str, proc: str, node: str, flush_events: int = 512) -> None:
        self.path = path
        self.proc = proc
        self.node = node
        self.pid = os.getpid()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._buf: list[bytes] = []
        self._lock = threading.RLock()  # emit() may run inside __del__ on this thread
        self._flush_events = flush_events
        self._local = threading.local()
        self.events_written = 0

    # The phase is per thread: the driver's API thread sets it when a call begins, and a
    # thread handling a message sets it to the phase the message carries.
    def set_phase(self, phase: int | None) -> None:
        self._local.phase = phase

    def get_phase(self) -> int | None:
        return getattr(self._local, "phase", None)

    def emit(self, ev: str, fields: dict, phase: int | None = None, ts: int | None = None) -> None:
        record = {
            "ts": _monotonic_ns() if ts is None else ts,
            "ev": ev,
            "proc": self.proc,
            "node": self.node,
            "pid": self.pid,
            "phase": getattr(self._local, "phase", None) if phase is None else phase,
        }
        record.update(fields)
        line = _dumps(record, option=_NEWLINE, default=repr)
        with self._lock:
            self._buf.append(line)
            if len(self._buf) < self._flush_events:
                return
        self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._buf:
                return
            data = b"".join(self._buf)
            count = len(self._buf)
            self._buf = []
            self.events_written += count
            # One write() per batch: O_APPEND keeps it whole. Loop in case of a short write.
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]

    def drop_inherited(self, proc: str) -> None:
        """After fork: forget the parent's unwritten events and take on the child's identity."""
        self._buf = []
        self._lock = threading.RLock()
        self._local = threading.local()
        self.proc = proc
        self.pid = os.getpid()

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
    """Record one event. Costs one attribute test when no trace is open."""
    w = _writer
    if w is not None:
        w.emit(ev, fields, phase, ts)


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
