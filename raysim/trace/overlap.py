"""Calls that run at the same time in one process, each given a row of its own.

A threaded or async actor (``max_concurrency``) runs several calls at once in one worker
process, so their ``task.execute`` spans overlap. Drawn on the process's one lane they would
hide each other; here each call gets the lowest row free when it starts (greedy interval
packing), so a timeline can draw them side by side and the reader sees how many ran at once.
A process that runs one call at a time gets row 0 for everything.

Runs in: the reader's process. Reads ``task.execute`` events only.
"""

from __future__ import annotations

from collections import defaultdict


def execution_rows(records: list[dict]) -> tuple[dict[int, int], dict[int, int]]:
    """(row of each ``task.execute`` event, by its position in ``records``; rows used per
    pid). ``records`` are in time order, and an execution's ``ts`` is its start."""
    ends: dict[int, list[int]] = defaultdict(list)  # pid -> end time of each row's last call
    rows: dict[int, int] = {}
    for i, event in enumerate(records):
        if event["ev"] != "task.execute":
            continue
        start, row_ends = event["ts"], ends[event["pid"]]
        for row, end in enumerate(row_ends):
            if end <= start:
                break
        else:
            row = len(row_ends)
            row_ends.append(0)
        row_ends[row] = start + event["dur"]
        rows[i] = row
    return rows, {pid: len(row_ends) for pid, row_ends in ends.items()}
