"""The events as a pandas DataFrame: ``trace.events``, one row per event, one column per field.

Ray's counterpart is ``ray.util.state``'s tables (tasks, actors, objects), one row per
entity; raysim's is one row per event, so that any question about a run ("how long did the
``push_task`` messages take to arrive?") is a pandas query. Columns come in the schema's
order, common fields first; an event that lacks a field has a missing value there.

How it is built, and why so. A trace of 390,000 events is 390,000 dicts spread over memory,
with about 70 fields between them: what costs is touching each event (measured: reading one
field at a time from every event was 4x slower than what follows), and filling 70 columns of
390,000 cells. So:

* the events are grouped by their field names (a trace has a few dozen such *shapes*, one
  per place the runtime emits from), and each event is read once, as a tuple of its values;
  each group's tuples are then transposed into columns;
* integer, float and bool columns are written straight into numpy arrays, with a mask of
  what is missing (pandas' nullable ``Int64``, ``Float64`` and ``boolean``; plain ``int64``
  when nothing is missing), never through an array of Python objects;
* strings, dicts and lists stay Python objects (object dtype): converting the string
  columns to pandas' ``str`` dtype measured half as slow again, since it reads every
  string once more (``df.astype({"ev": "str"})`` does it for the columns that need it).

Runs in: the reader's process. Imports numpy and pandas on first use only: the runtime's
processes import ``raysim.trace`` without them.
"""

from __future__ import annotations

import gc
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from raysim.trace import schema

if TYPE_CHECKING:
    import pandas

Event = dict[str, Any]

# Schema types written into numpy arrays, and their numpy types.
_NUMERIC = {"int": "int64", "float": "float64", "bool": "bool"}


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
    n = len(records)
    collecting = gc.isenabled()
    gc.disable()  # hundreds of thousands of new tuples, no cycles among them
    try:
        parts = _columns_by_shape(records)
        columns = {name: _numeric(pieces, n, types[name])
                   if types.get(name) in _NUMERIC else _objects(pieces, n)
                   for name, pieces in parts.items()}
    finally:
        if collecting:
            gc.enable()
    ordered = [name for name in types if name in columns]
    ordered += [name for name in columns if name not in types]  # fields the schema lacks
    return pd.DataFrame({name: columns[name] for name in ordered}, copy=False)


def _columns_by_shape(records: list[Event]) -> dict[str, list[tuple[Any, tuple]]]:
    """Field name -> (row indices, values) for each shape of event that has the field."""
    import numpy as np

    shapes: dict[tuple[str, ...], int] = {}
    # Each event's shape number, in one C-level pass over the events' keys.
    codes = np.fromiter([shapes.setdefault(names, len(shapes)) for names in map(tuple, records)],
                        dtype=np.intp, count=len(records))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(shapes) + 1))
    parts: dict[str, list[tuple[Any, tuple]]] = {}
    for names, number in shapes.items():
        rows = order[bounds[number]:bounds[number + 1]]
        events = (records[rows[0]],) if len(rows) == 1 else itemgetter(*rows)(records)
        values = list(map(tuple, map(dict.values, events)))  # each event read once
        for name, column in zip(names, zip(*values)):
            parts.setdefault(name, []).append((rows, column))
    return parts


def _numeric(pieces: list[tuple[Any, tuple]], n: int, typ: str):
    """A numeric column, written into numpy directly: int64 when no value is missing, else
    pandas' nullable array of the schema's type."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    data = np.zeros(n, dtype=_NUMERIC[typ])
    missing = np.ones(n, dtype=bool)
    arrow_type = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}[typ]
    for rows, values in pieces:
        # pyarrow reads Python values, None among them, in one C loop.
        array = pa.array(values, type=arrow_type)
        if array.null_count:  # an optional field, absent from some of these events
            missing[rows] = array.is_null().to_numpy(zero_copy_only=False)
            array = array.fill_null(False if typ == "bool" else 0)
        else:
            missing[rows] = False
        data[rows] = array.to_numpy(zero_copy_only=False)
    if typ == "int" and not missing.any():
        return data
    nullable = {"int": pd.arrays.IntegerArray, "float": pd.arrays.FloatingArray,
                "bool": pd.arrays.BooleanArray}[typ]
    return nullable(data, missing)


def _objects(pieces: list[tuple[Any, tuple]], n: int):
    """A column of Python objects (None where an event lacks the field)."""
    import numpy as np

    import pandas as pd

    column = np.full(n, None, dtype=object)
    for rows, values in pieces:
        # fromiter keeps each value whole; np.array would turn lists into dimensions.
        column[rows] = np.fromiter(values, dtype=object, count=len(values))
    # As a Series of dtype object: a bare array of strings would be converted to pandas'
    # str dtype, reading every string again.
    return pd.Series(column, dtype=object, copy=False)
