"""Starting and stopping a session's processes (Ray's ``node.py`` and ``services.py``).

Seed, phase 1: "When ray.init() is called, several processes start on your machine". This
module starts them, from the driver:

1. a session directory, private to the user (0700): ``/tmp/raysim-sessions/session_<time>_<pid>``,
   holding the Unix sockets, and the trace unless told otherwise (not ``/tmp/raysim``: a
   directory named like the package would shadow it for scripts run from /tmp);
2. the GCS process (``python -m raysim.runtime.gcs``);
3. the raylet process (``python -m raysim.runtime.raylet``), which creates the node's object
   store and forks the zygote, which forks the task workers;

then connects the driver to both. The raylet hands the driver the store's file descriptor
over the Unix socket (SCM_RIGHTS), as plasma does.

Stopping asks both processes to exit, waits, and kills what is left, then removes the spill
directory and the sockets, should a process not have removed its own (it was killed). If the
driver dies instead, the processes notice their connection to it close and exit by themselves.

Runs in: the driver (``launch.py`` calls it). Imports only ``runtime/common/``: it starts the
other processes by module name, and talks to them through messages.
"""

from __future__ import annotations

import datetime
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import time
import types

import orjson

from raysim.runtime.common.config import Config
from raysim.runtime.common.protocol import BlockingConnection, ConnectionClosed, FrameReader

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Unix socket paths are limited to 108 bytes by the kernel.
_MAX_SOCKET_PATH = 107
# How long the driver waits for the exit status of a GCS or raylet whose connection closed.
# The status follows the closing within microseconds; a process still cleaning up (a raylet
# stopping its workers) may take longer, and is then reported with its status unknown.
_EXIT_STATUS_WAIT_S = 0.5


def make_session_dir(temp_dir: str | None) -> str:
    base = temp_dir or os.environ.get("RAYSIM_TEMP_DIR") or "/tmp/raysim-sessions"
    os.makedirs(base, mode=0o700, exist_ok=True)
    if os.stat(base).st_uid != os.getuid():
        base = f"{base}-{os.getuid()}"
        os.makedirs(base, mode=0o700, exist_ok=True)
    _check_private(base)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
    path = os.path.join(base, f"session_{stamp}_{os.getpid()}")
    os.mkdir(path, 0o700)
    if len(os.path.join(path, "raylet-00000000.sock")) > _MAX_SOCKET_PATH:
        os.rmdir(path)
        raise ValueError(
            f"The session directory {path!r} is too long for Unix socket paths (at most "
            f"{_MAX_SOCKET_PATH} bytes). Tip: pass a shorter _temp_dir to raysim.init() or "
            f"set RAYSIM_TEMP_DIR.")
    latest = os.path.join(base, "session_latest")
    try:
        if os.path.islink(latest):
            os.unlink(latest)
        os.symlink(path, latest)
    except OSError:
        pass
    return path


def _check_private(base: str) -> None:
    """The session directory is 0700, but whoever can write to its parent can rename it and
    put a directory of their own, with their own sockets, in its place. So the parent must
    be the user's, and writable by nobody else (unless sticky, as /tmp is: then others
    cannot rename what is not theirs)."""
    st = os.stat(base)
    if st.st_uid != os.getuid():
        raise ValueError(
            f"The directory {base!r} for raysim's session belongs to user id {st.st_uid}, "
            f"not to you (user id {os.getuid()}), so its sessions would not be private. Tip: "
            f"pass a directory of your own as _temp_dir to raysim.init(), or set "
            f"RAYSIM_TEMP_DIR.")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        raise ValueError(
            f"The directory {base!r} for raysim's session is writable by other users (mode "
            f"{stat.S_IMODE(st.st_mode):o}), who could replace the session's sockets with "
            f"their own. Tip: chmod 700 {base}, or pass another _temp_dir to raysim.init().")


class NodeProcesses:
    """The GCS and raylet processes of a session, as seen from the process that started
    them: one GCS, and one raylet per node (the head node's first; ``add_raylet`` starts
    more, each with its own store, zygote and workers: ``raysim.cluster_utils``)."""

    def __init__(self, session_dir: str, node_id: str, trace_path: str | None, config: Config,
                 resources: dict[str, float], store_capacity: int, job_id: str,
                 preload: dict, cluster: bool = False, object_manager_port: int = 0) -> None:
        self.session_dir = session_dir
        # Several nodes: each raylet's object manager listens on TCP (127.0.0.1) for the
        # others; a one-node session listens on nothing but its Unix sockets.
        self.cluster = cluster
        self.node_id = node_id  # the head node's
        self.config = config
        self.job_id = job_id
        self.preload = preload
        self.trace_path = trace_path
        # The cluster's token: what another node's object manager must show (raylets get it
        # on their stdin, never on a command line other users can read).
        self.token = secrets.token_hex(16)
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [_PACKAGE_PARENT] + ([self.env["PYTHONPATH"]] if self.env.get("PYTHONPATH") else []))
        self.gcs = self._spawn("gcs", dict(
            self._common(node_id), freed_objects_remembered=config.freed_objects_remembered))
        self.raylets: dict[str, subprocess.Popen] = {}  # by node id, the head's first
        self.add_raylet(node_id, resources, store_capacity, object_manager_port)
        self.raylet = self.raylets[node_id]
        self.timeout = config.process_startup_timeout_s

    def _common(self, node_id: str) -> dict:
        return {"session_dir": self.session_dir, "node_id": node_id,
                "trace_path": self.trace_path,
                "trace_flush_events": self.config.trace_flush_events}

    def add_raylet(self, node_id: str, resources: dict[str, float], store_capacity: int,
                   object_manager_port: int = 0) -> subprocess.Popen:
        """Start one more node's raylet; it registers with the GCS as it starts. Its object
        manager (a cluster's only) listens on ``object_manager_port``, or, if 0, on a port
        the system picks."""
        args = dict(self._common(node_id), config=self.config.to_dict(), resources=resources,
                    store_capacity=store_capacity, job_id=self.job_id, preload=self.preload,
                    object_manager=self.cluster, object_manager_port=object_manager_port)
        proc = self.raylets[node_id] = self._spawn("raylet", args, secret=self.token)
        return proc

    def remove_raylet(self, node_id: str) -> None:
        """Stop one node's raylet (its workers and store go with it), as a node that fails."""
        proc = self.raylets.pop(node_id)
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=self.config.process_shutdown_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(self.config.spill_directory(self.session_dir, node_id),
                      ignore_errors=True)

    def _spawn(self, module: str, args: dict, secret: str | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"raysim.runtime.{module}", orjson.dumps(args).decode()],
            env=self.env, stdin=subprocess.DEVNULL if secret is None else subprocess.PIPE,
            close_fds=True)
        if secret is not None:
            proc.stdin.write(secret.encode() + b"\n")
            proc.stdin.close()
        return proc

    def _connect(self, path: str, peer_kind: str, proc: subprocess.Popen) -> BlockingConnection:
        deadline = time.monotonic() + self.timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"The raysim {peer_kind} process exited with code {proc.returncode} while "
                    f"starting. Tip: its error is printed above; check that raysim's "
                    f"dependencies import in {sys.executable}.")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                return BlockingConnection(sock, peer_kind)
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"The raysim {peer_kind} did not start within {self.timeout} s. Tip: the "
                    f"machine may be overloaded; raise process_startup_timeout_s.")
            time.sleep(0.002)

    def connect_gcs(self) -> BlockingConnection:
        return self._connect(os.path.join(self.session_dir, "gcs.sock"), "gcs", self.gcs)

    def connect_raylet(self, body: dict) -> tuple[BlockingConnection, dict, int]:
        """Register the driver with its raylet; the reply carries the store's fd."""
        conn = self._connect(os.path.join(self.session_dir, f"raylet-{self.node_id}.sock"),
                             "raylet", self.raylet)
        conn.peer_id = self.node_id
        msg_id = conn.send("register_client", body)
        reader = FrameReader()
        fds: list[int] = []
        while True:
            data, new_fds, _flags, _addr = socket.recv_fds(conn.sock, 1 << 16, 4)
            if not data:
                raise ConnectionClosed("raylet closed the connection during registration")
            fds += new_fds
            messages = reader.feed(data)
            if messages:
                kind, reply_id, phase, reply = messages[0]
                conn.trace_recv(kind, reply_id, phase)
                if kind != "reply" or reply.get("reply_to") != msg_id or not fds:
                    raise ConnectionClosed(f"unexpected answer {kind!r} to registration")
                conn.reader = reader
                conn.backlog = messages[1:]
                return conn, reply, fds[0]

    def stop(self, timeout_s: float) -> None:
        procs = [*self.raylets.values(), self.gcs]
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for node_id in self.raylets:
            shutil.rmtree(self.config.spill_directory(self.session_dir, node_id),
                          ignore_errors=True)
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """Sockets a killed process could not remove: the GCS's or raylet's own (SIGKILLed,
        their ``finally`` never ran) and the result sockets of workers killed with it."""
        try:
            names = os.listdir(self.session_dir)
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(".sock") and (name == "gcs.sock" or name.startswith(
                    ("raylet-", "owner-"))):
                try:
                    os.unlink(os.path.join(self.session_dir, name))
                except FileNotFoundError:
                    pass

    def pids(self) -> dict[str, int]:
        return {"gcs": self.gcs.pid, "raylet": self.raylet.pid}

    def exit_code(self, component: str, wait_s: float = _EXIT_STATUS_WAIT_S) -> int | None:
        """How the GCS or raylet ended, as ``subprocess`` says it (-9: SIGKILL), waiting up
        to ``wait_s`` for it to exit; None if it has not.

        The driver started both, so only the driver can learn this (``waitpid``). When a
        connection closes the process is exiting: the kernel closes its sockets a moment
        before its exit status is ready, so the default waits that moment."""
        proc = self.gcs if component == "gcs" else self.raylet
        try:
            return proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None


def driver_modules(code_modules: set[str]) -> tuple[list[str], list[str]]:
    """Third-party modules the driver has imported, for the zygote to preload: first those
    the program's code names, then the others.

    Submodules count too: a driver that wrote parquet files has ``pyarrow.parquet`` loaded,
    and a worker that reads them then starts with it instead of importing it on its first
    task. Packages known to start threads when imported are left out: the zygote forks, and
    a forked process gets only the thread that called fork.

    The zygote imports the first list before it forks any worker and the second while it
    has nothing else to do (zygote.py). The first holds the modules named in the script's
    or notebook's globals (``import pandas as pd``, ``from pyarrow import parquet``) and in
    those of ``code_modules``, where the remote functions and actor classes were defined:
    what remote code will likely use. The rest came in with something else (in a test run,
    every test module's imports: seconds of matplotlib, jsonschema, ...)."""
    skip = {"raysim", "IPython", "ipykernel", "zmq", "tornado", "jupyter_client",
            "jupyter_core", "debugpy", "traitlets", "prompt_toolkit", "pytest", "_pytest",
            "pluggy", "nbclient", "comm", "psutil", "setuptools", "pip", "pkg_resources"}
    names = []
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] in skip:
            continue
        if any(part.startswith("_") for part in name.split(".")[1:]):
            continue  # private submodules come with their public parents
        path = getattr(module, "__file__", None) or ""
        if "site-packages" in path or "dist-packages" in path:
            names.append(name)
    names.sort(key=lambda n: (n.count("."), n))
    named = _named_by_program(code_modules)
    return [n for n in names if n in named], [n for n in names if n not in named]


def _named_by_program(code_modules: set[str]) -> set[str]:
    """The modules, and the modules of the functions and classes, that the globals of
    ``__main__`` and of ``code_modules`` refer to."""
    named = set()
    for name in {"__main__", *code_modules}:
        module = sys.modules.get(name)
        for value in list(vars(module).values()) if module is not None else ():
            if isinstance(value, types.ModuleType):
                named.add(value.__name__)
                continue
            try:
                owner = getattr(value, "__module__", None)
            except Exception:  # an object whose attributes are computed, and failed
                continue
            if isinstance(owner, str):
                named.add(owner)
    return named

