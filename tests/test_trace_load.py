"""The tracer's first step: a trace file loads as one validated, time-ordered history, and a
bad file is refused with the line that is wrong.

The founding program (put a model, 3 actors, 3 predict calls, get) runs once for the module;
the bad-input tests write small traces of their own."""

import re
import subprocess
import sys
import warnings

import orjson
import pytest
from seed_model import BatchPredictor, load_trained_model, write_parquet
from synthetic_trace import write_trace
from traceutil import load as reference_load
from traceutil import of, wait_for

import raysim
from raysim.trace import frame, schema
from raysim.trace.loader import PartialLineWarning, load

FOUNDING_APIS = ["init", "put"] + ["actor_creation"] * 3 + ["method_call"] * 3 + \
    ["get", "shutdown"]


@pytest.fixture(scope="module")
def founding_trace(shared_session, tmp_path_factory):
    """The founding program, run to its end (shutdown included); its trace's path."""
    data = tmp_path_factory.mktemp("data")
    model_ref = raysim.put(load_trained_model())
    actors = [BatchPredictor.remote(model_ref) for _ in range(3)]
    files = [write_parquet(data / f"data{i}.parquet", 100) for i in range(3)]
    futures = [actors[i].predict.remote(files[i]) for i in range(3)]
    raysim.get(futures)
    path = shared_session.trace_path
    # Workers write their events when they next go idle: wait for the last ones.
    wait_for(path, lambda ev: len(of(ev, "actor.state")) == 6, what="6 actor.state events")
    raysim.shutdown()  # the session fixture's own shutdown then has nothing left to do
    return path


# --------------------------------------------------------------------------------------------
# A real trace


def test_trace_loads_every_event_validated_and_in_time_order(founding_trace):
    trace = load(founding_trace)
    with open(founding_trace, "rb") as f:
        assert len(trace) == sum(1 for _ in f)
    assert trace.records == reference_load(founding_trace), \
        "the same events, in the same order, as the line-by-line reference loader"
    times = [e["ts"] for e in trace.records]
    assert times == sorted(times)
    assert trace.header["ev"] == "trace.header" and trace.records[0] is trace.header
    assert trace.header["schema_version"] == schema.SCHEMA_VERSION
    for event in trace.records:
        schema.validate_event(event)


def test_phases_are_the_founding_programs_api_calls_in_order(founding_trace):
    trace = load(founding_trace)
    phases = trace.phases()
    assert [p.api for p in phases] == FOUNDING_APIS
    assert [p.number for p in phases] == list(range(len(FOUNDING_APIS)))
    assert phases[0].first_index == 0 and phases[-1].last_index == len(trace) - 1
    for before, after in zip(phases, phases[1:]):
        assert after.first_index == before.last_index + 1, "phases tile the trace"
        assert trace.records[after.first_index]["ev"] == "phase.begin"
    for phase in phases:
        assert phase.ts_begin == trace.records[phase.first_index]["ts"] <= phase.ts_end
        assert phase.ts_end == trace.records[phase.last_index]["ts"]
    creation = phases[2]
    assert creation.code.startswith("actors = [BatchPredictor.remote(model_ref)")
    assert creation.detail == "BatchPredictor"
    # Every event carrying a phase number belongs to one of these phases.
    numbers = {e["phase"] for e in trace.records if e["phase"] is not None}
    assert numbers <= {p.number for p in phases}


def test_processes_are_listed_with_their_roles(founding_trace):
    processes = load(founding_trace).processes()
    roles = [p.role for p in processes]
    assert processes[0].proc == "driver" and roles[0] == "driver"
    for role in ("gcs", "raylet", "zygote"):
        assert roles.count(role) == 1
    assert roles.count("actor") == 3, "one worker process per actor"
    assert len({p.pid for p in processes}) == len(processes)


def test_events_dataframe_has_one_row_per_event(founding_trace):
    trace = load(founding_trace)
    df = trace.events
    assert trace.events is df, "built once"
    assert len(df) == len(trace)
    assert list(df.columns[:6]) == ["ts", "ev", "proc", "node", "pid", "phase"]
    fields = {name for e in trace.records for name in e}
    assert set(df.columns) == fields
    assert df["ts"].tolist() == [e["ts"] for e in trace.records]
    assert df["ev"].tolist() == [e["ev"] for e in trace.records]
    assert str(df["ts"].dtype) == "int64" and str(df["pid"].dtype) == "int64"
    assert str(df["phase"].dtype) == "Int64", "optional ints are nullable, not floats"
    states = df[df["ev"] == "actor.state"]
    assert len(states) == 6
    first = trace.records[states.index[0]]
    assert states["attrs"].iloc[0] == first["attrs"], "dict fields stay dicts"
    submitted = df[df["ev"] == "task.submitted"]
    assert all(isinstance(r, list) for r in submitted["returns"]), "list fields stay lists"


def _reference_frame(records: list[dict]):
    """trace.events built the plain way: one pass over every event per column."""
    import numpy as np
    import pandas as pd

    types = frame.field_types()
    seen = list(dict.fromkeys(name for e in records for name in e))
    names = [name for name in types if name in seen] + [n for n in seen if n not in types]
    columns = {}
    for name in names:
        values = [e.get(name) for e in records]
        typ = types.get(name)
        if typ == "int" and None not in values:
            columns[name] = np.array(values, dtype=np.int64)
        elif typ in ("int", "float", "bool"):
            columns[name] = pd.array(values, dtype={"int": "Int64", "float": "Float64",
                                                    "bool": "boolean"}[typ])
        else:
            columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)


@pytest.mark.parametrize("chunk", [frame._CHUNK, 7])
def test_events_dataframe_is_the_plainly_built_one(tmp_path, monkeypatch, chunk):
    """The DataFrame is built a chunk of events at a time; chunks of 7 events put a chunk
    boundary inside every run of same-shaped events."""
    import pandas as pd

    monkeypatch.setattr(frame, "_CHUNK", chunk)
    path = tmp_path / "synthetic.jsonl"
    write_trace(str(path), tasks=400, put_holders=3)
    trace = load(path)
    assert len(trace) > 2 * chunk
    pd.testing.assert_frame_equal(trace.events, _reference_frame(trace.records),
                                  check_exact=True)


@pytest.mark.parametrize("chunk", [frame._CHUNK, 3])
def test_events_dataframe_of_odd_events_is_the_plainly_built_one(monkeypatch, chunk):
    """What a valid trace rarely holds: a bool missing, fields in another order, a field
    the schema lacks, a shape first seen late, nested lists, a value of every type."""
    import pandas as pd

    monkeypatch.setattr(frame, "_CHUNK", chunk)
    records = _small_trace() + [
        _event("task.finished", 10 + i, proc="worker", task=f"t{i}", name="f", dur=i,
               ok=[True, False, None][i % 3], actor=None, attempt=None if i % 2 else i)
        for i in range(20)]
    records.append({"obj": "o2", **_event("object.freed", 40), "extra": [[1, 2], [3]]})
    records.append(_event("object.located", 41, obj="o2", locations=[["n1", 1]],
                          extra={"a": 1}))
    records.append(_event("phase.begin", 42, phase=None, api="get", big=2**62))
    pd.testing.assert_frame_equal(frame.events_frame(records), _reference_frame(records),
                                  check_exact=True)


def test_loading_needs_no_pandas():
    """The runtime's processes import raysim.trace: loading must not drag pandas in."""
    code = ("import sys, raysim.trace.loader, raysim.trace.state; "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------
# Bad input


def _event(ev: str, ts: int, proc: str = "driver", **fields) -> dict:
    return {"ts": ts, "ev": ev, "proc": proc, "node": "n1", "pid": 100, "phase": 0, **fields}


def _header(version: str = schema.SCHEMA_VERSION, ts: int = 1) -> dict:
    return _event("trace.header", ts, schema=schema.SCHEMA_NAME, schema_version=version,
                  session="session_x", session_dir="/tmp/session_x", wall_time_ns=0,
                  config={}, mode="seed")


def _small_trace() -> list[dict]:
    """A valid trace of six events: a session that put one object."""
    return [
        _header(),
        _event("phase.begin", 2, api="init"),
        _event("store.created", 3, proc="raylet", capacity=1 << 20, name="memfd"),
        _event("phase.begin", 4, api="put"),
        _event("object_store.create", 5, proc="raylet", obj="o1", size=10, offset=0,
               owner="driver:w1"),
        _event("object_store.sealed", 6, proc="raylet", obj="o1", size=10, offset=0, used=10),
    ]


def _write(path, events: list, tail: bytes = b"") -> str:
    lines = [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]
    path.write_bytes(b"".join(line + b"\n" for line in lines) + tail)
    return str(path)


def test_small_valid_trace_loads(tmp_path):
    trace = load(_write(tmp_path / "ok.jsonl", _small_trace()))
    assert len(trace) == 6
    assert [p.api for p in trace.phases()] == ["init", "put"]
    assert trace.phases()[1].first_index == 3 and trace.phases()[1].last_index == 5


def test_garbage_line_is_reported_with_its_line_number(tmp_path):
    events = _small_trace()
    events[2] = b"{this is not json"
    path = _write(tmp_path / "trace.jsonl", events)
    with pytest.raises(schema.TraceFormatError, match=r"trace\.jsonl:3: not valid JSON"):
        load(path)


def test_field_of_the_wrong_type_is_named(tmp_path):
    events = _small_trace()
    events[5]["size"] = "x"
    path = _write(tmp_path / "trace.jsonl", events)
    with pytest.raises(schema.TraceFormatError) as error:
        load(path)
    assert str(error.value) == (f"{path}:6: field 'size' of event 'object_store.sealed' "
                                f"should be int, got 'x'")


def test_missing_field_and_unknown_kind_are_refused(tmp_path):
    events = _small_trace()
    del events[4]["offset"]
    with pytest.raises(schema.TraceFormatError, match=r":5: .*lacks field 'offset'"):
        load(_write(tmp_path / "missing.jsonl", events))
    events = _small_trace()
    events[3]["ev"] = "object.teleported"
    with pytest.raises(schema.TraceFormatError, match=r":4: unknown event kind "
                                                      r"'object.teleported'"):
        load(_write(tmp_path / "unknown.jsonl", events))


def test_a_bad_line_far_down_is_reported_with_its_line_number(tmp_path):
    """Lines are decoded in chunks of many lines; the number must still be exact."""
    events = _small_trace() + [
        _event("object.get", 10 + i, obj="o1", size=10, path="local_store", zero_copy=True,
               dur=1) for i in range(6000)]
    events[4321] = dict(events[4321], zero_copy="yes")
    with pytest.raises(schema.TraceFormatError, match=r":4322: field 'zero_copy'"):
        load(_write(tmp_path / "long.jsonl", events))
    events[4321] = b""
    with pytest.raises(schema.TraceFormatError, match=r":4322: empty line"):
        load(_write(tmp_path / "blank.jsonl", events))
    events[4321] = b'{"a": 1}, {"b": 2}'
    with pytest.raises(schema.TraceFormatError, match=r":4322: not valid JSON"):
        load(_write(tmp_path / "two.jsonl", events))


def test_a_value_split_over_two_lines_is_refused_even_when_the_count_adds_up(tmp_path):
    """A chunk of lines is decoded as one JSON array: an event cut in two by a newline, with
    two events on one line further down, makes as many values as lines, yet the file is
    not one event per line."""
    whole = orjson.dumps(_event("phase.begin", 7, api="get", x=[{"y": 1}, {"z": 2}]))
    cut = whole.index(b',{"z"')
    two = orjson.dumps(_event("phase.begin", 8, api="put")) + b"," + \
        orjson.dumps(_event("phase.begin", 9, api="get"))
    lines = _small_trace() + [whole[:cut], whole[cut + 1:], two]
    with pytest.raises(schema.TraceFormatError, match=r"split\.jsonl:7: not valid JSON"):
        load(_write(tmp_path / "split.jsonl", lines))


def test_lines_that_differ_only_in_digits_are_checked_alike_unless_digits_matter(tmp_path):
    """Most lines are checked once per skeleton (the line with its digits turned into 0).
    Two kinds of line with the same skeleton can still decode differently, and each is
    checked on its own: an integer too big for 64 bits (orjson makes it a float), and an
    escape that spells a digit. The bad line comes chunks after the good one."""
    filler = [_event("object.get", 10 + i, obj="o1", size=10, path="local_store",
                     zero_copy=True, dur=1) for i in range(1000)]
    sealed = orjson.dumps(_event("object_store.sealed", 7, proc="raylet", obj="o1", size=0,
                                 offset=0, used=10))
    for fitting, too_big in [(b"10000000000000000000", b"99999999999999999999"),
                             (b"-1000000000000000000", b"-9999999999999999999")]:
        fits, does_not = (sealed.replace(b'"size":0', b'"size":' + digits)
                          for digits in (fitting, too_big))
        trace = load(_write(tmp_path / "fits.jsonl", _small_trace() + [fits] + filler))
        assert trace.records[6]["size"] == int(fitting)
        shown = re.escape(repr(float(too_big)))
        with pytest.raises(schema.TraceFormatError,
                           match=rf"big\.jsonl:1008: field 'size' .* be int, got {shown}"):
            load(_write(tmp_path / "big.jsonl",
                        _small_trace() + [fits] + filler + [does_not]))

    begin = orjson.dumps(_event("phase.begin", 7, api="get"))
    spelt, misspelt = (begin.replace(b'"phase.begin"', b'"phase.b' + escape + b'gin"')
                       for escape in (br"\u0065", br"\u0031"))
    trace = load(_write(tmp_path / "spelt.jsonl", _small_trace() + [spelt] + filler))
    assert trace.records[6]["ev"] == "phase.begin"
    with pytest.raises(schema.TraceFormatError,
                       match=r"escaped\.jsonl:1008: unknown event kind 'phase\.b1gin'"):
        load(_write(tmp_path / "escaped.jsonl",
                    _small_trace() + [spelt] + filler + [misspelt]))


def test_no_name_in_the_schema_has_a_digit():
    """What lets the loader check a line by its skeleton: a digit turned into 0 can then
    never make one event kind, process kind or field name out of another."""
    names = set(schema.COMMON_FIELDS) | set(schema.EVENTS) | set(schema.PROCESS_KINDS)
    for kind in schema.EVENTS.values():
        names |= set(kind.fields)
    assert [name for name in names if any(c.isdigit() for c in name)] == []


def test_a_line_longer_than_a_chunk_loads_and_later_lines_keep_their_numbers(tmp_path):
    """The file is read a chunk at a time; a line longer than a chunk spans several reads."""
    events = _small_trace() + [_event("phase.begin", 7, api="get", code="x" * 300_000)] + [
        _event("object.get", 10 + i, obj="o1", size=10, path="local_store", zero_copy=True,
               dur=1) for i in range(3000)]
    trace = load(_write(tmp_path / "long_line.jsonl", events))
    assert len(trace) == len(events) and len(trace.records[6]["code"]) == 300_000
    events[2500] = dict(events[2500], dur="1")
    with pytest.raises(schema.TraceFormatError, match=r":2501: field 'dur'"):
        load(_write(tmp_path / "long_line_bad.jsonl", events))


def test_newer_schema_version_says_to_upgrade(tmp_path):
    events = _small_trace()
    events[0] = _header(version="9.0")
    events[3]["ev"] = "phase.future_kind"  # the version is checked before any other line
    with pytest.raises(schema.TraceFormatError, match=r":1: .*version 9\.0.*upgrade raysim"):
        load(_write(tmp_path / "new.jsonl", events))


def test_header_is_found_below_the_first_line_but_must_exist(tmp_path):
    """The GCS's first batch can reach the file before the driver's header does."""
    events = _small_trace()
    events[0], events[2] = events[2], events[0]
    trace = load(_write(tmp_path / "late_header.jsonl", events))
    assert trace.records[0]["ev"] == "trace.header"
    with pytest.raises(schema.TraceFormatError, match="no trace.header"):
        load(_write(tmp_path / "no_header.jsonl", _small_trace()[1:]))
    with pytest.raises(schema.TraceFormatError, match="is empty"):
        load(_write(tmp_path / "empty.jsonl", []))


def test_header_is_found_far_down_and_its_line_is_named(tmp_path):
    """Wherever the header is, its version is checked first and its line number is exact."""
    early = [_event("object.get", 2, obj="o1", size=10, path="local_store", zero_copy=True,
                    dur=1)] * 2000  # more than one chunk of lines before the header
    trace = load(_write(tmp_path / "far.jsonl", early + _small_trace()))
    assert trace.records[0]["ev"] == "trace.header" and len(trace) == 2006
    with pytest.raises(schema.TraceFormatError, match=r"far_new\.jsonl:2001: .*upgrade"):
        load(_write(tmp_path / "far_new.jsonl", early + [_header(version="9.0")]))


def test_missing_file_says_where_it_looked(tmp_path):
    path = str(tmp_path / "nowhere.jsonl")
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        load(path)


def test_cut_last_line_loads_with_a_warning(tmp_path):
    """A process killed in the middle of a write leaves half a line at the end."""
    whole = orjson.dumps(_event("phase.begin", 7, api="get"))
    path = _write(tmp_path / "cut.jsonl", _small_trace(), tail=whole[:25])
    with pytest.warns(PartialLineWarning, match=r"cut\.jsonl:7: the last line is cut short"):
        trace = load(path)
    assert len(trace) == 6
    # A last line that is whole but lacks its newline is simply an event.
    path = _write(tmp_path / "no_newline.jsonl", _small_trace(), tail=whole)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load(path)) == 7


def test_the_tracer_numbers_puts_from_the_index_the_runtime_gives_them():
    """labels.py repeats the runtime's first put index (the tracer never imports the
    runtime): they must agree."""
    from raysim.runtime.common.ids import PUT_INDEX_BASE
    from raysim.trace.labels import PUT_INDEX_BASE as labels_base

    assert labels_base == PUT_INDEX_BASE
