"""Views that scale: a trace of thousands of calls reads on one screen or two.

Every view is bounded by default (``raysim/trace/limits.py``): tables show the rows that
matter most and end with "… and N more", a phase of many calls shows one call's steps and
counts the others by kind, a run of many phases is told panel by panel until the text is
about 300 lines long. ``UNBOUNDED`` (``raysim trace --all``) shows everything. The traces are
written synthetically (``synthetic_trace.py``): the views only read events.
"""

import re

import pytest
from synthetic_trace import write_trace

from raysim.trace import load
from raysim.trace.limits import UNBOUNDED, Limits
from raysim.trace.phases_view import PhaseView, RunView
from raysim.trace.refcounts import ref_count_table
from raysim.trace.render import to_text
from raysim.trace.stored_where import StoredWhere
from raysim.trace.timeline_view import timeline_text


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """3,000 calls of one function from one line (every tenth result in the store), their
    get, and a put with 100 reference holders."""
    path = str(tmp_path_factory.mktemp("big") / "trace.jsonl")
    write_trace(path, tasks=3000, put_holders=100)
    return load(path)


@pytest.fixture(scope="module")
def big_text(big):
    return to_text(RunView(big), width=120)


def test_the_whole_run_fits_in_about_300_lines(big, big_text):
    assert len(big) > 40_000
    assert len(big_text.splitlines()) <= 330
    titles = re.findall(r"Phase (\d+: [a-z_]+(?: x\d+)?)", big_text)
    assert titles == ["1: init", "2: put", "3: task_submission x3000", "4: get", "5: shutdown"]


def test_a_phase_of_many_calls_shows_one_call_and_counts_the_others_by_kind(big):
    text = to_text(PhaseView(big, 3), width=120)
    flow = text.split("What's stored where")[0]
    # The first call in full...
    assert re.search(r"1\. +•─+▶ .* submit_task square#1 \(400 B\)", flow)
    assert "run square#1 (0.1 ms)" in flow and "square#1.ret goes back inline" in flow
    assert "square#2 " not in flow
    # ... then the other calls' steps by kind, with counts, bytes and time.
    assert "the other 2,999 calls: 18,894 steps, by kind" in flow
    assert re.search(r"2,999 × driver → raylet +submit_task +1\.2 MB", flow)
    assert re.search(r"2,999 × 2 workers +run square +149\.9 ms", flow)
    assert re.search(r"300 × raylet +store seals +60\.5 MB", flow)


def test_tables_show_the_largest_objects_and_count_the_rest(big):
    text = to_text(StoredWhere(big), width=120)
    objects = text.split("GCS object table")[1].split("object store of node")[0]
    rows = re.findall(r"^(square#\d+\.ret) +│ +([\d,]+) B", objects, re.M)
    assert [name for name, _ in rows][:3] == ["square#3000.ret", "square#2990.ret",
                                              "square#2980.ret"], "largest first"
    assert len(rows) == Limits().table_rows
    assert re.search(r"… and 293 more +│ +58,828,780 B", objects), "the rest, with their bytes"
    assert re.search(r"… and 2,692 more +│ +53,840 B", text), "the small results held inline"
    assert ("driver holds 3,000 ObjectRef(s) (3,000 LOCAL_REFERENCE), the latest: "
            "square#2991.ret, square#2992.ret") in text.replace("\n", " ")
    assert "square#3000.ret, … and 2,990 more" in text.replace("\n", " ")


def test_a_run_of_steps_of_one_kind_is_folded(big):
    text = to_text(PhaseView(big, 4), width=120)
    assert "3.     ●    get square#3.ret (20 B, inline, from the owner's memory)" in text
    assert re.search(r"⋮ +… 6 more like this \(to step 9; 120 B, 0\.0 ms\)", text)
    assert "10.     ●    get square#10.ret (200.0 KB, zero-copy from the store)" in text
    assert "... and 2,880 more steps, by kind" in text
    assert re.search(r"2,592 × driver +get \(inline\) +51\.8 KB", text)


def test_a_long_reference_count_history_shows_its_beginning_and_its_end(big):
    text = to_text(ref_count_table(big, "d0d0d0d0ffffffff8001"), width=120)
    numbers = [int(n) for n in re.findall(r"^│ (\d+) +│", text, re.M)]
    assert numbers == list(range(1, 13)) + [199, 200, 201]
    assert "… and 186 more changes" in text
    assert len(to_text(ref_count_table(big, "d0d0d0d0ffffffff8001", limits=UNBOUNDED),
                       width=120).splitlines()) > 200


def test_all_shows_every_step_and_every_row(tmp_path):
    path = str(tmp_path / "trace.jsonl")
    write_trace(path, tasks=200)
    trace = load(path)
    text = to_text(RunView(trace, limits=UNBOUNDED), width=120)
    assert "… and" not in text and "more steps" not in text and "other 199 calls" not in text
    assert all(f"run square#{n} (0.1 ms)" in text for n in range(1, 201))
    assert all(f"get square#{n}.ret" in text for n in range(1, 201))
    # Every stored result, in the tables after the calls and after the get.
    assert len(re.findall(r"^│ square#\d+\.ret +│ +[\d,]+ B +│ node", text, re.M)) == 20 * 2


def test_phases_past_the_budget_are_listed_in_one_table(tmp_path):
    path = str(tmp_path / "trace.jsonl")
    write_trace(path, tasks=50, other_phases=30)
    text = to_text(RunView(load(path)), width=120)
    assert len(text.splitlines()) <= 400
    shown = [int(n) for n in re.findall(r"Phase (\d+):", text)]
    assert shown == list(range(1, len(shown) + 1)) and 5 <= len(shown) < 34
    assert f"Phases {len(shown) + 1} to 34, not shown in full" in text
    assert re.search(r"^ +34 │ shutdown +│ +1 │ job\.py:end", text, re.M), "the run's end"
    assert "At the end" in text
    every = to_text(RunView(load(path), limits=UNBOUNDED), width=120)
    assert re.findall(r"Phase (\d+):", every) == [str(n) for n in range(1, 35)]


def test_the_timeline_keeps_the_busiest_workers(tmp_path):
    path = str(tmp_path / "trace.jsonl")
    write_trace(path, tasks=100, workers=40)
    trace = load(path)
    text = timeline_text(trace, width=100).plain
    lanes = [line.split()[0] for line in text.splitlines()[1:] if line[:1].isalpha()]
    assert lanes[:4] == ["driver", "gcs", "raylet", "zygote"]
    assert len(lanes) == Limits().lanes
    assert "… and 28 more workers, less busy than these" in text
    assert "more workers" not in timeline_text(trace, 100, UNBOUNDED).plain
