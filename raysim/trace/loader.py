"""Reading a trace back: ``load(path)`` turns the JSON-lines file into one ``Trace``.

Every runtime process (driver, GCS, raylet, zygote, workers) appends its own batches of
events to one shared file (``writer.py``), so the file is ordered per process, not in time.
Loading is the tracer's first step: decode every line, check it against the schema
(``schema.py``), and sort the events by ``ts`` (CLOCK_MONOTONIC, one clock for every process)
so that the rest of the tracer reads one history. Ray has no counterpart: its timeline
(``ray timeline``) is a Chrome trace of task spans gathered from the GCS, not a log of every
step, and nothing replays it.

Runs in: the reader's process (a notebook, ``raysim trace``, a test), never in the runtime;
it may therefore import pandas, unlike ``writer.py``.

What is checked, and why it is cheap. ``schema.validate_event`` on every line would cost
more than decoding it. But what it checks (which fields an event has, their types, the event
and process kinds) depends only on the event's *shape*: its kind, its process kind, its field
names in order, and the Python type of each value. A trace has a few dozen shapes, since
each ``emit()`` call site writes the same fields every time, so the first event of each new
shape goes through ``schema.validate_event`` in full and the others are only looked up in a
set of shapes already seen.

Even a shape costs as much to build as the event costs to decode (a tuple of every field
name and value type), so most lines are not looked at as events at all, but as bytes. A
line's *skeleton* is the line with every digit turned into ``0``: one ``bytes.translate``
per chunk of a few hundred lines. Two lines with the same skeleton differ only in their
digits, and a digit changes a number's value or a string's text, never a type, a field
name, or the event or process kind (no name in the schema has a digit). So two such lines
decode to events of the same shape, and only one line of each new skeleton is decoded on its
own (which also shows that it holds one whole value) and has its shape checked. The
benchmark trace has 390,000 lines but 13,000 skeletons. Two kinds of line are checked one
by one instead: a line with a backslash (``"\\u0031"`` is the digit one, spelt without a
digit), and a line with a number of 20 digits or more, 19 if negative (orjson turns an
integer too big for 64 bits into a float). That is exactly as strict as validating every
line (values such as ``attrs`` dicts are checked as "a dict", as the schema does), and the
first bad line is then reported with its number and what is wrong with it.

Decoding itself is done a chunk at a time too, as one JSON array (one orjson call for a few
hundred lines), and sorting is done in place (see ``_sort_by_ts``): with the events out of
the CPU's cache after decoding, touching each of them once more costs as much as the sort.

Where this reader is more lenient than the schema's letter: the header need not be the
file's *first line* (raysim's driver writes it before starting any other process, but a
trace assembled by other tools may not keep that order); it must be the earliest event in
time, and its ``schema_version`` is checked before any other line, so that a trace from a
newer raysim is refused with "upgrade" rather than with a confusing field error.
A partial last line (a process killed in the middle of a write) is dropped with a
``PartialLineWarning``: a crashed run's trace must still load.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import warnings
from functools import partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator, NamedTuple

import orjson

from raysim.trace import schema, state
from raysim.trace.frame import events_frame
from raysim.trace.index import TraceIndex, index_of
from raysim.trace.views import TraceViews

if TYPE_CHECKING:
    import pandas

Event = dict[str, Any]

_HEADER = "trace.header"
_loads = orjson.loads
_get_ts = itemgetter("ts")

# Shapes already known to pass schema.validate_event (see the module docstring). Validity
# depends on the schema alone, which is fixed for the life of the process, so every load
# shares the set.
_VALID_SHAPES: set[tuple] = set()


class PartialLineWarning(UserWarning):
    """The trace's last line was cut short; the event on it was left out."""


@dataclasses.dataclass(frozen=True)
class Phase:
    """One driver API call (``phase.begin``) and the span of the trace until the next one.

    ``first_index``..``last_index`` (inclusive) are the events from this phase's
    ``phase.begin`` up to the next phase's; ``ts_begin`` and ``ts_end`` are their
    timestamps. Events that *carry* ``phase == number`` can come later than ``last_index``
    (a worker finishing the call's task after the driver moved on); select them with
    ``trace.events[trace.events.phase == number]``. Phase 0 (``init``) starts at index 0, so
    that it holds the header too.
    """

    number: int
    api: str
    site: str | None
    code: str | None
    detail: str | None
    first_index: int
    last_index: int
    ts_begin: int
    ts_end: int


class Process(NamedTuple):
    """A process seen in the trace, with the role its ``process.started`` announced."""

    proc: str
    node: str
    pid: int
    role: str | None


class Trace(TraceViews):
    """A loaded trace: validated events in time order, and views of them."""

    def __init__(self, path: str, records: list[Event]) -> None:
        self.path = path
        # Invariant: records is sorted by ts (stably) and records[0] is the trace.header.
        self.records = records
        self._events: pandas.DataFrame | None = None
        self._phases: list[Phase] | None = None
        self._history: state.History | None = None
        self._index: TraceIndex | None = None  # made by index_of(trace) on first use

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"<Trace {self.path!r}: {len(self)} events>"

    @property
    def header(self) -> Event:
        return self.records[0]

    @property
    def events(self) -> pandas.DataFrame:
        """One row per event, in time order (``frame.py``; built on first use: about half
        a second on a trace of hundreds of thousands of events)."""
        if self._events is None:
            self._events = events_frame(self.records)
        return self._events

    def phases(self) -> list[Phase]:
        """The driver's calls one by one, numbered from 0 as the events' ``phase`` field is.
        The views number phases differently (from 1, like calls merged): see
        ``phase_table()``."""
        if self._phases is None:
            self._phases = _phases(self.records, index_of(self).of("phase.begin"))
        return list(self._phases)

    def processes(self) -> list[Process]:
        """Every process that emitted an event, in order of first appearance."""
        records, index = self.records, index_of(self)
        roles = {records[i]["pid"]: records[i].get("role") for i in index.of("process.started")}
        firsts = [records[i] for i in sorted(index.first_of_pid.values())]
        return [Process(e["proc"], e["node"], e["pid"], roles.get(e["pid"])) for e in firsts]

    def process_names(self) -> dict[int, str]:
        """pid -> the short name every view uses: driver, gcs, raylet, zygote, worker#1,
        worker#2... (workers numbered in order of first appearance). In a trace of several
        nodes a node's processes carry its name, ``raylet@node2``, ``worker#3@node2``, the
        nodes numbered in order of first appearance (the driver's is node1); the driver and
        the GCS, one per cluster, carry none."""
        processes = self.processes()
        node_names = self.node_names()
        names: dict[int, str] = {}
        workers = 0
        for process in processes:
            if process.pid in names:
                continue
            if process.proc == "worker":
                workers += 1
                name = f"worker#{workers}"
            else:
                name = process.proc
            if len(node_names) > 1 and process.proc not in ("driver", "gcs"):
                name += "@" + node_names[process.node]
            names[process.pid] = name
        if len(node_names) > 1:
            # Lanes grouped by node (the driver and the GCS first: one per cluster), each
            # node's processes in order of first appearance.
            node_of = {p.pid: p.node for p in processes}
            order = list(node_names)

            def rank(pid: int) -> tuple[int, int]:
                if "@" not in names[pid]:
                    return (0, 0)
                return (1 + order.index(node_of[pid]), 0)
            names = dict(sorted(names.items(), key=lambda item: rank(item[0])))
        return names

    def node_names(self) -> dict[str, str]:
        """node id -> node1, node2, ... in order of first appearance (the driver's first)."""
        names: dict[str, str] = {}
        for process in self.processes():
            names.setdefault(process.node, f"node{len(names) + 1}")
        return names

    def state_at(self, index: int) -> state.ClusterState:
        """The cluster's tables as of event ``index`` (inclusive; negative counts from the
        end), replayed from the trace. The first call replays the whole trace once to save
        checkpoints (``state.History``); later calls take milliseconds."""
        if self._history is None:
            self._history = state.History(self.records)
        return self._history.state_at(index)


# --------------------------------------------------------------------------------------------
# Loading

# Lines are decoded this many bytes at a time (a few hundred lines), as one JSON array: one
# orjson call per chunk costs less than one per line, and a chunk's events are still in the
# CPU's cache when their timestamps are gathered.
_CHUNK_BYTES = 64 * 1024

# load(progress=...) is told how far it got once per this many chunks (2 MB).
_PROGRESS_EVERY = 32

# A line's skeleton is the line with every digit turned into 0 (see the module docstring).
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
# orjson decodes an integer too big for 64 bits as a float: one of 20 digits or more (19 if
# negative) may not fit, so its skeleton does not tell its type.
_LONG_NUMBERS = (b"0" * 20, b"-" + b"0" * 19)


def _schema_names() -> set[str]:
    """Every name the schema checks: event kinds, process kinds and field names."""
    names = set(schema.COMMON_FIELDS) | set(schema.EVENTS) | set(schema.PROCESS_KINDS)
    for kind in schema.EVENTS.values():
        names.update(kind.fields)
    return names


# A skeleton stands for a shape only while no name in the schema has a digit (a field named
# "x1" would share its skeleton with a misspelt "x2"); if one ever has, every line is checked.
_SKELETONS_SOUND = not any(char.isdigit() for name in _schema_names() for char in name)


def load(path: str | os.PathLike, progress: Callable[[int], None] | None = None) -> Trace:
    """Read, validate and time-order a raysim trace. Raises ``schema.TraceFormatError``
    naming the file and line of the first bad event. ``progress(bytes_read)``, if given,
    is called every few megabytes (``raysim trace`` draws a progress bar with it)."""
    name = os.fspath(path)
    with _open(name) as f:
        header_line = _check_header(name, f)
        f.seek(0)
        # The cyclic garbage collector would walk the growing list of events again and
        # again (measured: decoding ran almost 3x slower); events cannot form cycles, so it
        # may rest while they are decoded.
        collecting = gc.isenabled()
        gc.disable()
        try:
            records, times, tail = _decode(name, f, progress)
        finally:
            if collecting:
                gc.enable()
    # The collector then walks the new events once, at its next run: that is here, before
    # the sort, while the list holds them in the order they lie in memory (measured: a
    # quarter cheaper than walking them in time order).
    if tail:
        _decode_tail(name, tail, len(records) + 1, records, times)
    _sort_by_ts(records, times)
    # (No events at all means the file was emptied after its header was read.)
    if not records or records[0]["ev"] != _HEADER:
        raise schema.TraceFormatError(
            f"{name}:{header_line}: the trace.header is not the earliest event; the file "
            f"mixes more than one session's events")
    return Trace(name, records)


def _open(name: str) -> BinaryIO:
    try:
        return open(name, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no trace file at {name!r}. Tip: raysim.init(trace_path=...) says where to "
            f"write one, and raysim.trace_path() where the current session writes its own."
        ) from None


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    """The file's lines, about ``_CHUNK_BYTES`` at a time, each chunk without its last
    newline; last comes what follows the file's last newline (a line cut short, or b"").

    The file is read a chunk at a time rather than whole: a buffer the size of the file
    would be fresh memory for the kernel to hand over page by page (measured: more than a
    tenth of the load's time), while a chunk reuses the memory the one before it freed."""
    pieces: list[bytes] = []  # of the line that the next block continues
    while block := f.read(_CHUNK_BYTES):
        cut = block.rfind(b"\n")
        if cut == -1:  # the middle of a line longer than a chunk
            pieces.append(block)
            continue
        pieces.append(block[:cut])
        yield b"".join(pieces)
        pieces = [block[cut + 1:]]
    yield b"".join(pieces)


def _check_header(name: str, f: BinaryIO) -> int:
    """Find the header and check its version before anything else; return its line."""
    found = _find_header(f)
    if isinstance(found, str):
        raise schema.TraceFormatError(f"{name}: the file {found}; it is not a raysim trace")
    number, header = found
    try:
        schema.validate_event(header)
        if header["schema"] != schema.SCHEMA_NAME:
            raise schema.TraceFormatError(
                f"the header names schema {header['schema']!r}, not {schema.SCHEMA_NAME!r}")
        schema.check_version(header["schema_version"])
    except schema.TraceFormatError as error:
        raise schema.TraceFormatError(f"{name}:{number}: {error}") from None
    return number


def _find_header(f: BinaryIO) -> tuple[int, Event] | str:
    """The header's line number and event: on the first line, or a few lines down (the
    GCS's or raylet's first batch may land before the driver's). If there is none, what is
    wrong with the file."""
    number = 1  # the line the chunk starts on
    blank = True
    for chunk in _chunks(f):
        at = chunk.find(b'"trace.header"')
        while at != -1:
            start = chunk.rfind(b"\n", 0, at) + 1
            stop = chunk.find(b"\n", at)
            stop = len(chunk) if stop == -1 else stop
            try:
                event = _loads(chunk[start:stop])
                if isinstance(event, dict) and event.get("ev") == _HEADER:
                    return number + chunk.count(b"\n", 0, start), event
            except orjson.JSONDecodeError:
                pass  # a bad line: the main pass reports it
            at = chunk.find(b'"trace.header"', stop)
        number += chunk.count(b"\n") + 1
        blank = blank and not chunk.strip()
    return "is empty" if blank else "has no trace.header event"


def _decode(name: str, f: BinaryIO, progress: Callable[[int], None] | None = None
            ) -> tuple[list[Event], list[int], bytes]:
    """Decode and check every whole line, a chunk at a time. Returns the events in file
    order, their timestamps (gathered now, while each event is still in the CPU's cache:
    reading them again later cost more than the sort), and what follows the last newline."""
    records: list[Event] = []
    times: list[int] = []
    skeletons: set[bytes] = set()  # of lines already checked in this file
    chunks = _chunks(f)
    chunk = next(chunks)
    done = 0
    for n, following in enumerate(chunks):  # the last, unfinished line is left in ``chunk``
        events = _decode_chunk(chunk, skeletons)
        if events is None:
            _raise_first_error(name, chunk, len(records) + 1)
        records += events
        times += map(_get_ts, events)
        done += len(chunk) + 1
        if progress is not None and n % _PROGRESS_EVERY == 0:
            progress(done)
        chunk = following
    return records, times, chunk


def _decode_chunk(chunk: bytes, skeletons: set[bytes]) -> list[Event] | None:
    """The events of a chunk of lines, or None if any line is bad (the slow path then finds
    which). The fast path: one decode, one skeleton per line looked up in a set."""
    try:
        events = _loads(b"".join((b"[", chunk.replace(b"\n", b","), b"]")))
    except orjson.JSONDecodeError:
        return None
    lines = chunk.translate(_DIGITS_TO_ZERO).split(b"\n")
    if len(events) != len(lines):
        return None  # an empty line, or a line holding two values
    new = set(lines) - skeletons
    if not new:
        return events
    # A new skeleton is checked on one of its lines, decoded alone: that also shows that
    # the line is one whole value, so that the chunk's array holds exactly its lines' events.
    unsure = {line for line in new if not _stands_for_its_lines(line)}
    originals = chunk.split(b"\n")
    one_of_each = dict(zip(lines, originals))
    to_check = [one_of_each[line] for line in new - unsure]
    if unsure:  # every line of these skeletons, one by one
        to_check += [original for line, original in zip(lines, originals) if line in unsure]
    if not _lines_valid(to_check):
        return None
    skeletons |= new - unsure
    return events


def _stands_for_its_lines(skeleton: bytes) -> bool:
    """Whether every line with this skeleton decodes to an event of the same shape: not so
    if an escape such as ``\\u0031`` spells a digit, or a number may not fit in 64 bits."""
    return (_SKELETONS_SOUND and b"\\" not in skeleton
            and not any(number in skeleton for number in _LONG_NUMBERS))


def _lines_valid(lines: list[bytes]) -> bool:
    """Whether each line is one event whose shape passes ``schema.validate_event``."""
    try:
        events = list(map(_loads, lines))
        shapes = {(e["ev"], e["proc"], *e, *map(type, e.values())) for e in events}
    except Exception:  # not JSON, not objects, fields missing or unhashable
        return False
    new = shapes - _VALID_SHAPES
    return not new or _admit(events, new)


def _admit(events: list[Event], new: set[tuple]) -> bool:
    """Validate in full one event of each shape not seen before; if it passes, so will
    every event of its shape."""
    for event in events:
        shape = (event["ev"], event["proc"], *event, *map(type, event.values()))
        if shape in new:
            try:
                schema.validate_event(event)
            except schema.TraceFormatError:
                return False
            _VALID_SHAPES.add(shape)
            new.discard(shape)
            if not new:
                break
    return True


def _raise_first_error(name: str, chunk: bytes, first_number: int) -> None:
    """The slow path: check the chunk's lines one by one and report the first bad one."""
    for number, line in enumerate(chunk.split(b"\n"), first_number):
        problem = _what_is_wrong(line)
        if problem:
            raise schema.TraceFormatError(f"{name}:{number}: {problem}")
    raise schema.TraceFormatError(  # cannot happen: the fast path found something wrong
        f"{name}:{first_number}: a bad line among the lines from here on")


def _what_is_wrong(line: bytes) -> str | None:
    if not line.strip():
        return "empty line; every line must be one JSON event"
    try:
        event = _loads(line)
    except orjson.JSONDecodeError as error:
        return f"not valid JSON ({error}): {line[:80]!r}"
    try:
        schema.validate_event(event)
    except schema.TraceFormatError as error:
        return str(error)
    return None


def _decode_tail(name: str, tail: bytes, number: int, records: list[Event],
                 times: list[int]) -> None:
    """The file does not end with a newline: keep the last event if it is whole."""
    if _what_is_wrong(tail) is None:
        records.append(_loads(tail))
        times.append(records[-1]["ts"])
        return
    warnings.warn(f"{name}:{number}: the last line is cut short ({len(tail)} bytes; a "
                  f"process killed while writing?); its event is left out",
                  PartialLineWarning, stacklevel=3)


def _sort_by_ts(records: list[Event], times: list[int]) -> None:
    """Sort the events by ts, in place; events of equal ts keep their file order (a
    process's own events, written in the order it emitted them): ``list.sort`` is stable.

    The keys are the timestamps gathered while decoding: CPython's ``list.sort`` computes
    every key once, first to last, before it sorts, so a key function that hands out
    ``times`` one after the other gives each event its own. Sorting in place moves pointers
    and touches no event; building a new list in time order, or reading ``ts`` back from
    every event, would visit all of them once more, out of the CPU's cache by now (measured:
    twice the sort's time)."""
    records.sort(key=partial(next, iter(times)))


# --------------------------------------------------------------------------------------------
# Phases


def _phases(records: list[Event], begins: list[int]) -> list[Phase]:
    phases = []
    for n, first in enumerate(begins):
        last = begins[n + 1] - 1 if n + 1 < len(begins) else len(records) - 1
        begin = records[first]
        if n == 0:
            first = 0  # phase 0 (init) holds the header written just before it began
        phases.append(Phase(
            number=begin["phase"], api=begin["api"], site=begin.get("site"),
            code=begin.get("code"), detail=begin.get("detail"), first_index=first,
            last_index=last, ts_begin=records[first]["ts"], ts_end=records[last]["ts"]))
    return phases
