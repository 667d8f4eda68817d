import os
import shutil
import tempfile

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
    """Sessions of the tests live in a directory of their own (short, for Unix socket
    paths), removed at the end; no test may leave a session running."""
    base = tempfile.mkdtemp(prefix="raysim-test-")
    old = os.environ.get("RAYSIM_TEMP_DIR")
    os.environ["RAYSIM_TEMP_DIR"] = base
    yield
    if old is None:
        del os.environ["RAYSIM_TEMP_DIR"]
    else:
        os.environ["RAYSIM_TEMP_DIR"] = old
    shutil.rmtree(base, ignore_errors=True)
    assert not raysim.is_initialized(), "a test left a raysim session running"
