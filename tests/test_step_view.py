"""Stepping through a trace in a notebook (``trace.step()``): buttons where widgets run, a
static page of the first steps everywhere else."""

import pytest
from seed_model import run_seed_program

from raysim.trace import load
from raysim.trace.render import to_text
from raysim.trace.step_widget import STATIC_STEPS


@pytest.fixture(scope="module")
def seed_trace(tmp_path_factory):
    root = tmp_path_factory.mktemp("step")
    path = str(root / "trace.jsonl")
    run_seed_program(path, root)
    return load(path)


def test_each_step_says_what_the_event_changed_in_the_tables(seed_trace):
    view = seed_trace.step(2)  # starts at the put's phase
    first = seed_trace.records[view.position]
    assert first["ev"] == "phase.begin" and first["api"] == "put"
    sealed = next(i for i in range(view.position, len(view))
                  if seed_trace.records[i]["ev"] == "object_store.sealed")
    text = to_text(view.step(sealed))
    assert "store seals put#1" in text
    assert "- object store: node=" in text and "object=put#1" in text
    assert text.rstrip().endswith("sealed=True")
    assert "(the tables did not change)" in to_text(view.step(view.position))


def test_the_phase_buttons_jump_between_driver_calls(seed_trace):
    view = seed_trace.step(2)
    after = view.next_phase(view.position)
    assert seed_trace.records[after]["ev"] == "phase.begin"
    assert seed_trace.records[after]["phase"] == seed_trace.records[view.position]["phase"] + 1
    assert view.previous_phase(after) == view.position
    with pytest.raises(ValueError):
        seed_trace.step(999)


def test_a_live_notebook_gets_the_widget_and_a_code_host_the_page(seed_trace):
    view = seed_trace.step(3)
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    page = bundle["text/html"]
    assert f"Steps {view.position + 1}-{view.position + STATIC_STEPS} of {len(view)}" in page
    assert "raysim replay TRACE --step" in page
    widget = view.widget()
    slider = widget.children[0].children[-1]
    buttons = {b.description: b for b in widget.children[0].children[:-1]}
    buttons["event ▶"].click()
    assert slider.value == view.position
    assert seed_trace.records[slider.value]["phase"] is not None
    buttons["phase ▶"].click()
    assert seed_trace.records[slider.value]["ev"] == "phase.begin"
