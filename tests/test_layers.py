"""raysim's layers, as its imports show them (read from the source; nothing is run).

* ``raysim/trace/`` imports nothing of ``raysim/runtime/``: a saved trace replays without
  the runtime. ``raysim/sim/`` imports only itself and the trace: the model needs a trace,
  never the runtime.
* A process's package (``runtime/gcs/``, ``runtime/raylet/``, ``runtime/core_worker/``)
  imports only itself, ``runtime/common/``, the trace's schema and writer and Ray's exception
  names (``raysim/exceptions.py``), never another process's package: processes talk through
  messages. ``runtime/common/`` and ``runtime/node.py`` import only ``common`` and those.
* No import circle among raysim's modules, counting imports made inside functions.
"""

from __future__ import annotations

import ast
import pathlib

import networkx as nx

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "raysim"
PROCESSES = ("gcs", "raylet", "core_worker")
# What every part of the runtime may use besides its own package.
SHARED = ("raysim.runtime.common", "raysim.trace.schema", "raysim.trace.writer",
          "raysim.exceptions")


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """The raysim modules ``name`` imports, anywhere in its code (``from a import b``
    counts as importing ``a.b`` when that is a module)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m.split(".")[0] == "raysim" and m in known and m != name}


def _graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        for target in _imports(name, path, set(modules)):
            graph.add_edge(name, target)
    return graph


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_trace_never_imports_the_runtime():
    graph = _graph()
    bad = sorted((a, b) for a, b in graph.edges
                 if _within(a, ["raysim.trace"]) and not _within(b, ["raysim.trace"]))
    assert bad == []


def test_the_model_imports_only_itself_and_the_trace():
    graph = _graph()
    bad = sorted((a, b) for a, b in graph.edges if _within(a, ["raysim.sim"])
                 and not _within(b, ["raysim.sim", "raysim.trace"]))
    assert bad == []


def test_each_process_imports_only_itself_and_common():
    graph = _graph()
    allowed = {f"raysim.runtime.{p}": [f"raysim.runtime.{p}", *SHARED] for p in PROCESSES}
    allowed["raysim.runtime.common"] = list(SHARED)
    allowed["raysim.runtime.node"] = list(SHARED)
    bad = []
    for a, b in graph.edges:
        for owner, ok in allowed.items():
            if _within(a, [owner]) and not _within(b, ok):
                bad.append((a, b))
    assert sorted(bad) == []


def test_shared_pieces_stand_alone():
    """Ray's exception names and the trace writer import nothing above them."""
    graph = _graph()
    assert sorted(graph.successors("raysim.exceptions")) == []
    assert all(_within(b, ["raysim.trace"]) for b in graph.successors("raysim.trace.writer"))


def test_no_import_circles():
    cycles = [sorted(c) for c in nx.simple_cycles(_graph())]
    assert sorted(cycles) == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    """The reader itself: an import inside a function is an edge like any other."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from raysim.trace import writer\n")
    assert _imports("raysim.x", source, {"raysim.trace", "raysim.trace.writer"}) == {
        "raysim.trace.writer"}
