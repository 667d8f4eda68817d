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
        self._busy: dict[Any, tuple[int, Any]] = {}  # ObjectRef -> (index, actor)
        self._by_index: dict[int, Any] = {}  # submission index -> ObjectRef, until returned
        self._next_index = 0         # the index the next submit gets
        self._next_return = 0        # the index get_next returns next
        self._waiting: list[tuple[Callable, Any]] = []  # submitted while no actor was idle

    def map(self, fn: Callable[[Any, Any], Any], values) -> Iterator[Any]:
        """Apply ``fn(actor, value)`` over ``values`` on the pool's actors; an iterator of the
        results in the order of ``values``. The calls start at once; iterate to get them."""
        for value in values:
            self.submit(fn, value)
        return self._drain(self.get_next)

    def map_unordered(self, fn: Callable[[Any, Any], Any], values) -> Iterator[Any]:
        """As ``map``, but the results come as they finish."""
        for value in values:
            self.submit(fn, value)
        return self._drain(self.get_next_unordered)

    def _drain(self, next_result: Callable[[], Any]) -> Iterator[Any]:
        while self.has_next():
            yield next_result()

    def submit(self, fn: Callable[[Any, Any], Any], value: Any) -> None:
        """Run ``fn(actor, value)`` on an idle actor, or as soon as one is free. The actor
        is busy until the ObjectRef that ``fn`` returns is ready."""
        if not self._idle:
            self._waiting.append((fn, value))
            return
        actor = self._idle.pop()
        ref = fn(actor, value)
        if not isinstance(ref, raysim.ObjectRef):
            self._idle.append(actor)
            raise TypeError(
                f"ActorPool: fn(actor, value) must return the ObjectRef of an actor call, got "
                f"{type(ref).__name__}. Tip: write e.g. lambda a, v: a.method.remote(v).")
        self._busy[ref] = (self._next_index, actor)
        self._by_index[self._next_index] = ref
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
        ref = self._by_index[self._next_return]
        if timeout is not None:
            ready, _ = raysim.wait([ref], timeout=timeout)
            if not ready:
                if ignore_if_timedout:
                    self._give_up(ref)
                raise TimeoutError("Timed out waiting for result")
        self._done(ref)
        return raysim.get(ref)

    def get_next_unordered(self, timeout: float | None = None,
                           ignore_if_timedout: bool = False) -> Any:
        """Whichever pending result is ready first, waiting up to ``timeout`` seconds.
        Raises as ``get_next``; with ``ignore_if_timedout``, the oldest pending result is
        given up."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        ready, _ = raysim.wait(list(self._busy), num_returns=1, timeout=timeout)
        if not ready:
            if ignore_if_timedout:
                self._give_up(self._by_index[min(self._by_index)])
            raise TimeoutError("Timed out waiting for result")
        ref = ready[0]
        self._done(ref)
        return raysim.get(ref)

    def _done(self, ref: Any) -> None:
        index, actor = self._busy.pop(ref)
        del self._by_index[index]
        self._next_return = max(self._next_return, index + 1)
        self._return(actor)

    def _give_up(self, ref: Any) -> None:
        """Stop waiting for a result: its actor stays busy with it, but is counted idle."""
        self._done(ref)

    def _return(self, actor: Any) -> None:
        self._idle.append(actor)
        if self._waiting:
            self.submit(*self._waiting.pop(0))

    def has_free(self) -> bool:
        """Whether an actor is idle and no submitted value waits for one."""
        return bool(self._idle) and not self._waiting

    def pop_idle(self) -> Any | None:
        """Take an idle actor out of the pool (None if none is free)."""
        return self._idle.pop() if self.has_free() else None

    def push(self, actor: Any) -> None:
        """Add an actor to the pool; it takes a waiting value at once if there is one."""
        if actor in self._idle or actor in [a for _, a in self._busy.values()]:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return(actor)
