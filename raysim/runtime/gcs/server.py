"""The Global Control Store: the cluster's metadata, in its own process.

Seed, phase 1: "Global Control Store (GCS): stores cluster metadata, object locations, and
actor registry". "GCS: Empty initially, will track all actors and objects."

Tables kept here (Ray's GCS keeps the first four; the object table is the founding document's,
see ``object_directory.py`` for how modern Ray differs):

    nodes    node id -> raylet pid, resources, store capacity, object manager address,
             alive (a cluster of several nodes: ``raysim.cluster_utils``)
    jobs     job id -> driver pid
    actors   the actor registry and state machine (``actor_table.py``)
    kv       the internal key-value store; pickled functions and classes are exported here
             by the driver and fetched by workers, as in Ray's function manager
    objects  locations, sizes and reference holders (``object_directory.py``)

Runs in: its own process, started by ``raysim.init()``. It listens on ``gcs.sock`` in the
session directory. It exits when the driver says so or when the driver's connection closes
(the driver died), so a SIGKILLed driver leaves no GCS behind.

When a worker dies the objects it owned are lost, and the raylets holding or waiting for them
are told (``objects_lost``), so that readers fail with ``OwnerDiedError`` instead of waiting.

With several nodes the GCS is also where they meet:

* a raylet waiting for an object its store lacks learns which node holds it
  (``objects_located``: the founding document's location lookup), and pulls it from there;
* a task or actor a raylet cannot place is forwarded here and given to a node that can
  (``placement.py``: the founding document's global scheduler); calls to an actor on
  another node than the caller's go through here to the actor's raylet, in order;
* when a node goes away, the objects whose only copy it held are lost (``NODE_DIED``; their
  owners may run their tasks again), and its actors' processes die: those whose
  ``max_restarts`` allows are created again on another node (the GCS keeps each actor's
  creation task for this, as Ray's GCS does), the others are DEAD; every caller is told.

Trace events: ``process.started``, ``node.registered``, ``node.removed``,
``job.registered``, ``gcs.task_placed``, ``gcs.object_located``, the ``gcs.*`` events of
the object directory and actor table, and every message.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import defaultdict
from typing import Callable

import orjson

from raysim.runtime.common import procutil
from raysim.runtime.common.actor_errors import death_error, interrupted_message, restarting_message
from raysim.runtime.common.protocol import EventLoop, LoopConnection
from raysim.runtime.gcs import actor_table
from raysim.runtime.gcs.actor_table import ActorEntry, ActorTable
from raysim.runtime.gcs.object_directory import ObjectDirectory
from raysim.runtime.gcs.placement import Placement
from raysim.trace import writer as trace
from raysim.trace.schema import ACTOR_HANDLE, ACTOR_TASK

# The holder of a detached actor's handle that the GCS itself keeps while the actor lives.
DETACHED_HOLDER = "gcs"


class GcsServer:
    def __init__(self, session_dir: str, node_id: str,
                 freed_remembered: int = 100_000) -> None:
        self.loop = EventLoop()
        self.session_dir = session_dir
        self.nodes: dict[str, dict] = {}
        self.node_conns: dict[str, LoopConnection] = {}
        self.jobs: dict[str, dict] = {}
        self.kv: dict[str, bytes] = {}
        self._kv_waiters: dict[str, list[tuple[LoopConnection, int]]] = defaultdict(list)
        self.actors = ActorTable()
        self.directory = ObjectDirectory(freed_remembered)
        self.placement = Placement()  # the global scheduler's choice of node
        # Which node's raylet hosts each actor, and calls held until it is known.
        self._actor_nodes: dict[str, str] = {}
        self._held_calls: dict[str, list] = {}
        # For each actor on another node than its callers', the last call (``seq``) of each
        # caller routed to it: what its death interrupted.
        self._last_routed: dict[str, dict[str, int]] = {}
        # In a cluster, each live actor's creation task and the resources it needs placed:
        # to restart it on another node when its node dies. Actors waiting for a node.
        self._creations: dict[str, tuple] = {}
        self._unplaced: list[str] = []
        self.driver_conn: LoopConnection | None = None
        self.stopping = False  # the driver is shutting the session down
        # Which node each worker runs on: when a node goes, its workers' objects die with
        # their owners (OwnerDiedError), as in Ray.
        self._worker_nodes: dict[str, str] = {}
        self._node_waiters: list[tuple[LoopConnection, int, set[str]]] = []
        self.handlers = self._handlers()
        self.path = os.path.join(session_dir, "gcs.sock")
        self.loop.listen(self.path, "?", self.on_message, self.on_close)

    # -- connection bookkeeping ------------------------------------------------------------

    def holder(self, conn: LoopConnection) -> str:
        return conn.peer_name

    def on_close(self, conn: LoopConnection) -> None:
        if conn is self.driver_conn:
            trace.emit("process.stopping", reason="driver disconnected")
            self.loop.stop()
        elif conn.peer_kind == "raylet" and self.node_conns.get(conn.peer_id) is conn:
            # A node went away (cluster.remove_node, or its raylet died): it is dead.
            del self.node_conns[conn.peer_id]
            self.nodes[conn.peer_id]["alive"] = False
            trace.emit("node.removed", node_id=conn.peer_id, raylet_pid=conn.peer_pid)
            if self.loop.running and not self.stopping:
                self._node_workers_died(conn.peer_id)
                self._ask_owners(self.directory.node_removed(conn.peer_id))
                self._tell_lost()
                self._node_actors_died(conn.peer_id)

    def _handlers(self) -> dict[str, Callable[[LoopConnection, int, dict], None]]:
        """Every message kind the GCS answers, and who answers it."""
        return {
            # joining: drivers, workers, raylets
            "register_client": self.handle_register_client,
            "register_driver": self.handle_register_driver,
            "register_node": self.handle_register_node,
            "wait_for_nodes": self.handle_wait_for_nodes,
            # the key-value store (exported functions and classes)
            "kv_put": self.handle_kv_put,
            "kv_get": self.handle_kv_get,
            # the object directory: locations and reference counts (object_directory.py)
            "add_object": self.handle_add_object,
            "add_ref": self.handle_add_ref,
            "borrow_ref": self.handle_borrow_ref,
            "remove_ref": self.handle_remove_ref,
            "watch_objects": self.handle_watch_objects,
            "remove_location": self.handle_remove_location,
            "reconstruct_objects": self.handle_reconstruct_objects,
            # tasks a node cannot place (placement.py: the global scheduler)
            "forward_task": self.handle_forward_task,
            # the actor table (actor_table.py)
            "register_actor": self.handle_register_actor,
            "actor_update": self.handle_actor_update,
            "get_actor": self.handle_get_actor,
            "kill_actor": self.handle_kill_actor,
            "worker_exited": self.handle_worker_exited,
            # from the driver
            "sync": self.handle_sync,
            "session_stopping": self.handle_session_stopping,
            "snapshot": self.handle_snapshot,
            "shutdown": self.handle_shutdown,
        }

    def on_message(self, conn: LoopConnection, kind: str, msg_id: int, phase, body: dict) -> None:
        handler = self.handlers.get(kind)
        if handler is None:
            raise RuntimeError(f"GCS got unknown message {kind!r}")
        handler(conn, msg_id, body)
        self._tell_lost()

    # -- registration ----------------------------------------------------------------------

    def handle_register_client(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        conn.peer_kind = body["role"]
        conn.peer_id = body["wid"]
        if body.get("node"):
            self._worker_nodes[body["wid"]] = body["node"]
        conn.reply(msg_id, {})

    def handle_register_driver(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        conn.peer_kind, conn.peer_id = "driver", body["wid"]
        self.driver_conn = conn
        self.jobs[body["job"]] = {"driver_pid": conn.peer_pid, "wid": body["wid"]}
        trace.emit("job.registered", job=body["job"], driver_pid=conn.peer_pid, wid=body["wid"])
        conn.reply(msg_id, {})

    def handle_register_node(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        node = body["node_id"]
        conn.peer_kind, conn.peer_id = "raylet", node
        self.nodes[node] = {"raylet_pid": conn.peer_pid, "resources": body["resources"],
                            "store_capacity": body["store_capacity"], "alive": True,
                            "object_manager": body.get("object_manager")}
        self.node_conns[node] = conn
        trace.emit("node.registered", node_id=node, raylet_pid=conn.peer_pid,
                   resources=body["resources"], store_capacity=body["store_capacity"],
                   object_manager=body.get("object_manager"))
        conn.reply(msg_id, {})
        self._answer_node_waiters()
        unplaced, self._unplaced = self._unplaced, []
        for actor_id in unplaced:  # actors waiting for a node that can host their restart
            if self.actors.actors[actor_id].state == actor_table.RESTARTING:
                self._restart_elsewhere(actor_id, None)

    def handle_wait_for_nodes(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """Answered once every node named has registered (now, if they all have)."""
        self._node_waiters.append((conn, msg_id, set(body["nodes"])))
        self._answer_node_waiters()

    def _answer_node_waiters(self) -> None:
        alive = {n for n, info in self.nodes.items() if info["alive"]}
        waiting = []
        for conn, msg_id, nodes in self._node_waiters:
            if nodes <= alive:
                conn.reply(msg_id, {})
            else:
                waiting.append((conn, msg_id, nodes))
        self._node_waiters = waiting

    # -- functions and classes (internal KV) -------------------------------------------------

    def handle_kv_put(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        key = body["key"]
        self.kv[key] = body["value"]
        conn.reply(msg_id, {})
        for waiter, request in self._kv_waiters.pop(key, ()):
            waiter.reply(request, {"value": body["value"]})

    def handle_kv_get(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        value = self.kv.get(body["key"])
        if value is None:
            self._kv_waiters[body["key"]].append((conn, msg_id))
        else:
            conn.reply(msg_id, {"value": value})

    # -- objects and references ------------------------------------------------------------

    def handle_add_object(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        object_id = body["object_id"]
        watchers = self.directory.watching(object_id) - {conn.peer_id}
        self._free(self.directory.add_object(
            object_id, conn.peer_id, body["size"], body["owner"], body.get("contained", ())))
        for node in watchers:  # raylets of other nodes waiting for it: pull it from here
            self._tell_located(node, [object_id])

    def handle_add_ref(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        holder = body.get("holder") or self.holder(conn)
        owner = body.get("owner", False)
        for object_id in body["objects"]:
            self.directory.add_ref(object_id, holder, body["ref_type"], owner)

    def handle_borrow_ref(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        self.handle_add_ref(conn, msg_id, body)
        conn.reply(msg_id, {})

    def handle_remove_ref(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        holder = body.get("holder") or self.holder(conn)
        owner = body.get("owner", False)
        freed = []
        for object_id in body["objects"]:
            freed += self.directory.remove_ref(object_id, holder, owner)
        self._free(freed)

    def handle_watch_objects(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """A raylet waits for objects its store lacks: answer at once for those that can never
        arrive; the others are answered if they are lost later (_tell_lost)."""
        lost, elsewhere = {}, []
        for object_id in body["objects"]:
            why = self.directory.watch(object_id, conn.peer_id)
            if why is not None:
                lost[object_id] = why.to_wire()
            elif self.directory.locations(object_id) - {conn.peer_id}:
                elsewhere.append(object_id)
        if lost:
            conn.send("objects_lost", {"objects": lost})
        if elsewhere:
            self._tell_located(conn.peer_id, elsewhere)

    def handle_reconstruct_objects(self, conn: LoopConnection, msg_id: int,
                                   body: dict) -> None:
        """An owner runs again the task of objects lost with a node: they are not lost. Those
        it cannot make again (``lost``) are, and their readers are told."""
        for object_id in body["objects"]:
            self.directory.recovering(object_id)
        for object_id in body.get("lost", ()):
            self.directory.unrecoverable(object_id)

    def _ask_owners(self, asks: list[tuple[str, str]]) -> None:
        """Objects lost with a node: each owner is asked to make its own again (Ray's
        owners recover them as soon as they hear the node died). An owner that is gone
        cannot: they are lost."""
        by_owner: dict[str, list[str]] = defaultdict(list)
        for owner, object_id in asks:
            by_owner[owner.partition(":")[2]].append(object_id)
        for wid, object_ids in by_owner.items():
            conn = next((c for c in self.loop.connections if c.peer_id == wid and
                         c.peer_kind in ("driver", "worker") and not c.closed), None)
            if conn is not None:
                conn.send("recover_objects", {"objects": object_ids})
                continue
            for object_id in object_ids:
                self.directory.unrecoverable(object_id)

    def handle_remove_location(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """A node evicted its secondary copy of an object: it is there no more."""
        self.directory.remove_location(body["object_id"], conn.peer_id)

    def _tell_located(self, node: str, object_ids: list[str]) -> None:
        """Tell a node's raylet where objects it waits for are (seed phase 5: the location
        lookup): the node to pull each from, its object manager's address, size, owner."""
        conn = self.node_conns.get(node)
        if conn is None:
            return
        located = {}
        for object_id in object_ids:
            entry = self.directory.objects.get(object_id)
            if entry is None or not entry.registered:
                continue
            # The primary copy first, then any other alive node that has one.
            sources = sorted(entry.locations - {node}, key=lambda n: n != entry.primary)
            sources = [n for n in sources if self.nodes.get(n, {}).get("alive")]
            if not sources:
                continue
            trace.emit("gcs.object_located", obj=object_id, for_node=node,
                       locations=sorted(entry.locations))
            source = sources[0]
            located[object_id] = {"node": source, "size": entry.size, "owner": entry.owner,
                                  "address": self.nodes[source]["object_manager"]}
        if located:
            conn.send("objects_located", {"objects": located})

    def handle_forward_task(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """A raylet cannot run a task (placement.py): another node's raylet gets it, or, if
        no node can run it, the raylet that sent it keeps it (as infeasible)."""
        spec = body["spec"]
        if spec.kind == ACTOR_TASK:
            self._route_call(conn, spec)
            return
        node, why = self.placement.choose(self.nodes, body["resources"], spec.strategy,
                                          conn.peer_id)
        trace.emit("gcs.task_placed", phase=spec.phase, task=spec.task_id,
                   from_node=conn.peer_id, to_node=node, reason=why)
        target = self.node_conns.get(node) if node is not None else None
        body = {"spec": spec, "task_id": spec.task_id, "placed": True}
        strategy = spec.strategy
        if target is None and isinstance(strategy, (list, tuple)) and not strategy[2]:
            # Hard node affinity to a node that is dead or could never run it: Ray fails
            # the task (TaskUnschedulableError) rather than keep it waiting.
            body["unschedulable"] = why
        (target or conn).send("submit_task", body, spec.phase)

    def _route_call(self, conn: LoopConnection, spec) -> None:
        """An actor call from a node the actor does not live on: to the actor's node's
        raylet, in the order calls came (held here while the actor is still being placed);
        back to the sender, to fail, if the actor is dead."""
        entry = self.actors.actors.get(spec.actor_id)
        node = self._actor_nodes.get(spec.actor_id)
        if entry is not None and entry.state == actor_table.DEAD or \
                node is not None and not self.nodes[node]["alive"]:
            reason = (entry.death_cause if entry is not None else None) or "The actor is dead."
            error = death_error(entry.cause if entry is not None else None)
            self._refuse_call(conn, spec, reason, error)
            return
        if node is None and entry is not None and entry.state == actor_table.RESTARTING \
                and not spec.max_retries:
            creation = self._creations.get(spec.actor_id)
            self._refuse_call(conn, spec, restarting_message(
                entry.class_name, spec.actor_id, entry.num_restarts,
                (creation[0].max_restarts or 0) if creation else 0), "ActorUnavailableError")
            return
        if node is None or self._held_calls.get(spec.actor_id):
            self._held_calls.setdefault(spec.actor_id, []).append((conn, spec))
            return
        self._last_routed.setdefault(spec.actor_id, {})[spec.owner] = spec.seq
        self.node_conns[node].send("submit_task", {"spec": spec, "task_id": spec.task_id,
                                                   "placed": True}, spec.phase)

    def _refuse_call(self, conn: LoopConnection, spec, reason: str, error: str) -> None:
        """Back to the caller's node, to fail there with ``error``."""
        conn.send("submit_task", {"spec": spec, "task_id": spec.task_id, "placed": True,
                                  "dead": reason, "error": error}, spec.phase)

    def _actor_placed(self, actor_id: str, node: str) -> None:
        """A raylet reported an actor it hosts: calls held for it go there now."""
        self._actor_nodes[actor_id] = node
        for conn, spec in self._held_calls.pop(actor_id, []):
            self._route_call(conn, spec)

    def handle_kill_actor(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """raysim.kill of an actor on another node than the caller's: to its raylet."""
        actor_id = body["actor_id"]
        node = self._actor_nodes.get(actor_id)
        target = self.node_conns.get(node) if node is not None else None
        if target is not None:
            target.send("kill_actor", body)
        elif actor_id in self._unplaced:  # restarting, with no node to host it yet
            self._unplaced.remove(actor_id)
            entry = self.actors.actors[actor_id]
            self._actor_dead(actor_id, (
                f"The actor {entry.class_name} ({actor_id}) was killed: "
                f"{body.get('reason', 'killed')}. Its pending and later calls fail. Tip: "
                f"create a new actor to go on."), "RAY_KILL", {})

    def _node_workers_died(self, node: str) -> None:
        """A node went away: its workers with it. The objects they owned are lost, whatever
        copies other nodes hold: as in Ray, an object dies with its owner (its metadata
        lived there), and readers get OwnerDiedError."""
        for wid in [w for w, n in self._worker_nodes.items() if n == node]:
            del self._worker_nodes[wid]
            self._free(self.directory.remove_holder(f"worker:{wid}"))
            self._free(self.directory.owner_died(
                wid, f"worker {wid}, died with its node ({node})"))

    def _node_actors_died(self, node: str) -> None:
        """A node went away: its actors' processes died with it. As in Ray, an actor that may
        restart (``max_restarts``) is created again on a node that can host it (or when one
        joins); the others are DEAD. Either way every driver and worker hears so
        (``actor_died``), with the last call of theirs routed to the dead node, so no call
        waits forever."""
        for actor_id, where in list(self._actor_nodes.items()):
            entry = self.actors.actors.get(actor_id)
            if where != node or entry is None or entry.state == actor_table.DEAD:
                continue
            del self._actor_nodes[actor_id]
            last_routed = self._last_routed.pop(actor_id, {})
            creation = self._creations.get(actor_id)
            max_restarts = (creation[0].max_restarts or 0) if creation else 0
            if max_restarts < 0 or entry.num_restarts < max_restarts:
                restarts = entry.num_restarts + 1
                message = interrupted_message(entry.class_name, actor_id,
                                              f"its node ({node}) went away",
                                              " on another node", restarts, max_restarts)
                self.actors.transition(actor_id, actor_table.RESTARTING,
                                       f"its node ({node}) went away", "NODE_DIED",
                                       num_restarts=restarts, node=None, wid=None, pid=None)
                self._tell_actor_died(actor_id, message, True, last_routed)
                self._restart_elsewhere(actor_id, node)
                continue
            restarts = (f"after {entry.num_restarts} restart(s), its max_restarts="
                        f"{max_restarts}" if max_restarts else "max_restarts is 0")
            message = (f"The actor {entry.class_name} ({actor_id}) died because its node "
                       f"({node}) died; it is not restarted ({restarts}). Tip: raise "
                       f"max_restarts on the actor to restart it on another node.")
            self._actor_dead(actor_id, message, "NODE_DIED", last_routed)

    def _restart_elsewhere(self, actor_id: str, dead_node: str | None) -> None:
        """Place a restarting actor's creation task again (placement.py), as Ray's GCS
        reschedules an actor whose node died. With no node that can host it, it waits (as
        in Ray) until one joins; with hard node affinity to a dead node it is DEAD."""
        spec, resources = self._creations[actor_id]
        entry = self.actors.actors[actor_id]
        node, why = self.placement.choose(self.nodes, resources, spec.strategy,
                                          dead_node or "")
        if dead_node is not None:
            why = f"restart {entry.num_restarts}: {dead_node} went away; {why}"
        trace.emit("gcs.task_placed", phase=spec.phase, task=spec.task_id,
                   from_node=dead_node, to_node=node, reason=why)
        if node is not None:
            self.node_conns[node].send("submit_task", {
                "spec": spec, "task_id": spec.task_id, "placed": True,
                "num_restarts": entry.num_restarts}, spec.phase)
        elif isinstance(spec.strategy, (list, tuple)) and not spec.strategy[2]:
            self._actor_dead(actor_id, (
                f"The node specified via NodeAffinitySchedulingStrategy doesn't exist any "
                f"more or is infeasible, and soft=False was specified ({why}), actor "
                f"{entry.class_name} ({actor_id}). Tip: pass soft=True to let it restart on "
                f"another node."), "ACTOR_UNSCHEDULABLE", {})
        else:
            self._unplaced.append(actor_id)

    def _actor_dead(self, actor_id: str, message: str, cause: str, last_routed: dict) -> None:
        self.actors.transition(actor_id, actor_table.DEAD, message, cause)
        self._creations.pop(actor_id, None)
        self._tell_actor_died(actor_id, message, False, last_routed, death_error(cause))
        for conn, spec in self._held_calls.pop(actor_id, []):
            self._route_call(conn, spec)  # back to their callers' nodes, to fail there

    def _tell_actor_died(self, actor_id: str, message: str, restarting: bool,
                         last_routed: dict, error: str = "ActorDiedError") -> None:
        for client in list(self.loop.connections):
            if client.peer_kind in ("driver", "worker") and not client.closed:
                client.send("actor_died", {"actor_id": actor_id, "message": message,
                                           "restarting": restarting,
                                           "last_pushed": last_routed, "error": error})

    def _tell_lost(self) -> None:
        """Tell the raylets concerned about objects lost while handling a message: those that
        hold them delete them, those waiting for them fail their readers."""
        by_node: dict[str, dict[str, dict]] = defaultdict(dict)
        for object_id, lost, nodes in self.directory.take_lost():
            for node in nodes:
                by_node[node][object_id] = lost.to_wire()
        for node, objects in by_node.items():
            conn = self.node_conns.get(node)
            if conn is not None:
                conn.send("objects_lost", {"objects": objects})

    def _free(self, freed: list[tuple[str, list[str]]]) -> None:
        by_node: dict[str, list[str]] = defaultdict(list)
        for object_id, nodes in freed:
            for node in nodes:
                by_node[node].append(object_id)
            actor_id = self.actors.by_handle_object.get(object_id)
            if actor_id is not None:
                self._actor_out_of_scope(actor_id)
        for node, object_ids in by_node.items():
            conn = self.node_conns.get(node)
            if conn is not None:
                conn.send("free_objects", {"objects": object_ids})

    # -- actors ------------------------------------------------------------------------------

    def handle_actor_update(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        actor_id = body["actor_id"]
        state = body["state"]
        if state == actor_table.DEPENDENCIES_UNREADY and actor_id not in self.actors.actors:
            self.actors.register(ActorEntry(
                actor_id, body["class_name"], body["handle_object"], body["owner"],
                name=body.get("name"), namespace=body.get("namespace"),
                descriptor=body.get("descriptor", {})))
            self._free(self.directory.add_handle_object(body["handle_object"], body["owner"]))
            if body.get("descriptor", {}).get("detached"):
                # Ray's GCS keeps a detached actor until it is killed: it holds a handle.
                self.directory.add_ref(body["handle_object"], DETACHED_HOLDER, ACTOR_HANDLE)
        entry = self.actors.actors.get(actor_id)
        if entry is not None and conn.peer_kind == "raylet":
            self._actor_placed(actor_id, conn.peer_id)
        if entry is None or entry.state == actor_table.DEAD:
            return  # unknown, or a late report about an actor already dead
        if "spec" in body:
            self._creations[actor_id] = (body["spec"], body["resources"])
        info = {k: body[k] for k in ("node", "wid", "pid", "num_restarts") if k in body}
        if entry.state == state and info.get("num_restarts", entry.num_restarts) == \
                entry.num_restarts:
            return  # nothing new (a named actor registered twice, say)
        self.actors.transition(actor_id, state, body.get("reason"), body.get("cause"), **info)
        if state == actor_table.DEAD:
            self._creations.pop(actor_id, None)
            self._last_routed.pop(actor_id, None)
        if state == actor_table.DEAD and entry.descriptor.get("detached"):
            self._free(self.directory.remove_ref(entry.handle_object, DETACHED_HOLDER))

    def handle_register_actor(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """A named actor: claim its name now, so a duplicate is refused at the call."""
        existing = self.actors.lookup_name(body["name"], body.get("namespace"))
        if existing is not None and existing.state != actor_table.DEAD:
            conn.reply(msg_id, {"ok": False, "descriptor": existing.descriptor})
            return
        self.handle_actor_update(conn, msg_id,
                                 dict(body, state=actor_table.DEPENDENCIES_UNREADY))
        conn.reply(msg_id, {"ok": True})

    def handle_get_actor(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        entry = self.actors.lookup_name(body["name"], body.get("namespace"))
        if entry is None or entry.state == actor_table.DEAD:
            conn.reply(msg_id, {"found": False})
        else:
            conn.reply(msg_id, {"found": True, "actor_id": entry.actor_id,
                                "descriptor": entry.descriptor})

    def _actor_out_of_scope(self, actor_id: str) -> None:
        entry = self.actors.actors.get(actor_id)
        if entry is None or entry.state == actor_table.DEAD:
            return
        node = self._actor_nodes.get(actor_id) or entry.node
        conn = self.node_conns.get(node) if node else None
        if conn is None and self.node_conns:
            conn = next(iter(self.node_conns.values()))
        if conn is not None:
            conn.send("kill_actor", {"actor_id": actor_id, "no_restart": True,
                                     "reason": "all handles out of scope", "graceful": True})

    def handle_worker_exited(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """A worker died: drop the references it held, and lose the objects it owned (as in
        Ray, an object dies with its owner). What its death means for its actor (restart or
        death) the raylet reports with actor_update."""
        wid = body["wid"]
        self._worker_nodes.pop(wid, None)
        self._free(self.directory.remove_holder(f"worker:{wid}"))
        self._free(self.directory.owner_died(wid, self._describe_worker(body)))

    def _describe_worker(self, body: dict) -> str:
        """A dead worker and its death, as a lost object's message tells them."""
        what = f"worker {body['wid']}"
        actor = self.actors.actors.get(body.get("actor_id") or "")
        if actor is not None:
            what = f"the actor {actor.class_name} ({actor.actor_id}) in {what}"
        return f"{what}, died: {body['cause']}" if body.get("cause") else f"{what}, died"

    # -- reporting and shutdown ---------------------------------------------------------------

    def handle_sync(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """Answered after everything this client sent before it has been handled."""
        conn.reply(msg_id, {})

    def handle_session_stopping(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        """Shutdown: the nodes about to go are being stopped, not lost."""
        self.stopping = True
        conn.reply(msg_id, {})

    def handle_snapshot(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        conn.reply(msg_id, self.snapshot())

    def snapshot(self) -> dict:
        return {"nodes": self.nodes, "jobs": self.jobs, "actors": self.actors.snapshot(),
                "objects": self.directory.snapshot(),
                "kv": {k: len(v) for k, v in self.kv.items()}}

    def handle_shutdown(self, conn: LoopConnection, msg_id: int, body: dict) -> None:
        trace.emit("process.stopping", reason="shutdown")
        conn.reply(msg_id, {})
        self.loop.stop()

    def run(self) -> None:
        try:
            self.loop.run()
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def main() -> None:
    args = orjson.loads(sys.argv[1])
    procutil.die_with_parent(signal.SIGTERM)
    procutil.exit_on_sigterm()
    trace.open_trace(args["trace_path"], "gcs", args["node_id"], args["trace_flush_events"])
    server = GcsServer(args["session_dir"], args["node_id"],
                       args.get("freed_objects_remembered", 100_000))
    trace.emit("process.started", ppid=os.getppid(), role="gcs")
    try:
        server.run()
    finally:
        trace.close_trace()
