"""Misuse caught at the API boundary: showing the bad value, and recording the refusal.

Ray checks what its API is given and raises ``TypeError`` or ``ValueError`` at the call,
naming the bad value; raysim does the same, each message ending with what to do. When a
session is running, the refusal is also a trace event, ``api.rejected``: a trace shows the
calls that were turned away, and why, beside the calls that ran.

Beyond the founding document, whose calls are all valid; a refused call never reaches the
processes of its phases.

A call refused before it did anything opens no phase of its own (``phase.begin`` marks calls
that ran), so in the driver its event carries no phase; a call refused halfway (its argument
could not be pickled) belongs to the phase it had begun. In a worker every event belongs to
the task's phase.

Runs in: the driver and workers. Trace events: ``api.rejected``.
"""

from __future__ import annotations

import reprlib
from typing import TypeVar

from raysim.call_site import user_call_site
from raysim.trace import writer as trace

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60

E = TypeVar("E", bound=BaseException)


def show(value: object) -> str:
    """``int 42``, ``str 'x'``: a bad value's type and a short repr, for error messages."""
    return f"{type(value).__name__} {_short.repr(value)}"


def rejected(api: str, error: E, in_phase: bool = False) -> E:
    """Record ``error`` as an ``api.rejected`` event; return it, for ``raise rejected(...)``.

    ``api`` names what the user called (``get``, ``RemoteFunction.remote``); ``in_phase``
    says whether the call had already begun its phase."""
    writer = trace.writer()
    if writer is not None:
        if not in_phase and writer.proc == "driver":
            trace.set_phase(None)
        site, code = user_call_site()
        trace.emit("api.rejected", api=api, error=type(error).__name__, message=str(error),
                   site=site, code=code)
        trace.flush()  # the call raises now: nothing else will write the event out
    return error


class rejecting:
    """Around argument checks: a TypeError or ValueError they raise is recorded, then raised.

    (A class rather than a ``contextlib`` generator: it wraps every ``.remote()``, where a
    generator's frames cost a tenth of the call, and left a frame outside raysim between the
    check and the user's line.)"""

    __slots__ = ("api", "in_phase")

    def __init__(self, api: str, in_phase: bool = False) -> None:
        self.api = api
        self.in_phase = in_phase

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, error, traceback) -> bool:
        if exc_type is not None and issubclass(exc_type, (TypeError, ValueError)):
            rejected(self.api, error, self.in_phase)
        return False
