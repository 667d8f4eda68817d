"""What's stored where: the founding document's tables for any moment of a run.

Seed: each phase ends with "What's stored where": the GCS's tables (nodes, the actor
registry, the object table with sizes and reference counts), each node's object store, the
actors' state in their workers' heaps, and the driver's ``ObjectRef``s. ``StoredWhere`` shows
them as they stood after one event (``Trace.state_at``), named as every view names things
(``labels.py``). In Ray these facts live in four places that ``ray memory``, ``ray list
actors`` and the dashboard each show a part of; here they are one picture.

Runs in: the reader's process. Renders with rich; ``frames()`` gives pandas DataFrames.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from raysim.trace.labels import Labels
from raysim.trace.render import RichView


def _holders(holders: dict[str, str], labels: Labels) -> str:
    return "; ".join(f"{labels.holder(h)} {t}" for h, t in sorted(
        holders.items(), key=lambda item: labels.holder(item[0])))


class StoredWhere(RichView):
    """The tables after event ``index`` (default: the end of the trace).

    ``upto_phase``: leave out what later driver calls caused. Processes run concurrently, so
    by the time the last effect of call N happens (a worker's result registered), the driver
    may be in call N + 1 and have released that result already; the tables "after call N"
    are then the state with only the events of calls up to N applied, a consistent cut."""

    def __init__(self, trace, index: int | None = None, labels: Labels | None = None,
                 upto_phase: int | None = None) -> None:
        from raysim.trace import state as replay

        self.index = len(trace) - 1 if index is None else index
        self.labels = labels or Labels.of(trace)
        later = next((p.first_index for p in trace.phases()
                      if upto_phase is not None and p.number > upto_phase), None)
        if later is None or later > self.index:
            self.state = trace.state_at(self.index)
        else:
            self.state = trace.state_at(later - 1)
            own = [e for e in trace.records[later:self.index + 1]
                   if e.get("phase") is None or e["phase"] <= upto_phase]
            replay.apply(self.state, own, 0, len(own))
            self.state.index = self.index

    def rows(self) -> dict[str, list[dict]]:
        """Each table as a list of rows (what ``__rich__`` and ``frames`` show)."""
        labels, state = self.labels, self.state
        tables: dict[str, list[dict]] = {"actors": [], "objects": [], "store": [],
                                         "spilled": [], "inline": [], "heaps": [],
                                         "driver_refs": []}
        for actor_id, row in state.gcs.actors.items():
            pid = row.get("worker_pid")
            tables["actors"].append({
                "actor": labels.actor(actor_id), "class": row.get("class_name") or "",
                "state": row.get("state") or "", "name": row.get("name") or "",
                "worker": labels.proc(pid) if pid else ""})
        for object_id, row in state.gcs.objects.items():
            if not row.get("locations"):
                continue  # actor handles: counted, but not stored anywhere
            tables["objects"].append({
                "object": labels.obj(object_id), "size": row["size"],
                "location": ", ".join(f"node {n[:8]}" for n in row["locations"]),
                "ref_count": row["ref_count"], "holders": _holders(row["holders"], labels)})
        for node, store in state.stores.items():
            for object_id, row in store["objects"].items():
                tables["store"].append({"node": node[:8], "object": labels.obj(object_id),
                                        "size": row["size"], "sealed": row["sealed"]})
            for object_id, row in store.get("spilled", {}).items():
                tables["spilled"].append({"node": node[:8], "object": labels.obj(object_id),
                                          "size": row["size"]})
        for object_id, size in labels.inlined_until(self.index).items():
            if object_id in state.driver_refs:
                tables["inline"].append({"object": labels.obj(object_id), "size": size})
        for actor_id, row in state.actors.items():
            tables["heaps"].append({
                "actor": labels.actor(actor_id), "worker": labels.proc(row.get("pid")),
                "attributes": ", ".join(f"{k}={v}" for k, v in row["attrs"].items())})
        for object_id, ref_type in state.driver_refs.items():
            tables["driver_refs"].append({"object": labels.obj(object_id),
                                          "ref_type": ref_type})
        # Sorted by name, so that a table reads the same whichever process wrote first.
        for name in ("actors", "objects", "store", "spilled", "inline", "heaps",
                     "driver_refs"):
            key = "actor" if name in ("actors", "heaps") else "object"
            tables[name].sort(key=lambda row: (row.get("node", ""), row[key]))
        return tables

    def frames(self):
        """The same tables as pandas DataFrames."""
        import pandas as pd

        return {name: pd.DataFrame(rows) for name, rows in self.rows().items()}

    def __rich__(self) -> Group:
        tables = self.rows()
        parts: list = []
        if tables["actors"]:
            parts.append(_table("GCS actor registry", ("actor", "class", "state", "worker"),
                                tables["actors"]))
        if tables["objects"]:
            parts.append(_table("GCS object table", ("object", "size", "location",
                                                     "ref_count", "holders"),
                                tables["objects"]))
        for node, store in self.state.stores.items():
            rows = [r for r in tables["store"] if r["node"] == node[:8]]
            title = (f"object store of node {node[:8]}: {store.get('used', 0):,} of "
                     f"{store.get('capacity', 0):,} B used")
            if rows:
                parts.append(_table(title, ("object", "size", "sealed"), rows))
            else:
                parts.append(Text(title + ", empty", style="bold"))
            spilled = [r for r in tables["spilled"] if r["node"] == node[:8]]
            if spilled:
                parts.append(_table(f"spilled to disk by node {node[:8]} (still alive)",
                                    ("object", "size"), spilled))
        if tables["inline"]:
            parts.append(_table("in the driver's memory (small results, returned inline)",
                                ("object", "size"), tables["inline"]))
        if tables["heaps"]:
            parts.append(_table("actor state, in each worker's heap",
                                ("actor", "worker", "attributes"), tables["heaps"]))
        refs = tables["driver_refs"]
        listed = ", ".join(f"{r['object']} ({r['ref_type']})" for r in refs)
        parts.append(Text(f"driver holds {len(refs)} ObjectRef(s)"
                          + (f": {listed}" if refs else "")))
        return Group(*parts)


def _table(title: str, columns: tuple[str, ...], rows: list[dict]) -> Group:
    # The title is a line of its own: as a Table title it would wrap to the table's width.
    table = Table(show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, justify="right" if column in ("size", "ref_count") else "left",
                         no_wrap=column in ("object", "actor", "size"))
    for row in rows:
        table.add_row(*(_cell(column, row[column]) for column in columns))
    return Group(Text(title, style="bold"), table)


def _cell(column: str, value) -> str:
    if column == "size":
        return f"{value:,} B"
    if column == "sealed":
        return "yes" if value else "no"
    return str(value)
