"""Turning Python values into bytes that can live in shared memory, and back without copying.

Seed, phase 2 step 1: "Driver process serializes the model function using pickle". Ray uses
cloudpickle with pickle protocol 5: large buffers (numpy arrays, pandas blocks, Arrow buffers)
are handed to a ``buffer_callback`` instead of being copied into the pickle stream, so they
can be written straight into the object store and later read back as views of it. raysim does
the same, with this layout for one serialized object (in the store, or inline in a message):

    offset 0   magic b"RSO1", buffer count n (u32), pickle length m (u64)
    16         n x (offset u64, length u64) of each out-of-band buffer
    16+16n     the pickle stream (m bytes)
    ...        each buffer, 64-byte aligned, as numpy and Arrow like it

Deserializing maps that layout: the pickle is loaded with ``buffers=`` pointing into it, so a
numpy array read from the store is a read-only view of the store (zero-copy), as in Ray.

Plain data (numbers, strings, small tuples of them) goes through the standard ``pickle``,
which is eight times faster than cloudpickle for such values; everything else through
cloudpickle, which can also pickle functions and classes defined in ``__main__``.

``ObjectRef`` and ``ActorHandle`` objects met while pickling are collected, so that the
caller can account for references captured inside a value (``CAPTURED_IN_OBJECT``).

Runs in: the driver and workers.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import threading
import time
import types
from typing import Any

import cloudpickle

_MAGIC = b"RSO1"
_HEAD = struct.Struct("<4sIQ")
_BUF = struct.Struct("<QQ")
_ALIGN = 64
_PLAIN_TYPES = frozenset({type(None), bool, int, float, str, bytes, complex})

_context = threading.local()


def _align(n: int) -> int:
    return (n + _ALIGN - 1) & ~(_ALIGN - 1)


def is_plain(value: Any, depth: int = 0) -> bool:
    t = type(value)
    if t in _PLAIN_TYPES:
        return True
    if depth < 2 and (t is tuple or t is list):
        return len(value) <= 16 and all(is_plain(v, depth + 1) for v in value)
    if depth < 2 and t is dict:
        return len(value) <= 16 and all(
            type(k) is str and is_plain(v, depth + 1) for k, v in value.items())
    return False


class SerializedObject:
    """A value in raysim's wire/store layout, not yet copied anywhere."""

    __slots__ = ("main", "buffers", "contained_refs", "total_size", "_offsets", "dur_ns")

    def __init__(self, main: bytes, buffers: list[memoryview], contained_refs: list) -> None:
        self.main = main
        self.buffers = buffers
        self.contained_refs = contained_refs
        offsets = []
        pos = _HEAD.size + _BUF.size * len(buffers) + len(main)
        for buf in buffers:
            pos = _align(pos)
            offsets.append((pos, buf.nbytes))
            pos += buf.nbytes
        self._offsets = offsets
        self.total_size = pos
        self.dur_ns = 0

    def header(self) -> bytes:
        parts = [_HEAD.pack(_MAGIC, len(self.buffers), len(self.main))]
        parts += [_BUF.pack(off, n) for off, n in self._offsets]
        return b"".join(parts)

    def write_into(self, dest: memoryview) -> None:
        """Copy into a writable region of at least total_size bytes (the store's memory)."""
        head = self.header()
        dest[:len(head)] = head
        pos = len(head)
        dest[pos:pos + len(self.main)] = self.main
        for buf, (off, n) in zip(self.buffers, self._offsets):
            dest[off:off + n] = buf

    def to_bytes(self) -> bytes:
        if not self.buffers:
            return self.header() + self.main
        out = bytearray(self.total_size)
        self.write_into(memoryview(out))
        return bytes(out)


class SerializedBytes:
    """Bytes already in raysim's layout (an inline value), to be written as they are."""

    __slots__ = ("data", "total_size")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.total_size = len(data)

    def write_into(self, dest: memoryview) -> None:
        dest[:self.total_size] = self.data


class StoredError:
    """In the store instead of a value: the error of the task that was to make it, which a
    reader raises (Ray stores such errors for objects others hold refs to as well). ``entry``
    is the owner's FAILED entry (memory_store.py)."""

    __slots__ = ("entry",)

    def __init__(self, entry: list) -> None:
        self.entry = entry

    def __reduce__(self):
        return (StoredError, (self.entry,))


def serialize(value: Any) -> SerializedObject:
    start = time.perf_counter_ns()
    refs: list = []
    _context.refs = refs
    try:
        if is_plain(value):
            main = pickle.dumps(value, protocol=5)
            buffers: list[memoryview] = []
        else:
            raw: list[pickle.PickleBuffer] = []
            main = cloudpickle.dumps(value, protocol=5, buffer_callback=raw.append)
            buffers = [b.raw() for b in raw]
    finally:
        _context.refs = None
    obj = SerializedObject(main, buffers, refs)
    obj.dur_ns = time.perf_counter_ns() - start
    return obj


def note_ref_serialized(ref: Any) -> None:
    """Called by ObjectRef/ActorHandle.__reduce__: remember that this value captures a ref."""
    refs = getattr(_context, "refs", None)
    if refs is not None:
        refs.append(ref)


def deserialize(view: memoryview) -> Any:
    """Rebuild a value from raysim's layout; buffers become views of ``view`` (no copy)."""
    magic, n_buffers, main_len = _HEAD.unpack_from(view, 0)
    if magic != _MAGIC:
        raise ValueError("not a raysim serialized object (bad magic); the store is corrupt")
    pos = _HEAD.size
    buffers = []
    for _ in range(n_buffers):
        off, n = _BUF.unpack_from(view, pos)
        buffers.append(view[off:off + n])
        pos += _BUF.size
    main = view[pos:pos + main_len]
    if buffers:
        return pickle.loads(main, buffers=buffers)
    return pickle.loads(main)


def has_buffers(view: memoryview) -> bool:
    return _HEAD.unpack_from(view, 0)[1] > 0


def _code_reduce_keeping_filename(code: types.CodeType):
    # cloudpickle 3 renames the file of code it pickles by value to "<dynamic-code>", which
    # would turn a remote traceback's "File "script.py", line 12" into "<dynamic-code>".
    # Put the real file name back: on one machine the worker can even show the source line.
    reducer, args = cloudpickle.cloudpickle._code_reduce(code)
    args = tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)
    return reducer, args


class _FunctionPickler(cloudpickle.CloudPickler):
    dispatch_table = collections.ChainMap(
        {types.CodeType: _code_reduce_keeping_filename}, cloudpickle.CloudPickler.dispatch_table)


def dumps_function(fn: Any, captured: list | None = None) -> bytes:
    """Pickle a remote function or actor class for export (by value if from __main__). The
    ``ObjectRef``s it captures (a closure over a ref) are appended to ``captured``."""
    out = io.BytesIO()
    refs: list = []
    _context.refs = refs
    try:
        _FunctionPickler(out, protocol=5).dump(fn)
    finally:
        _context.refs = None
    if captured is not None:
        captured.extend(refs)
    return out.getvalue()
