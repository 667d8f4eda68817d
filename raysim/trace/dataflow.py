"""The data-flow graph: which process sent what to which, and how many bytes moved.

Seed, "Visual Summary of Data Flow": the driver puts the model into the object store
(phase 2), each actor's worker reads it from there (phase 3), the methods' results go into
the store or, when small, straight back to the driver (phase 4), and the driver reads them
(phase 5); the GCS and the raylet exchange control messages with everyone. This module
rebuilds that picture from a trace, as a ``networkx.DiGraph``:

    nodes   every process by its name (driver, gcs, raylet, zygote, worker#N), with its
            ``role``; and each node's object store, ``store:<node id>`` (role "store")
    edges   process -> store     objects written (``object_store.written``): a put, a
                                 large task return, an inline value promoted to the store
            store -> process     objects read (``object.get`` from the store): a task's
                                 argument (``task.args_resolved``), or a ``get``
            store -> store       objects pulled from one node's store into another's
                                 (``object_manager.pulled``), with their bytes
            process -> process   messages (``msg.send``), with their kinds and sizes; a
                                 small return travels inside ``task_done``
                                 (``object.inlined``), a small argument inside the task's
                                 ``submit_task`` and ``push_task``

Each edge carries ``objects`` (the ids whose values moved along it, in order), ``bytes``
(object sizes for a store edge; message sizes, as sent, for a message edge), ``messages``,
``kinds`` (the message kinds; for a store edge how the objects moved: put, return, promoted,
argument, get) and a short ``label``.

The store is a node of its own although it has no process: in modern Ray the plasma store
runs inside the raylet, and in raysim it is a shared-memory file the raylet creates and every
process on the node maps. A put or a read therefore crosses no socket; the ``create_object``
and ``seal_object`` messages that go with a write are counted on the process -> raylet edge.

Runs in: the reader's process (networkx; matplotlib, on an Agg canvas and never pyplot, for
the figure; rich for the table).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict

import networkx as nx
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from rich.table import Table

from raysim.trace.figures import png_bytes
from raysim.trace.timeline_figure import hosted_actors

_DATA, _CONTROL = "tab:orange", "0.6"  # edges that moved objects' values; the others
_STORE_LINES = 4  # objects listed in a store's box; the rest are counted


def dataflow_graph(trace) -> nx.DiGraph:
    """Every process and store of the trace, and what moved between them."""
    graph = nx.DiGraph()
    names = _add_processes(graph, trace)
    returns = {obj: event["name"] for event in trace.records
               if event["ev"] == "task.submitted" for obj in event["returns"]}
    promoted: set[str] = set()
    inlined: dict[int, list[str]] = defaultdict(list)  # pid -> returns awaiting task_done
    task_specs: dict[str, list[tuple[str, str]]] = defaultdict(list)  # task -> edges
    reads: dict[int, list[tuple[str, dict]]] = defaultdict(list)  # pid -> unexplained gets
    for event in trace.records:
        ev, pid = event["ev"], event["pid"]
        if ev == "msg.send":
            sender, receiver = names[pid], _receiver(graph, names, event)
            edge = _edge(graph, sender, receiver, messages=1, nbytes=event["size"],
                         kind=event["kind"])
            if event["kind"] == "task_done" and graph.nodes[receiver]["role"] != "raylet":
                _add_objects(edge, inlined.pop(pid, []))  # the value rides in the message
            elif event["kind"] in ("submit_task", "push_task") and event.get("task"):
                task_specs[event["task"]].append((sender, receiver))
        elif ev == "object.inlined":
            inlined[pid].append(event["obj"])
        elif ev == "object.promoted":
            promoted.add(event["obj"])
        elif ev == "object_store.written":
            obj = event["obj"]
            how = "promoted" if obj in promoted else "return" if obj in returns else "put"
            edge = _edge(graph, names[pid], _store(graph, event["node"]),
                         nbytes=event["size"], kind=how)
            _add_objects(edge, [obj])
        elif ev == "object_manager.pulled":
            # Between nodes: one store's object manager sent it, in chunks, to another's.
            edge = _edge(graph, _store(graph, event["from_node"]), _store(graph, event["node"]),
                         nbytes=event["size"], kind="pulled")
            _add_objects(edge, [event["obj"]])
        elif ev == "object.get" and event["path"] != "inline":
            edge = _edge(graph, _store(graph, event["node"]), names[pid],
                         nbytes=event["size"])
            _add_objects(edge, [event["obj"]])
            reads[pid].append((event["obj"], edge))
        elif ev == "task.args_resolved":
            # The reads just before this event fetched the task's arguments; an argument
            # not read from the store came inline, inside the task itself.
            fetched = _explain_reads(reads.pop(pid, []), set(event["objs"]))
            inline = [obj for obj in event["objs"] if obj not in fetched]
            for sender, receiver in task_specs.get(event["task"], []) if inline else []:
                _add_objects(graph.edges[sender, receiver], inline)
    for pending in reads.values():
        _explain_reads(pending, set())
    _describe_stores(graph, trace, returns)
    for _, _, edge in graph.edges(data=True):
        edge["objects"] = list(edge["objects"])
        edge["label"] = edge_label(edge)
    return graph


def _add_processes(graph: nx.DiGraph, trace) -> dict[int, str]:
    names = trace.process_names()
    hosted = hosted_actors(trace)
    for process in trace.processes():
        name = names[process.pid]
        if name not in graph:
            graph.add_node(name, role=process.role or process.proc, proc=process.proc,
                           pid=process.pid, node=process.node,
                           actors=hosted.get(process.pid, []))
    return names


def _receiver(graph: nx.DiGraph, names: dict[int, str], event: dict) -> str:
    """The receiver's name; a process that never wrote an event of its own (it died first)
    is named by the message's ``to`` ("worker:3b0d9e7c")."""
    name = names.get(event["to_pid"])
    if name is None:
        name = event["to"]
        if name not in graph:
            graph.add_node(name, role=name.split(":")[0], proc=name.split(":")[0],
                           pid=event["to_pid"], node=None, actors=[])
    return name


def _store(graph: nx.DiGraph, node_id: str) -> str:
    name = f"store:{node_id}"
    if name not in graph:
        graph.add_node(name, role="store", proc=None, pid=None, node=node_id, actors=[],
                       objects={})
    return name


def _edge(graph: nx.DiGraph, u: str, v: str, *, messages: int = 0, nbytes: int = 0,
          kind: str | None = None) -> dict:
    if not graph.has_edge(u, v):
        graph.add_edge(u, v, objects={}, bytes=0, messages=0, kinds=set())
    edge = graph.edges[u, v]
    edge["messages"] += messages
    edge["bytes"] += nbytes
    if kind is not None:
        edge["kinds"].add(kind)
    return edge


def _add_objects(edge: dict, objects: list[str]) -> None:
    edge["objects"].update(dict.fromkeys(objects))  # a dict: a set that keeps the order


def _explain_reads(reads: list[tuple[str, dict]], arguments: set[str]) -> set[str]:
    """Name each read "argument" or "get"; returns the arguments read."""
    for obj, edge in reads:
        edge["kinds"].add("argument" if obj in arguments else "get")
    return {obj for obj, _ in reads if obj in arguments}


def _describe_stores(graph: nx.DiGraph, trace, returns: dict[str, str]) -> None:
    """Each store's ``objects``: id -> (size, what it is), for every object sealed in it."""
    what: dict[str, str] = {}
    for event in trace.records:
        if event["ev"] == "object.serialized" and event.get("obj"):
            what.setdefault(event["obj"], f"put {event.get('type') or 'value'}")
        elif event["ev"] == "object_store.sealed":
            obj = event["obj"]
            label = f"{returns[obj]} result" if obj in returns else what.get(obj, "value")
            graph.nodes[_store(graph, event["node"])]["objects"][obj] = (event["size"],
                                                                         label)


def format_bytes(n: int) -> str:
    """759 -> "759 B", 1_401_802 -> "1.4 MB" (powers of 1000, as disks and networks
    count)."""
    if n < 1000:
        return f"{n} B"
    value, unit = n / 1000, "KB"
    for bigger in ("MB", "GB", "TB"):
        if value < 999.95:
            break
        value, unit = value / 1000, bigger
    return f"{value:.1f} {unit}"


def edge_label(edge: dict) -> str:
    """ "1 object, 759 B", "12 messages, 3.1 KB", "1 object, 51.4 KB in 2 messages"."""
    n, messages = len(edge["objects"]), edge["messages"]
    if not n:
        return f"{_count(messages, 'message')}, {format_bytes(edge['bytes'])}"
    text = f"{_count(n, 'object')}, {format_bytes(edge['bytes'])}"
    return f"{text} in {_count(messages, 'message')}" if messages else text


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


# --------------------------------------------------------------------------------------------
# The table


def dataflow_table(trace, graph: nx.DiGraph | None = None) -> Table:
    """The graph's edges as rows, in the order each first carried something."""
    graph = dataflow_graph(trace) if graph is None else graph
    table = Table(title="Data flow: what moved between processes and stores")
    for column in ("from", "to", "what", "objects", "bytes", "messages"):
        justify = "right" if column in ("objects", "bytes", "messages") else "left"
        table.add_column(column, justify=justify)
    for u, v, edge in graph.edges(data=True):
        style = "bold" if edge["objects"] else None
        table.add_row(u, v, ", ".join(sorted(edge["kinds"])), str(len(edge["objects"])),
                      f"{edge['bytes']:,} B", str(edge["messages"]), style=style)
    return table


# --------------------------------------------------------------------------------------------
# The figure


# The figure is drawn in data units at an equal aspect, 1 unit being about 3.3 inches: what
# one 8-point character and one line of 8-point text take, in those units.
_FIGSIZE, _XLIM, _YLIM = (13, 6.5), (-0.45, 3.45), (-0.15, 1.6)
_CHAR, _LINE = 0.021, 0.0056  # width of a character, height of a line per point of size
_COLUMNS = {"driver": 0.0, "store": 1.5, "worker": 3.0}
_TOP_Y = 1.45
_TOP_X = {"zygote": 0.4, "raylet": 1.5, "gcs": 2.5}


def dataflow_layout(graph: nx.DiGraph) -> dict[str, tuple[float, float]]:
    """Where each node is drawn, from its role, as in the seed's visual summary: drivers on
    the left, workers on the right, the GCS, the raylets and the zygotes in a row on top,
    the stores in the middle below the lines from the workers to the driver (small results
    go straight back, past the store). Fixed, so that every trace's picture reads alike."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in graph:
        group = _group(graph, name)
        known = group in ("driver", "store", "worker", *_TOP_X)
        groups[group if known else "other"].append(name)
    place = {}
    for group, (low, high) in (("driver", (0.35, 0.85)), ("worker", (0.2, 1.25)),
                               ("store", (-0.05, 0.25))):
        names = groups[group]
        step = (high - low) / max(len(names) - 1, 1)
        for i, name in enumerate(names):
            y = (low + high) / 2 if len(names) == 1 else high - step * i
            place[name] = (_COLUMNS[group], y)
    for group, x in _TOP_X.items():  # one per group on a single node; several side by side
        names = groups[group]
        for i, name in enumerate(names):
            place[name] = (x + 0.3 * (i - (len(names) - 1) / 2), _TOP_Y)
    for i, name in enumerate(groups["other"]):
        place[name] = (3.0, _TOP_Y - 0.12 * i)
    return place


def dataflow_figure(trace, graph: nx.DiGraph | None = None) -> Figure:
    graph = dataflow_graph(trace) if graph is None else graph
    place = dataflow_layout(graph)
    figure = Figure(figsize=_FIGSIZE)
    FigureCanvasAgg(figure)
    ax = figure.add_axes((0.01, 0.02, 0.98, 0.88))
    ax.set_xlim(*_XLIM)
    ax.set_ylim(*_YLIM)
    ax.set_aspect("equal")  # so that edge labels sit on their arcs (see _draw_edge)
    ax.set_axis_off()
    workers = sum(1 for x, _ in place.values() if x == _COLUMNS["worker"])
    boxes = {name: _draw_node(ax, name, graph.nodes[name], place[name], workers)
             for name in graph}
    for u, v, edge in graph.edges(data=True):
        back = graph.edges[v, u] if graph.has_edge(v, u) else None
        # A worker's control traffic goes unlabelled: a fan of labels would hide each other
        # (the table has every number).
        fan = "worker" in (_group(graph, u), _group(graph, v))
        if not edge["objects"] and back is not None and not back["objects"]:
            if u < v:  # control traffic both ways: one double-headed line
                both = {"objects": [], "messages": edge["messages"] + back["messages"],
                        "bytes": edge["bytes"] + back["bytes"]}
                _draw_edge(ax, (u, v), place, boxes, both, both_ways=True, labelled=not fan)
            continue
        toward = 0.75 if _group(graph, v) == "worker" else \
            0.4 if _group(graph, u) == "worker" else 0.5
        _draw_edge(ax, (u, v), place, boxes, edge, curved=back is not None,
                   labelled=bool(edge["objects"]) or not fan, at=toward)
    ax.set_title(f"{os.path.basename(trace.path)}: data flow\n"
                 f"orange: object values moved, grey: control messages (a worker's are "
                 f"counted in the table); width grows with log(bytes)", fontsize=10)
    return figure


def _group(graph: nx.DiGraph, name: str) -> str:
    role = graph.nodes[name]["role"]
    return "worker" if role in ("task", "actor", "worker") else role


def _draw_node(ax, name: str, node: dict, at: tuple[float, float],
               workers: int) -> FancyBboxPatch:
    lines = [name]
    if node["role"] == "store":
        objects = node.get("objects", {})
        total = sum(size for size, _ in objects.values())
        lines = [f"object store of node {node['node']}",
                 f"{_count(len(objects), 'object')}, {format_bytes(total)}"]
        lines += [f"• {label} ({format_bytes(size)})"
                  for size, label in list(objects.values())[:_STORE_LINES]]
        if len(objects) > _STORE_LINES:
            lines.append(f"… and {len(objects) - _STORE_LINES} more")
    elif node["actors"]:
        lines += node["actors"][:2] + ([f"… {len(node['actors']) - 2} more actors"]
                                       if len(node["actors"]) > 2 else [])
    elif node["role"] == "task":
        lines.append("(task worker)")
    # A worker's box shares the column with the others: shrink the text to fit its share.
    room = 1.05 / max(workers - 1, 1) * 0.85 if at[0] == _COLUMNS["worker"] else 1.0
    size = min(8.5, (room - 0.02) / (len(lines) * _LINE))
    height = len(lines) * size * _LINE + 0.03
    width = max(len(line) for line in lines) * _CHAR * size / 8 + 0.06
    box = FancyBboxPatch((at[0] - width / 2, at[1] - height / 2), width, height,
                         boxstyle="round,pad=0,rounding_size=0.02", facecolor="white",
                         edgecolor="0.2", linewidth=1.0, zorder=3, gid=name)
    ax.add_patch(box)
    ax.text(at[0], at[1], "\n".join(lines), ha="center", va="center", zorder=4,
            fontsize=size, gid=f"node {name}", linespacing=1.25)
    return box


def _draw_edge(ax, ends: tuple[str, str], place: dict, boxes: dict, edge: dict,
               curved: bool = False, both_ways: bool = False, labelled: bool = True,
               at: float = 0.5) -> None:
    """An arrow from box to box, as wide as log10 of its bytes; curved when the two
    nodes exchange something in both directions, so that both arrows show. Its label sits
    ``at`` (0..1) of the way along."""
    (u, v), rad = ends, 0.12 if curved else 0.0
    start, end = place[u], place[v]
    data = bool(edge["objects"])
    width = 0.4 + 0.45 * math.log10(1 + edge["bytes"])
    arrow = FancyArrowPatch(start, end, patchA=boxes[u], patchB=boxes[v],
                            arrowstyle="<|-|>" if both_ways else "-|>",
                            connectionstyle=f"arc3,rad={rad}", mutation_scale=10 + width,
                            linewidth=width, color=_DATA if data else _CONTROL,
                            alpha=0.9 if data else 0.5, zorder=2 if data else 1,
                            gid=f"{u} <-> {v}" if both_ways else f"{u} -> {v}")
    ax.add_patch(arrow)
    if not labelled:
        return
    # A point of the arc: the quadratic Bézier through the control point that matplotlib's
    # arc3 uses, exact in data coordinates because the axes' aspect is equal.
    (x1, y1), (x2, y2) = start, end
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    x = (1 - at) ** 2 * x1 + 2 * at * (1 - at) * cx + at ** 2 * x2
    y = (1 - at) ** 2 * y1 + 2 * at * (1 - at) * cy + at ** 2 * y2
    label = edge_label(edge)
    ax.text(x, y, label, fontsize=7 if data else 6.5, ha="center", va="center", zorder=5,
            color="black" if data else "0.35", gid=f"label {label}",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                  "alpha": 0.85})


class DataFlow:
    """A trace's data-flow graph, shown as a picture in Jupyter (``_repr_png_``) and as a
    table in a rich console (``__rich__``)."""

    def __init__(self, trace) -> None:
        self.trace = trace
        self._graph: nx.DiGraph | None = None
        self._figure: Figure | None = None

    def __repr__(self) -> str:
        return f"<DataFlow of {self.trace.path!r}>"

    def graph(self) -> nx.DiGraph:
        if self._graph is None:
            self._graph = dataflow_graph(self.trace)
        return self._graph

    def figure(self) -> Figure:
        if self._figure is None:
            self._figure = dataflow_figure(self.trace, self.graph())
        return self._figure

    def savefig(self, path: str | os.PathLike, **kwargs) -> None:
        self.figure().savefig(path, **kwargs)

    def _repr_png_(self) -> bytes:
        return png_bytes(self.figure())

    def __rich__(self) -> Table:
        return dataflow_table(self.trace, self.graph())
