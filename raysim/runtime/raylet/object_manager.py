"""Moving objects between nodes (Ray's object manager): pulls over TCP, in chunks.

Seed, phase 5: "If the object is on a different node: fetched over the network into the
local store, then mapped zero-copy", and the founding document's Data Transfer Summary. Each
raylet runs one object manager. It serves its store's objects to the other nodes' object
managers, and pulls into its own store the objects that its tasks and readers need:

1. the raylet learns where the object is from the GCS's object table (``objects_located``,
   in answer to ``watch_objects``);
2. it makes room for the object in its store, connects to the holder's object manager
   (127.0.0.1, on a port the system picked, or the node's ``object_manager_port`` as Ray
   allows), and asks for the object;
3. the holder pins its copy and sends it in chunks of ``object_manager_default_chunk_size``
   (5 MiB, as Ray's), read straight from its store's memory; the puller writes each chunk
   straight into its own store's memory;
4. the puller seals its copy (a *secondary* copy: the primary stays with the node that made
   it), which registers the new location with the GCS, and whoever waited for the object
   (tasks, ``get``) goes on, mapping it zero-copy.

One object is pulled at most once at a time per node, however many wait for it. Ray pulls
the same way (``PullManager``/``PushManager``, chunked), though it asks the object's owner
where the object is (docs/modern-ray.md#get-path).

Security: every connection must start with the cluster's token (made by the driver, given
to each raylet on its stdin, never on a command line). A connection that does not is
closed before anything else is read from it or written to it (``object_manager.refused``).

Threads: transfers run on threads of their own, one per connection, so that a 1 GB pull
never stalls the raylet's event loop; everything the loop owns (the store's table, pins,
the GCS connection) is touched only through ``loop.call_from_thread``.

Runs in: the raylet. Trace events: ``object_manager.listening``, ``object_manager.refused``,
``object_manager.pull``, ``object_manager.chunk_sent``, ``object_manager.chunk_received``,
``object_manager.pulled``, ``object_manager.pull_failed``.
"""

from __future__ import annotations

import hmac
import mmap
import socket
import struct
import threading
import time
from typing import Callable

import orjson

from raysim.runtime.common.protocol import EventLoop
from raysim.runtime.raylet.local_object_manager import LocalObjectManager
from raysim.runtime.raylet.object_store import ObjectStore, StoreFull
from raysim.trace import writer as trace

TOKEN_BYTES = 32  # the cluster token, as hex text
_LENGTH = struct.Struct("!I")
_TIMEOUT_S = 10.0  # a peer that sends nothing for this long is given up on


class ObjectManager:
    def __init__(self, loop: EventLoop, store: ObjectStore, objects: LocalObjectManager,
                 node_id: str, token: str, chunk_size: int,
                 pulled: Callable[[str, dict], None],
                 failed: Callable[[str, str], None], port: int = 0) -> None:
        self.loop = loop
        self.store = store
        self.objects = objects
        self.node_id = node_id
        self._token = token.encode()
        self.chunk_size = chunk_size
        self._pulled = pulled  # (object id, its location info): sealed here, on the loop
        self._failed = failed  # (object id, why): the pull could not finish, on the loop
        self._memory = mmap.mmap(store.fd, store.capacity)  # this process's view of it
        self._pulls: set[str] = set()  # objects being pulled into this store now
        self._listener = _listen(port)
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        loop.enable_threads()
        threading.Thread(target=self._serve, name="raysim-object-manager",
                         daemon=True).start()
        trace.emit("object_manager.listening", address=self.address)

    # -- serving other nodes -----------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return  # closed: the raylet is stopping
            threading.Thread(target=self._serve_one, args=(sock, peer), daemon=True).start()

    def _serve_one(self, sock: socket.socket, peer) -> None:
        with sock:
            sock.settimeout(_TIMEOUT_S)
            try:
                token = _read_exactly(sock, TOKEN_BYTES)
            except OSError:
                token = b""
            if not hmac.compare_digest(token, self._token):
                # Nothing more is read, nothing is written: the connection just ends.
                trace.emit("object_manager.refused", peer=f"{peer[0]}:{peer[1]}",
                           reason="wrong or missing cluster token")
                trace.flush()
                return
            request = orjson.loads(_read_frame(sock))
            object_id, to_node = request["object_id"], request["node"]
            place = self._on_loop(lambda done: self._pin(object_id, to_node, done))
            if isinstance(place, str):
                _write_frame(sock, orjson.dumps({"error": place}))
                return
            offset, size = place
            try:
                _write_frame(sock, orjson.dumps({"size": size, "chunk": self.chunk_size}))
                for index, start in enumerate(range(0, size, self.chunk_size)):
                    began = time.perf_counter_ns()
                    end = min(start + self.chunk_size, size)
                    sock.sendall(memoryview(self._memory)[offset + start:offset + end])
                    trace.emit("object_manager.chunk_sent", obj=object_id, to_node=to_node,
                               index=index, bytes=end - start,
                               dur=time.perf_counter_ns() - began)
            except OSError:
                pass  # the puller went away; it says why in its own trace
            finally:
                self.loop.call_from_thread(lambda: self.store.release(object_id,
                                                                      f"node:{to_node}"))
                trace.flush()

    def _pin(self, object_id: str, to_node: str, done: Callable) -> None:
        """Loop thread: pin this store's copy for the puller (restoring it if spilled)."""
        def pinned(outcome) -> None:
            if isinstance(outcome, Exception):
                done(f"{object_id} cannot be read here: {outcome}")
            else:
                done((outcome.offset, outcome.size))
        if not self.objects.available(object_id):
            done(f"{object_id} is not in this node's store")
            return
        self.objects.pin(object_id, f"node:{to_node}", 1, pinned)

    def _on_loop(self, call: Callable[[Callable], None]):
        """Run ``call(done)`` on the loop and wait for what it passes to ``done``."""
        answered = threading.Event()
        box: list = []

        def done(value) -> None:
            box.append(value)
            answered.set()
        self.loop.call_from_thread(lambda: call(done))
        if not answered.wait(_TIMEOUT_S):
            return "the raylet did not answer"
        return box[0]

    # -- pulling from other nodes ------------------------------------------------------------

    def pull(self, object_id: str, located: dict) -> None:
        """Loop thread: fetch ``object_id`` from the node ``located`` names (its ``node``,
        ``address``, ``size`` and ``owner``), unless it is here or being fetched already."""
        if object_id in self._pulls or self.objects.available(object_id):
            return
        self._pulls.add(object_id)
        size = located["size"]
        # The driver call this pull is part of: its events, here and on the pull's thread,
        # carry it (the GCS's objects_located came in that phase).
        located = dict(located, phase=trace.get_phase())
        trace.emit("object_manager.pull", obj=object_id, from_node=located["node"], size=size)

        def allocated(outcome) -> None:
            if isinstance(outcome, StoreFull):
                self._pulls.discard(object_id)
                self._failed(object_id, f"no room for it in this node's store: {outcome}")
                return
            trace.emit("object_store.create", obj=object_id, size=size, offset=outcome.offset,
                       owner=f"node:{located['node']}", used=self.store.used)
            threading.Thread(target=self._fetch, args=(object_id, located, outcome.offset),
                             name="raysim-pull", daemon=True).start()

        self.objects.create(object_id, size, f"node:{located['node']}", allocated)

    def _fetch(self, object_id: str, located: dict, offset: int) -> None:
        trace.set_phase(located["phase"])
        began = time.perf_counter_ns()
        from_node, size = located["node"], located["size"]
        try:
            host, port = located["address"].rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=_TIMEOUT_S) as sock:
                sock.sendall(self._token)
                _write_frame(sock, orjson.dumps({"object_id": object_id,
                                                 "node": self.node_id}))
                header = orjson.loads(_read_frame(sock))
                if "error" in header:
                    raise OSError(header["error"])
                if header["size"] != size:
                    raise OSError(f"it is {header['size']} bytes there, not {size}")
                view = memoryview(self._memory)
                for index, start in enumerate(range(0, size, header["chunk"])):
                    chunk_began = time.perf_counter_ns()
                    end = min(start + header["chunk"], size)
                    _read_into(sock, view[offset + start:offset + end])
                    trace.emit("object_manager.chunk_received", obj=object_id,
                               from_node=from_node, index=index, bytes=end - start,
                               dur=time.perf_counter_ns() - chunk_began)
        except (OSError, ValueError) as e:
            why = str(e) or type(e).__name__
            self.loop.call_from_thread(lambda: self._give_up(object_id, why))
            return
        dur = time.perf_counter_ns() - began
        self.loop.call_from_thread(lambda: self._done(object_id, located, dur))

    def _done(self, object_id: str, located: dict, dur: int) -> None:
        trace.set_phase(located["phase"])
        self._pulls.discard(object_id)
        trace.emit("object_manager.pulled", obj=object_id, from_node=located["node"],
                   size=located["size"], dur=dur)
        self._pulled(object_id, located)
        trace.set_phase(None)

    def _give_up(self, object_id: str, why: str) -> None:
        self._pulls.discard(object_id)
        trace.set_phase(None)
        for entry in self.store.abort_unsealed_object(object_id):
            trace.emit("object_store.deleted", obj=entry.object_id, size=entry.size,
                       reason="its pull from another node failed", used=self.store.used)
        trace.emit("object_manager.pull_failed", obj=object_id, reason=why)
        self._failed(object_id, why)

    def close(self) -> None:
        self._listener.close()


def _listen(port: int) -> socket.socket:
    """The object manager's listening socket, on 127.0.0.1: a port the system picks (0, the
    default), or the one given (Ray's ``object_manager_port``: a fixed port is what a
    firewall rule, or a traffic-shaping filter, can name before the node starts)."""
    try:
        return socket.create_server(("127.0.0.1", port), backlog=64)
    except OSError as e:
        raise OSError(f"The object manager cannot listen on 127.0.0.1:{port}: {e}. Tip: "
                      f"choose another object_manager_port, or 0 to let the system pick "
                      f"a free one.") from e


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray(n)
    _read_into(sock, memoryview(data))
    return bytes(data)


def _read_into(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if n == 0:
            raise OSError("the other node closed the connection")
        got += n


def _read_frame(sock: socket.socket) -> bytes:
    (length,) = _LENGTH.unpack(_read_exactly(sock, _LENGTH.size))
    if length > 1 << 20:
        raise OSError(f"a request of {length} bytes is not one")
    return _read_exactly(sock, length)


def _write_frame(sock: socket.socket, data: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(data)) + data)
