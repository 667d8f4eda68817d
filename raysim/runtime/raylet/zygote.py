"""The zygote: a preloaded process that forks worker processes on the raylet's request.

Ray starts every worker as a fresh interpreter that must import cloudpickle, numpy, pandas...
before running its first task (~0.6 s each on a 2-core machine). raysim's raylet instead forks
this process once at startup; it imports those modules a single time and then forks a worker
in milliseconds whenever the raylet asks (the same idea as multiprocessing's forkserver with
``preload``, or Android's zygote). Pages of the imported modules stay shared between workers,
which is most of why raysim's memory use after ``init`` is small.

Forking is only safe from a single-threaded process, so before importing numpy the zygote
asks BLAS and OpenMP for one thread (Ray sets ``OMP_NUM_THREADS=1`` for its workers too) and
turns off the background thread of pyarrow's jemalloc; the user's own settings win.

What workers need is imported before the zygote answers anything: raysim's worker code,
cloudpickle, numpy, and the modules the program's code names (``import pandas as pd`` in the
script, or in a module that defines remote functions; ``node.driver_modules``). The driver's
other modules (in a test run, every test module's imports: seconds of matplotlib,
jsonschema, ...) are imported one at a time while no request waits, so that they do not hold
up the first workers; a worker forked before them imports what its tasks need on demand, as
Ray's workers do, and later workers start with everything.

The zygote also reaps its children: when a worker exits it tells the raylet the exit code or
signal at once (SIGCHLD wakes it), which is how a SIGKILLed worker shows up in the trace as
``process.exited`` and ``worker.died``, and how the raylet knows to retry its task.

Runs in: its own process, a child of the raylet. Trace events: ``process.started``,
``zygote.preloaded``, messages ``start_worker`` (received), ``worker_exited``
(sent).
"""

from __future__ import annotations

import importlib
import os
import selectors
import signal
import socket
import sys
import time

from raysim.runtime.common import procutil, protocol
from raysim.runtime.common.protocol import BlockingConnection, ConnectionClosed
from raysim.trace import writer as trace

_SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
}


def run(sock: socket.socket, session: dict) -> None:
    """Body of the zygote process (after fork from the raylet). Never returns."""
    code = 0
    try:
        procutil.die_with_parent(signal.SIGKILL)
        procutil.set_process_name("raysim::zygote")
        if trace.writer() is not None:
            trace.writer().drop_inherited("zygote")
        protocol.reset_after_fork()
        zygote = Zygote(sock, session)
        zygote.preload(session["preload"])
        zygote.serve()
    except (ConnectionClosed, KeyboardInterrupt, SystemExit):
        pass
    except BaseException:  # pragma: no cover - reported, then exit
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        trace.flush()
        os._exit(code)


class Zygote:
    def __init__(self, sock: socket.socket, session: dict) -> None:
        self.conn = BlockingConnection(sock, "raylet")
        self.conn.peer_id = session["node_id"]
        self.session = session
        self.handlers = self._handlers()
        for key, value in _SINGLE_THREAD_ENV.items():
            os.environ.setdefault(key, value)
        trace.emit("process.started", ppid=os.getppid(), role="zygote")
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.children: dict[int, str] = {}
        self.to_import: list[str] = []  # modules still to import, between requests

    def preload(self, preload: dict) -> None:
        """Import what every worker needs; queue the driver's other modules for ``serve``
        to import while it is idle. Runs where the driver runs, with its sys.path."""
        sys.path[:] = preload["sys_path"]
        try:
            os.chdir(preload["cwd"])
        except OSError:
            pass
        self.to_import = list(dict.fromkeys(
            [preload["worker_module"], "cloudpickle", "numpy", *preload["modules"]]))
        self._import_while(lambda: True)
        self.to_import = list(preload["modules_when_idle"])

    def _import_while(self, idle) -> None:
        """Import queued modules, one at a time, for as long as ``idle()`` says no request
        waits; one ``zygote.preloaded`` event covers the stretch."""
        start = time.perf_counter_ns()
        loaded = []
        while self.to_import and idle():
            name = self.to_import.pop(0)
            try:
                importlib.import_module(name)
                loaded.append(name)
            except Exception:  # a module that fails to import here is imported on demand
                pass
        if loaded:
            trace.emit("zygote.preloaded", modules=[n for n in loaded if "." not in n],
                       dur=time.perf_counter_ns() - start)

    def serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.conn.sock, selectors.EVENT_READ, "conn")
        selector.register(self._wake_r, selectors.EVENT_READ, "child")
        while True:
            if self.to_import:
                self._import_while(lambda: not selector.select(0))
            trace.flush()
            for key, _ in selector.select():
                if key.data == "child":
                    try:
                        os.read(self._wake_r, 512)
                    except BlockingIOError:
                        pass
                    self._reap()
                else:
                    for kind, msg_id, phase, body in self.conn.recv_messages():
                        trace.set_phase(phase)
                        self.conn.trace_recv(kind, msg_id, phase)
                        self.handlers[kind](body)
                        trace.set_phase(None)  # a child's exit later is no call's doing
            self._reap()

    def _handlers(self) -> dict:
        """Every message kind the zygote answers (from its raylet), and who answers it."""
        return {"start_worker": self.handle_start_worker}

    def handle_start_worker(self, body: dict) -> None:
        pid = os.fork()
        if pid == 0:
            self._become_worker(body)
        self.children[pid] = body["wid"]

    def _become_worker(self, body: dict) -> None:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self.conn.sock.close()
        # The module a worker runs, as the driver named it (Ray's raylet is likewise given
        # the command that starts a worker): the zygote does not import the core worker.
        entry = importlib.import_module(self.session["preload"]["worker_module"])
        entry.run_forked(body["wid"], body["role"], body.get("actor_id"), self.session)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            wid = self.children.pop(pid, None)
            self.conn.send("worker_exited", {"pid": pid, "wid": wid,
                                             "exit_code": procutil.exit_status(status)})
