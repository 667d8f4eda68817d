"""The one exception type for a broken internal invariant (a raysim bug, never user error)."""


class RaySimInternalError(RuntimeError):
    """Something raysim believed impossible happened. Please report it with the trace file."""
