"""The notebooks run top to bottom, and their views show themselves as a notebook shows them."""

import os

import nbformat
from nbclient import NotebookClient

_NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "notebooks")


def test_seed_walkthrough_runs_and_renders_every_view(tmp_path):
    path = os.path.join(_NOTEBOOKS, "seed_walkthrough.ipynb")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = {}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            outputs[cell.source.splitlines()[0]] = [
                data for out in cell.get("outputs", []) for data in [out.get("data", {})]]
    assert not [cell for cell in notebook.cells if cell.cell_type == "code" and any(
        out.get("output_type") == "error" for out in cell.get("outputs", []))]

    def html(first_line: str) -> str:
        return "".join(d.get("text/html", "") for d in outputs[first_line])

    assert "Phase 2: put" in html("trace.phase(2)") and "put#1" in html("trace.phase(2)")
    assert "ref_count=4" in html("trace.sequence(3)")
    assert "USED_BY_PENDING_TASK" in html("trace.refcounts(model_id)")
    assert "prediction_count=1" in html("trace.stored_where(4)")
    for figure in ("trace.timeline()", "flow = trace.dataflow()"):
        assert any("image/png" in d for d in outputs[figure]), figure
    edges = "".join(d.get("text/plain", "") for d in outputs["graph = flow.graph()   # a networkx DiGraph"])
    assert "'driver', 'store:" in edges
