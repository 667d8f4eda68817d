"""A task's result as it travels to its owner: one entry per return value.

Seed, phase 4 step 5: "Small result (<100KB): sends directly back to driver's memory",
large ones go into the object store. ``task_done`` carries one entry for each of the task's
returns (``results``), in one of four shapes, tagged by their first item:

    ["inline", data]                   the value's bytes, small enough to travel inline
    ["inline", data, contained]        ... and the refs it holds (held for it by the worker)
    ["stored", node_id, offset, size]  the value was written into node_id's store
    ["error", pickled]                 the task raised: its exception, pickled
    ["raised", exc_type, message]      raysim failed it (cancelled, its actor died, an
                                       argument lost, ...): ``exceptions.<exc_type>(message)``

Entries are short lists rather than dicts because every task's ``task_done`` carries them
and a list pickles smaller and faster; this module is the one place that builds and reads
them, so their fields have names everywhere else. Ray's ``ReturnObject`` (in
``PushTaskReply``) carries the same facts: data, metadata (an error type, or "in plasma"),
nested refs.

Runs in: workers (building results), the raylet (failing tasks), owners (reading them).
"""

from __future__ import annotations

INLINE = "inline"
STORED = "stored"
ERROR = "error"
RAISED = "raised"


def inline(data: bytes, contained: list[str] | None = None) -> list:
    return [INLINE, data, contained] if contained else [INLINE, data]


def stored(node_id: str, offset: int, size: int) -> list:
    return [STORED, node_id, offset, size]


def error(pickled: bytes) -> list:
    return [ERROR, pickled]


def raised(exc_type: str, message: str) -> list:
    """A result that makes the owner's get() raise ``exceptions.<exc_type>(message)``."""
    return [RAISED, exc_type, message]


def kind(entry: list) -> str:
    return entry[0]


def inline_data(entry: list) -> bytes:
    return entry[1]


def inline_contained(entry: list) -> list[str] | None:
    return entry[2] if len(entry) > 2 else None


def stored_node(entry: list) -> str:
    """The node whose store holds a stored value."""
    return entry[1]


def stored_place(entry: list) -> tuple[int, int]:
    """(offset, size) of a stored value in its node's store."""
    return entry[2], entry[3]


def raised_error(entry: list) -> tuple[str, str]:
    """(exception type name, message) of a raised entry."""
    return entry[1], entry[2]


def error_pickle(entry: list) -> bytes:
    return entry[1]
