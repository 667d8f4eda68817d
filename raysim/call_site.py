"""Where in the user's code a call into raysim was made: ``("file.py:12", "that line")``.

The driver's trace names, for every phase it opens and every call it refuses, the line of
user code that made the call, so a view can print "phase 2: put  (example.py:14  a =
ray.put(x))". The site is the first frame outside the ``raysim`` package.

A tool that calls raysim on the user's behalf (``raysim trace`` shutting the runtime down
after the script, the pytest plugin running a test) says where its calls should be reported
with ``reported_at``.

Runs in: the driver (and in workers, where no phase is opened).
"""

from __future__ import annotations

import contextlib
import linecache
import os
import sys
from typing import Iterator

_RAYSIM_DIR = os.path.dirname(os.path.abspath(__file__))
_site_cache: dict[tuple, tuple[str, str]] = {}
_override: tuple[str, str] | None = None


def user_call_site() -> tuple[str, str]:
    """("file.py:12", "that line's code") of the user code that called into raysim."""
    if _override is not None:
        return _override
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_RAYSIM_DIR):
        frame = frame.f_back
    if frame is None:
        return "", ""
    key = (frame.f_code, frame.f_lineno)
    cached = _site_cache.get(key)
    if cached is None:
        filename = frame.f_code.co_filename
        code = linecache.getline(filename, frame.f_lineno).strip()
        cached = (f"{os.path.basename(filename)}:{frame.f_lineno}", code)
        _site_cache[key] = cached
    return cached


@contextlib.contextmanager
def reported_at(site: str, code: str) -> Iterator[None]:
    """Report the raysim calls made inside the block at ``site``, whatever line made them."""
    global _override
    saved, _override = _override, (site, code)
    try:
        yield
    finally:
        _override = saved
