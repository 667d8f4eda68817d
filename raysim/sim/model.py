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


@dataclasses.dataclass(eq=False)
class ObjectState:
    ready: simpy.Event
    size: int = 0
    inline: bool = False
    locations: list = dataclasses.field(default_factory=list)  # SimNodes, primary first


@dataclasses.dataclass(eq=False)
class ActorState:
    created: simpy.Event
    lane: simpy.Resource
    node: SimNode | None = None
    pid: int = 0


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
        self.end_s = 0.0

    # -- the cluster -------------------------------------------------------------------------

    def _make_nodes(self) -> list[SimNode]:
        recorded = list(self.workload.nodes.values())
        count = self.config.nodes or len(recorded)
        nic = self.config.bandwidth_bps / 8
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
            node = SimNode(self.env, index, node_id, resources, nic, store)
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
            if call.puts:
                self.out.interval("store", driver.store.name, self.env.now,
                                  self.env.now + call.cost_s)
            yield self.env.timeout(call.cost_s)
            if call.puts:
                for obj in call.puts:
                    self._stored(obj, driver, call.phase, owner="driver")
            for task_id in call.tasks:
                task = self.workload.tasks[task_id]
                self.out.task_submitted(self.env.now, task, driver, self.out.driver_pid)
                self.env.process(self._run_task(task, driver, "driver"))
            if call.reads:
                waits = [self._fetch(obj, driver) for obj, _, _ in call.reads
                         if obj in self.objects]
                yield self.env.all_of(waits)
                for obj, read_s, event in call.reads:
                    yield self.env.timeout(read_s)
                    self.out.object_get(self.env.now - read_s, event, call.phase)
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
        yield env.timeout(self.calibration.message(submitter_kind, "raylet"))
        if task.kind == ACTOR_TASK:
            yield from self._run_call(task, origin)
            return
        node, reason = self.place(task, origin)
        if node is None:  # no node has room now: wait for the first that does
            waiting = self.env.event()
            self._unplaced.append((task, origin, waiting))
            node, reason = yield waiting
        request = dict(task.resources)
        if node is not origin:
            self.out.decision(env.now, task, origin, "forwarded", request, reason)
            yield env.timeout(self.message("raylet", "gcs", origin, self.head) +
                              self.message("gcs", "raylet", self.head, node))
            self.out.task_placed(env.now, task, origin, node, reason, self.head)
        yield from self._arguments(task, node)
        yield node.acquire(request)
        node.promise(request, -1)
        if task.kind == ACTOR_CREATION:
            actor = self._actor(task.actor)
            actor.node, actor.pid = node, next(self._pids)
            self.out.decision(env.now, task, node, "start_actor_worker", request, None)
            # Its recorded dispatch cost is mostly its own worker's start.
            self.out.interval("worker start", node.node_id, env.now, env.now + task.dispatch_s)
            pid = actor.pid
        else:
            if node.idle_workers:
                pid = node.idle_workers.pop()
            else:
                pid = next(self._pids)
                start = env.now
                yield env.timeout(self.workload.worker_start_s)
                self.out.interval("worker start", node.node_id, start, env.now)
            self.out.decision(env.now, task, node, "dispatch", request, None)
        yield from self._execute(task, node, pid, origin)
        node.release(request)
        self._place_waiting()
        if task.kind == ACTOR_CREATION:
            self.out.task_finished(env.now, task, node)
            self._actor(task.actor).created.succeed()
        else:
            node.idle_workers.append(pid)
            self.out.task_finished(env.now, task, node)

    def _run_call(self, task: SimTask, origin: SimNode):
        """An actor method call: to the actor's node (through the GCS if that is another
        node), then one at a time on the actor's worker, in the order calls were sent."""
        env = self.env
        actor = self._actor(task.actor)
        lane = actor.lane.request()  # asked now: its place in the actor's order
        yield actor.created
        node = actor.node
        if node is not origin:
            yield env.timeout(self.message("raylet", "gcs", origin, self.head) +
                              self.message("gcs", "raylet", self.head, node))
        yield from self._arguments(task, node)
        yield lane
        yield env.timeout(self.calibration.message("raylet", "worker"))
        self.out.actor_lookup(env.now, task, node, actor.pid)
        yield from self._execute(task, node, actor.pid, origin)
        actor.lane.release(lane)

    def _actor(self, actor_id: str) -> ActorState:
        if actor_id not in self.actors:
            self.actors[actor_id] = ActorState(self.env.event(), simpy.Resource(self.env, 1))
        return self.actors[actor_id]

    def _arguments(self, task: SimTask, node: SimNode):
        deps = [o for o in task.deps if o in self.objects]
        if deps and not all(self.objects[o].ready.triggered for o in deps):
            self.out.decision(self.env.now, task, node, "waiting_for_dependencies",
                              task.resources, None)
        if deps:
            yield self.env.all_of([self._fetch(o, node) for o in deps])

    def _execute(self, task: SimTask, node: SimNode, pid: int, origin: SimNode):
        env = self.env
        yield env.timeout(task.dispatch_s)
        started = env.now
        self.out.task_execute(started, task, node, pid)
        for child in self.workload.children.get(task.task_id, ()):
            env.process(self._child(self.workload.tasks[child], node, started))
        cpus = task.resources.get("CPU", 0.0) if task.kind != ACTOR_TASK else 0.0
        self.out.interval("CPU", node.node_id, started, started + task.exec_s, cpus or 1.0)
        yield env.timeout(task.exec_s + task.finish_s)
        for obj in task.returns:
            state = self.objects.get(obj)
            if state is None:
                continue
            if state.inline:
                env.process(self._send_inline(obj, node, origin, task))
            else:
                self._stored(obj, node, task.phase, owner=task.submitter)

    def _child(self, task: SimTask, node: SimNode, parent_start: float):
        yield self.env.timeout(max(0.0, parent_start + task.offset_s - self.env.now))
        self.out.task_submitted(self.env.now, task, node, None)
        yield from self._run_task(task, node, "worker")

    def _send_inline(self, obj: str, node: SimNode, owner: SimNode, task: SimTask):
        state = self.objects[obj]
        cost = self.message("worker", "driver", node, owner)
        if node is not owner:
            cost += state.size / (self.config.bandwidth_bps / 8)
        yield self.env.timeout(cost)
        self.out.inlined(self.env.now - cost, obj, state.size, node, task)
        state.ready.succeed()

    def _stored(self, obj: str, node: SimNode, phase, owner: str) -> None:
        state = self.objects[obj]
        state.locations.append(node)
        self.out.stored(self.env.now, obj, state.size, node, phase, owner, self.head)
        if not state.ready.triggered:
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
        began = env.now
        # The location lookup: this node's raylet asks the GCS, on the head node.
        yield env.timeout(self.message("raylet", "gcs", node, self.head) +
                          self.message("gcs", "raylet", self.head, node))
        source = state.locations[0]
        self.out.located(env.now, obj, node, state.locations, self.head)
        self.out.pull_started(env.now, obj, source, node, state.size)
        latency = self.latency(source, node)
        yield env.timeout(4 * latency)  # connect (a round trip), request, the first byte
        links = self._links(source, node)
        for index, start in enumerate(range(0, max(state.size, 1), self.chunk_size)):
            size = min(self.chunk_size, state.size - start)
            chunk_began = env.now
            yield self.network.transfer(size, links)
            yield env.timeout(self.calibration.chunk_overhead_s)
            for link in links:
                self.out.interval("store" if link is node.store else "link", link.name,
                                  chunk_began, env.now)
            self.out.chunk(chunk_began, env.now, obj, source, node, index, size)
        self.transfers.append(Transfer(obj, source.node_id, node.node_id, state.size, began,
                                       env.now))
        self.out.pulled(env.now, obj, source, node, state.size, env.now - began)
        state.locations.append(node)
        self.out.stored(env.now, obj, state.size, node, None, f"node:{source.node_id}",
                        self.head, primary=False)
        done.succeed()
