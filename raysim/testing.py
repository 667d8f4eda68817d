"""Testing with raysim: run a Ray program in a pytest test, then assert on what happened inside.

A pytest plugin, registered under the ``pytest11`` entry point as ``raysim``, so a test suite
gets it by installing raysim (from a checkout that is not installed, with
``pytest -p raysim.testing``). Ray's own tests start their clusters with fixtures such as
``ray_start_regular`` from a ``conftest.py`` that Ray does not ship, and can only check what
the API returns; raysim ships its fixture, because what a user wants to check is what
happened inside. It offers:

    raysim_session              a fixture: a fresh 2-CPU session traced to a file under the
                                test's ``tmp_path``, shut down when the test ends, pass or fail
    @pytest.mark.raysim(...)    other ``raysim.init()`` arguments for one test, class or module
    events(trace, ev, **match)  the events of one kind whose fields have the given values
    assert_in_order(trace, *steps)
                                that steps happen in this order
    holders(trace, obj)         who holds a reference to an object, as the GCS counts them

The founding document's point that ``model_ref``'s count goes to 4 (the driver and three
actors), as a test::

    import raysim as ray
    from raysim.testing import holders

    @ray.remote
    class BatchPredictor:
        def __init__(self, model):
            self.model = model

    def test_the_driver_and_three_actors_hold_the_model(raysim_session):
        model_ref = ray.put({"weights": [0.5] * 1000})
        actors = [BatchPredictor.remote(model_ref) for _ in range(3)]  # keep them alive

        def held_by_the_driver_and_three_actors(evs):
            kinds = sorted(h.split(":")[0] for h in holders(evs, model_ref))
            return kinds == ["driver", "worker", "worker", "worker"]

        raysim_session.wait_for(held_by_the_driver_and_three_actors)
        trace = raysim_session.finish()
        before_shutdown = trace.phases()[-1].first_index - 1
        model = trace.state_at(before_shutdown).gcs.objects[model_ref.hex()]
        assert model["ref_count"] == 4

Why a condition on who holds the model, not on the count alone: the count is 4 before any
actor exists (the driver and three pending creation tasks), and goes above 4 for a moment
as each actor's worker takes its reference before its creation task drops its own. Why
``wait_for``: the count is the GCS's, and the GCS hears from the actors' workers on
connections of their own. Every process writes its events when it goes idle, so the trace
shows what the GCS did shortly after it did it; ``wait_for`` re-reads the trace until the
condition holds, with a deadline.

The plugin emits no trace event of its own, but it says where its calls come from: the
session's ``init`` phase is recorded at the test's ``def`` line, and the ``shutdown`` at its
end (``test_file.py:end``) unless the test called ``finish()``. When a test that used
``raysim_session`` fails, its report names the trace file, to look at with
``raysim replay``.

Runs in: the test process (the driver). Importing this module costs next to nothing: pytest
imports every installed plugin in every run, so pandas, the runtime and the tracer are
imported only when a test uses them. ``import raysim`` never imports this module, so pytest
is needed only by those who test.
"""

from __future__ import annotations

import difflib
import linecache
import os
import pathlib
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence, Union

import pytest

import raysim
from raysim.trace import schema

if TYPE_CHECKING:
    from raysim.trace.loader import Trace

Event = dict[str, Any]
Events = Union["Trace", Sequence[Event]]

__all__ = ["TracedSession", "assert_in_order", "events", "holders"]

# What raysim_session passes to raysim.init() unless a raysim marker says otherwise (the
# trace goes to trace.jsonl in the test's tmp_path).
DEFAULT_INIT_OPTIONS: dict[str, Any] = {"num_cpus": 2}

# How often wait_for re-reads the trace. A read of a test's trace takes a millisecond or two.
_POLL_INTERVAL_S = 0.01

_TRACE_PATH = pytest.StashKey[str]()  # the trace of the test's session, for its report


# --------------------------------------------------------------------------------------------
# The session


class TracedSession:
    """A raysim session started for one test, traced to a file of its own.

    ``raysim_session`` makes one; outside pytest, ``TracedSession.start(**init_options)``
    does (and ``finish()`` ends it).
    """

    def __init__(self, trace_path: str) -> None:
        self.trace_path = trace_path

    def __repr__(self) -> str:
        return f"<TracedSession {self.trace_path!r}>"

    @classmethod
    def start(cls, **init_options: Any) -> TracedSession:
        """Start a session with ``raysim.init(**init_options)``; tracing must be on."""
        if raysim.is_initialized():
            raise RuntimeError(
                f"a raysim session is already running (its trace: {raysim.trace_path()!r}), so "
                f"a fresh one cannot start. Tip: call raysim.shutdown() at the end of whatever "
                f"started it, or use that session instead of raysim_session.")
        raysim.init(**init_options)
        path = raysim.trace_path()
        if path is None:
            raysim.shutdown()
            raise ValueError(
                f"raysim.init({_arguments(init_options)}) turned tracing off, and a "
                f"TracedSession has nothing to read without a trace. Tip: drop tracing=False, "
                f"and unset RAYSIM_TRACE=off.")
        return cls(path)

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float = 10.0,
                 what: str | None = None) -> list[Event]:
        """Re-read the trace until ``predicate(events)`` is true; return those events.

        Each process writes its events when it goes idle, so what another process did shows
        up in the trace shortly after it did it. This polls for it with a deadline: after
        ``timeout`` seconds it raises AssertionError saying what it waited for, ``what``
        or else the predicate's name (``held_by_the_driver`` reads "held by the driver").

            raysim_session.wait_for(
                lambda evs: len(events(evs, "gcs.actor_state", state="ALIVE")) == 3,
                what="three actors ALIVE")
        """
        __tracebackhide__ = True  # a time-out is reported at the test's line, not here
        from raysim.trace.loader import PartialLineWarning, load

        what = what or _describe(predicate)
        deadline = time.monotonic() + timeout
        while True:
            with warnings.catch_warnings():
                # A process may be halfway through appending a batch: its last line comes
                # whole on a later read.
                warnings.simplefilter("ignore", PartialLineWarning)
                records = load(self.trace_path).records
            if predicate(records):
                return records
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}: the trace has "
                    f"{len(records)} events. Tip: raysim replay {self.trace_path}")
            time.sleep(_POLL_INTERVAL_S)

    def finish(self) -> Trace:
        """Shut the session down and return the whole trace, loaded.

        Shutting down is what makes every process write its last events, so the trace is
        complete only now. The session's last phase is ``shutdown``: the state just before
        it is ``trace.state_at(trace.phases()[-1].first_index - 1)``. Calling ``finish()``
        again only loads the trace again.
        """
        from raysim.trace.loader import load

        raysim.shutdown()
        return load(self.trace_path)


def _reported_at(site: str, code: str):
    """Record raysim calls made here at ``site`` (the test), not in pytest's own code: a
    trace's phases name the line of user code that began them."""
    from raysim.call_site import reported_at
    return reported_at(site, code)


def _init_options(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> dict[str, Any]:
    """The defaults, then each ``raysim`` marker from the module's down to the test's own."""
    options = {**DEFAULT_INIT_OPTIONS, "trace_path": str(tmp_path / "trace.jsonl")}
    for mark in reversed(list(request.node.iter_markers("raysim"))):
        if mark.args:
            raise TypeError(
                f"@pytest.mark.raysim takes raysim.init()'s arguments by keyword, got "
                f"{mark.args!r}. Tip: write e.g. @pytest.mark.raysim(num_cpus=1).")
        options.update(mark.kwargs)
    return options


@pytest.fixture
def raysim_session(request: pytest.FixtureRequest,
                   tmp_path: pathlib.Path) -> Iterator[TracedSession]:
    """A fresh raysim session for this test, traced to ``tmp_path / "trace.jsonl"``.

    Started with ``raysim.init(num_cpus=2, trace_path=...)``; ``@pytest.mark.raysim(...)``
    on the test (or its class or module) adds or overrides ``init()`` arguments. Whatever the
    test does, the session is shut down when it ends.

        @pytest.mark.raysim(num_cpus=1, object_store_memory=64 * 1024**2)
        def test_one_cpu(raysim_session):
            assert ray.cluster_resources()["CPU"] == 1
    """
    options = _init_options(request, tmp_path)
    filename, line, code = _test_def(request.node)
    with _reported_at(f"{filename}:{line}", code):
        session = TracedSession.start(**options)
    request.node.stash[_TRACE_PATH] = session.trace_path
    try:
        yield session
    finally:
        with _reported_at(f"{filename}:end",
                          f"({request.node.name} ended; raysim_session shuts the session down)"):
            raysim.shutdown()


def _test_def(item: pytest.Item) -> tuple[str, int, str]:
    """The file name, line number and code of the test's ``def`` line (below its
    decorators), where the session's ``init`` phase is recorded."""
    path, index, _ = item.reportinfo()  # index: 0-based, at the first decorator
    for number in range(index + 1, index + 50):
        code = linecache.getline(str(path), number).strip()
        if code.startswith(("def ", "async def ")):
            return os.path.basename(path), number, code
    return os.path.basename(path), index + 1, linecache.getline(str(path), index + 1).strip()


# --------------------------------------------------------------------------------------------
# The plugin's hooks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "raysim(**init_options): raysim.init() arguments for the raysim_session fixture, "
        "e.g. @pytest.mark.raysim(num_cpus=1)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test's report names its session's trace."""
    outcome = yield
    report = outcome.get_result()
    path = item.stash.get(_TRACE_PATH, None)
    if path is not None and report.failed:
        report.sections.append(("raysim trace", f"{path}\nreplay it: raysim replay {path}"))


# --------------------------------------------------------------------------------------------
# Assertion helpers


def events(trace: Events, ev: str, **match: Any) -> list[Event]:
    """The events of kind ``ev`` whose fields equal ``match``'s values, in time order.

    ``trace`` is a loaded ``Trace`` or a list of events (what ``wait_for`` hands its
    predicate). An ``ObjectRef`` or an actor handle stands for its id. A kind or a field
    the trace format does not have raises ValueError, so that a misspelt name cannot make
    an assertion such as ``assert not events(...)`` pass for nothing.

        sealed = events(trace, "object_store.sealed", obj=model_ref)
        assert len(sealed) == 1 and sealed[0]["size"] > 0
    """
    records = _records(trace)
    wanted = _check_step({"ev": ev, **match}, "events()")
    return [event for event in records if _matches(event, wanted)]


def assert_in_order(trace: Events, *steps: str | dict[str, Any]) -> list[Event]:
    """Assert that the steps happen in this order; return the event found for each.

    A step is an event kind, or a dict of an event kind (``ev``) and field values as
    ``events()`` takes them. Each step is matched by the first event after the previous
    step's; other events may come between. On failure the message says which step was not
    found, and where its events were if they came too early.

        assert_in_order(trace,
                        dict(ev="object_store.sealed", obj=model_ref),
                        dict(ev="gcs.object_added", obj=model_ref),
                        dict(ev="task.submitted", task_kind="actor_creation"))
    """
    __tracebackhide__ = True  # a failure is reported at the test's line, not here
    records = _records(trace)
    if not steps:
        raise ValueError("assert_in_order() needs at least one step, got none")
    wanted = [_check_step({"ev": step} if isinstance(step, str) else step,
                          "assert_in_order()") for step in steps]
    found: list[Event] = []
    start = 0
    for number, step in enumerate(wanted, 1):
        index = next((i for i in range(start, len(records)) if _matches(records[i], step)),
                     None)
        if index is None:
            raise AssertionError(_out_of_order(records, wanted, number, start - 1))
        found.append(records[index])
        start = index + 1
    return found


def holders(trace: Events, obj: Any) -> dict[str, str]:
    """Who holds a reference to ``obj`` after the last of these events, as the GCS counts
    them: ``{holder: ref_type}``, so its reference count is ``len(holders(...))``.

    Holders are named ``driver:<worker id>``, ``worker:<worker id>`` (an actor's or a
    task's worker) and ``task:<task id>`` (a submitted task that will read the object).
    This is the GCS object table of ``trace.state_at(-1)``; it also counts references that
    reached the GCS before the object was registered there.

        assert sorted(holders(evs, model_ref).values()) == ["LOCAL_REFERENCE"] * 4
    """
    from raysim.trace import state

    records = _records(trace)
    oid = _as_id(obj)
    gcs = state.replay(list(records), len(records) - 1).gcs
    row = gcs.objects.get(oid)
    return dict(row["holders"]) if row is not None else dict(gcs.unregistered.get(oid, {}))


def _records(trace: Events) -> Sequence[Event]:
    records = getattr(trace, "records", trace)
    if isinstance(records, (str, bytes, os.PathLike)) or not isinstance(records, Sequence):
        raise TypeError(
            f"expected a Trace or a list of events, got {trace!r}. Tip: load a trace file "
            f"with raysim.trace.load(path).")
    return records


def _check_step(step: Any, where: str) -> dict[str, Any]:
    """A step as ``{field: value}`` with ids for refs and handles, once its event kind and
    field names are known to be the trace format's."""
    if not isinstance(step, dict) or not isinstance(step.get("ev"), str):
        raise TypeError(
            f"{where}: a step is an event kind or a dict with an 'ev' key, got {step!r}. "
            f"Tip: write e.g. dict(ev='object_store.sealed', obj=ref).")
    kind = schema.EVENTS.get(step["ev"])
    if kind is None:
        raise ValueError(f"{where}: no event kind is named {step['ev']!r}."
                         f"{_did_you_mean(step['ev'], schema.EVENTS)} "
                         f"Tip: docs/trace-format.md lists every kind.")
    fields = {**schema.COMMON_FIELDS, **kind.fields}
    for name in step:
        if name not in fields:
            raise ValueError(f"{where}: {kind.name} events have no field {name!r}."
                             f"{_did_you_mean(name, fields)} Their fields: "
                             f"{', '.join(kind.fields)}.")
    return {name: _as_id(value) for name, value in step.items()}


def _matches(event: Event, step: dict[str, Any]) -> bool:
    return all(event.get(name) == value for name, value in step.items())


def _as_id(value: Any) -> Any:
    """An ObjectRef's or an actor handle's id; any other value as it is. (If their modules
    were never imported, the value is neither.)"""
    object_ref = sys.modules.get("raysim.object_ref")
    if object_ref is not None and isinstance(value, object_ref.ObjectRef):
        return value.hex()
    actor = sys.modules.get("raysim.actor")
    if actor is not None and isinstance(value, actor.ActorHandle):
        return value._actor_id
    return value


def _out_of_order(records: Sequence[Event], steps: list[dict], number: int,
                  previous: int) -> str:
    """What to say when step ``number`` has no event after index ``previous``."""
    step = steps[number - 1]
    earlier = [i for i in range(previous + 1) if _matches(records[i], step)]
    said = f"{_describe_step(step)} (step {number} of {len(steps)})"
    if not earlier:
        return f"{said} never happens in these {len(records)} events"
    after = _describe_step(steps[number - 2])
    shown = ", ".join(map(str, earlier[:5])) + (", ..." if len(earlier) > 5 else "")
    return (f"{said} does not happen after {after} (step {number - 1}, event {previous}); "
            f"it happens before it, at event {shown}")


def _describe_step(step: dict[str, Any]) -> str:
    fields = " ".join(f"{name}={value!r}" for name, value in step.items() if name != "ev")
    return f"{step['ev']} {fields}".rstrip()


def _describe(predicate: Callable) -> str:
    name = getattr(predicate, "__name__", "")
    return name.replace("_", " ") if name.isidentifier() else "the condition"


def _did_you_mean(name: str, names) -> str:
    close = difflib.get_close_matches(name, list(names), n=3)
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""


def _arguments(options: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value!r}" for name, value in options.items())
