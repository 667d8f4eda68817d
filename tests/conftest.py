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


@pytest.fixture
def three_nodes(trace_file):
    """A cluster of three nodes on this machine (raysim.cluster_utils): the head (1 CPU, the
    driver's), B (1 CPU, resource B) and C (2 CPUs, resource C: 2), traced to the test's
    file. Yields (cluster, node B, node C)."""
    from raysim.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    b = cluster.add_node(num_cpus=1, resources={"B": 1})
    c = cluster.add_node(num_cpus=2, resources={"C": 2})
    raysim.init(address=cluster.address, trace_path=trace_file)
    try:
        yield cluster, b, c
    finally:
        raysim.shutdown()
        cluster.shutdown()


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
