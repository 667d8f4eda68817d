"""Seed phase 5: ray.get(futures) — local results are mapped zero-copy from the store,
inline ones deserialized from the driver's own memory."""

import ctypes

import numpy as np
import pytest
from traceutil import of, wait_for

import raysim
from raysim import session


@raysim.remote
def make_array(n):
    return np.arange(n, dtype=np.uint8)


@raysim.remote
def fail(x):
    return 1 / x


def _in_store(array) -> bool:
    store = session.current_core().store.mmap
    base = ctypes.addressof(ctypes.c_char.from_buffer(store))
    return base <= array.__array_interface__["data"][0] < base + len(store)


def test_100mb_array_from_a_task_is_a_view_of_the_store(shared_session):
    out = raysim.get(make_array.remote(100_000_000))
    assert out.nbytes == 100_000_000 and out[-1] == 255 and out[255] == 255
    assert _in_store(out) and not out.flags.writeable


def test_small_arrays_come_back_read_only_too(shared_session):
    out = raysim.get(make_array.remote(10))
    assert list(out) == list(range(10)) and not out.flags.writeable
    assert not _in_store(out), "a small result travels inline"


def test_get_paths_are_traced(shared_session):
    refs = [make_array.remote(10), make_array.remote(1_000_000)]
    raysim.get(refs)
    path = shared_session["trace_path"]
    events = wait_for(path, lambda ev: len([e for e in of(ev, "object.get", proc="driver")
                                            if e["obj"] in {r.hex() for r in refs}]) == 2)
    by_obj = {e["obj"]: e for e in of(events, "object.get", proc="driver")}
    assert by_obj[refs[0].hex()]["path"] == "inline"
    assert by_obj[refs[1].hex()]["path"] == "local_store"
    assert by_obj[refs[1].hex()]["zero_copy"] is True


def test_get_timeout_raises_get_timeout_error(shared_session):
    @raysim.remote
    def slow():
        import time
        time.sleep(5)

    ref = slow.remote()
    with pytest.raises(raysim.exceptions.GetTimeoutError):
        raysim.get(ref, timeout=0.1)
    with pytest.raises(TimeoutError):
        raysim.get(ref, timeout=0)


def test_get_argument_checks(shared_session):
    ref = raysim.put(1)
    with pytest.raises(ValueError, match="ObjectRef or a list"):
        raysim.get(42)
    with pytest.raises(TypeError, match=r"element \[1\] is str"):
        raysim.get([ref, "x"])
    with pytest.raises(ValueError):
        raysim.get((ref,))


def test_task_error_is_the_users_exception_with_remote_traceback(shared_session):
    with pytest.raises(ZeroDivisionError) as info:
        raysim.get(fail.remote(0))
    err = info.value
    assert isinstance(err, raysim.exceptions.RayTaskError)
    text = str(err)
    assert "fail" in text and "1 / x" in text and "ZeroDivisionError" in text
    assert "raysim/runtime" not in text, "raysim's own frames are left out"


def test_pandas_and_arrow_come_back_as_views_of_the_store(shared_session):
    import pandas as pd
    import pyarrow as pa

    frame = pd.DataFrame({"a": np.arange(100_000.0), "b": np.arange(100_000)})
    out = raysim.get(raysim.put(frame))
    assert out.equals(frame)
    for column in out.columns:
        values = out[column].to_numpy()
        assert _in_store(values) and not values.flags.writeable
    table = pa.table({"x": np.arange(100_000.0)})
    got = raysim.get(raysim.put(table))
    assert got.equals(table)
    address = got.column("x").chunk(0).buffers()[1].address
    store = session.current_core().store.mmap
    base = ctypes.addressof(ctypes.c_char.from_buffer(store))
    assert base <= address < base + len(store)
