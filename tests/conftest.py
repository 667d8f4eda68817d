import os

import pytest

import raysim


@pytest.fixture
def trace_file(tmp_path):
    return str(tmp_path / "trace.jsonl")


@pytest.fixture
def ray_start(trace_file):
    """A fresh 2-CPU session, traced to a file of the test's own."""
    ctx = raysim.init(num_cpus=2, trace_path=trace_file)
    try:
        yield ctx
    finally:
        raysim.shutdown()


@pytest.fixture(scope="module")
def shared_session(tmp_path_factory):
    """One session for a module's tests that do not care about a fresh runtime."""
    path = str(tmp_path_factory.mktemp("trace") / "trace.jsonl")
    ctx = raysim.init(num_cpus=2, trace_path=path,
                      object_store_memory=1024 * 1024 * 1024)
    try:
        yield ctx
    finally:
        raysim.shutdown()


@pytest.fixture(autouse=True, scope="session")
def _no_stray_sessions():
    yield
    assert not raysim.is_initialized(), "a test left a raysim session running"
