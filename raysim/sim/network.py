"""Links shared by transfers: a fluid model with max-min fair sharing, in SimPy.

A transfer between two nodes is a *flow* of bytes over a *path* of links: the sender's NIC
out, the receiver's NIC in, and the receiver's store (its write bandwidth), plus the pair's
own link when one is given (``--link``). Each link has a capacity in bytes per second.

Sharing rule: **max-min fairness**, the rule SimGrid's default network model uses and the
one TCP flows converge to on a shared bottleneck. Rates are found by progressive filling:
every unfixed flow grows at the same pace until some link is full; the flows through that
link are fixed at its fair share; repeat with what capacity is left. So two equal transfers
on one link each get half of it and each take twice as long as one alone, and a flow held
back elsewhere leaves its unused share to the others.

Between two changes (a flow starts or ends) every rate is constant, so the model jumps from
change to change: after each one it recomputes the rates and sets one SimPy timeout for the
next flow to finish. Cost: O(flows x links) per change.

Latency is not a property of the flow's rate: the caller adds it (``Network.latency``) where
the protocol waits for it (a connection, a request, the first byte).

Runs in: the simulator (``raysim simulate``). Emits nothing itself; ``model.py`` records each
transfer's chunks.
"""

from __future__ import annotations

import dataclasses

import simpy

# Flows whose remaining bytes fall below this count as done (float rounding).
_EPSILON_BYTES = 1e-6


@dataclasses.dataclass(eq=False)
class Link:  # hashed by identity: a dict key of the sharing
    name: str
    capacity: float  # bytes per second
    bytes: float = 0.0  # bytes that crossed it


@dataclasses.dataclass(eq=False)
class Flow:
    size: float
    links: tuple[Link, ...]
    done: simpy.Event
    remaining: float = 0.0
    rate: float = 0.0  # bytes per second, while nothing changes


class Network:
    """Every link of the simulated cluster and the flows crossing them, grouped by path
    (flows over the same links always get the same rate)."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.paths: dict[tuple[Link, ...], list[Flow]] = {}
        self._last = 0.0  # when remaining bytes were last brought up to date
        self._generation = 0

    @property
    def flows(self) -> list[Flow]:
        return [flow for members in self.paths.values() for flow in members]

    def transfer(self, size: float, links: tuple[Link, ...]) -> simpy.Event:
        """An event that fires when ``size`` bytes have crossed ``links`` (fairly shared)."""
        done = self.env.event()
        if size <= 0:
            done.succeed()
            return done
        self._advance()
        self.paths.setdefault(tuple(links), []).append(
            Flow(size, tuple(links), done, remaining=float(size)))
        self._reschedule()
        return done

    # -- the fluid model ---------------------------------------------------------------------

    def _advance(self) -> None:
        """Bring every flow's remaining bytes and every link's byte count up to now."""
        elapsed = self.env.now - self._last
        self._last = self.env.now
        if elapsed <= 0:
            return
        for links, members in self.paths.items():
            moved = 0.0
            for flow in members:
                step = flow.rate * elapsed
                flow.remaining -= step
                moved += step
            for link in links:
                link.bytes += moved

    def _reschedule(self) -> None:
        """Finish the flows that are done, share the links again, and wake up when the next
        flow will finish."""
        next_end = float("inf")
        for links in list(self.paths):
            members = self.paths[links]
            if any(f.remaining <= _EPSILON_BYTES for f in members):
                for flow in members:
                    if flow.remaining <= _EPSILON_BYTES:
                        flow.done.succeed()
                members = [f for f in members if f.remaining > _EPSILON_BYTES]
                if members:
                    self.paths[links] = members
                else:
                    del self.paths[links]
        share_max_min(self.paths)
        self._generation += 1
        for members in self.paths.values():
            # Flows of one path share a rate: the one with the fewest bytes ends first.
            next_end = min(next_end, min(f.remaining for f in members) / members[0].rate)
        if next_end == float("inf"):
            return
        generation = self._generation
        self.env.timeout(next_end).callbacks.append(lambda _: self._on_wakeup(generation))

    def _on_wakeup(self, generation: int) -> None:
        if generation != self._generation:
            return  # a change since rescheduled it
        self._advance()
        for members in self.paths.values():  # the one(s) due now: done, whatever the rounding
            for flow in members:
                if flow.remaining <= flow.rate * 1e-12 + _EPSILON_BYTES:
                    flow.remaining = 0.0
        self._reschedule()


def share_max_min(paths: dict[tuple[Link, ...], list[Flow]]) -> None:
    """Set each flow's rate by progressive filling (max-min fairness).

    Every unfixed flow grows at the same pace until some link is full; the flows through it
    are fixed at its fair share; repeat with the capacity left. Flows over the same links get
    the same rate, so the filling runs over *paths* (a few, on a cluster of a few nodes),
    each weighing as many flows as take it: a thousand concurrent pulls between three nodes
    cost what six do."""
    left: dict[Link, float] = {}
    through: dict[Link, list[tuple[Link, ...]]] = {}
    for links in paths:
        for link in links:
            left.setdefault(link, link.capacity)
            through.setdefault(link, []).append(links)
    unfixed = set(paths)
    while unfixed:
        best, best_share = None, float("inf")
        for link, keys in through.items():
            count = sum(len(paths[k]) for k in keys if k in unfixed)
            if count:
                share = left[link] / count
                if share < best_share:
                    best, best_share = link, share
        if best is None or best_share == float("inf"):
            for key in unfixed:  # only unlimited links on their way: no bound at all
                for flow in paths[key]:
                    flow.rate = 1e18
            break
        for key in [k for k in through[best] if k in unfixed]:
            unfixed.discard(key)
            rate = max(best_share, 1e-9)
            for flow in paths[key]:
                flow.rate = rate
            for link in key:
                left[link] -= best_share * len(paths[key])
