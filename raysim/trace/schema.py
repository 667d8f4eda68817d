"""The trace format: every event kind and every wire message, versioned.

A raysim trace is a JSON-lines file. Each line is one event, a JSON object with the common
fields below plus the fields of its kind. The first line is a ``trace.header`` event carrying
``schema_version``. Readers accept traces whose major version they know and refuse newer
ones with a clear message; within a major version, event kinds, fields and messages are only
ever added (a minor version), never renamed, retyped or removed.

Versions:

    1.0  the runtime core: processes, messages, objects, references, tasks, actors
    1.1  gcs.actor_state gains handle_object and namespace, job.registered wid,
         object_store.create used
    1.2  faults and their recovery: worker.died, task.retry, task.cancelled, component.died,
         api.rejected; object spilling: object_store.evicted/spilled/restored/full;
         gcs.actor_state gains num_restarts and cause, task.finished error and reason;
         messages cancel_task, exit_worker, release_objects, revoke_leases,
         leases_returned
    1.3  lost objects: gcs.object_lost; messages watch_objects, objects_lost
    1.4  zygote.preloaded may appear more than once: one event for each stretch of imports
         (what workers need first, the driver's other modules later, between requests);
         owners' deaths: gcs.actor_state cause OWNER_DIED, worker.died exit_type
         INTENDED_SYSTEM_EXIT, task.finished error OwnerDiedError
    1.5  gcs.actor_state cause INTENDED_USER_EXIT: an actor that ended itself
    1.6  several nodes: node.registered object_manager, node.removed, gcs.location_removed,
         raylet.actor_lookup
         without wid (an actor on another node), gcs.object_located, gcs.task_placed, the
         object_manager.* events of transfers between nodes, scheduler.decision
         "forwarded"; messages wait_for_nodes, objects_located, forward_task,
         remove_location, reconstruct_objects; task.retry cause object_lost
    1.7  actors restarted on another node when theirs dies: gcs.actor_state cause NODE_DIED
         and ACTOR_UNSCHEDULABLE, gcs.task_placed from_node null (a restart that waited
         for a node to join)
    1.8  simulated traces (raysim simulate): trace.header mode "simulated" and simulation,
         the simulated cluster's parameters
    1.9  message session_stopping: at shutdown, nodes stop without their objects being
         lost or their actors dying of NODE_DIED
    1.10 message recover_objects: the GCS asks the owners of objects lost with a node to
         make them again at once (task.retry cause object_lost follows), not when read

Common fields (every event):

    ts     int   nanoseconds on CLOCK_MONOTONIC, one clock shared by every process
    ev     str   the event kind, ``<component>.<what happened>``
    proc   str   the kind of process that emitted it: driver, gcs, raylet, worker, zygote
    node   str   the node the process runs on
    pid    int   the OS process id
    phase  int?  the driver API call this event belongs to (see ``phase.begin``); events caused
                 by that call, in any process, carry its number

Every message between two processes is recorded twice, with one message id: ``msg.send`` by
the sender and ``msg.recv`` by the receiver. That is enough to draw who talks to whom, in
order (a space-time diagram, as in ShiViz).

This module stands alone (standard library only): the runtime, the tracer and the simulator
all import it. ``python -m raysim.trace.schema`` prints the event table as Markdown, which is
how ``docs/trace-format.md`` is made.
"""

from __future__ import annotations

import dataclasses
import sys

SCHEMA_NAME = "raysim-trace"
SCHEMA_VERSION = "1.10"
SCHEMA_MAJOR = 1

# Process kinds, as they appear in the ``proc`` field.
PROCESS_KINDS = ("driver", "gcs", "raylet", "worker", "zygote")

# -- The vocabulary the runtime writes and the tracer reads, defined once -------------------

# Reference types: why a process holds an object, as Ray's ``ray memory`` names them
# (``ref.added``/``ref.released`` ``ref_type``; the GCS's object directory counts each).
LOCAL_REFERENCE = "LOCAL_REFERENCE"      # an ObjectRef alive in the process
PINNED_IN_MEMORY = "PINNED_IN_MEMORY"    # a value read from the store, still in use
ACTOR_HANDLE = "ACTOR_HANDLE"            # an actor handle (its handle object)
USED_BY_PENDING_TASK = "USED_BY_PENDING_TASK"  # an argument of a task not yet finished
CAPTURED_IN_OBJECT = "CAPTURED_IN_OBJECT"      # a ref pickled inside another object's value
REFERENCE_TYPES = (LOCAL_REFERENCE, PINNED_IN_MEMORY, ACTOR_HANDLE, USED_BY_PENDING_TASK,
                   CAPTURED_IN_OBJECT)

# Actor states, Ray's names (``gcs.actor_state`` ``state``): Ray's ``rpc::ActorTableData``.
DEPENDENCIES_UNREADY = "DEPENDENCIES_UNREADY"
PENDING_CREATION = "PENDING_CREATION"
ALIVE = "ALIVE"
RESTARTING = "RESTARTING"
DEAD = "DEAD"
ACTOR_STATES = (DEPENDENCIES_UNREADY, PENDING_CREATION, ALIVE, RESTARTING, DEAD)

# Task kinds (``task.submitted`` ``kind``).
NORMAL_TASK = "task"
ACTOR_CREATION = "actor_creation"
ACTOR_TASK = "actor_task"
TASK_KINDS = (NORMAL_TASK, ACTOR_CREATION, ACTOR_TASK)

# Id formats. Ids are hex, as Ray's: a job 4 bytes, a task 8 (16 hex digits), an object its
# task's id and a 2-byte index (1-based returns, as Ray's ObjectID; ``put`` numbers its
# objects from PUT_INDEX_BASE on; an actor's handle object is its creation task's index 0).
PUT_INDEX_BASE = 0x8000
HANDLE_INDEX = 0
WORKER_ID_CHARS = 8

COMMON_FIELDS: dict[str, str] = {
    "ts": "int",
    "ev": "str",
    "proc": "str",
    "node": "str",
    "pid": "int",
    "phase": "int?",
}


@dataclasses.dataclass(frozen=True)
class EventKind:
    name: str
    proc: str  # which process kind emits it
    doc: str
    fields: dict[str, str]  # name -> type, "?" suffix for optional
    seed: str = ""  # the founding document's step it shows, if any


@dataclasses.dataclass(frozen=True)
class MessageKind:
    name: str
    sender: str
    receiver: str
    doc: str
    reply: str | None = None  # the message kind that answers it, for requests


EVENTS: dict[str, EventKind] = {}
MESSAGES: dict[str, MessageKind] = {}


def _event(event_name: str, proc: str, doc: str, /, seed: str = "", **fields: str) -> None:
    EVENTS[event_name] = EventKind(event_name, proc, doc, fields, seed)


def _message(name: str, sender: str, receiver: str, doc: str, reply: str | None = None) -> None:
    MESSAGES[name] = MessageKind(name, sender, receiver, doc, reply)


# --------------------------------------------------------------------------------------------
# Session, processes and phases (seed phase 1)

_event("trace.header", "driver",
       "First line of every trace. mode says what wrote it: the runtime (seed, ...) or "
       "raysim simulate (simulated, with simulation: the simulated cluster's parameters; "
       "its times and processes are the model's).",
       schema="str", schema_version="str", session="str", session_dir="str",
       wall_time_ns="int", config="dict", mode="str", simulation="dict?")
_event("phase.begin", "driver",
       "The driver entered a raysim API call; every event it causes carries its number.",
       api="str", site="str?", code="str?", detail="str?")
_event("api.rejected", "any",
       "A raysim API call refused its input and raised (a value that cannot be pickled, "
       "wrong arguments, an unknown option, a bad value): the API named, the error's type "
       "and message, and the user's line. In the driver it belongs to no phase unless the "
       "call had begun one.", api="str", error="str", message="str", site="str?", code="str?")
_event("process.started", "any", "A runtime process is up and running its main loop.",
       seed="Phase 1: processes started by init", ppid="int", role="str?", wid="str?")
_event("process.exited", "raylet",
       "A worker process exited; the raylet saw it go. Signal deaths have a negative code.",
       child_pid="int", wid="str?", exit_code="int?", role="str?", actor="str?")
_event("process.stopping", "any", "The process is shutting down.", reason="str")
_event("node.registered", "gcs", "A raylet registered its node with the GCS node table.",
       seed="Phase 1", node_id="str", raylet_pid="int", resources="dict",
       store_capacity="int", object_manager="str?")
_event("node.removed", "gcs", "A node's raylet went away (removed, or died): the node is "
       "marked dead in the node table.", node_id="str", raylet_pid="int")
_event("job.registered", "gcs", "The driver registered its job.", job="str", driver_pid="int",
       wid="str?")
_event("worker.registered", "raylet", "A worker or driver connected to its raylet.",
       seed="Phase 1: workers idle, waiting for tasks", wid="str", worker_pid="int",
       role="str")
_event("worker.starting", "raylet", "The raylet asked the zygote to start a worker process.",
       wid="str", role="str", actor="str?")
_event("zygote.preloaded", "zygote",
       "The zygote imported modules so that workers forked later start with them: first "
       "what workers need, then, between requests, the driver's other modules; one event "
       "per stretch of imports, ``dur`` long.",
       modules="list", dur="int")
_event("store.created", "raylet",
       "The node's shared-memory object store exists (a memfd mapped by every process).",
       seed="Phase 1: Object Store (one per node)", capacity="int", name="str")

# --------------------------------------------------------------------------------------------
# Objects: serialization, the shared-memory store, get (seed phases 2, 4, 5)

_event("object.serialized", "any", "A value was pickled (cloudpickle, protocol 5).",
       seed="Phase 2 step 1: driver serializes the model", obj="str?", size="int",
       buffers="int", dur="int", type="str?")
_event("object_store.create", "raylet",
       "The store allocated space for an object (not yet visible to readers).",
       seed="Phase 2 step 2", obj="str", size="int", offset="int", owner="str", used="int?")
_event("object_store.written", "any",
       "The writer copied the serialized object into its shared-memory allocation.",
       seed="Phase 2 step 2: driver writes to local Object Store shared memory",
       obj="str", size="int", dur="int")
_event("object_store.sealed", "raylet",
       "The object is complete and immutable; readers may now map it.",
       seed="Phase 2 step 3: Object Store returns an ObjectRef", obj="str", size="int",
       offset="int", used="int")
_event("object_store.deleted", "raylet", "The object was freed from the store.",
       obj="str", size="int", reason="str", used="int")
_event("object.get", "any",
       "A process read an object: inline bytes, or a zero-copy map of the store.",
       seed="Phase 5 step 2-4", obj="str", size="int", path="str", zero_copy="bool",
       dur="int")
_event("object.inlined", "any",
       "A task return value small enough went back inline, not through the store.",
       seed="Phase 4 step 5: small result (<100KB) sent directly back", obj="str",
       size="int", threshold="int")
_event("object.promoted", "any",
       "An inline value was copied into the store because its ref was passed on by "
       "reference (Ray: PromoteObjectToPlasma).", obj="str", size="int")

# --------------------------------------------------------------------------------------------
# A full store: eviction, spilling to disk, restoring (Ray's object spilling)

_event("object_store.evicted", "raylet",
       "To make room, the store dropped an in-memory copy of an object that is also on disk "
       "(spilled before, then restored); a later read restores it again.",
       obj="str", size="int", reason="str", used="int")
_event("object_store.spilled", "raylet",
       "To make room, the store wrote an object no process had mapped to a file and freed "
       "its memory. The object is still alive; used no longer counts it.",
       obj="str", size="int", path="str", dur="int", used="int")
_event("object_store.restored", "raylet",
       "A process asked for a spilled object: the store read it back from its file (making "
       "room as for a create); the file stays until the object is freed.",
       obj="str", size="int", offset="int", path="str", dur="int", used="int")
_event("object_store.full", "raylet",
       "No room could be made for an object (a create, or a restore for a read): the writer "
       "or reader gets ObjectStoreFullError. immovable counts the bytes of objects pinned by "
       "readers or still being written.", obj="str", size="int", capacity="int", used="int",
       immovable="int", reason="str")

# --------------------------------------------------------------------------------------------
# Reference counting (seed: GCS records ref counts; docs/modern-ray.md#ownership)

_event("ref.acquired", "any",
       "The first reference to an object appeared in this process, or what it holds the "
       "object as changed (its last ObjectRef went while a value read from the store still "
       "pins it: PINNED_IN_MEMORY). Not emitted for the return values of a task the process "
       "submits: task.submitted lists them.", obj="str", ref_type="str")
_event("ref.released", "any",
       "The last reference to an object in this process went away.", obj="str")
_event("gcs.ref_added", "gcs", "A holder took a reference; count is the new total.",
       seed="Phase 3: ref_count now = 4 (driver + 3 actors)", obj="str", holder="str",
       ref_type="str", count="int")
_event("gcs.ref_removed", "gcs", "A holder dropped its reference.", obj="str", holder="str",
       count="int")
_event("gcs.object_added", "gcs",
       "An object's location and size were registered in the GCS object table.",
       seed="Phase 2 step 4: Object Store registers the location with GCS", obj="str",
       location="str", size="int", owner="str")
_event("gcs.object_located", "gcs",
       "A raylet waiting for an object its store lacks learns which nodes hold it.",
       seed="Phase 5: ray.get looks up the object's location in the GCS", obj="str",
       for_node="str", locations="list")
_event("gcs.location_removed", "gcs",
       "A node no longer holds a copy of an object (it evicted its secondary copy).",
       obj="str", location="str")
_event("gcs.task_placed", "gcs",
       "A task a raylet could not place was given to another node (the founding "
       "document's global scheduler), or an actor whose node died was placed again "
       "(from_node is the dead node; null when its restart waited for a node to join).",
       seed="Phase 3 step 2: otherwise forwards to Global Scheduler", task="str",
       from_node="str?", to_node="str?", reason="str")
_event("gcs.object_freed", "gcs",
       "An object's count reached zero; GCS told the stores holding it to delete it.",
       obj="str", locations="list")
_event("gcs.object_lost", "gcs",
       "An object can no longer be read although references to it exist: its owner died "
       "(cause OWNER_DIED; get() raises OwnerDiedError, as in Ray), or a reference reached "
       "the table after the object was freed (FREED; ReferenceCountingAssertionError). The "
       "object leaves the table; the stores holding it delete it, and readers waiting for it "
       "are told. holders: those that still held it (or the late reference).",
       obj="str", cause="str", owner="str", holders="list", reason="str")

# --------------------------------------------------------------------------------------------
# Tasks, actors and scheduling (seed phases 3 and 4)

_event("function.exported", "any",
       "A remote function or class was pickled and stored in the GCS key-value store.",
       seed="Phase 3 step 4: worker receives the actor class definition",
       function_id="str", name="str", size="int")
_event("function.loaded", "worker", "A worker fetched and unpickled a function or class.",
       function_id="str", name="str", size="int")
_event("task.submitted", "any", "A task, actor creation or actor method call was submitted.",
       seed="Phase 3 step 1 / Phase 4 step 1", task="str", task_kind="str", name="str",
       actor="str?", returns="list", deps="list", args_size="int")
_event("object_manager.listening", "raylet",
       "The node's object manager serves its store to other nodes at this TCP address.",
       address="str")
_event("object_manager.refused", "raylet",
       "A connection to the object manager without the cluster's token was closed before "
       "anything was read from it or written to it.", peer="str", reason="str")
_event("object_manager.pull", "raylet",
       "This node starts fetching an object from another node's store.",
       seed="Phase 5: fetched over the network into the local store", obj="str",
       from_node="str", size="int")
_event("object_manager.chunk_sent", "raylet", "A chunk of an object went to another node.",
       obj="str", to_node="str", index="int", bytes="int", dur="int")
_event("object_manager.chunk_received", "raylet",
       "A chunk of an object arrived from another node and was written into the store.",
       obj="str", from_node="str", index="int", bytes="int", dur="int")
_event("object_manager.pulled", "raylet",
       "The whole object arrived; its copy here is sealed and registered with the GCS.",
       obj="str", from_node="str", size="int", dur="int")
_event("object_manager.pull_failed", "raylet", "A pull could not finish.", obj="str",
       reason="str")
_event("scheduler.decision", "raylet",
       "The raylet's scheduler decided where a task runs, or why it must wait.",
       seed="Phase 3 step 2-3: local scheduler checks resources, selects a worker",
       task="str", decision="str", resources="dict", available="dict", wid="str?",
       reason="str?")
_event("raylet.actor_lookup", "raylet",
       "The raylet found the worker hosting an actor (source: its own actor table), or, for "
       "an actor on another node, asked the GCS (no wid: the call goes to that node).",
       seed="Phase 4 step 2: raylet looks up the actor's location", actor="str", task="str",
       wid="str?", source="str")
_event("task.args_resolved", "worker",
       "A worker turned the task's argument references into values.",
       seed="Phase 3 step 5: worker fetches model_ref", task="str", objs="list", dur="int")
_event("task.execute", "worker", "A task or method ran; ts is its start.",
       seed="Phase 4 step 4", task="str", name="str", dur="int", ok="bool", actor="str?",
       attempt="int?")
_event("task.finished", "raylet",
       "The raylet saw a task complete and freed its resources. A task that failed without "
       "running to the end (its worker died for the last time, its actor is dead, it was "
       "cancelled) carries the error get() raises and why.",
       task="str", ok="bool", error="str?", reason="str?")
_event("actor.state", "worker",
       "The actor's instance attributes (short reprs) after __init__ or a method call.",
       seed="Phase 3 step 7 / Phase 4: prediction_count 0 -> 1", actor="str", task="str",
       attrs="dict", calls="int")
_event("gcs.actor_state", "gcs",
       "An actor's row in the GCS actor table changed state. cause, on RESTARTING and "
       "DEAD, is Ray's ActorDeathCause kind: WORKER_DIED, RAY_KILL, OUT_OF_SCOPE, "
       "CREATION_TASK_ERROR, WORKER_STARTUP_FAILED, OWNER_DIED (the process that created "
       "it died), INTENDED_USER_EXIT (it ended itself: exit_actor(), __ray_terminate__), "
       "NODE_DIED (its node went away; it restarts on another node if max_restarts "
       "allows), ACTOR_UNSCHEDULABLE (no node may host it: its calls raise "
       "ActorUnschedulableError).",
       seed="Phase 3 step 8: worker registers actor with GCS", actor="str", state="str",
       class_name="str", worker_pid="int?", wid="str?", actor_node="str?",
       name="str?", reason="str?", handle_object="str?", namespace="str?",
       num_restarts="int?", cause="str?")

# --------------------------------------------------------------------------------------------
# Faults and recovery: dead workers, retries, restarts, cancellation

_event("worker.died", "raylet",
       "A worker process the raylet counted on exited (its zygote reported the exit status "
       "at once). exit_type is Ray's WorkerExitType: SYSTEM_ERROR (crashed or killed from "
       "outside), INTENDED_USER_EXIT (raysim.kill, cancel(force=True), out of scope), "
       "USER_ERROR (its actor's constructor raised), INTENDED_SYSTEM_EXIT (the process "
       "that owned its task or actor died).",
       wid="str", worker_pid="int", role="str", exit_code="int?", signal="str?",
       exit_type="str", task="str?", actor="str?", starting="bool", cause="str")
_event("component.died", "any",
       "A control-plane process of the session (the GCS or the raylet) went away without "
       "being asked to, and this process saw it go (its connection closed). The driver "
       "then fails every blocking call with RaySystemError (LocalRayletDiedError for the "
       "raylet); a worker exits. exit_code or signal is known only to the process's parent "
       "(the driver, for both).",
       component="str", component_pid="int", exit_code="int?", signal="str?",
       detected_by="str")
_event("task.retry", "any",
       "A task or actor call runs again: its worker died, or it raised an exception its "
       "retry_exceptions option covers. attempt counts from 0, as task.execute's does.",
       task="str", name="str", attempt="int", max_retries="int", cause="str", reason="str",
       delay_ms="int?", actor="str?")
_event("task.cancelled", "any",
       "raysim.cancel() reached a task: removed from a queue before it ran, interrupted "
       "while running (KeyboardInterrupt in its thread), or its worker killed (force).",
       task="str", name="str?", how="str", force="bool")

# --------------------------------------------------------------------------------------------
# Messages between processes

_event("msg.send", "any", "A message left this process.", msg="str", kind="str",
       to="str", to_pid="int", size="int", task="str?", obj="str?", actor="str?")
_event("msg.recv", "any", "A message arrived in this process.", msg="str", kind="str",
       src="str", src_pid="int")


# Wire messages. Every message is a tuple (kind, msg_id, phase, body) framed by a 4-byte
# length; body is a dict. A request's answer is a "reply" whose body carries "reply_to".
_message("register_client", "driver|worker", "raylet|gcs",
         "A driver or worker introduces itself; the raylet's answer carries the store's fd "
         "(SCM_RIGHTS) and the node's identity.", reply="reply")
_message("register_driver", "driver", "gcs", "The driver registers its job.", reply="reply")
_message("register_node", "raylet", "gcs", "The raylet registers its node.", reply="reply")
_message("wait_for_nodes", "driver", "gcs",
         "Answer once these nodes have registered (a cluster's nodes starting).",
         reply="reply")
_message("kv_put", "driver|worker", "gcs", "Export a pickled function or class.",
         reply="reply")
_message("kv_get", "worker", "gcs", "Fetch an exported function or class.", reply="reply")
_message("submit_task", "driver|worker|gcs", "raylet",
         "Run a task (or create an actor). From the GCS: a task another node could not "
         "place, or an actor restarted here because its node died (num_restarts).")
_message("forward_task", "raylet", "gcs",
         "This node cannot run the task (resources, a node it must run on): place it on "
         "another node.")
_message("reconstruct_objects", "driver|worker", "gcs",
         "The owner runs again the task that made these objects, lost with a node (or, in "
         "lost, it cannot: their readers are told).")
_message("recover_objects", "gcs", "driver|worker",
         "These objects you own were lost with a node: make them again if you may (Ray's "
         "owners recover lost objects as soon as they hear the node died).")
_message("remove_location", "raylet", "gcs",
         "This node evicted its copy of an object (another node holds the primary).")
_message("objects_located", "gcs", "raylet",
         "Where objects this node waits for are (node, object manager address, size, "
         "owner): pull them from there.")
_message("push_task", "raylet", "worker",
         "Execute this task now. Body: spec, attempt, and locations: {object id: [offset, "
         "size]} of its arguments in the store, pinned for the worker until it has read them.")
_message("task_done", "worker|raylet", "raylet|driver|worker",
         "A task finished. To its owner (from the worker, or from the raylet when the task "
         "failed for want of a worker or actor): returns and results, one entry per return "
         "(inline bytes, a place in a store, or an error: runtime/common/results.py). To the "
         "raylet: that the worker and its resources are free.")
_message("actor_died", "raylet|gcs", "driver|worker",
         "An actor's process died. Calls the raylet had pushed to it are retried by their "
         "caller if the actor restarts and max_task_retries allows, or fail (with error: "
         "ActorDiedError unless told otherwise).")
_message("create_object", "driver|worker", "raylet",
         "Allocate space in the store for an object of this size.", reply="reply")
_message("seal_object", "driver|worker", "raylet", "The object is written; make it visible.")
_message("get_objects", "driver|worker", "raylet",
         "Where are these objects? Answered once all are sealed: locations {object id: "
         "[offset, size, pins]} (pins: how many times the asker listed it, each released "
         "by release_objects), and errors for objects that are lost.", reply="reply")
_message("add_object", "raylet", "gcs", "Register a sealed object's location and size.")
_message("revoke_leases", "raylet", "driver|worker",
         "The store is full: give back your leases on these objects you own (stop reading "
         "them at the place you know, without asking), so that they can be spilled.")
_message("leases_returned", "driver|worker", "raylet",
         "The answer to revoke_leases: the leases given back, and those kept because a read "
         "of the object is under way or a zero-copy view of it is alive.")
_message("release_objects", "driver|worker", "raylet",
         "The sender has read these objects (or dropped its last zero-copy view of them): the "
         "pins that get_objects or push_task took for it end, and the store may spill them.")
_message("free_objects", "gcs", "raylet", "These objects' counts reached zero; delete them.")
_message("watch_objects", "raylet", "gcs",
         "A reader waits for these objects, which this node's store does not have: say if "
         "they never will be there (answered with objects_lost, now or when it happens).")
_message("objects_lost", "gcs", "raylet",
         "These objects are lost (their owner died) or were freed before a reference to "
         "them was counted: delete them, and fail the readers and tasks waiting for them.")
_message("add_ref", "driver|worker", "gcs", "A holder takes a reference to objects.")
_message("remove_ref", "driver|worker", "gcs", "A holder drops its references to objects.")
_message("borrow_ref", "driver|worker", "gcs",
         "A process that received a ref inside a value takes a reference.", reply="reply")
_message("actor_update", "raylet|worker", "gcs",
         "An actor changed state. In a cluster, its first report carries its creation task, "
         "so that the GCS can restart it on another node.")
_message("register_actor", "driver|worker", "gcs",
         "Register a named actor, claiming its name (refused if taken).", reply="reply")
_message("get_actor", "driver|worker", "gcs", "Look up a named actor.", reply="reply")
_message("kill_actor", "driver|worker|gcs|raylet", "raylet|gcs",
         "Terminate an actor (to the GCS: it lives on another node than the caller's).")
_message("exit_worker", "raylet", "worker",
         "An actor's worker is to stop: its actor was killed or went out of scope.")
_message("task_infeasible", "raylet", "driver|worker",
         "No node can ever provide what this task asks for; it waits.")
_message("worker_exited", "zygote|raylet", "raylet|gcs",
         "A worker process died (exit code or signal); drop what it held (the GCS also loses "
         "the objects it owned).")
_message("cancel_task", "driver|worker|raylet", "raylet|worker",
         "Cancel a task: the raylet drops it from its queues, or asks the worker running "
         "it to interrupt it, or kills that worker (force).")
_message("worker_blocked", "worker", "raylet",
         "The worker waits in get(); lend its CPU to other tasks.")
_message("worker_unblocked", "worker", "raylet", "The worker's get() returned.")
_message("sync", "driver|worker", "gcs",
         "Answered once the GCS has handled everything sent before it (a barrier).",
         reply="reply")
_message("snapshot", "driver", "gcs|raylet", "Report your tables.", reply="reply")
_message("start_worker", "raylet", "zygote", "Fork a worker process.")
_message("shutdown", "driver", "gcs|raylet", "Stop the session.")
_message("session_stopping", "driver", "gcs",
         "The driver is shutting the session down: nodes that go away from now on were "
         "stopped, not lost (their objects and actors are not mourned).", reply="reply")
_message("reply", "any", "any", "The answer to a request.")


# --------------------------------------------------------------------------------------------
# Validation

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "str": (str,),
    "float": (int, float),
    "bool": (bool,),
    "dict": (dict,),
    "list": (list,),
}


class TraceFormatError(ValueError):
    """A trace line is not a valid raysim event."""


def check_version(version: str) -> None:
    """Refuse traces written by a newer major version of the schema."""
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise TraceFormatError(f"schema_version {version!r} is not a version number") from None
    if major > SCHEMA_MAJOR:
        raise TraceFormatError(
            f"this trace uses schema version {version}, newer than the {SCHEMA_VERSION} this "
            f"raysim understands; upgrade raysim to read it"
        )


def validate_event(event: object) -> None:
    """Raise TraceFormatError saying what is wrong with one decoded event."""
    if not isinstance(event, dict):
        raise TraceFormatError(f"an event must be a JSON object, got {type(event).__name__}")
    for name, typ in COMMON_FIELDS.items():
        _check_field(event, name, typ)
    kind = EVENTS.get(event["ev"])
    if kind is None:
        raise TraceFormatError(f"unknown event kind {event['ev']!r}")
    if event["proc"] not in PROCESS_KINDS:
        raise TraceFormatError(f"unknown process kind {event['proc']!r}")
    for name, typ in kind.fields.items():
        _check_field(event, name, typ)


def _check_field(event: dict, name: str, typ: str) -> None:
    optional = typ.endswith("?")
    base = typ.rstrip("?")
    if name not in event or event[name] is None:
        if optional:
            return
        raise TraceFormatError(f"event {event.get('ev', '?')!r} lacks field {name!r}")
    value = event[name]
    allowed = _PY_TYPES[base]
    if not isinstance(value, allowed) or (base == "int" and isinstance(value, bool)):
        raise TraceFormatError(
            f"field {name!r} of event {event.get('ev', '?')!r} should be {base}, "
            f"got {value!r}"
        )


# --------------------------------------------------------------------------------------------
# Documentation


def markdown() -> str:
    """The event and message tables, as Markdown (docs/trace-format.md)."""
    out = [
        f"# raysim trace format, version {SCHEMA_VERSION}",
        "",
        "Generated by `python -m raysim.trace.schema`; do not edit by hand.",
        "",
        __doc__.split("\n\n", 1)[1].strip(),
        "",
        "## Events",
        "",
        "| event | emitted by | fields | meaning | founding document |",
        "|---|---|---|---|---|",
    ]
    for kind in EVENTS.values():
        fields = ", ".join(f"`{n}`:{t}" for n, t in kind.fields.items())
        out.append(f"| `{kind.name}` | {kind.proc} | {fields} | {kind.doc} | {kind.seed} |")
    out += ["", "## Wire messages", "",
            "Each message is `(kind, msg_id, phase, body)`, pickled and length-framed on a "
            "Unix socket.", "",
            "| message | from | to | meaning | answered by |", "|---|---|---|---|---|"]
    for msg in MESSAGES.values():
        out.append(f"| `{msg.name}` | {msg.sender} | {msg.receiver} | {msg.doc} | "
                   f"{msg.reply or ''} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
