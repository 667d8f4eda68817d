"""notebooks/03_faults.ipynb runs top to bottom on a fresh kernel, and its outputs show each
fault and its recovery: a task retried after its worker died, an actor restarted, a node's
objects rebuilt or lost, and the timelines."""

import json
import os
import re

import nbformat
from nbclient import NotebookClient

_PATH = os.path.join(os.path.dirname(__file__), "..", "notebooks", "03_faults.ipynb")


def test_faults_notebook_shows_retries_restarts_and_lost_objects(tmp_path):
    saved = nbformat.read(_PATH, as_version=4)
    assert all(cell.outputs for cell in saved.cells
               if cell.cell_type == "code" and not cell.source.startswith(("def ", "import"))), \
        "the notebook is kept with its outputs, to be read without running it"

    notebook = nbformat.read(_PATH, as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    errors = [(cell.source.splitlines()[0], out.get("ename"), out.get("evalue"))
              for cell in cells for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors

    def outputs(fragment: str) -> list:
        (cell,) = [cell for cell in cells if fragment in cell.source]
        return cell.outputs

    def text(fragment: str) -> str:
        """What the cell printed and the text of what it showed (HTML tags left out)."""
        parts = []
        for out in outputs(fragment):
            parts.append(out.get("text", ""))
            parts.append(re.sub(r"<[^>]+>", " ", out.get("data", {}).get("text/html", "")))
        return " ".join(parts)

    # 1. A task's worker dies and the task runs again; retries that run out raise.
    run = text('"tasks.jsonl"')
    assert "square(7) = 49" in run
    assert "killed from outside: the second attempt finished" in run
    assert "WorkerCrashedError: The worker running task always_crashes died unexpectedly" in run
    table = text('fault_events(trace, ["worker.died"')
    assert "task.retry" in table and "worker_died" in table and "SIGKILL" in table
    assert "it exited with code 1" in table and "WorkerCrashedError" in table
    steps = text('"square.remote"')
    assert re.search(r"worker#\d died running square#1 \(SYSTEM_ERROR\)", steps), steps
    assert "retry square#1, attempt 2 of 3: its worker died" in steps
    assert "run square#1" in steps

    # 2. An actor's process dies: the call it ran fails, the actor restarts with new state.
    run = text('"actors.jsonl"')
    assert "before: [11, 12]" in run
    assert "ActorUnavailableError: The actor Counter" in run and "restart 1 of 1" in run
    assert "after the restart: 11" in run and "crash_once: 1" in run
    states = text('fault_events(trace, ["gcs.actor_state"')
    assert "RESTARTING" in states and "WORKER_DIED" in states and "actor_died" in states
    assert states.count(" ALIVE ") == 4, "each of the two actors alive twice"
    after_restart = text('phase_of(trace, "get", "max_task_retries=1")')
    assert "Counter#1" in after_restart and "value=11" in after_restart

    # 3. A node dies: a task output is rebuilt, two objects are lost, the actor moves.
    run = text("cluster.remove_node(node_b)")
    assert "rebuildable: 19999900000.0" in run
    assert "fragile: ObjectLostError" in run and "kept: OwnerDiedError" in run
    assert re.search(r"keeper runs on (head|C) 1 calls", run), run
    assert "keeper runs on B 2 calls" in text("from raysim.cluster_utils import Cluster")
    before = text("StoredWhere(trace, removed - 1)")
    after = text("len(phase_groups(trace)) - 1")
    for name in ("make_array#1.ret", "make_array#2.ret", "put#1"):
        assert name in _gcs_object_table(before), name
    assert "make_array#1.ret" in _gcs_object_table(after)
    assert "make_array#2.ret" not in _gcs_object_table(after)
    assert "put#1" not in _gcs_object_table(after)
    events = text('fault_events(trace, ["node.removed"')
    assert "node.removed" in events and "gcs.object_lost" in events
    assert "object_lost" in events and "NODE_DIED" in events and "RESTARTING" in events
    recovery = text("gone = trace.records[removed]")
    assert "recover_objects" in recovery and "reconstruct_objects" in recovery
    assert "submit_task" in recovery

    # Each view shown once, the figures drawn, no temporary path or process id shown.
    views = [cell for cell in cells if "trace.sequence(" in cell.source
             or "stored_where(" in cell.source or "StoredWhere(" in cell.source]
    assert len(views) == 4 and all(len(cell.outputs) == 1 for cell in views)
    timelines = [cell for cell in cells if cell.source.startswith("mark_faults(")]
    assert len(timelines) == 3
    for cell in timelines + [c for c in cells if "trace.sequence(" in c.source]:
        assert any("image/png" in out.get("data", {}) for out in cell.outputs), cell.source
    shown = json.dumps([cell.outputs for cell in cells])
    assert "raysim-faults-" not in shown, "an absolute temporary path in the outputs"
    assert not re.search(r"pid \d", shown), "a process id in the outputs"


def _gcs_object_table(text: str) -> str:
    """The GCS object table of a stored_where view's text."""
    start = text.index("GCS object table")
    return text[start:text.index("object store of", start)]
