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

_COLUMNS = ["index", "ts", "phase", "api", "obj", "change", "holder", "ref_type", "count"]


def history_rows(trace, obj: str | None = None) -> list[dict]:
    """One dict per holder added or removed (``gcs.ref_added`` / ``gcs.ref_removed``), with
    the count after it; ``obj`` keeps one object's rows."""
    phase_api = {p.number: p.api for p in trace.phases()}
    rows = []
    for index, event in enumerate(trace.records):
        ev = event["ev"]
        if ev not in ("gcs.ref_added", "gcs.ref_removed"):
            continue
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


def ref_count_table(trace, obj: str, title: str | None = None, labels=None) -> Table:
    """The history of one object's count, as a rich table for the terminal."""
    from raysim.trace.labels import Labels

    labels = labels or Labels.of(trace)
    history = history_rows(trace, obj)
    table = Table(title=title or f"reference count of {labels.obj(obj)}", title_justify="left")
    for column in ("#", "driver call", "change", "holder", "reference type", "count"):
        table.add_column(column)
    for n, row in enumerate(history, 1):
        table.add_row(str(n), row["api"] or "", row["change"], labels.holder(row["holder"]),
                      row["ref_type"] or "", str(row["count"]))
    return table


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
