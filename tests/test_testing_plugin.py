"""raysim's pytest plugin (``raysim/testing.py``): a user's test file runs on raysim through
it, a wrong expectation about what happens inside fails, and every session it starts is shut
down; its helpers (``events``, ``assert_in_order``, ``holders``, ``wait_for``) find what
they are asked for and say clearly what they did not find.

The plugin is loaded as its ``pytest11`` entry point would load it: by ``-p raysim.testing``
in a pytest run of its own (``pytester``, in this process), with plugin autoloading off so
that an installed entry point does not register the same module a second time. That run
starts the only two sessions of this file; the helpers are tested on events written here.
"""

import os
import subprocess
import sys
import textwrap
import warnings

import orjson
import pytest
from traceutil import pid_alive, poll

import raysim
import raysim.testing
from raysim.object_ref import ObjectRef
from raysim.testing import TracedSession, assert_in_order, events, holders
from raysim.trace import schema
from raysim.trace.loader import Trace, load

pytest_plugins = ["pytester"]

MODEL = "a1b2c3d4000000008000"  # an object id, as ray.put makes them


# --------------------------------------------------------------------------------------------
# A user's test file


WRONG_EXPECTATION = '''
import pytest

import raysim as ray
from raysim.testing import assert_in_order, events


@pytest.mark.raysim(num_cpus=1)
def test_a_put_object_is_registered_before_it_is_sealed(raysim_session):
    assert ray.cluster_resources()["CPU"] == 1
    ref = ray.put(list(range(10_000)))
    # Both events, whose processes write them out each at its own pace.
    evs = raysim_session.wait_for(
        lambda evs: (events(evs, "gcs.object_added", obj=ref)
                     and events(evs, "object_store.sealed", obj=ref)),
        what="the store sealing the object and the GCS registering it")
    assert_in_order(evs, dict(ev="gcs.object_added", obj=ref),
                    dict(ev="object_store.sealed", obj=ref))


@pytest.mark.raysim(1)
def test_a_marker_without_keywords(raysim_session):
    pass
'''


def _founding_example() -> str:
    """The example test in ``raysim.testing``'s docstring, as the text of a test file."""
    block = raysim.testing.__doc__.split("as a test::\n", 1)[1].splitlines()
    end = next(i for i, line in enumerate(block) if line and not line.startswith(" "))
    return textwrap.dedent("\n".join(block[:end]))


def test_a_users_tests_run_on_raysim_and_a_wrong_expectation_fails(pytester, monkeypatch,
                                                                    tmp_path):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    # Files run in name order: the failing test first, so that the founding example's
    # session can start only if the failed test's session was shut down.
    pytester.makepyfile(test_a_wrong_expectation=WRONG_EXPECTATION,
                        test_founding_example=_founding_example())
    basetemp = tmp_path / "user-tmp"
    result = pytester.runpytest("-p", "raysim.testing", "-p", "no:cacheprovider",
                                "--strict-markers", f"--basetemp={basetemp}")

    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*AssertionError: object_store.sealed obj='*' (step 2 of 2) does not happen after "
        "gcs.object_added obj='*' (step 1, event *); it happens before it, at event *",
        "*- raysim trace -*",
        f"{basetemp}/test_a_put_object_is_registe*/trace.jsonl",
        "replay it: raysim replay */trace.jsonl",
    ])
    result.stdout.fnmatch_lines(["*TypeError: @pytest.mark.raysim takes raysim.init()'s "
                                 "arguments by keyword, got (1,)*"])

    # Each session traced to its test's tmp_path, began at the test's def line and was
    # shut down: by finish() in the founding example, at teardown in the failed test.
    assert not raysim.is_initialized()
    traces = {path.parent.name: load(path) for path in basetemp.rglob("trace.jsonl")}
    assert len(traces) == 2
    failed = next(t for name, t in traces.items() if name.startswith("test_a_put"))
    example = next(t for name, t in traces.items() if name.startswith("test_the_driver"))
    assert failed.phases()[0].code == ("def test_a_put_object_is_registered_before_it_is_"
                                       "sealed(raysim_session):")
    assert failed.phases()[-1].api == "shutdown"
    assert failed.phases()[-1].code == ("(test_a_put_object_is_registered_before_it_is_sealed "
                                        "ended; raysim_session shuts the session down)")
    assert example.phases()[-1].code == "trace = raysim_session.finish()"
    assert [e["resources"]["CPU"] for e in events(failed, "node.registered")] == [1.0]
    assert [e["resources"]["CPU"] for e in events(example, "node.registered")] == [2.0]
    # The founding example's statement, checked again here: before the shutdown, the model
    # it put is held by the driver and three actors' workers, by holders() as by state_at().
    put = next(phase for phase in example.phases() if phase.api == "put")
    (sealed,) = events(example, "object_store.sealed", phase=put.number)
    before_shutdown = example.phases()[-1].first_index - 1
    model = example.state_at(before_shutdown).gcs.objects[sealed["obj"]]
    assert model["ref_count"] == 4
    assert model["holders"] == holders(example.records[:before_shutdown + 1], sealed["obj"])
    assert sorted(h.split(":")[0] for h in model["holders"]) == ["driver"] + ["worker"] * 3

    # No process of either session is left: each one in the traces but this one is gone.
    pids = {e["pid"] for trace in traces.values() for e in trace.records} - {os.getpid()}
    assert len(pids) >= 2 * 3  # a GCS, a raylet and a zygote at least, in each session
    poll(lambda: not any(pid_alive(pid) for pid in pids), what="the sessions' processes to exit")


# --------------------------------------------------------------------------------------------
# events()


def _event(ev: str, ts: int, **fields) -> dict:
    """An event as a process writes it (a GCS's, unless ``proc`` says otherwise)."""
    return {"ts": ts, "ev": ev, "proc": "gcs", "node": "c11adfeb", "pid": 4242, "phase": 1,
            **fields}


def _header() -> dict:
    return _event("trace.header", 1, proc="driver", phase=0, schema=schema.SCHEMA_NAME,
                  schema_version=schema.SCHEMA_VERSION, session="session_test",
                  session_dir="/tmp/session_test", wall_time_ns=0, config={}, mode="seed")


def _put_events(oid: str = MODEL) -> list[dict]:
    """A ray.put as the trace tells it: allocate, seal, register, count the driver."""
    return [
        _header(),
        _event("object_store.create", 10, proc="raylet", obj=oid, size=759, offset=0,
               owner="driver:d1", used=759),
        _event("object_store.sealed", 20, proc="raylet", obj=oid, size=759, offset=0,
               used=759),
        _event("gcs.object_added", 30, obj=oid, location="c11adfeb", size=759,
               owner="driver:d1"),
        _event("gcs.ref_added", 40, obj=oid, holder="driver:d1", ref_type="LOCAL_REFERENCE",
               count=1),
        _event("object_store.sealed", 50, proc="raylet", obj="ffff0000000000008000",
               size=10, offset=768, used=769),
    ]


def test_events_are_those_of_one_kind_whose_fields_have_the_given_values():
    records = _put_events()
    assert events(records, "object_store.sealed") == [records[2], records[5]]
    assert events(records, "object_store.sealed", obj=MODEL) == [records[2]]
    assert events(records, "object_store.sealed", obj=MODEL, size=758) == []
    # An ObjectRef stands for its id, and a loaded Trace for its events.
    trace = Trace("trace.jsonl", records)
    assert events(trace, "gcs.ref_added", obj=ObjectRef(MODEL), proc="gcs") == [records[4]]


def test_a_misspelt_event_kind_or_field_is_refused_not_matched_by_nothing():
    with pytest.raises(ValueError, match=r"no event kind is named 'object_store.seal'\. "
                                         r"Did you mean 'object_store.sealed'"):
        events(_put_events(), "object_store.seal")
    with pytest.raises(ValueError, match=r"gcs.ref_added events have no field 'object'\. "
                                         r"Did you mean 'obj'\?"):
        events(_put_events(), "gcs.ref_added", object=MODEL)
    with pytest.raises(TypeError, match=r"got 'trace.jsonl'\. Tip: load a trace file"):
        events("trace.jsonl", "gcs.ref_added")


# --------------------------------------------------------------------------------------------
# assert_in_order()


def test_steps_in_order_are_found_with_other_events_between_them():
    records = _put_events()
    found = assert_in_order(records, "object_store.create",
                            dict(ev="gcs.ref_added", obj=MODEL, holder="driver:d1"))
    assert found == [records[1], records[4]]
    # Each step is matched after the previous one: the second sealed comes after the add.
    found = assert_in_order(records, dict(ev="gcs.object_added", obj=MODEL),
                            "object_store.sealed")
    assert found == [records[3], records[5]]


def test_a_step_out_of_order_fails_saying_where_it_happened_instead():
    records = _put_events()
    with pytest.raises(AssertionError) as failure:
        assert_in_order(records, dict(ev="gcs.object_added", obj=MODEL),
                        dict(ev="object_store.sealed", obj=MODEL))
    assert str(failure.value) == (
        f"object_store.sealed obj='{MODEL}' (step 2 of 2) does not happen after "
        f"gcs.object_added obj='{MODEL}' (step 1, event 3); it happens before it, at event 2")
    with pytest.raises(AssertionError) as failure:
        assert_in_order(records, "object_store.create", "gcs.object_freed")
    assert str(failure.value) == "gcs.object_freed (step 2 of 2) never happens in these 6 events"
    with pytest.raises(TypeError, match=r"a step is an event kind or a dict with an 'ev' key"):
        assert_in_order(records, ("gcs.object_added", {"obj": MODEL}))


# --------------------------------------------------------------------------------------------
# holders()


def test_holders_are_the_gcs_reference_table_replayed_from_the_events():
    task_ref = "task:5e1f00d5"
    records = [
        _header(),
        # The creation task's reference may reach the GCS before the store registers the
        # object: it is counted all the same.
        _event("gcs.ref_added", 10, obj=MODEL, holder=task_ref,
               ref_type="USED_BY_PENDING_TASK", count=1),
        _event("gcs.object_added", 20, obj=MODEL, location="c11adfeb", size=759,
               owner="driver:d1"),
        _event("gcs.ref_added", 30, obj=MODEL, holder="driver:d1",
               ref_type="LOCAL_REFERENCE", count=2),
        _event("gcs.ref_added", 40, obj=MODEL, holder="worker:w1",
               ref_type="LOCAL_REFERENCE", count=3),
        _event("gcs.ref_removed", 50, obj=MODEL, holder=task_ref, count=2),
        _event("gcs.object_freed", 60, obj=MODEL, locations=["c11adfeb"]),
    ]
    assert holders(records[:2], MODEL) == {task_ref: "USED_BY_PENDING_TASK"}
    assert holders(records[:5], ObjectRef(MODEL)) == {
        task_ref: "USED_BY_PENDING_TASK", "driver:d1": "LOCAL_REFERENCE",
        "worker:w1": "LOCAL_REFERENCE"}
    assert holders(records[:6], MODEL) == {"driver:d1": "LOCAL_REFERENCE",
                                           "worker:w1": "LOCAL_REFERENCE"}
    assert holders(records, MODEL) == {}


# --------------------------------------------------------------------------------------------
# TracedSession.wait_for(), on a trace written here


def _write(path, records: list[dict], end: bytes = b"\n") -> None:
    with open(path, "ab") as f:
        f.write(b"\n".join(map(orjson.dumps, records)) + end)


def test_wait_for_reads_the_trace_again_until_the_condition_holds(tmp_path):
    """The other processes' events arrive while it waits: here the predicate writes them,
    the second half of a line only on the next read, as a process in mid-write would."""
    path = tmp_path / "trace.jsonl"
    records = _put_events()
    _write(path, records[:3])
    line = orjson.dumps(records[3])
    seen = []

    def registered(evs):
        seen.append(len(evs))
        if len(seen) == 1:
            _write(path, [], end=line[:20])
        elif len(seen) == 2:
            _write(path, [], end=line[20:] + b"\n")
        return bool(events(evs, "gcs.object_added", obj=MODEL))

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the partial line is not worth a warning
        evs = TracedSession(str(path)).wait_for(registered)
    assert seen == [3, 3, 4]
    assert evs == records[:4]


def test_wait_for_times_out_saying_what_it_waited_for(tmp_path):
    path = tmp_path / "trace.jsonl"
    _write(path, _put_events())
    session = TracedSession(str(path))

    def three_actors_alive(evs):
        return len(events(evs, "gcs.actor_state", state="ALIVE")) == 3

    with pytest.raises(AssertionError) as failure:
        session.wait_for(three_actors_alive, timeout=0.05)
    assert str(failure.value) == (f"timed out after 0.05 s waiting for three actors alive: "
                                  f"the trace has 6 events. Tip: raysim replay {path}")
    with pytest.raises(AssertionError, match="waiting for the model freed: "):
        session.wait_for(lambda evs: events(evs, "gcs.object_freed"), timeout=0.05,
                         what="the model freed")


# --------------------------------------------------------------------------------------------
# What importing costs


def test_the_plugin_imports_no_runtime_and_raysim_imports_no_pytest():
    """pytest imports an installed plugin in every run of every project, so the plugin
    leaves the runtime, the tracer and pandas until a test uses them; and raysim itself
    needs no pytest."""
    code = ("import sys; import raysim, raysim.trace; assert 'pytest' not in sys.modules; "
            "import raysim.testing; "
            "print(sorted(m for m in sys.modules if m in ('pandas', 'raysim.trace.loader') "
            "or m.startswith('raysim.runtime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
