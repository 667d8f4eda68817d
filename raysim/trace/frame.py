"""The events as a pandas DataFrame: ``trace.events``, one row per event, one column per field.

Ray's counterpart is ``ray.util.state``'s tables (tasks, actors, objects), one row per
entity; raysim's is one row per event, so that any question about a run ("how long did the
``push_task`` messages take to arrive?") is a pandas query. Columns come in the schema's
order, common fields first; an event that lacks a field has a missing value there.

How it is built, and why so. A trace of 390,000 events is 390,000 dicts spread over memory,
holding some 4 million values, themselves objects spread over memory. What costs is not
the work done on a value but fetching it from memory: every step that touches all the
values (read them, put them in a column, free a temporary that held them) costs a pass of
cache misses, unless the value is still in the CPU's cache from the step before. So:

* the events are taken a few thousand at a time (``_CHUNK``; their dicts and values fit in
  the CPU's cache), and each chunk goes all the way into the final columns before the next
  is read (measured: twice as fast as the same steps done over all the events at once);
* a chunk's values are read in one C-level pass, event after event, into one flat array,
  and sorted by the column each belongs to; which column that is depends only on the
  event's field names in order, its *shape* (a trace has a few dozen shapes, one per place
  the runtime emits from), so it is worked out once per shape and then by numpy;
* the columns are numpy arrays made once at full length: integer, float and bool columns
  hold the numbers themselves, with a mask of what is missing (pandas' nullable ``Int64``,
  ``Float64`` and ``boolean``; plain ``int64`` when nothing is missing), never an array of
  Python objects; strings, dicts and lists stay Python objects (object dtype): converting
  the string columns to pandas' ``str`` dtype measured half as slow again, since it reads
  every string once more (``df.astype({"ev": "str"})`` does it for the columns that need it).

Runs in: the reader's process. Imports numpy, pandas and pyarrow on first use only: the
runtime's processes import ``raysim.trace`` without them.
"""

from __future__ import annotations

import gc
from itertools import chain
from typing import TYPE_CHECKING, Any

from raysim.trace import schema

if TYPE_CHECKING:
    import numpy
    import pandas

Event = dict[str, Any]

# Schema types written into numpy arrays, and their type names (numpy's and pyarrow's alike).
_NUMERIC = {"int": "int64", "float": "float64", "bool": "bool"}

# Events per chunk. Smaller chunks cost more numpy calls per event; larger ones leave the
# cache (measured on the benchmark trace: 2,048 and 4,096 alike, 8,192 a third slower).
_CHUNK = 2048


def field_types() -> dict[str, str]:
    """Every field of every event kind, common fields first, with its schema type."""
    types = {name: typ.rstrip("?") for name, typ in schema.COMMON_FIELDS.items()}
    for kind in schema.EVENTS.values():
        for name, typ in kind.fields.items():
            types.setdefault(name, typ.rstrip("?"))
    return types


def events_frame(records: list[Event]) -> pandas.DataFrame:
    """One row per event of ``records``, in their order."""
    import pandas as pd

    types = field_types()
    collecting = gc.isenabled()
    gc.disable()  # many temporary arrays of objects, no cycles among them
    try:
        columns = _Columns(len(records), types)
        for start in range(0, len(records), _CHUNK):
            columns.add(records[start:start + _CHUNK], start)
        finished = columns.finish()
    finally:
        if collecting:
            gc.enable()
    ordered = [name for name in types if name in finished]
    ordered += [name for name in finished if name not in types]  # fields the schema lacks
    return pd.DataFrame({name: finished[name] for name in ordered}, copy=False)


class _Columns:
    """The DataFrame's columns, filled a chunk of events at a time.

    Columns are numbered as their fields are first met, and shapes likewise. Each shape's
    column numbers are kept one shape after another in ``_layout``: shape ``s`` has
    ``_sizes[s]`` of them, from ``_layout[_starts[s]]`` on. ``add`` reads these three
    tables as numpy arrays, indexed with a whole chunk's shapes at once."""

    def __init__(self, n: int, types: dict[str, str]) -> None:
        self._n = n
        self._types = types
        self._shapes: dict[tuple[str, ...], int] = {}  # field names in order -> shape number
        self._sizes: list[int] = []  # shape number -> how many fields
        self._starts: list[int] = []  # shape number -> where its column numbers start
        self._layout: list[int] = []  # every shape's column numbers, one shape after another
        self._names: list[str] = []  # column number -> field name
        self._numbers: dict[str, int] = {}  # field name -> column number
        self._data: list[numpy.ndarray] = []  # column number -> numbers, or objects
        self._missing: list[numpy.ndarray | None] = []  # ... -> mask (None: objects)
        self._index_arrays()

    def add(self, events: list[Event], start: int) -> None:
        """Write ``events``, rows ``start`` onwards, into the columns."""
        import numpy as np

        names = list(map(tuple, events))
        shapes = list(map(self._shapes.get, names))
        if None in shapes:
            shapes = [self._shape(fields) for fields in names]
        shapes = np.array(shapes, dtype=np.intp)
        sizes = self._sizes_array[shapes]
        count = int(sizes.sum())
        # Every value of the chunk, event after event, each with its row and column.
        values = np.fromiter(chain.from_iterable(map(dict.values, events)), dtype=object,
                             count=count)
        rows = np.repeat(np.arange(start, start + len(events)), sizes)
        firsts = np.cumsum(sizes) - sizes  # where each event's values begin in ``values``
        columns = self._layout_array[
            np.repeat(self._starts_array[shapes] - firsts, sizes) + np.arange(count)]
        # Grouped by column, each column's values in row order (a stable sort; numpy sorts
        # small integers by radix, in one pass).
        order = np.argsort(columns, kind="stable")
        columns, values, rows = columns[order], values[order], rows[order]
        bounds = [0, *(np.flatnonzero(columns[1:] != columns[:-1]) + 1).tolist(), count]
        for number, lo, hi in zip(columns[bounds[:-1]].tolist(), bounds, bounds[1:]):
            self._write(number, rows[lo:hi], values[lo:hi])

    def finish(self) -> dict[str, Any]:
        """Field name -> its column: an object Series, an int64 array, or a nullable array."""
        import pandas as pd

        finished: dict[str, Any] = {}
        for name, data, missing in zip(self._names, self._data, self._missing):
            typ = self._types.get(name)
            if missing is None:
                # As a Series of dtype object: a bare array of strings would be converted to
                # pandas' str dtype, reading every string again.
                finished[name] = pd.Series(data, dtype=object, copy=False)
            elif typ == "int" and not missing.any():
                finished[name] = data
            else:
                nullable = {"int": pd.arrays.IntegerArray, "float": pd.arrays.FloatingArray,
                            "bool": pd.arrays.BooleanArray}[typ]
                finished[name] = nullable(data, missing)
        return finished

    def _write(self, number: int, rows: numpy.ndarray, values: numpy.ndarray) -> None:
        """Put one column's values (an object array) at its rows."""
        import pyarrow as pa

        missing = self._missing[number]
        if missing is None:
            self._data[number][rows] = values
            return
        typ = self._types[self._names[number]]
        # pyarrow reads Python values, None among them, in one C loop.
        array = pa.array(values, type=_NUMERIC[typ])
        if array.null_count:  # an optional field, absent from some of these events
            missing[rows] = array.is_null().to_numpy(zero_copy_only=False)
            array = array.fill_null(False if typ == "bool" else 0)
        else:
            missing[rows] = False
        self._data[number][rows] = array.to_numpy(zero_copy_only=False)

    def _shape(self, fields: tuple[str, ...]) -> int:
        """The number of this shape, numbering it (and any new field's column) if new."""
        number = self._shapes.get(fields)
        if number is not None:
            return number
        import numpy as np

        number = self._shapes[fields] = len(self._shapes)
        self._sizes.append(len(fields))
        self._starts.append(len(self._layout))
        for name in fields:
            if name not in self._numbers:
                self._numbers[name] = len(self._names)
                self._names.append(name)
                typ = self._types.get(name)
                if typ in _NUMERIC:
                    self._data.append(np.zeros(self._n, dtype=_NUMERIC[typ]))
                    self._missing.append(np.ones(self._n, dtype=bool))
                else:
                    self._data.append(np.full(self._n, None, dtype=object))
                    self._missing.append(None)
            self._layout.append(self._numbers[name])
        self._index_arrays()
        return number

    def _index_arrays(self) -> None:
        """The shape tables as numpy arrays (remade when a shape is new: rarely)."""
        import numpy as np

        self._sizes_array = np.array(self._sizes, dtype=np.intp)
        self._starts_array = np.array(self._starts, dtype=np.intp)
        # The smallest integer type that holds every column number: what numpy radix sorts.
        self._layout_array = np.array(self._layout,
                                      dtype=np.min_scalar_type(max(len(self._names), 1)))
