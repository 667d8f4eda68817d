"""How raysim processes talk: length-framed pickled messages over Unix sockets.

Ray's processes speak gRPC; raysim's speak a much smaller protocol with the same shape. A
message is a tuple ``(kind, msg_id, phase, body)``: ``kind`` names it (every kind is listed in
``raysim.trace.schema.MESSAGES``), ``msg_id`` counts the messages this process sent, ``phase``
carries the driver API call that caused it (so a worker's events can be attributed to the
``predict.remote()`` that started them), and ``body`` is a dict of plain values. User data is
already serialized bytes by the time it is put in a body, so plain ``pickle`` is safe and fast
here. A request's answer is a ``reply`` whose body names the request in ``reply_to``.

Every send and every receive is recorded (``msg.send`` / ``msg.recv``) under one message id,
``"<sender pid>-<msg_id>"``, which is what lets the tracer draw the sequence diagram.

Two ways to hold a connection:

* ``EventLoop`` (GCS, raylet, zygote): one thread, a ``selectors`` loop over non-blocking
  sockets with per-connection output buffers, so a slow reader never blocks the server.
* ``BlockingConnection`` (driver, workers): a blocking socket whose reads happen on one
  I/O thread (see ``core_worker/core_worker.py``) and whose writes take a lock.

Sockets are Unix-domain, in the session directory (mode 0700): nothing listens on a network
interface. The peer's pid comes from the kernel (``SO_PEERCRED``), not from the peer's word.

Runs in: every process. Trace events: ``msg.send`` and ``msg.recv`` of every message.
"""

from __future__ import annotations

import collections
import errno
import heapq
import itertools
import os
import pickle
import selectors
import socket
import struct
import threading
import time
from typing import Any, Callable

from raysim.trace import writer as trace

_HEADER = struct.Struct("<I")
_HEADER_SIZE = _HEADER.size
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_RECV_SIZE = 1 << 18
_PEERCRED = struct.Struct("3i")

_msg_counter = itertools.count(1)
# Body keys copied into the msg.send event so the tracer can tie a message to what it is about.
_TRACED_KEYS = (("task_id", b"task"), ("object_id", b"obj"), ("actor_id", b"actor"))
_SEND_LINE = (b'{"ts":%d,"ev":"msg.send",%s"phase":%s,"msg":"%d-%d","kind":"%s","to":"%s",'
              b'"to_pid":%d,"size":%d%s}\n')
_RECV_LINE = (b'{"ts":%d,"ev":"msg.recv",%s"phase":%s,"msg":"%d-%d","kind":"%s","src":"%s",'
              b'"src_pid":%d}\n')


def next_msg_id() -> int:
    return next(_msg_counter)


def reset_after_fork() -> None:
    global _msg_counter
    _msg_counter = itertools.count(1)


def encode(kind: str, msg_id: int, phase: int | None, body: dict) -> bytes:
    payload = pickle.dumps((kind, msg_id, phase, body), _PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


def peer_pid(sock: socket.socket) -> int:
    try:
        pid, _uid, _gid = _PEERCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
        return pid
    except OSError:
        return 0


class ConnectionClosed(Exception):
    """The peer went away."""


class Connection:
    """State shared by both kinds of connection: who the peer is, and tracing of messages."""

    def __init__(self, sock: socket.socket, peer_kind: str = "?") -> None:
        self.sock = sock
        self.peer_kind = peer_kind  # driver, gcs, raylet, worker, zygote
        self.peer_pid = peer_pid(sock) if sock.family == socket.AF_UNIX else 0
        self.peer_id: str | None = None  # worker id, node id, ... once registered
        self.closed = False

    @property
    def peer_name(self) -> str:
        return self.peer_kind if self.peer_id is None else f"{self.peer_kind}:{self.peer_id}"

    def _frame(self, kind: str, body: dict, phase: int | None,
               msg_id: int | None = None) -> tuple[int, bytes]:
        if msg_id is None:
            msg_id = next(_msg_counter)
        if phase is None:
            phase = trace.get_phase()
        data = encode(kind, msg_id, phase, body)
        w = trace.writer()
        if w is not None:
            # Message events are most of a trace, so they skip emit()'s generality: every
            # value here is an int or an identifier, so the line is formatted directly.
            ids = b""
            for key, short in _TRACED_KEYS:
                value = body.get(key)
                if value is not None:
                    ids += b',"%s":"%s"' % (short, value.encode())
            w.append(_SEND_LINE % (
                trace.now(), w.common_part, b"null" if phase is None else b"%d" % phase,
                w.pid, msg_id, kind.encode(), self.peer_name.encode(), self.peer_pid,
                len(data), ids))
        return msg_id, data

    def trace_recv(self, kind: str, msg_id: int, phase: int | None) -> None:
        w = trace.writer()
        if w is not None:
            w.append(_RECV_LINE % (
                trace.now(), w.common_part, b"null" if phase is None else b"%d" % phase,
                self.peer_pid, msg_id, kind.encode(), self.peer_name.encode(), self.peer_pid))


class FrameReader:
    """Accumulates bytes and yields complete decoded messages."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple]:
        if self._buf:
            self._buf += data
            data = bytes(self._buf)
            self._buf = bytearray()
        out = []
        loads = pickle.loads
        view = memoryview(data)
        start = 0
        end = len(data)
        while end - start >= _HEADER_SIZE:
            (n,) = _HEADER.unpack_from(data, start)
            begin = start + _HEADER_SIZE
            if end - begin < n:
                break
            out.append(loads(view[begin:begin + n]))
            start = begin + n
        if start < end:
            self._buf += view[start:]
        return out


class BlockingConnection(Connection):
    """A connection used by a driver or worker: blocking sends under a lock."""

    def __init__(self, sock: socket.socket, peer_kind: str) -> None:
        super().__init__(sock, peer_kind)
        # Re-entrant: ObjectRef.__del__ may send a release from inside another send's
        # bookkeeping on the same thread, before that send has written a byte.
        self._send_lock = threading.RLock()
        self.reader = FrameReader()
        self.backlog: list[tuple] = []  # messages read by request() but not yet handled

    def send(self, kind: str, body: dict, phase: int | None = None,
             msg_id: int | None = None) -> int:
        msg_id, data = self._frame(kind, body, phase, msg_id)
        with self._send_lock:
            if self.closed:
                raise ConnectionClosed(self.peer_name)
            try:
                self.sock.sendall(data)
            except OSError as e:
                self.closed = True
                raise ConnectionClosed(self.peer_name) from e
        return msg_id

    def recv_messages(self) -> list[tuple]:
        """Block until at least one byte arrives; return the complete messages decoded."""
        if self.backlog:
            backlog, self.backlog = self.backlog, []
            return backlog
        try:
            data = self.sock.recv(_RECV_SIZE)
        except OSError as e:
            raise ConnectionClosed(self.peer_name) from e
        if not data:
            raise ConnectionClosed(self.peer_name)
        return self.reader.feed(data)

    def request(self, kind: str, body: dict, phase: int | None = None) -> Any:
        """Send and wait for the reply on this thread (only before the I/O thread runs)."""
        msg_id = self.send(kind, body, phase)
        trace.flush()  # about to wait: what happened so far goes to the file first
        while True:
            messages = self.recv_messages()
            for i, message in enumerate(messages):
                if message[0] == "reply" and message[3].get("reply_to") == msg_id:
                    self.trace_recv(message[0], message[1], message[2])
                    # Whatever came in behind the reply is for the I/O thread.
                    self.backlog = messages[i + 1:] + self.backlog
                    return message[3]
                raise ConnectionClosed(f"unexpected {message[0]!r} before reply")

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass


def connect_unix(path: str, peer_kind: str, timeout_s: float = 10.0) -> BlockingConnection:
    deadline = time.monotonic() + timeout_s
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return BlockingConnection(sock, peer_kind)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.002)


# --------------------------------------------------------------------------------------------
# The single-threaded server loop of GCS, raylet and zygote.


class LoopConnection(Connection):
    """A non-blocking connection owned by an EventLoop."""

    def __init__(self, loop: "EventLoop", sock: socket.socket, peer_kind: str,
                 on_message: Callable[["LoopConnection", str, int, Any, dict], None],
                 on_close: Callable[["LoopConnection"], None]) -> None:
        super().__init__(sock, peer_kind)
        sock.setblocking(False)
        self.loop = loop
        self.on_message = on_message
        self.on_close = on_close
        self.reader = FrameReader()
        self._out: list[bytes] = []
        self._out_view: memoryview | None = None
        self._writing = False
        self.state: Any = None  # what the server knows about this peer

    def send(self, kind: str, body: dict, phase: int | None = None) -> int:
        msg_id, data = self._frame(kind, body, phase)
        self.send_raw(data)
        return msg_id

    def reply(self, request_id: int, body: dict, phase: int | None = None) -> None:
        body["reply_to"] = request_id
        self.send("reply", body, phase)

    def send_raw(self, data: bytes) -> None:
        """Queue bytes for the peer. They are written when the loop finishes handling what
        it read (one ``send`` per peer per turn of the loop, however many messages)."""
        if self.closed:
            return
        self._out.append(data)
        if not self._writing:
            self.loop.dirty.add(self)

    def flush_out(self) -> None:
        """Write what is queued; what the socket does not take waits for EVENT_WRITE."""
        if self._writing or self.closed:
            return
        self.handle_writable()

    def send_with_fd(self, kind: str, body: dict, fd: int, phase: int | None = None) -> None:
        """Send a small message with a file descriptor attached (SCM_RIGHTS), as plasma does."""
        _msg_id, data = self._frame(kind, body, phase)
        self.sock.setblocking(True)
        try:
            if self._out:  # keep the order: what was queued before goes first
                self.sock.sendall(b"".join(self._out))
                self._out = []
            socket.send_fds(self.sock, [data], [fd])
        finally:
            self.sock.setblocking(False)

    def _want_write(self, on: bool) -> None:
        if on != self._writing:
            self._writing = on
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
            self.loop.selector.modify(self.sock, events, self)

    def handle_writable(self) -> None:
        while True:
            if self._out_view is None:
                if not self._out:
                    self._want_write(False)
                    return
                out = self._out
                self._out_view = memoryview(out[0] if len(out) == 1 else b"".join(out))
                self._out = []
            try:
                n = self.sock.send(self._out_view)
            except BlockingIOError:
                return
            except OSError:
                self.loop.close_connection(self)
                return
            self._out_view = self._out_view[n:] if n < len(self._out_view) else None
            if self._out_view is not None:
                self._want_write(True)
                return

    def handle_readable(self) -> None:
        try:
            data = self.sock.recv(_RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.loop.close_connection(self)
            return
        for kind, msg_id, phase, body in self.reader.feed(data):
            trace.set_phase(phase)
            self.trace_recv(kind, msg_id, phase)
            self.on_message(self, kind, msg_id, phase, body)
            if self.closed:
                return
        trace.set_phase(None)


class EventLoop:
    """selectors + a timer heap. Everything a server does happens on this one thread."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.running = True
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self.connections: set[LoopConnection] = set()
        self.dirty: set[LoopConnection] = set()  # connections with output queued this turn
        # Callbacks other threads ask the loop to run (call_from_thread), and the pipe that
        # wakes it for them.
        self._from_threads: collections.deque[Callable[[], None]] = collections.deque()
        self._wake: tuple[int, int] | None = None

    def listen(self, path: str, peer_kind: str, on_message, on_close) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(128)
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ,
                               ("accept", peer_kind, on_message, on_close))
        return sock

    def add_socket(self, sock: socket.socket, peer_kind: str, on_message,
                   on_close) -> LoopConnection:
        conn = LoopConnection(self, sock, peer_kind, on_message, on_close)
        self.selector.register(sock, selectors.EVENT_READ, conn)
        self.connections.add(conn)
        return conn

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        self.selector.register(fd, selectors.EVENT_READ, ("reader", callback))

    def remove_reader(self, fd: int) -> None:
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def close_connection(self, conn: LoopConnection) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.connections.discard(conn)
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        conn.on_close(conn)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._timer_seq), callback))

    def call_from_thread(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop's thread, soon: the one way another thread (the
        object manager's transfers) touches what the loop owns."""
        if self._wake is None:
            raise RuntimeError("call_from_thread before enable_threads()")
        self._from_threads.append(callback)
        try:
            os.write(self._wake[1], b"x")
        except BlockingIOError:
            pass  # the pipe is full: the loop is already going to wake

    def enable_threads(self) -> None:
        """Make call_from_thread usable (a pipe the loop watches)."""
        if self._wake is None:
            self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self.add_reader(self._wake[0], self._run_from_threads)

    def _run_from_threads(self) -> None:
        try:
            while os.read(self._wake[0], 4096):
                pass
        except BlockingIOError:
            pass
        while self._from_threads:
            self._from_threads.popleft()()

    def stop(self) -> None:
        self.running = False

    def run(self) -> None:
        select = self.selector.select
        # What was sent before the loop ran (a raylet's register_node) goes out now, not
        # after the first message in: nothing may come before the GCS has heard of it.
        self.flush_output()
        while self.running:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            trace.flush()  # about to wait: everything so far goes to the file
            try:
                ready = select(timeout)
            except InterruptedError:
                continue
            for key, mask in ready:
                data = key.data
                if isinstance(data, LoopConnection):
                    if mask & selectors.EVENT_WRITE and not data.closed:
                        data.handle_writable()
                    if mask & selectors.EVENT_READ and not data.closed:
                        data.handle_readable()
                elif data[0] == "accept":
                    self._accept(key.fileobj, *data[1:])
                else:
                    data[1]()
                if not self.running:
                    break
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, callback = heapq.heappop(self._timers)
                callback()
            self.flush_output()
        self.flush_output()
        trace.flush()

    def flush_output(self) -> None:
        while self.dirty:
            self.dirty.pop().flush_out()

    def _accept(self, listener: socket.socket, peer_kind, on_message, on_close) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    return
                raise
            self.add_socket(sock, peer_kind, on_message, on_close)
