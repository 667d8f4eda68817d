"""How much of a trace a terminal view shows: every bound in one place.

A traced program of 20,000 tasks writes some 400,000 events; told in full, its phases would
print hundreds of thousands of lines that nobody reads. So every view is bounded by default,
whatever the trace's size: a table shows the rows that matter most (the largest objects, the
most referenced, the most recent) and ends with "… and N more"; a phase of many calls of one
kind shows one call's steps in full and the others grouped by kind of step; a run is told
panel by panel until its text is about ``run_lines`` long, and summarised after that.

``Limits()`` are those defaults; ``UNBOUNDED`` (``raysim trace --all``) shows everything.
The founding example fits within the defaults: its view is the same either way. Ray's own
tools bound their output too (``ray memory`` groups and truncates, ``ray list`` stops at 100
rows unless told ``--limit``).

Runs in: the reader's process. Standard library only.
"""

from __future__ import annotations

import dataclasses

# Rows of a table that are left out are summed up in this one last row.
MORE = "… and {n:,} more"


@dataclasses.dataclass(frozen=True)
class Limits:
    """The most each view shows; None means no limit."""

    # Steps drawn per phase panel; the rest are grouped by kind of step, with totals.
    steps: int | None = 60
    # A phase of more calls than this shows its first call's steps in full and the other
    # calls' steps grouped by kind (the founding example's three actors are shown in full).
    calls_in_full: int | None = 3
    # Consecutive steps of one kind (the same action or message between the same processes)
    # drawn before the rest of the run is folded into one line ("get" of 20,000 results).
    same_steps: int | None = 3
    # Kinds of step listed in a phase's "grouped by kind" table.
    step_kinds: int | None = 20
    # Rows per "what's stored where" table, and per reference-count history.
    table_rows: int | None = 8
    history_rows: int | None = 16
    # Processes listed by the init and shutdown panels.
    processes: int | None = 16
    # ObjectRefs named after "driver holds N ObjectRef(s)".
    named_refs: int | None = 10
    # Lanes of the text timeline (the driver and control processes always have theirs).
    lanes: int | None = 16
    # Calls refused before they began, listed after the phases.
    refused: int | None = 10
    # A run of more phases than this is summarised without any panel.
    panels: int | None = 40
    # Panels are shown in full until the run's text is this many lines long (at 120
    # columns or more; proportionally more on a narrower terminal, where the same text
    # wraps onto more lines); the phases after that are summarised in one table.
    run_lines: int | None = 300
    # Phases listed by that summary table.
    summary_rows: int | None = 20

    def cut(self, name: str, items: list) -> tuple[list, int]:
        """``items`` bounded by limit ``name``: those shown, and how many are left out."""
        limit = getattr(self, name)
        if limit is None or len(items) <= limit:
            return items, 0
        return items[:limit], len(items) - limit


BOUNDED = Limits()
UNBOUNDED = Limits(**{field.name: None for field in dataclasses.fields(Limits)})
