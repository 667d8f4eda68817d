"""Bad input: each mistake gets a clear error at the call, naming the bad value and saying
what to do, is recorded in the trace (``api.rejected``), and leaves the runtime working.

Where Ray raises the error at the call (arguments that cannot be pickled, wrong arguments,
bad options), raysim does too; where Ray's error comes from the worker (a return value that
cannot be pickled, a wrong number of return values), ``get`` raises ``RayTaskError`` wrapping
it. What happens before ``init`` and after ``shutdown`` is process-wide, so those tests run a
small program in a process of its own."""

import inspect
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from traceutil import load, of

import raysim
from raysim import exceptions


@raysim.remote
def echo(x):
    return x


@raysim.remote
def add(a, b):
    return a + b


@raysim.remote
def make_lock():
    return threading.Lock()


@raysim.remote(num_returns=2)
def pair(value):
    return value


@raysim.remote(num_returns=2)
def lock_second():
    return 1, threading.Lock()


@raysim.remote
class Counter:
    def __init__(self, start):
        self.value = start

    def incr(self, by=1):
        self.value += by
        return self.value

    def increment_twice(self):
        return self.incr(2)


class Holder:
    """A value like many in real programs: picklable, except for one attribute."""

    def __init__(self):
        self.name = "holder"
        self.lock = threading.Lock()


class Basket:
    def __init__(self):
        self.items = [1, 2, 3, threading.Lock()]


def works():
    """The runtime still runs a task after the refusal."""
    assert raysim.get(echo.remote(41), timeout=60) == 41


# --------------------------------------------------------------------------------------------
# Values that cannot be pickled


def test_unpicklable_argument_names_the_argument_and_the_attribute(shared_session):
    with pytest.raises(TypeError) as info:
        add.remote(1, Holder())
    message = str(info.value)
    assert message.startswith("Could not serialize argument 2 of add(): the _thread.lock at "
                              "attribute .lock of a test_bad_input.Holder, cannot be pickled")
    assert "Tip: " in message and "inside the task" in message
    works()


def test_unpicklable_element_deep_inside_an_argument_is_found(shared_session):
    with pytest.raises(TypeError) as info:
        echo.remote(x={"basket": Basket()})
    assert ("Could not serialize keyword argument x= of echo(): the _thread.lock at element "
            "[3] of a list, in attribute .items of a test_bad_input.Basket, in the value at "
            "key 'basket' of a dict, cannot be pickled") in str(info.value)
    works()


def test_unpicklable_put_value(shared_session):
    with pytest.raises(TypeError, match=r"Could not serialize the value passed to put\(\): the "
                       r"_thread.lock at attribute .lock of a test_bad_input.Holder, .*Tip: "):
        raysim.put(Holder())
    with pytest.raises(TypeError, match=r"put\(\): it is a _thread.lock, which cannot be "
                                        r"pickled .*Tip: "):
        raysim.put(threading.Lock())
    works()


def test_unpicklable_actor_and_method_arguments(shared_session):
    with pytest.raises(TypeError, match=r"argument 1 of Counter.__init__\(\): it is a "
                                        r"_thread.lock.*Tip: "):
        Counter.remote(threading.Lock())
    counter = Counter.remote(0)
    with pytest.raises(TypeError, match=r"argument 1 of Counter.incr\(\): it is a "
                                        r"_thread.lock.*Tip: "):
        counter.incr.remote(threading.Lock())
    assert raysim.get(counter.incr.remote()) == 1, "the actor is unharmed"


def test_remote_function_capturing_an_unpicklable_value(shared_session):
    lock = threading.Lock()

    @raysim.remote
    def uses_lock():
        with lock:
            return 1

    with pytest.raises(TypeError) as info:
        uses_lock.remote()
    assert ("Could not serialize the remote function "
            "test_remote_function_capturing_an_unpicklable_value.<locals>.uses_lock: the "
            "_thread.lock at variable 'lock' captured by function") in str(info.value)
    assert "Tip: " in str(info.value)
    works()


def test_unpicklable_return_value_fails_the_task(shared_session):
    with pytest.raises(exceptions.RayTaskError) as info:
        raysim.get(make_lock.remote())
    assert isinstance(info.value, TypeError), "Ray: RayTaskError wrapping TypeError"
    assert ("Could not serialize the return value of make_lock(): it is a _thread.lock, "
            "which cannot be pickled") in str(info.value)
    assert "Tip: " in str(info.value)
    first, second = lock_second.remote()
    with pytest.raises(TypeError, match=r"return value 2 of lock_second\(\)"):
        raysim.get(second)
    works()


# --------------------------------------------------------------------------------------------
# get on what is not an ObjectRef


def test_get_of_a_non_ref_is_a_value_error_naming_it(shared_session):
    with pytest.raises(ValueError) as info:
        raysim.get(42)
    assert str(info.value) == ("get() expects an ObjectRef or a list of ObjectRefs, got int "
                               "42. Tip: pass the ObjectRef that .remote() or put() "
                               "returned, or a list of them.")
    works()


def test_get_of_a_list_holding_a_non_ref_is_a_type_error_naming_the_element(shared_session):
    ref = echo.remote(1)
    with pytest.raises(TypeError) as info:
        raysim.get([ref, "x"])
    assert str(info.value) == ("get() expects a list of ObjectRefs, but element [1] is str "
                               "'x'. Tip: pass only ObjectRefs, as returned by .remote() "
                               "and put().")
    assert raysim.get(ref) == 1


def test_get_of_a_tuple_is_a_value_error_saying_pass_a_list(shared_session):
    ref = echo.remote(1)
    with pytest.raises(ValueError, match=r"got tuple \(ObjectRef\(.*Tip: pass a list "
                                         r"instead: get\(list\(refs\)\)"):
        raysim.get((ref,))
    assert raysim.get([ref]) == [1]


def test_other_bad_get_wait_put_and_kill_arguments(shared_session):
    ref = echo.remote(1)
    with pytest.raises(ValueError, match=r"get\(timeout=-1\) is invalid: timeout must be a "
                                         r"non-negative number of seconds\. Tip: "):
        raysim.get(ref, timeout=-1)
    with pytest.raises(TypeError, match=r"Calling 'put' on an ObjectRef \(ObjectRef\(.*\)\) "
                                        r"is not allowed\. .*wrap the ObjectRef in a list"):
        raysim.put(ref)
    with pytest.raises(TypeError, match=r"wait\(\) expected a list of ObjectRef, got dict "
                                        r"\{\}\. Tip: pass a list"):
        raysim.wait({})
    with pytest.raises(TypeError, match=r"wait\(\) expects a list of ObjectRefs, but element "
                                        r"\[1\] is int 5\. Tip: "):
        raysim.wait([ref, 5])
    with pytest.raises(ValueError, match=r"unique object refs; ObjectRef\(.*\) is in it more "
                                         r"than once\. Tip: pass list\(dict\.fromkeys"):
        raysim.wait([ref, ref])
    with pytest.raises(ValueError, match=r"\(3 > 1\)\. Tip: pass num_returns=1 or fewer\."):
        raysim.wait([ref], num_returns=3)
    with pytest.raises(ValueError, match=r"Invalid number of objects to return 0\. Tip: "):
        raysim.wait([ref], num_returns=0)
    with pytest.raises(ValueError, match=r"raysim\.kill\(\) only supported for actors\. For "
                                         r"tasks, try raysim\.cancel\(\)\. Got: ObjectRef "):
        raysim.kill(ref)
    assert raysim.get(ref) == 1


def test_misused_decorators_say_how_to_use_them(shared_session):
    with pytest.raises(TypeError, match=r"decorates functions and classes, not int 5\. Tip: "):
        raysim.remote(num_cpus=1)(5)
    with pytest.raises(TypeError, match=r"keyword arguments only, e\.g\. "
                                        r"@raysim\.remote\(num_cpus=1\); got positional "
                                        r"argument\(s\) int 1, int 2"):
        raysim.remote(1, 2)
    with pytest.raises(ValueError, match=r"@raysim\.method takes keyword arguments only, "
                                         r"e\.g\. @raysim\.method\(num_returns=2\)"):
        raysim.method(2)
    works()


def test_actor_class_using_an_unpicklable_value(shared_session):
    lock = threading.Lock()

    @raysim.remote
    class Guarded:
        def run(self):
            with lock:
                return 1

    with pytest.raises(TypeError) as info:
        Guarded.remote()
    assert ("Could not serialize the actor class Guarded: the _thread.lock at variable 'lock' "
            "captured by function") in str(info.value)
    assert "Tip: " in str(info.value)
    works()


# --------------------------------------------------------------------------------------------
# Calling instead of .remote(), and wrong arguments


def test_direct_calls_say_use_remote(shared_session):
    with pytest.raises(TypeError, match=r"Remote functions cannot be called directly\. "
                                        r"Instead of running 'echo\(\)', try 'echo\.remote\(\)'"):
        echo(1)
    with pytest.raises(TypeError, match=r"Actors cannot be instantiated directly\. Instead of "
                                        r"'Counter\(\)', use 'Counter\.remote\(\)'"):
        Counter(0)
    counter = Counter.remote(0)
    with pytest.raises(TypeError, match=r"Actor methods cannot be called directly\. Instead "
                                        r"of running 'object\.incr\(\)', try "
                                        r"'object\.incr\.remote\(\)'"):
        counter.incr()
    assert raysim.get(counter.incr.remote()) == 1


def test_wrong_arguments_are_a_type_error_at_the_call_as_in_ray(shared_session):
    # Ray binds .remote()'s arguments to the signature before submitting (signature.py).
    with pytest.raises(TypeError) as info:
        add.remote(1)
    assert str(info.value) == ("Wrong arguments for add.remote(): missing a required "
                               "argument: 'b'. It runs add(a, b). Tip: pass arguments that "
                               "fit that signature.")
    with pytest.raises(TypeError, match=r"add.remote\(\): too many positional arguments\. It "
                                        r"runs add\(a, b\)\. Tip: "):
        add.remote(1, 2, 3)
    with pytest.raises(TypeError, match=r"Counter.remote\(\): missing a required argument: "
                                        r"'start'\. It runs Counter.__init__\(start\)\. Tip: "):
        Counter.remote()
    counter = Counter.remote(0)
    with pytest.raises(TypeError, match=r"Counter.incr.remote\(\): got an unexpected keyword "
                                        r"argument 'step'\. It runs Counter.incr\(by=\.\.\.\)"
                                        r"\. Tip: "):
        counter.incr.remote(step=2)
    assert raysim.get(counter.incr.remote(by=2)) == 2
    works()


def test_signature_checks_without_inspect_agree_with_it():
    from raysim import signature

    def kw_only(a, *, b): ...
    def star(a, *rest): ...
    def defaults(a, b=1, **extra): ...

    for function, calls in ((kw_only, [(1,), (1, 2)]), (star, [(), (1,), (1, 2, 3)]),
                            (defaults, [(), (1,), (1, 2), (1, 2, 3)])):
        params = signature.extract(function)
        for args in calls:
            try:
                inspect.signature(function).bind(*args)
                python_says = "fits"
            except TypeError:
                python_says = "refused"
            try:
                signature.check_call(params, args, {}, "f.remote()", "f")
                raysim_says = "fits"
            except TypeError:
                raysim_says = "refused"
            assert raysim_says == python_says, (function.__name__, args)


def test_unknown_method_names_class_name_close_matches_and_methods(shared_session):
    counter = Counter.remote(0)
    with pytest.raises(AttributeError) as info:
        counter.incrr
    assert str(info.value) == (
        "'Counter' actor has no method 'incrr'. Did you mean 'incr'? Its methods are: incr, "
        "increment_twice. Tip: call one of those, or define incrr on class Counter.")
    assert raysim.get(counter.incr.remote()) == 1


# --------------------------------------------------------------------------------------------
# Named actors


def test_unknown_actor_name_names_the_name_the_namespace_and_who_is_there(shared_session):
    counter = Counter.options(name="bad-input-counter").remote(0)
    with pytest.raises(ValueError) as info:
        raysim.get_actor("bad-input-countr")
    message = str(info.value)
    assert message.startswith("Failed to look up actor with name 'bad-input-countr' in the "
                              "default namespace. Named actors alive there: ")
    assert "'bad-input-counter'" in message
    assert message.endswith("Tip: create it first with .options(name='bad-input-countr'), "
                            "or pass the namespace= it was created in.")
    with pytest.raises(ValueError, match=r"with name 'bad-input-counter' in namespace "
                                         r"'elsewhere'\. No named actor is alive there\..*Tip: "):
        raysim.get_actor("bad-input-counter", namespace="elsewhere")
    with pytest.raises(ValueError, match=r"non-empty string name, got int 7\. Tip: "):
        raysim.get_actor(7)
    assert raysim.get(raysim.get_actor("bad-input-counter").incr.remote()) == 1
    del counter


# --------------------------------------------------------------------------------------------
# Options and resources


@pytest.mark.parametrize("options, error, text", [
    ({"num_cpus": -1}, ValueError, "num_cpus=-1 is invalid: num_cpus must be a non-negative "
                                   "number. Tip: use 0 or more, e.g. num_cpus=1"),
    ({"num_gpus": "two"}, TypeError, "num_gpus='two' is invalid: num_gpus must be a number, "
                                     "got str 'two'. Tip: write e.g. num_gpus=1."),
    ({"resources": {"CPU": 1}}, ValueError, "resources={'CPU': 1} is invalid: CPU is not set "
                                            "through resources. Tip: use the num_cpus option "
                                            "instead, e.g. num_cpus=1."),
    ({"memory": -5}, ValueError, "memory=-5 is invalid: memory must be a non-negative number. "
                                 "Tip: use 0 or more, e.g. memory=500 * 1024**2 (bytes)"),
    ({"resources": {"disk": "lots"}}, TypeError, "resources={'disk': 'lots'} is invalid: the "
                                                 "amount of resource 'disk' must be a number, "
                                                 "got str 'lots'. Tip: "),
    ({"num_returns": -2}, ValueError, "num_returns=-2 is invalid: The keyword 'num_returns' "
                                      "only accepts None, a non-negative integer"),
    ({"max_retries": 0.5}, TypeError, "max_retries=0.5 is invalid: the type of keyword "
                                      "'max_retries' must be (<class 'int'>, <class "
                                      "'NoneType'>), but received type <class 'float'>"),
    ({"num_gpus": 1e-7}, ValueError, "num_gpus=1e-07 is invalid: The precision of the "
                                     "fractional quantity of resource num_gpus cannot go "
                                     "beyond 0.0001"),
], ids=["num_cpus", "num_gpus", "resources_CPU", "memory", "resources_amount", "num_returns",
        "max_retries", "precision"])
def test_bad_resource_options_name_the_option_and_value(shared_session, options, error, text):
    with pytest.raises(error) as info:
        echo.options(**options)
    assert text in str(info.value)
    with pytest.raises(error) as info:
        raysim.remote(**options)(lambda: 1)
    assert text in str(info.value)
    if "num_returns" not in options and "max_retries" not in options:
        with pytest.raises(error) as info:
            Counter.options(**options)
        assert text in str(info.value)
    works()


@pytest.mark.parametrize("arguments, error, text", [
    ({"num_cpus": -1}, ValueError, "num_cpus=-1 is invalid"),
    ({"num_gpus": "two"}, TypeError, "num_gpus='two' is invalid"),
    ({"resources": {"CPU": 1}}, ValueError, "resources={'CPU': 1} is invalid"),
    ({"memory": -5}, TypeError, "raysim.init() got unsupported argument(s) memory=-5. Tip: "
                                "raysim supports Ray's core arguments only: address, "
                                "num_cpus"),
    ({"object_store_memory": 5}, ValueError, "object_store_memory=5 is invalid: it must be an "
                                             "int of at least 1 MiB (bytes). Tip: write e.g. "
                                             "object_store_memory=500 * 1024**2."),
    ({"address": "ray://head:10001"}, ValueError, "raysim cannot connect to address='ray://"
                                                  "head:10001': raysim starts its own local "
                                                  "session"),
], ids=["num_cpus", "num_gpus", "resources_CPU", "memory", "object_store_memory", "address"])
def test_bad_init_arguments_are_refused_before_anything_starts(shared_session, arguments,
                                                               error, text):
    # Checked even while a session runs (which init would otherwise refuse as a second one).
    with pytest.raises(error) as info:
        raysim.init(**arguments)
    assert text in str(info.value)
    works()


def test_unknown_option_keyword_lists_the_valid_ones(shared_session):
    with pytest.raises(ValueError) as info:
        echo.options(num_cpu=1)
    message = str(info.value)
    assert message.startswith("Invalid option keyword num_cpu for remote functions. Did you "
                              "mean num_cpus? Valid ones are [")
    assert "'num_cpus'" in message and "'num_returns'" in message
    with pytest.raises(ValueError, match=r"Invalid option keyword colour for actors\. Valid "
                                         r"ones are \[.*'max_restarts'"):
        Counter.options(colour="red")
    works()


# --------------------------------------------------------------------------------------------
# num_returns that does not match what the function returns


def test_too_many_return_values_fail_the_task_with_a_value_error(shared_session):
    first, second = pair.remote((1, 2, 3))
    with pytest.raises(exceptions.RayTaskError) as info:
        raysim.get(first)
    assert isinstance(info.value, ValueError)
    assert ("pair() returned 3 values (a tuple), but it was declared with num_returns=2. "
            "Tip: return exactly 2 values, or set num_returns=3.") in str(info.value)
    assert raysim.get(list(pair.remote((1, 2)))) == [1, 2]


def test_a_single_value_for_num_returns_2_fails_the_task_with_a_value_error(shared_session):
    first, _ = pair.remote(5)
    with pytest.raises(ValueError, match=r"pair\(\) returned a single int \(5\), but it was "
                                         r"declared with num_returns=2\. Tip: return a tuple "
                                         r"of exactly 2 values"):
        raysim.get(first)
    works()


# --------------------------------------------------------------------------------------------
# The trace records what was refused


def test_rejections_are_in_the_trace(shared_session):
    with pytest.raises(ValueError):
        raysim.get(43)
    with pytest.raises(TypeError):
        raysim.put(Holder())
    with pytest.raises(TypeError):
        add.remote(1)
    events = load(shared_session["trace_path"])
    (bad_get,) = [e for e in of(events, "api.rejected", api="get")
                  if "got int 43." in e["message"]]  # (other messages hold random hex ids)
    assert bad_get["error"] == "ValueError" and bad_get["proc"] == "driver"
    assert bad_get["phase"] is None, "a call refused before it began opens no phase"
    assert bad_get["code"] == "raysim.get(43)"
    assert bad_get["site"].startswith("test_bad_input.py:")
    bad_put = of(events, "api.rejected", api="put")[-1]
    assert bad_put["error"] == "TypeError" and "attribute .lock" in bad_put["message"]
    put_phase = [e for e in of(events, "phase.begin", api="put")][-1]
    assert bad_put["phase"] == put_phase["phase"], "refused halfway: in the put's phase"
    assert bad_put["code"] == "raysim.put(Holder())", "the user's line, not the with block's"
    bad_call = of(events, "api.rejected", api="RemoteFunction.remote")[-1]
    assert "missing a required argument: 'b'" in bad_call["message"]
    works()


# --------------------------------------------------------------------------------------------
# Before init and after shutdown (a process of its own)

_LIFECYCLE = textwrap.dedent("""
    import json, os
    import raysim

    @raysim.remote
    def echo(x):
        return x

    @raysim.remote
    class Counter:
        def incr(self):
            return 1

    out = {}

    def attempt(label, call):
        try:
            out[label] = ["ok", repr(call())]
        except Exception as e:
            out[label] = [type(e).__name__, str(e)]

    os.environ["RAYSIM_ENABLE_AUTO_CONNECT"] = "0"
    attempt("put_without_auto_init", lambda: raysim.put(1))
    del os.environ["RAYSIM_ENABLE_AUTO_CONNECT"]
    attempt("cluster_resources_before_init", raysim.cluster_resources)
    attempt("put_auto_inits", lambda: raysim.get(raysim.put(5)))
    ref = echo.remote(1)
    counter = Counter.remote()
    attempt("before_shutdown", lambda: raysim.get([ref, counter.incr.remote()]))
    raysim.shutdown()
    attempt("get_after_shutdown", lambda: raysim.get(ref))
    attempt("method_after_shutdown", lambda: counter.incr.remote())
    attempt("kill_after_shutdown", lambda: raysim.kill(counter))
    attempt("timeline_after_shutdown", raysim.timeline)
    attempt("remote_auto_inits_again", lambda: raysim.get(echo.remote(2)))
    attempt("old_ref_as_argument", lambda: echo.remote(ref))
    attempt("old_ref_in_a_get_list", lambda: raysim.get([echo.remote(3), ref]))
    attempt("still_works", lambda: raysim.get(echo.remote(4)))
    raysim.shutdown()
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def lifecycle():
    run = subprocess.run([sys.executable, "-c", _LIFECYCLE], capture_output=True, text=True,
                         env=dict(os.environ), timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1]), run.stderr


def test_before_init_put_starts_a_session_as_ray_does(lifecycle):
    out, stderr = lifecycle
    assert out["put_auto_inits"] == ["ok", "5"]
    assert ("raysim: raysim.put() started a session with raysim.init()'s defaults, as Ray "
            "does when none is running. Tip: call raysim.init() first") in stderr
    assert out["before_shutdown"] == ["ok", "[1, 1]"]


def test_before_init_without_auto_init_the_error_says_call_init(lifecycle):
    out, _ = lifecycle
    assert out["put_without_auto_init"] == [
        "RaySimNotInitializedError",
        "raysim.put() needs a running raysim session, and none is running (raysim.init() was "
        "not called, or raysim.shutdown() was). Tip: call raysim.init() first (or run the "
        "script with `raysim trace script.py`)."]
    kind, message = out["cluster_resources_before_init"]
    assert kind == "RaySimNotInitializedError", "Ray does not auto-init here either"
    assert message.startswith("raysim.cluster_resources() needs a running raysim session")
    assert out["timeline_after_shutdown"][0] == "RaySimNotInitializedError"


def test_refs_and_handles_of_a_shut_down_session_are_refused(lifecycle):
    out, _ = lifecycle
    kind, message = out["get_after_shutdown"]
    assert kind == "ValueError"
    assert message.startswith("The ObjectRef passed to get() is ObjectRef(")
    assert message.endswith("from a raysim session that has been shut down; its object ended "
                            "with that session. Tip: put the value or submit the task again "
                            "in the current session.")
    kind, message = out["method_after_shutdown"]
    assert kind == "ValueError"
    assert message.startswith("The actor handle of Counter.incr.remote() is Actor(Counter, ")
    assert message.endswith("Tip: create the actor again in the current session.")
    kind, message = out["kill_after_shutdown"]
    assert kind == "ValueError" and "The actor handle passed to kill()" in message
    assert out["old_ref_as_argument"][0] == "ValueError"
    assert out["old_ref_as_argument"][1].startswith("Argument 1 of echo.remote() is ObjectRef(")
    assert out["old_ref_in_a_get_list"][0] == "ValueError"
    assert out["old_ref_in_a_get_list"][1].startswith("Element [1] of the list is ObjectRef(")


def test_after_shutdown_remote_starts_a_new_session_that_works(lifecycle):
    out, _ = lifecycle
    assert out["remote_auto_inits_again"] == ["ok", "2"]
    assert out["still_works"] == ["ok", "4"]
