"""The reference-count view: model_ref's count goes 1 -> 4, step by step, with holders."""

import io

from rich.console import Console
from seed_model import BatchPredictor, holders, load_trained_model
from traceutil import wait_for

import raysim
from raysim.trace import load
from raysim.trace.refcounts import ref_count_history, ref_count_table


def test_model_ref_count_goes_from_one_to_four(trace_file):
    raysim.init(num_cpus=2, trace_path=trace_file)
    try:
        model_ref = raysim.put(load_trained_model())
        oid = model_ref.hex()
        actors = [BatchPredictor.remote(model_ref) for _ in range(3)]
        wait_for(trace_file, lambda ev: sorted(holders(ev, oid).values()) ==
                 ["LOCAL_REFERENCE"] * 4, what="driver + 3 actors holding the model")
    finally:
        raysim.shutdown()
    del actors
    history = ref_count_history(load(trace_file), oid)
    # The store registers the object (and its owner's reference) on its own connection to
    # the GCS, so a creation task's reference may be counted first; the driver's comes from
    # the put either way.
    driver = history[(history["change"] == "+") & history["holder"].str.startswith("driver:")]
    assert len(driver) == 1 and driver.iloc[0]["api"] == "put"
    pending = history[history["ref_type"] == "USED_BY_PENDING_TASK"]
    assert len(pending) == 3 and set(pending["api"]) == {"actor_creation"}
    workers = history[(history["change"] == "+") & history["holder"].str.startswith("worker:")]
    assert len(workers) == 3 and set(workers["ref_type"]) == {"LOCAL_REFERENCE"}
    tasks_gone = history[(history["change"] == "-") & history["holder"].str.startswith("task:")]
    assert len(tasks_gone) == 3
    assert history[history["index"] == tasks_gone["index"].max()].iloc[0]["count"] == 4
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(ref_count_table(load(trace_file), oid))
    text = out.getvalue()
    assert "USED_BY_PENDING_TASK" in text and "actor_creation" in text
