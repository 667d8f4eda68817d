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

import collections

from rich.console import Group
from rich.table import Table
from rich.text import Text

from raysim.trace.labels import Labels
from raysim.trace.limits import BOUNDED, MORE, Limits
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
                 upto_phase: int | None = None, limits: Limits = BOUNDED) -> None:
        from raysim.trace import state as replay

        self.index = len(trace) - 1 if index is None else index
        self.labels = labels or Labels.of(trace)
        self.limits = limits
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
        """Each table as a list of rows, all of them, sorted by name (``frames`` shows the
        same; ``__rich__`` shows the rows that matter most, as ``limits`` allow)."""
        return {name: [row for _, row in ranked] for name, ranked in self._ranked().items()}

    def _ranked(self) -> dict[str, list[tuple[tuple, dict]]]:
        """Each table's rows sorted by name, each with its rank: bigger matters more (a
        bigger size, more references, a later arrival, a living actor)."""
        labels, state = self.labels, self.state
        tables: dict[str, list[tuple[tuple, dict]]] = {name: [] for name in _TITLES}
        for n, (actor_id, row) in enumerate(state.gcs.actors.items()):
            pid = row.get("worker_pid")
            tables["actors"].append(((row.get("state") == "ALIVE", n), {
                "actor": labels.actor(actor_id), "class": row.get("class_name") or "",
                "state": row.get("state") or "", "name": row.get("name") or "",
                "worker": labels.proc(pid) if pid else ""}))
        for n, (object_id, row) in enumerate(state.gcs.objects.items()):
            if not row.get("locations"):
                continue  # actor handles: counted, but not stored anywhere
            tables["objects"].append(((row["size"], row["ref_count"], n), {
                "object": labels.obj(object_id), "size": row["size"],
                "location": self._locations(row),
                "ref_count": row["ref_count"], "holders": _holders(row["holders"], labels)}))
        for node, store in state.stores.items():
            for n, (object_id, row) in enumerate(store["objects"].items()):
                tables["store"].append(((row["size"], n), {
                    "node": node[:8], "object": labels.obj(object_id), "size": row["size"],
                    "sealed": row["sealed"]}))
            for n, (object_id, row) in enumerate(store.get("spilled", {}).items()):
                tables["spilled"].append(((row["size"], n), {
                    "node": node[:8], "object": labels.obj(object_id), "size": row["size"]}))
        driver_refs = state.driver_refs
        for n, (object_id, size) in enumerate(labels.inlined_until(self.index).items()):
            if object_id in driver_refs:
                tables["inline"].append(((size, n), {"object": labels.obj(object_id),
                                                     "size": size}))
        for n, (actor_id, row) in enumerate(state.actors.items()):
            tables["heaps"].append(((row.get("calls") or 0, n), {
                "actor": labels.actor(actor_id), "worker": labels.proc(row.get("pid")),
                "attributes": ", ".join(f"{k}={v}" for k, v in row["attrs"].items())}))
        for n, (object_id, ref_type) in enumerate(driver_refs.items()):
            tables["driver_refs"].append(((n,), {"object": labels.obj(object_id),
                                                 "ref_type": ref_type}))
        # Sorted by name, so that a table reads the same whichever process wrote first.
        for name, ranked in tables.items():
            key = "actor" if name in ("actors", "heaps") else "object"
            ranked.sort(key=lambda pair: (pair[1].get("node", ""), pair[1][key]))
        return tables

    def _node(self, node: str) -> str:
        """node2 in a trace of several nodes (as process names say), else node <id>."""
        if len(self.labels.nodes) > 1:
            return self.labels.node(node)
        return f"node {node[:8]}"

    def _locations(self, row: dict) -> str:
        """Where an object is; of several copies, the primary (the first sealed, marked *)
        first, then the copies other nodes pulled."""
        locations = sorted(row["locations"], key=lambda n: n != row.get("primary"))
        if len(locations) == 1:
            return self._node(locations[0])
        return ", ".join(self._node(n) + ("*" if n == row.get("primary") else "")
                         for n in locations)

    def frames(self):
        """The same tables as pandas DataFrames."""
        import pandas as pd

        return {name: pd.DataFrame(rows) for name, rows in self.rows().items()}

    def __rich__(self) -> Group:
        tables = self._ranked()
        parts: list = []
        for name in ("actors", "objects"):
            if tables[name]:
                title = _TITLES[name]
                if name == "objects" and len(self.labels.nodes) > 1:
                    title += " (* the primary copy; the other nodes hold copies they pulled)"
                parts.append(self._table(name, title, tables[name]))
        for node, store in self.state.stores.items():
            rows = [pair for pair in tables["store"] if pair[1]["node"] == node[:8]]
            title = (f"object store of {self._node(node)}: {store.get('used', 0):,} of "
                     f"{store.get('capacity', 0):,} B used")
            if rows:
                parts.append(self._table("store", title, rows))
            else:
                parts.append(Text(title + ", empty", style="bold"))
            spilled = [pair for pair in tables["spilled"] if pair[1]["node"] == node[:8]]
            if spilled:
                parts.append(self._table("spilled", f"spilled to disk by {self._node(node)} "
                                                    f"(still alive)", spilled))
        for name in ("inline", "heaps"):
            if tables[name]:
                parts.append(self._table(name, _TITLES[name], tables[name]))
        parts.append(self._driver_refs(tables["driver_refs"]))
        return Group(*parts)

    def _table(self, name: str, title: str, ranked: list[tuple[tuple, dict]]) -> Group:
        """A table of at most ``limits.table_rows`` rows: all of them in name order if they
        fit, else those that matter most, most first, and a last row counting the rest."""
        rows, more = self.limits.cut("table_rows", ranked)
        left_out: list[tuple[tuple, dict]] = []
        if more:
            by_rank = sorted(ranked, key=lambda pair: pair[0], reverse=True)
            rows, left_out = by_rank[:len(rows)], by_rank[len(rows):]
        return _table(title, _COLUMNS[name], [row for _, row in rows],
                      [row for _, row in left_out])

    def _driver_refs(self, ranked: list[tuple[tuple, dict]]) -> Text:
        """"driver holds N ObjectRef(s): ..." naming them all, or the latest few."""
        refs = [row for _, row in ranked]
        named, more = self.limits.cut("named_refs", refs)
        if not more:
            listed = ", ".join(f"{r['object']} ({r['ref_type']})" for r in named)
            return Text(f"driver holds {len(refs)} ObjectRef(s)" + (f": {listed}" if refs else ""))
        # The most recent ones, in the order the driver took them, and how many of each type.
        latest = [row for _, row in sorted(ranked, key=lambda pair: pair[0])[-len(named):]]
        types = collections.Counter(r["ref_type"] for r in refs)
        return Text(f"driver holds {len(refs):,} ObjectRef(s) ("
                    + ", ".join(f"{n:,} {t}" for t, n in sorted(types.items()))
                    + "), the latest: " + ", ".join(r["object"] for r in latest)
                    + ", " + MORE.format(n=more))


_TITLES = {"actors": "GCS actor registry", "objects": "GCS object table",
           "store": "object store", "spilled": "spilled to disk",
           "inline": "in the driver's memory (small results, returned inline)",
           "heaps": "actor state, in each worker's heap", "driver_refs": "driver's refs"}
_COLUMNS = {"actors": ("actor", "class", "state", "worker"),
            "objects": ("object", "size", "location", "ref_count", "holders"),
            "store": ("object", "size", "sealed"), "spilled": ("object", "size"),
            "inline": ("object", "size"), "heaps": ("actor", "worker", "attributes")}


def _table(title: str, columns: tuple[str, ...], rows: list[dict],
           left_out: list[dict] = ()) -> Group:
    # The title is a line of its own: as a Table title it would wrap to the table's width.
    table = Table(show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, justify="right" if column in ("size", "ref_count") else "left",
                         no_wrap=column in ("object", "actor", "size"))
    for row in rows:
        table.add_row(*(_cell(column, row[column]) for column in columns))
    if left_out:  # "… and 19,990 more", with their total size where the table has sizes
        cells = [MORE.format(n=len(left_out))] + [""] * (len(columns) - 1)
        if "size" in columns:
            cells[columns.index("size")] = _cell("size", sum(r["size"] for r in left_out))
        table.add_row(*cells, style="dim")
    return Group(Text(title, style="bold"), table)


def _cell(column: str, value) -> str:
    if column == "size":
        return f"{value:,} B"
    if column == "sealed":
        return "yes" if value else "no"
    return str(value)
