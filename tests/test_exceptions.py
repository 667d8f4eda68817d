"""A remote exception reaches the caller as Ray's does: a RayTaskError that is also the
user's exception class, with the innermost cause of a nested failure and every traceback."""

import threading

import pytest

import raysim
from raysim import exceptions


class NeedsTwo(Exception):
    def __init__(self, code, detail):
        super().__init__(code, detail)
        self.code = code


class HoldsALock(Exception):
    def __init__(self):
        super().__init__("holds a lock")
        self.lock = threading.Lock()


@raysim.remote
def innermost():
    return [][1]


@raysim.remote
def middle():
    return raysim.get(innermost.remote())


@raysim.remote
def outer():
    return raysim.get(middle.remote())


@raysim.remote
class Relay:
    def relay(self):
        return raysim.get(middle.remote())


@raysim.remote
def raise_needs_two():
    raise NeedsTwo(404, "not found")


@raysim.remote
def raise_unpicklable():
    raise HoldsALock()


@raysim.remote
def raise_chained():
    try:
        {}["key"]
    except KeyError as e:
        raise ValueError("wrapped") from e


def test_a_nested_failure_is_still_the_innermost_users_exception(shared_session):
    with pytest.raises(IndexError) as info:
        raysim.get(outer.remote())
    error = info.value
    assert isinstance(error, exceptions.RayTaskError)
    assert type(error.cause) is IndexError
    text = str(error)
    for name in ("outer", "middle", "innermost"):
        assert f"raysim::{name}()" in text  # each level's traceback
    assert "IndexError: list index out of range" in text


def test_a_nested_failure_through_an_actor_call(shared_session):
    with pytest.raises(IndexError) as info:
        raysim.get(Relay.remote().relay.remote())
    assert "raysim::Relay.relay()" in str(info.value)
    assert "raysim::innermost()" in str(info.value)


def test_an_exception_whose_init_takes_other_arguments_keeps_its_class_and_attributes(
        shared_session):
    with pytest.raises(NeedsTwo) as info:
        raysim.get(raise_needs_two.remote())
    assert isinstance(info.value, exceptions.RayTaskError)
    assert info.value.code == 404
    assert info.value.cause.args == (404, "not found")


def test_an_exception_that_cannot_be_pickled_becomes_a_ray_error_saying_so(shared_session):
    with pytest.raises(exceptions.RayTaskError) as info:
        raysim.get(raise_unpicklable.remote())
    cause = info.value.cause
    assert type(cause) is exceptions.RayError
    assert "HoldsALock isn't serializable" in str(cause)
    assert "raise HoldsALock()" in str(cause)  # the original traceback travels in the text
    assert not isinstance(info.value, HoldsALock)


def test_a_chained_exception_shows_both_and_keeps_the_raised_one_as_cause(shared_session):
    with pytest.raises(ValueError) as info:
        raysim.get(raise_chained.remote())
    text = str(info.value)
    assert "KeyError: 'key'" in text
    assert "direct cause of the following exception" in text
    assert repr(info.value.cause) == "ValueError('wrapped')"


class Final(Exception):
    def __init_subclass__(cls, **kwargs):
        raise TypeError("Final cannot be subclassed")


@raysim.remote
def raise_final():
    raise Final("from the task")


def test_an_exception_that_cannot_be_subclassed_is_a_task_error_with_a_warning(
        shared_session, caplog):
    with caplog.at_level("WARNING", logger="raysim.exceptions"):
        with pytest.raises(exceptions.RayTaskError) as info:
            raysim.get(raise_final.remote())
    assert not isinstance(info.value, Final)
    assert isinstance(info.value.cause, Final) and str(info.value.cause) == "from the task"
    assert "raised as RayTaskError only. You can use `ray_task_error.cause`" in caplog.text


class NotRebuildable(Exception):
    def __init__(self, code, message):
        super().__init__(message)  # args=(message,): unpickling calls NotRebuildable(message)
        self.code = code


@raysim.remote
def raise_not_rebuildable():
    raise NotRebuildable(42, "custom")


def test_an_exception_that_cannot_be_unpickled_is_rays_unserializable_exception(
        shared_session):
    with pytest.raises(exceptions.UnserializableException) as info:
        raysim.get(raise_not_rebuildable.remote())
    assert isinstance(info.value, exceptions.RayError)
    text = str(info.value)
    assert "Failed to deserialize exception" in text and "Tip:" in text
    assert 'raise NotRebuildable(42, "custom")' in text  # the original traceback
