"""``ActorPool``: spread calls over a fixed set of actors, as ``ray.util.ActorPool`` does.

A pool hands each submitted value to an idle actor (``fn(actor, value)`` returns the call's
ObjectRef); when none is idle the value waits in the pool, and goes to the first actor whose
call finishes. Results come back in submission order (``get_next``, ``map``) or as they finish
(``get_next_unordered``, ``map_unordered``). It is plain Python over ``.remote()``,
``raysim.wait`` and ``raysim.get``, so every call it makes is in the trace like any other.
Beyond the founding document, which calls its three actors by hand (phase 4); a pool does
the same for any number of values.

Runs in: the driver, or any task or actor that holds the actors' handles.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import raysim


class ActorPool:
    """A fixed pool of actors.

    >>> pool = ActorPool([Doubler.remote(), Doubler.remote()])
    >>> list(pool.map(lambda actor, v: actor.double.remote(v), [1, 2, 3, 4]))
    [2, 4, 6, 8]
    """

    def __init__(self, actors: list) -> None:
        self._idle = list(actors)
        # A call's result: its ObjectRef, or a tuple of them for a method of several returns.
        self._busy: dict[Any, tuple[int, Any]] = {}  # result -> (index, actor)
        self._by_index: dict[int, Any] = {}  # submission index -> result, until returned
        self._next_index = 0         # the index the next submit gets
        self._next_return = 0        # the index get_next returns next
        # Submitted while no actor was idle (Ray's name: its tests read it).
        self._pending_submits: list[tuple[Callable, Any]] = []

    def map(self, fn: Callable[[Any, Any], Any], values) -> Iterator[Any]:
        """Apply ``fn(actor, value)`` over ``values`` on the pool's actors; an iterator of the
        results in the order of ``values``. The calls start at once; iterate to get them.
        Results of earlier ``submit`` calls not yet returned are dropped first, as Ray's
        pool does."""
        self._drop_pending(self.get_next)
        for value in values:
            self.submit(fn, value)
        return self._drain(self.get_next)

    def map_unordered(self, fn: Callable[[Any, Any], Any], values) -> Iterator[Any]:
        """As ``map``, but the results come as they finish."""
        self._drop_pending(self.get_next_unordered)
        for value in values:
            self.submit(fn, value)
        return self._drain(self.get_next_unordered)

    def _drop_pending(self, next_result: Callable[..., Any]) -> None:
        """Take (or give up) every result still pending, without waiting for any."""
        while self.has_next():
            try:
                next_result(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass

    def _drain(self, next_result: Callable[[], Any]) -> Iterator[Any]:
        while self.has_next():
            yield next_result()

    def submit(self, fn: Callable[[Any, Any], Any], value: Any) -> None:
        """Run ``fn(actor, value)`` on an idle actor, or as soon as one is free. The actor
        is busy until the result that ``fn`` returns (an ObjectRef, or a list of them for a
        method with ``num_returns`` > 1) has been returned by ``get_next``."""
        if not self._idle:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle.pop()
        result = fn(actor, value)
        refs = result if isinstance(result, list) else [result]
        if not refs or not all(isinstance(r, raysim.ObjectRef) for r in refs):
            self._idle.append(actor)
            raise TypeError(
                f"ActorPool: fn(actor, value) must return the ObjectRef of an actor call (or "
                f"the list of them of a method with num_returns > 1), got "
                f"{type(result).__name__}. Tip: write e.g. lambda a, v: a.method.remote(v).")
        key = tuple(result) if isinstance(result, list) else result
        self._busy[key] = (self._next_index, actor)
        self._by_index[self._next_index] = result
        self._next_index += 1

    def has_next(self) -> bool:
        """Whether results are still to be returned."""
        return bool(self._by_index)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in submission order, waiting up to ``timeout`` seconds for it.
        Raises ``StopIteration`` when no result is pending and ``TimeoutError`` when the
        timeout passes; with ``ignore_if_timedout`` that result is then given up, and the
        next call returns the one after it."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return not in self._by_index:
            raise ValueError("It is not allowed to call get_next() after "
                             "get_next_unordered(): the results are out of order.")
        result = self._by_index[self._next_return]
        if timeout is not None and not self._ready([result], timeout):
            return self._timed_out(result, ignore_if_timedout)
        return self._take(result)

    def get_next_unordered(self, timeout: float | None = None,
                           ignore_if_timedout: bool = False) -> Any:
        """Whichever pending result is ready first, waiting up to ``timeout`` seconds.
        Raises as ``get_next``; with ``ignore_if_timedout``, the oldest pending result is
        given up."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        ready = self._ready(list(self._by_index.values()), timeout)
        if not ready:
            return self._timed_out(self._by_index[min(self._by_index)], ignore_if_timedout)
        return self._take(ready[0])

    def _ready(self, results: list, timeout: float | None) -> list:
        """The first of ``results`` ready within ``timeout`` (all of a result's refs)."""
        firsts = {(r[0] if isinstance(r, list) else r): r for r in results}
        ready, _ = raysim.wait(list(firsts), num_returns=1, timeout=timeout)
        if ready and isinstance(firsts[ready[0]], list):
            raysim.wait(firsts[ready[0]], num_returns=len(firsts[ready[0]]))
        return [firsts[r] for r in ready]

    def _timed_out(self, result: Any, ignore: bool) -> Any:
        if not ignore:
            raise TimeoutError("Timed out waiting for result")
        # Given up: its actor is counted idle again, though it may still be running it.
        self._return(self._forget(result))
        raise TimeoutError(f"Timed out waiting for result. The task {result} has been "
                           f"ignored.")

    def _take(self, result: Any) -> Any:
        """Get a result; its actor goes back to the pool, unless the call found it dead
        (Ray's pool drops a dead actor)."""
        actor = self._forget(result)
        alive = True
        try:
            return raysim.get(result)
        except raysim.exceptions.ActorDiedError:
            alive = False
            raise
        finally:
            self._return(actor, alive)

    def _forget(self, result: Any) -> Any:
        key = tuple(result) if isinstance(result, list) else result
        index, actor = self._busy.pop(key)
        del self._by_index[index]
        self._next_return = max(self._next_return, index + 1)
        return actor

    def _return(self, actor: Any, alive: bool = True) -> None:
        if alive:
            self._idle.append(actor)
        if self._pending_submits and self._idle:
            self.submit(*self._pending_submits.pop(0))

    def has_free(self) -> bool:
        """Whether an actor is idle and no submitted value waits for one."""
        return bool(self._idle) and not self._pending_submits

    def pop_idle(self) -> Any | None:
        """Take an idle actor out of the pool (None if none is free)."""
        return self._idle.pop() if self.has_free() else None

    def push(self, actor: Any) -> None:
        """Add an actor to the pool; it takes a waiting value at once if there is one."""
        if actor in self._idle or actor in [a for _, a in self._busy.values()]:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return(actor)
