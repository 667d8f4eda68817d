"""A process's links to the runtime: its raylet, the GCS, and the workers that send it
results; the one I/O thread that reads them all; and what happens when the GCS or the raylet
dies (Ray: the core worker's raylet and GCS clients and its io_service).

Seed, phase 4 step 9: results come straight from the worker that ran the task ("sends
directly back to driver's memory"): each owner listens on ``owner-<id>.sock`` in the
session directory, and workers connect to it on their first result (``send_to_owner``).

Requests wait for their answer on a ``Future`` that the I/O thread completes
(``request``, ``ask_gcs``, ``ask_raylet``); messages that need no answer go at once
(``send``, ``tell_gcs``, ``tell_raylet``). Every other message the I/O thread reads is
answered by the core worker's handler table.

Ray without GCS fault tolerance cannot go on without its GCS, nor a node without its raylet;
neither can raysim. When either connection closes unasked, the process's ``death`` is set
once, everything waiting fails with it, and every later call raises it (``check_alive``).

Runs in: the driver and every worker. Trace events: ``component.died`` (and, through the
protocol, ``msg.send``/``msg.recv``).
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
from typing import Callable

from raysim import exceptions
from raysim.runtime.common import procutil, protocol
from raysim.runtime.common.config import Config
from raysim.runtime.common.errors import RaySimInternalError
from raysim.runtime.common.protocol import BlockingConnection, ConnectionClosed, connect_unix
from raysim.runtime.common.task_spec import TaskSpec
from raysim.runtime.core_worker.memory_store import Future
from raysim.trace import writer as trace


class Connections:
    def __init__(self, role: str, wid: str, session_dir: str, raylet: BlockingConnection,
                 gcs: BlockingConnection, config: Config) -> None:
        self.role = role
        self.raylet = raylet
        self.gcs = gcs
        self.config = config
        self.futures: dict[int, Future] = {}  # requests waiting for their answers, by id
        self.handlers: dict[str, Callable[[dict, int | None], None]] = {}
        self.io_thread: threading.Thread | None = None
        self._owner_conns: dict[str, BlockingConnection] = {}  # results we send, by owner
        self.owner_path = os.path.join(session_dir, f"owner-{wid}.sock")
        # Set once, by the I/O thread, when the GCS or raylet goes away unasked: the error
        # every blocking call raises from then on (the session cannot recover).
        self.death: exceptions.RaySystemError | None = None
        self._died = threading.Event()
        # Called with that error, on the I/O thread: what waits elsewhere fails with it.
        self.on_death: list[Callable[[exceptions.RaySystemError], None]] = []
        # shutdown() asks GCS and raylet to stop: from then on their connections closing is
        # expected, not a death.
        self.stopping = False
        self.closing = False
        # The driver, parent of GCS and raylet, can learn how one ended (node.py).
        self.exit_code_of: Callable[[str], int | None] | None = None

    # -- the I/O thread -----------------------------------------------------------------

    def start(self, handlers: dict[str, Callable[[dict, int | None], None]]) -> None:
        """Listen for results and start the I/O thread, which answers each message with
        ``handlers[kind](body, phase)`` (the core worker's table).

        Results come straight from the worker that ran the task, as the founding document
        says ("sends directly back to driver's memory"; "Worker #1 returns ObjectRef(result_0)
        to driver"): each owner listens on ``owner-<id>.sock`` in the session directory and
        workers connect to it on their first result. Errors the raylet detects (a crashed
        worker, a dead actor) still come from the raylet.
        """
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.owner_path)
        os.chmod(self.owner_path, 0o600)
        self._listener.listen(64)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self.handlers = handlers
        self.io_thread = threading.Thread(target=self._io_loop, name="raysim-io", daemon=True)
        self.io_thread.start()

    def _io_loop(self) -> None:
        """One thread reads every connection of this process: raylet, GCS and result senders."""
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        selector.register(self._listener, selectors.EVENT_READ, "accept")
        for conn in (self.raylet, self.gcs):
            selector.register(conn.sock, selectors.EVENT_READ, conn)
            if conn.backlog:  # read during registration, behind its reply
                self._dispatch(conn, conn.recv_messages())
        try:
            while not self.closing:
                trace.flush()
                # Results first, the raylet's and GCS's news last: a worker sends its
                # results before its raylet can report the worker's end (an actor that
                # exits after its calls), so the results must not be read after the news.
                control = (self.raylet, self.gcs)
                ready = sorted(selector.select(), key=lambda kv: kv[0].data in control)
                accepted = False
                for key, _ in ready:
                    what = key.data
                    if what == "wake":
                        return
                    if what == "accept":
                        sock, _ = self._listener.accept()
                        conn = BlockingConnection(sock, "worker")
                        selector.register(sock, selectors.EVENT_READ, conn)
                        accepted = True
                        continue
                    if accepted and what in control:
                        continue  # the next round reads the new sender first
                    try:
                        messages = what.recv_messages()
                    except ConnectionClosed:
                        selector.unregister(what.sock)
                        if what is self.raylet or what is self.gcs:
                            if self.stopping or self.closing:
                                continue  # shutdown() asked it to stop
                            self._component_died(what)
                            return
                        what.close()  # a worker that sent us results went away
                        continue
                    self._dispatch(what, messages)
        finally:
            trace.flush()
            selector.close()

    def _dispatch(self, conn: BlockingConnection, messages: list[tuple]) -> None:
        for kind, msg_id, phase, body in messages:
            if conn.peer_id is None and "worker_id" in body:
                conn.peer_id = body["worker_id"]
            if trace.enabled():
                trace.set_phase(phase)
                conn.trace_recv(kind, msg_id, phase)
            handler = self.handlers.get(kind)
            if handler is None:
                raise RaySimInternalError(f"unexpected message {kind!r}")
            handler(body, phase)
        # What this thread does next (a garbage-collected ref, say) is no message's doing.
        trace.set_phase(None)

    def send_to_owner(self, spec: TaskSpec, kind: str, body: dict) -> None:
        """Send a task's result straight to the process that owns it."""
        owner_address = spec.owner_address
        conn = self._owner_conns.get(owner_address)
        try:
            if conn is None:
                role, _, owner_id = spec.owner_holder.partition(":")
                conn = connect_unix(owner_address, role, timeout_s=1.0)
                conn.peer_id = owner_id
                self._owner_conns[owner_address] = conn
            conn.send(kind, body)
        except (ConnectionClosed, OSError):
            # The owner is gone, and with it everyone who could want the result.
            self._owner_conns.pop(owner_address, None)

    # -- control-plane deaths: the GCS or the raylet went away --------------------------

    def _component_died(self, conn: BlockingConnection) -> None:
        """I/O thread: the GCS's or raylet's connection closed while the session ran.

        Ray without GCS fault tolerance cannot go on without its GCS, nor a node without its
        raylet; neither can raysim. Everything waiting here fails now with one error naming
        the process that died, and every later call raises it at once (``check_alive``):
        nothing waits for an answer that cannot come."""
        component, pid = conn.peer_kind, conn.peer_pid
        if component == "raylet" and not procutil.alive(self.gcs.peer_pid):
            # The raylet stops when its GCS dies: name the cause, not the consequence.
            component, pid = "gcs", self.gcs.peer_pid
        exit_code = self.exit_code_of(component) if self.exit_code_of is not None else None
        writer = trace.writer()
        error = exceptions.control_plane_died(component, pid, exit_code,
                                              writer.path if writer is not None else None)
        self.death = error
        self._died.set()  # a sender that saw the connection fail waits for this
        signal = None
        if exit_code is not None and exit_code < 0:
            signal, exit_code = exceptions.signal_name(-exit_code), None
        trace.emit("component.died", component=component, component_pid=pid,
                   exit_code=exit_code, signal=signal, detected_by=self.role)
        trace.flush()
        # Invariant: self.death is set before the sweeps below, so that a slot or a future
        # added after a sweep sees it (submit and request check it after adding theirs).
        for on_death in self.on_death:
            on_death(error)
        for msg_id in list(self.futures):
            future = self.futures.pop(msg_id, None)
            if future is not None:
                future.set({"error": "component_died"})

    def check_alive(self) -> None:
        """Raise the session's death, if the GCS or raylet has died."""
        death = self.death
        if death is not None:
            # A new instance each time: one raised twice would pile up tracebacks.
            raise type(death)(str(death), death.component, death.pid, death.exit_code)

    def await_death(self, conn: BlockingConnection) -> None:
        """A send to the GCS or raylet failed: its process is going. The I/O thread will see
        its connection close and say which died, and how; raise that."""
        self._died.wait(self.config.process_shutdown_timeout_s)
        self.check_alive()
        raise exceptions.RaySystemError(
            f"The connection to the {conn.peer_kind} (pid {conn.peer_pid}) closed. Tip: call "
            f"raysim.shutdown(), then raysim.init() to start a new session.")

    # -- requests and messages -----------------------------------------------------------

    def ask_gcs(self, kind: str, body: dict, timeout: float | None = None) -> dict:
        return self.request(self.gcs, kind, body, timeout)

    def ask_raylet(self, kind: str, body: dict, timeout: float | None = None) -> dict:
        return self.request(self.raylet, kind, body, timeout)

    def tell_raylet(self, kind: str, body: dict) -> None:
        self.send(self.raylet, kind, body)

    def request(self, conn: BlockingConnection, kind: str, body: dict,
                timeout: float | None = None) -> dict:
        """Send a request and wait for its reply (delivered by the I/O thread)."""
        self.check_alive()
        future = Future()
        msg_id = protocol.next_msg_id()
        self.futures[msg_id] = future
        if self.death is not None:  # it died between the check and the line above
            self.futures.pop(msg_id, None)
            self.check_alive()
        try:
            conn.send(kind, body, msg_id=msg_id)
        except ConnectionClosed:
            self.futures.pop(msg_id, None)
            if self.stopping or self.closing:
                raise
            self.await_death(conn)
        trace.flush()  # about to wait: what happened so far goes to the file first
        if not future.wait(timeout):
            self.futures.pop(msg_id, None)
            raise exceptions.GetTimeoutError(f"{kind} timed out after {timeout} s")
        if future.value.get("error") == "component_died":
            self.check_alive()
        return future.value

    def tell_gcs(self, kind: str, body: dict) -> None:
        """A reference message to the GCS; none is sent once the session is going away."""
        try:
            self.gcs.send(kind, body)
        except ConnectionClosed:
            pass  # the session is going away; nothing left to count for

    def send(self, conn: BlockingConnection, kind: str, body: dict) -> None:
        if not self.closing:
            self.check_alive()
        try:
            conn.send(kind, body)
        except ConnectionClosed:
            if not (self.stopping or self.closing):
                self.await_death(conn)

    def close(self) -> None:
        self.closing = True
        if self.io_thread is not None:
            os.write(self._wake_w, b"x")
            if self.io_thread is not threading.current_thread():
                self.io_thread.join(timeout=2)
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._listener.close()
            try:
                os.unlink(self.owner_path)
            except FileNotFoundError:
                pass
        for conn in [self.raylet, self.gcs, *self._owner_conns.values()]:
            conn.close()
