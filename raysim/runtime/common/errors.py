"""The one exception type for a broken internal invariant (a raysim bug, never user error).

Runs in: every process. Ray's own exception names, which users catch, are in
``raysim/exceptions.py``."""


class RaySimInternalError(RuntimeError):
    """Something raysim believed impossible happened. Please report it with the trace file."""
