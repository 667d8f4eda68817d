"""The notebooks run top to bottom on a fresh kernel, and their views show themselves as a
notebook shows them: each once, with its figures."""

import os

import nbformat
from nbclient import NotebookClient

_NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "notebooks")


def execute(name: str, tmp_path) -> dict[str, list[dict]]:
    """Run a notebook on a fresh kernel; each code cell's outputs by its first line."""
    notebook = nbformat.read(os.path.join(_NOTEBOOKS, name), as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [cell.source for cell in notebook.cells if cell.cell_type == "code" and any(
        out.get("output_type") == "error" for out in cell.get("outputs", []))]
    assert not errors, errors
    return {cell.source.splitlines()[0]: cell.get("outputs", [])
            for cell in notebook.cells if cell.cell_type == "code"}


def test_the_five_phases_notebook_runs_and_shows_every_view_once(tmp_path):
    outputs = execute("01_five_phases.ipynb", tmp_path)

    def data(first_line: str) -> list[dict]:
        return [out.get("data", {}) for out in outputs[first_line] if "data" in out]

    def html(first_line: str) -> str:
        return "".join(d.get("text/html", "") for d in data(first_line))

    for number in range(1, 6):  # each view once: rich must not also print to the cell
        assert len(data(f"trace.sequence({number})")) == 1
        assert len(data(f"trace.stored_where({number})")) == 1
    assert "init" in html("import raysim.trace") and "actor_creation" in html(
        "import raysim.trace")
    assert "put#1" in html("trace.sequence(2)") and "store seals put#1" in html(
        "trace.sequence(2)")
    assert "USED_BY_PENDING_TASK" in html("trace.refcounts(model_id)")
    assert "prediction_count=1" in html("trace.stored_where(4)")
    for figure in ("trace.timeline()", "flow = trace.dataflow()", "three.dataflow()"):
        assert any("image/png" in d for d in data(figure)), figure
    edges = "".join(d.get("text/plain", "") for d in data("graph = flow.graph()   # a networkx DiGraph"))
    assert "'driver', 'store:" in edges
    step = data("trace.step(2)")[0]
    assert "application/vnd.jupyter.widget-view+json" in step and "Steps " in step["text/html"]
    # Three nodes: objects pulled between them, and the stores of every node.
    pulled = "".join(d.get("text/plain", "") for d in data("import pathlib, subprocess, sys"))
    assert "put#1" in pulled and "from node" in pulled
    assert "raylet@node3" in html("three.stored_where(5)") or "node3" in html(
        "three.stored_where(5)")
    # The what-if: measured beside simulated at both bandwidths.
    table = "".join(d.get("text/plain", "") for d in data("from raysim.sim import SimConfig, simulate"))
    assert "1 Gbit/s" in table and "100 Mbit/s" in table and "makespan" in table
    assert any("image/png" in d for d in data(
        'result.write(os.path.join(out, "simulated.jsonl"))   # the 100 Mbit/s run: a trace like any'))
