"""The simulated cluster: nodes with CPUs and stores, NICs shared by transfers, and the
recorded program replayed on them, in SimPy.

What runs, and what it costs:

* the **driver** replays its calls (``workload.py``): its own time between calls, then each
  call: a ``put`` writes an object into its node's store, a ``remote`` submits a task, a
  ``get`` waits for its objects (pulling those held elsewhere to its node) and reads them;
* a **task** is placed (``placement``, below), waits for its arguments to exist, pulls the
  ones its node lacks, takes its resources (and a worker: an idle one, or a new one that
  takes the recorded start time), runs for its recorded dispatch, execution and finish
  costs, and puts its results in its node's store (or sends them inline to its owner);
* an **actor** is placed like a task, holds 1 CPU while its constructor runs and nothing
  after, and runs its calls one at a time in the order they were sent;
* a **pull** is the runtime's (``runtime/raylet/object_manager.py``): a location lookup in
  the GCS (on the head node), a TCP connection and request (three one-way latencies), then
  the object streamed in chunks (the recorded config's chunk size) as flows on the holder's
  NIC out, the puller's NIC in and the puller's store (``network.py``: max-min fair
  sharing), one latency for the data's flight, each chunk's fixed cost, and the seal and
  registration of the secondary copy. Readers on one node share one pull;
* **control messages** cost what they cost in the measured run, between the same kinds of
  process (``Calibration.message_s``), plus one network latency when they cross nodes.

Placement, ``policy``: an actor call goes to its actor's node; a task that needs a custom
resource only some nodes have goes to one of those; a SPREAD task or actor takes the next
node in turn; any other runs on its submitter's node if it fits there now, else on the node
with the most CPUs free that it fits now (spillback, through the GCS), else waits on its
own node. ``recorded``: where it ran in the measured run (node *i* of the run on node
*i mod N*).

Runs in: the simulator. Emits, through ``output.Recorder``, the same events the runtime
does for the same steps, with simulated times.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools

import simpy

from raysim.sim.cluster import SimNode
from raysim.sim.config import Calibration, SimConfig
from raysim.sim.network import Link, Network
from raysim.sim.output import Recorder
from raysim.sim.workload import SimTask, Workload
from raysim.trace.schema import ACTOR_CREATION, ACTOR_TASK

_STANDARD = {"CPU", "GPU", "memory", "object_store_memory"}


@dataclasses.dataclass
class Transfer:
    """One simulated pull of an object from one node's store into another's."""

    obj: str
    from_node: str
    to_node: str
    size: int
    start_s: float
    end_s: float


@dataclasses.dataclass(eq=False, slots=True)
class Step:
    """One stretch of a critical path: what a task or object waited on from ``start`` to
    ``end`` (CPU, link, store, worker start, control plane, driver), after ``before``."""

    kind: str
    start: float
    end: float
    before: "Step | None"


def step(path: Step | None, kind: str, start: float, end: float) -> Step | None:
    return Step(kind, start, end, path) if end > start else path


@dataclasses.dataclass(eq=False)
class ObjectState:
    ready: simpy.Event
    size: int = 0
    inline: bool = False
    locations: list = dataclasses.field(default_factory=list)  # SimNodes, primary first
    ready_at: float = 0.0
    path: Step | None = None  # how it came to be ready, back from then


@dataclasses.dataclass(eq=False)
class ActorState:
    created: simpy.Event
    lane: simpy.Resource
    node: SimNode | None = None
    pid: int = 0
    path: Step | None = None  # its creation's critical path


class Model:
    def __init__(self, workload: Workload, config: SimConfig, calibration: Calibration,
                 recorder: Recorder) -> None:
        self.env = simpy.Environment()
        self.workload = workload
        self.config = config
        self.calibration = calibration
        self.out = recorder
        self.network = Network(self.env)
        self.chunk_size = config.chunk_size or workload.chunk_size
        self._pids = itertools.count(workload.header["pid"] + 100_000)
        self.nodes = self._make_nodes()
        self.head = self.nodes[0]
        self._recorded = {node_id: self.nodes[i % len(self.nodes)]
                          for i, node_id in enumerate(workload.nodes)}
        self._pair_links: dict[tuple[int, int], Link] = {
            pair: Link(f"link {pair[0]}-{pair[1]}", bps / 8)
            for pair, (bps, _) in config.links.items()}
        self.objects = {oid: ObjectState(self.env.event(), o.size, o.inline)
                        for oid, o in workload.objects.items()}
        self.actors: dict[str, ActorState] = {}
        self._pulls: dict[tuple[str, int], simpy.Event] = {}
        self._unplaced: collections.deque = collections.deque()  # (task, origin, event)
        self._spread = itertools.count()
        self.transfers: list[Transfer] = []
        self.call_starts: dict[int, float] = {}
        # What each driver call waited on, in seconds by kind (its critical path's steps).
        self.call_bounds: dict[int, dict[str, float]] = {}
        self.end_s = 0.0

    # -- the cluster -------------------------------------------------------------------------

    def _make_nodes(self) -> list[SimNode]:
        recorded = list(self.workload.nodes.values())
        count = self.config.nodes or len(recorded)
        nic = self.config.bandwidth_bps / 8
        ingress = (self.config.ingress_bps or self.config.bandwidth_bps) / 8
        store = self.calibration.store_write_Bps
        nodes = []
        for index in range(count):
            like = recorded[index % len(recorded)]
            resources = {k: float(v) for k, v in (like.get("resources") or {}).items()
                         if not k.startswith("node:")}
            if self.config.cpus_per_node is not None:
                resources["CPU"] = float(self.config.cpus_per_node)
            resources.setdefault("CPU", 1.0)
            node_id = (like["node_id"] if index < len(recorded)
                       else f"{0x5a000000 + index:08x}")
            node = SimNode(self.env, index, node_id, resources, nic, store, ingress)
            node.store_capacity = int(like.get("store_capacity") or 0)
            node.raylet_pid = next(self._pids)
            nodes.append(node)
        return nodes

    def latency(self, a: SimNode, b: SimNode) -> float:
        if a is b:
            return 0.0
        pair = (min(a.index, b.index), max(a.index, b.index))
        if pair in self.config.links:
            return self.config.links[pair][1]
        return self.config.latency_s

    def message(self, sender: str, receiver: str, a: SimNode, b: SimNode) -> float:
        """The cost of one control message from a process on ``a`` to one on ``b``."""
        return self.calibration.message(sender, receiver) + self.latency(a, b)

    # -- running -----------------------------------------------------------------------------

    def run(self) -> None:
        self.out.cluster(self.nodes)
        for node in self.nodes:
            for ready_s in self.workload.prestarted.get(node.node_id, ()):
                self.env.process(self._prestart(node, ready_s))
        self.env.process(self._driver())
        self.env.run()

    def _prestart(self, node: SimNode, ready_s: float):
        pid = next(self._pids)
        yield self.env.timeout(ready_s)
        node.idle_workers.append(pid)

    def _driver(self):
        driver = self.head
        for call in self.workload.calls:
            yield self.env.timeout(call.gap_s)
            self.call_starts[call.phase] = self.env.now
            self.out.phase_begin(self.env.now, call)
            began = self.env.now
            yield self.env.timeout(call.cost_s)
            bounds = {"store" if call.puts else "driver": call.cost_s}
            for obj in call.puts:
                self._stored(obj, driver, call.phase, owner="driver")
            for task_id in call.tasks:
                task = self.workload.tasks[task_id]
                self.out.task_submitted(self.env.now, task, driver, self.out.driver_pid)
                self.env.process(self._run_task(task, driver, "driver"))
            if call.reads:
                path = yield from self._wait_for(
                    [obj for obj, _, _ in call.reads if obj in self.objects], driver, None)
                for obj, read_s, event in call.reads:
                    yield self.env.timeout(read_s)
                    self.out.object_get(self.env.now - read_s, event, call.phase)
                path = step(path, "driver", self.env.now - sum(r for _, r, _ in call.reads),
                            self.env.now)
                bounds = _attribute(path, began, self.env.now)
            self.call_bounds[call.phase] = bounds
        yield self.env.timeout(self.workload.tail_s)
        self.end_s = self.env.now

    def _fetch(self, obj: str, node: SimNode) -> simpy.Event:
        """Fires once ``obj`` exists and, if it lives in a store, once ``node`` has a copy."""
        state = self.objects[obj]
        done = self.env.event()

        def when_ready(_):
            if state.inline or node in state.locations:
                done.succeed()
            else:
                self.pull(obj, node).callbacks.append(lambda _: done.succeed())
        state.ready.callbacks.append(when_ready) if not state.ready.triggered \
            else when_ready(None)
        return done

    # -- tasks -------------------------------------------------------------------------------

    def _run_task(self, task: SimTask, origin: SimNode, submitter_kind: str):
        env = self.env
        path = yield from self._control(None, self.calibration.message(submitter_kind,
                                                                       "raylet"))
        if task.kind == ACTOR_TASK:
            yield from self._run_call(task, origin, path)
            return
        node, reason = self.place(task, origin)
        if node is None:  # no node has room now: wait for the first that does
            waiting = self.env.event()
            self._unplaced.append((task, origin, waiting))
            began = env.now
            node, reason = yield waiting
            path = step(path, "CPU", began, env.now)
        request = dict(task.resources)
        if node is not origin:
            self.out.decision(env.now, task, origin, "forwarded", request, reason)
            path = yield from self._control(path, self.message("raylet", "gcs", origin,
                                                               self.head)
                                            + self.message("gcs", "raylet", self.head, node))
            self.out.task_placed(env.now, task, origin, node, reason, self.head)
        path = yield from self._arguments(task, node, path)
        began = env.now
        yield node.acquire(request)
        node.promise(request, -1)
        path = step(path, "CPU", began, env.now)  # waiting for a CPU
        if task.kind == ACTOR_CREATION:
            actor = self._actor(task.actor)
            actor.node, actor.pid = node, next(self._pids)
            self.out.decision(env.now, task, node, "start_actor_worker", request, None)
            pid = actor.pid
        else:
            if node.idle_workers:
                pid = node.idle_workers.pop()
            else:
                pid = next(self._pids)
                began = env.now
                yield env.timeout(self.workload.worker_start_s)
                path = step(path, "worker start", began, env.now)
            self.out.decision(env.now, task, node, "dispatch", request, None)
        path = yield from self._execute(task, node, pid, origin, path)
        node.release(request)
        self._place_waiting()
        if task.kind == ACTOR_CREATION:
            self.out.task_finished(env.now, task, node)
            self._actor(task.actor).path = path
            self._actor(task.actor).created.succeed()
        else:
            node.idle_workers.append(pid)
            self.out.task_finished(env.now, task, node)

    def _run_call(self, task: SimTask, origin: SimNode, path: Step | None):
        """An actor method call: to the actor's node (through the GCS if that is another
        node), then one at a time on the actor's worker, in the order calls were sent."""
        env = self.env
        actor = self._actor(task.actor)
        lane = actor.lane.request()  # asked now: its place in the actor's order
        if not actor.created.triggered:
            yield actor.created
            path = actor.path  # it waited for the actor's creation
        node = actor.node
        if node is not origin:
            path = yield from self._control(path, self.message("raylet", "gcs", origin,
                                                               self.head)
                                            + self.message("gcs", "raylet", self.head, node))
        path = yield from self._arguments(task, node, path)
        began = env.now
        yield lane
        path = step(path, "CPU", began, env.now)  # the actor's earlier calls
        path = yield from self._control(path, self.calibration.message("raylet", "worker"))
        self.out.actor_lookup(env.now, task, node, actor.pid)
        yield from self._execute(task, node, actor.pid, origin, path)
        actor.lane.release(lane)

    def _control(self, path: Step | None, cost: float):
        """Control messages and dispatch: a step of the critical path."""
        began = self.env.now
        yield self.env.timeout(cost)
        return step(path, "control plane", began, self.env.now)

    def _actor(self, actor_id: str) -> ActorState:
        if actor_id not in self.actors:
            self.actors[actor_id] = ActorState(self.env.event(), simpy.Resource(self.env, 1))
        return self.actors[actor_id]

    def _arguments(self, task: SimTask, node: SimNode, path: Step | None):
        deps = [o for o in task.deps if o in self.objects]
        if deps and not all(self.objects[o].ready.triggered for o in deps):
            self.out.decision(self.env.now, task, node, "waiting_for_dependencies",
                              task.resources, None)
        if not deps:
            return path
        return (yield from self._wait_for(deps, node, path))

    def _wait_for(self, objects: list[str], node: SimNode, path: Step | None):
        """Wait until every object exists and ``node`` holds those in stores; the critical
        path then runs through the last one to be ready, and the pulls after it."""
        began = self.env.now
        yield self.env.all_of([self._fetch(o, node) for o in objects])
        if not objects:
            return path
        last = max((self.objects[o] for o in objects), key=lambda st: st.ready_at)
        if last.ready_at > began:
            path = last.path
            began = last.ready_at
        return step(path, "link", began, self.env.now)  # pulls (and their lookups)

    def _execute(self, task: SimTask, node: SimNode, pid: int, origin: SimNode,
                 path: Step | None):
        env = self.env
        began = env.now
        yield env.timeout(task.dispatch_s)
        # An actor's creation waits mostly for its own worker to start.
        path = step(path, "worker start" if task.kind == ACTOR_CREATION else "control plane",
                    began, env.now)
        started = env.now
        self.out.task_execute(started, task, node, pid)
        for child in self.workload.children.get(task.task_id, ()):
            env.process(self._child(self.workload.tasks[child], node, started))
        yield env.timeout(task.exec_s)
        path = step(path, "CPU", started, env.now)
        yield env.timeout(task.finish_s)
        path = step(path, "store", env.now - task.finish_s, env.now)  # results stored
        for obj in task.returns:
            state = self.objects.get(obj)
            if state is None:
                continue
            if state.inline:
                env.process(self._send_inline(obj, node, origin, task, path))
            else:
                self._stored(obj, node, task.phase, owner=task.submitter, path=path)
        return path

    def _child(self, task: SimTask, node: SimNode, parent_start: float):
        yield self.env.timeout(max(0.0, parent_start + task.offset_s - self.env.now))
        self.out.task_submitted(self.env.now, task, node, None)
        yield from self._run_task(task, node, "worker")

    def _send_inline(self, obj: str, node: SimNode, owner: SimNode, task: SimTask,
                     path: Step | None):
        state = self.objects[obj]
        cost = self.message("worker", "driver", node, owner)
        if node is not owner:
            cost += state.size / (self.config.bandwidth_bps / 8)
        state.path = yield from self._control(path, cost)
        self.out.inlined(self.env.now - cost, obj, state.size, node, task)
        state.ready_at = self.env.now
        state.ready.succeed()

    def _stored(self, obj: str, node: SimNode, phase, owner: str,
                path: Step | None = None) -> None:
        state = self.objects[obj]
        state.locations.append(node)
        self.out.stored(self.env.now, obj, state.size, node, phase, owner, self.head)
        if not state.ready.triggered:
            state.path, state.ready_at = path, self.env.now
            state.ready.succeed()

    # -- placement ---------------------------------------------------------------------------

    def place(self, task: SimTask, origin: SimNode) -> tuple[SimNode | None, str]:
        """The node ``task`` goes to, and why; None if it should wait for room. The node
        counts it as promised until it runs."""
        node, reason = self._choose(task, origin)
        if node is not None:
            node.promise(task.resources)
        return node, reason

    def _place_waiting(self) -> None:
        """Room was freed: the tasks waiting for room, in order, go where it is."""
        while self._unplaced:
            task, origin, waiting = self._unplaced[0]
            fitting = [n for n in self.nodes if n.free_for(task.resources)]
            if not fitting:
                return
            self._unplaced.popleft()
            node = origin if origin in fitting else max(fitting, key=SimNode.free_cpus)
            node.promise(task.resources)
            waiting.succeed((node, "the first node with room" if node is not origin
                             else "local, once a CPU was free"))

    def _choose(self, task: SimTask, origin: SimNode) -> tuple[SimNode | None, str]:
        request = task.resources
        if self.config.placement == "recorded" and task.node in self._recorded:
            node = self._recorded[task.node]
            return node, "recorded placement"
        feasible = [n for n in self.nodes if n.feasible(request)]
        if not feasible:
            return origin, "no node can run it"
        custom = {k for k in request if k not in _STANDARD}
        if custom and not origin.feasible(request):
            best = max(feasible, key=SimNode.free_cpus)
            return best, f"only some nodes have {sorted(custom)}"
        if task.spread:
            return feasible[next(self._spread) % len(feasible)], "SPREAD: the next node in turn"
        if origin.free_for(request):
            return origin, "local"
        fitting = [n for n in feasible if n.free_for(request)]
        if fitting:
            best = max(fitting, key=SimNode.free_cpus)
            return best, f"{origin.node_id} is full: spillback"
        return None, "every node is full"

    # -- pulls -------------------------------------------------------------------------------

    def pull(self, obj: str, node: SimNode) -> simpy.Event:
        """Fires once ``node`` holds a copy of ``obj``; one pull per object and node."""
        key = (obj, node.index)
        if key not in self._pulls:
            done = self.env.event()
            self._pulls[key] = done
            self.env.process(self._pull(obj, node, done))
        return self._pulls[key]

    def _links(self, source: SimNode, node: SimNode) -> tuple[Link, ...]:
        links = (source.nic_out, node.nic_in, node.store)
        pair = (min(source.index, node.index), max(source.index, node.index))
        if pair in self._pair_links:
            links += (self._pair_links[pair],)
        return links

    def _pull(self, obj: str, node: SimNode, done: simpy.Event):
        env = self.env
        state = self.objects[obj]
        # The location lookup: this node's raylet asks the GCS, on the head node.
        yield env.timeout(self.message("raylet", "gcs", node, self.head) +
                          self.message("gcs", "raylet", self.head, node))
        source = state.locations[0]
        self.out.located(env.now, obj, node, state.locations, self.head)
        self.out.pull_started(env.now, obj, source, node, state.size)
        began = env.now  # a transfer's time, as object_manager.pulled's dur counts it
        latency = self.latency(source, node)
        yield env.timeout(4 * latency)  # connect (a round trip), request, the first byte
        links = self._links(source, node)
        for index, start in enumerate(range(0, max(state.size, 1), self.chunk_size)):
            size = min(self.chunk_size, state.size - start)
            chunk_began = env.now
            yield self.network.transfer(size, links)
            yield env.timeout(self.calibration.chunk_overhead_s)
            self.out.chunk(chunk_began, env.now, obj, source, node, index, size)
        self.transfers.append(Transfer(obj, source.node_id, node.node_id, state.size, began,
                                       env.now))
        self.out.pulled(env.now, obj, source, node, state.size, env.now - began)
        state.locations.append(node)
        self.out.stored(env.now, obj, state.size, node, None, f"node:{source.node_id}",
                        self.head, primary=False)
        done.succeed()


def _attribute(path: Step | None, start: float, end: float) -> dict[str, float]:
    """Seconds of [start, end) each kind of step of a critical path took."""
    spent: dict[str, float] = collections.defaultdict(float)
    while path is not None and path.end > start:
        spent[path.kind] += max(0.0, min(path.end, end) - max(path.start, start))
        path = path.before
    return dict(spent)
