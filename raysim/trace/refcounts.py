"""Reference counts over time: who held each object, and when, as ``ray memory`` would say.

Seed, phase 2: "GCS Metadata: ... ref_count: 1"; phase 3: "ref_count now = 4: driver + 3
actors". This view lists every change the GCS object table made to an object's holders, in
order, with the count after it and the driver call that caused it, so that 1 -> 4 can be
read step by step: the driver's own reference, each creation task's
``USED_BY_PENDING_TASK`` while it was pending, each actor's worker taking its reference, the
tasks' references going when they finished.

Runs in: the reader's process (pandas for the table, rich for the terminal).
"""

from __future__ import annotations

from rich.table import Table

from raysim.trace.limits import BOUNDED, MORE, Limits

_COLUMNS = ["index", "ts", "phase", "api", "obj", "change", "holder", "ref_type", "count"]


def history_rows(trace, obj: str | None = None) -> list[dict]:
    """One dict per holder added or removed (``gcs.ref_added`` / ``gcs.ref_removed``), with
    the count after it; ``obj`` keeps one object's rows."""
    from raysim.trace.index import index_of

    phase_api = {p.number: p.api for p in trace.phases()}
    rows = []
    records = trace.records
    for index in index_of(trace).of("gcs.ref_added", "gcs.ref_removed"):
        event = records[index]
        ev = event["ev"]
        if obj is not None and event["obj"] != obj:
            continue
        added = ev == "gcs.ref_added"
        rows.append({"index": index, "ts": event["ts"], "phase": event.get("phase"),
                     "api": phase_api.get(event.get("phase")), "obj": event["obj"],
                     "change": "+" if added else "-", "holder": event["holder"],
                     "ref_type": event.get("ref_type") if added else None,
                     "count": event["count"]})
    return rows


def ref_count_history(trace, obj: str | None = None):
    """``history_rows`` as a pandas DataFrame."""
    import pandas as pd

    return pd.DataFrame(history_rows(trace, obj), columns=_COLUMNS)


def ref_count_table(trace, obj: str, title: str | None = None, labels=None,
                    limits: Limits = BOUNDED) -> Table:
    """The history of one object's count, as a rich table for the terminal. A history
    longer than ``limits.history_rows`` shows its beginning (how the count rose: the
    founding document's 1 -> 4) and its last few changes, and counts the changes between."""
    from raysim.trace.labels import Labels

    labels = labels or Labels.of(trace)
    history = list(enumerate(history_rows(trace, obj), 1))
    table = Table(title=title or f"reference count of {labels.obj(obj)}", title_justify="left")
    for column in ("#", "driver call", "change", "holder", "reference type", "count"):
        table.add_column(column)
    limit = limits.history_rows
    tail: list = []
    if limit is not None and len(history) > limit:
        keep_last = min(3, limit // 4)
        history, tail = history[:limit - keep_last - 1], history[len(history) - keep_last:]
    for n, row in history:
        _add_row(table, n, row, labels)
    if tail:
        table.add_row("", MORE.format(n=tail[0][0] - history[-1][0] - 1) + " changes", "", "",
                      "", "", style="dim")
    for n, row in tail:
        _add_row(table, n, row, labels)
    return table


def _add_row(table: Table, n: int, row: dict, labels) -> None:
    table.add_row(str(n), row["api"] or "", row["change"], labels.holder(row["holder"]),
                  row["ref_type"] or "", str(row["count"]))


class RefCounts:
    """One object's reference count over time: ``frame()`` (pandas), ``__rich__`` (a table
    for the terminal), and an HTML table in Jupyter."""

    def __init__(self, trace, obj: str) -> None:
        from raysim.trace.labels import Labels

        self.trace, self.obj = trace, obj
        self.labels = Labels.of(trace)
        if obj not in self.labels.objects and not any(
                e.get("obj") == obj for e in trace.records):
            raise ValueError(f"object {obj!r} does not appear in this trace. Pick one of "
                             f"trace.objects() (its put and task return ids).")

    def frame(self):
        return ref_count_history(self.trace, self.obj)

    def __rich__(self) -> Table:
        return ref_count_table(self.trace, self.obj, labels=self.labels)

    def __str__(self) -> str:
        from raysim.trace.render import to_text

        return to_text(self)

    def _repr_html_(self) -> str:
        from raysim.trace.render import RichView

        return RichView._repr_html_(self)
