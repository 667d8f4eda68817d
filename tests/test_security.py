"""A session is private to the user who started it, and nothing of it listens on a network.

Ray's processes talk over TCP (gRPC) and its dashboard listens on a port; raysim's talk only
over Unix sockets in a session directory that only its user can enter (0700), each socket
0600. These tests look from outside, as an attacker on the same machine would: the file
modes, and the kernel's own tables of sockets (/proc/net/*) for the session's processes."""

import os
import pathlib
import stat
import tempfile
from collections import defaultdict

import pytest

import raysim

_NETWORK_TABLES = ("tcp", "tcp6", "udp", "udp6")
_TCP_LISTEN = "0A"
_UNIX_LISTENING = 0x10000  # __SO_ACCEPTCON in /proc/net/unix's Flags


@raysim.remote
def echo(x):
    return x


@raysim.remote
class Counter:
    def incr(self):
        return 1


def _busy_session():
    """Start a task worker and an actor's worker, so that every kind of process is up."""
    counter = Counter.remote()
    assert raysim.get([echo.remote(1), counter.incr.remote()], timeout=60) == [1, 1]
    return counter


def _runtime_pids(ctx) -> list[int]:
    """The GCS, the raylet, and the raylet's descendants (zygote, workers)."""
    children = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked
        children[ppid].append(int(entry))
    pids, todo = [], [ctx.address_info["gcs"], ctx.address_info["raylet"]]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children[pid]
    return pids


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:["):-1]))
    return inodes


def _network_sockets() -> dict[int, tuple[str, str]]:
    """inode -> (table, state) of every TCP and UDP socket, IPv4 and IPv6."""
    sockets = {}
    for table in _NETWORK_TABLES:
        with open(f"/proc/net/{table}") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                sockets[int(fields[9])] = (table, fields[3])
    return sockets


def _unix_sockets() -> dict[int, tuple[int, str]]:
    """inode -> (flags, path) of every Unix socket."""
    sockets = {}
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            sockets[int(fields[6])] = (int(fields[3], 16), fields[7] if len(fields) > 7 else "")
    return sockets


def test_session_directory_and_every_socket_in_it_are_private(ray_start):
    counter = _busy_session()
    session_dir = ray_start["session_dir"]
    st = os.stat(session_dir)
    assert st.st_uid == os.getuid()
    assert stat.S_IMODE(st.st_mode) == 0o700
    parent = os.stat(os.path.dirname(session_dir))
    assert parent.st_uid == os.getuid() and not parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    sockets = []
    for name in os.listdir(session_dir):
        entry = os.lstat(os.path.join(session_dir, name))
        assert entry.st_uid == os.getuid(), name
        assert not entry.st_mode & 0o077, f"{name} is open to others"
        if stat.S_ISSOCK(entry.st_mode):
            assert stat.S_IMODE(entry.st_mode) == 0o600, name
            sockets.append(name)
    node_id = ray_start["node_id"]
    assert "gcs.sock" in sockets and f"raylet-{node_id}.sock" in sockets
    # The driver and each worker (here at least a task worker and the actor's) listen for
    # results on owner-<worker id>.sock.
    assert len([s for s in sockets if s.startswith("owner-")]) >= 3
    del counter


def test_no_process_of_the_session_uses_a_network_socket(ray_start):
    counter = _busy_session()
    runtime = _runtime_pids(ray_start)
    assert len(runtime) >= 5, "gcs, raylet, zygote, a task worker and the actor's worker"
    network = _network_sockets()
    unix = _unix_sockets()
    listening_paths = []
    for pid in runtime:
        for inode in _socket_inodes(pid):
            assert inode not in network, f"process {pid} has a {network[inode]} socket"
            assert inode in unix, f"process {pid}'s socket {inode} is not a Unix socket"
            flags, path = unix[inode]
            if flags & _UNIX_LISTENING:
                listening_paths.append(path)
    # The driver (this process) listens on nothing but Unix sockets either.
    for inode in _socket_inodes(os.getpid()):
        if inode in network:
            table, state = network[inode]
            assert not (table.startswith("tcp") and state == _TCP_LISTEN), "driver listens"
            assert not table.startswith("udp"), "driver has a bound UDP socket"
        elif inode in unix and unix[inode][0] & _UNIX_LISTENING:
            listening_paths.append(unix[inode][1])
    session_dir = ray_start["session_dir"]
    assert len(listening_paths) >= 5
    for path in listening_paths:
        assert os.path.dirname(path) == session_dir, f"{path} listens outside the session"
    del counter


def test_a_directory_others_can_write_to_is_refused():
    # In the tests' own short directory: Unix socket paths are limited to 107 bytes.
    shared = pathlib.Path(tempfile.mkdtemp(prefix="open-", dir=os.environ["RAYSIM_TEMP_DIR"]))
    shared.chmod(0o777)
    with pytest.raises(ValueError) as info:
        raysim.init(num_cpus=1, _temp_dir=str(shared))
    assert str(info.value) == (
        f"The directory {str(shared)!r} for raysim's session is writable by other users (mode "
        f"777), who could replace the session's sockets with their own. Tip: chmod 700 "
        f"{shared}, or pass another _temp_dir to raysim.init().")
    assert not raysim.is_initialized()
    # Sticky, as /tmp is: others cannot rename what is not theirs, so it is accepted.
    shared.chmod(0o1777)
    ctx = raysim.init(num_cpus=1, _temp_dir=str(shared))
    try:
        assert stat.S_IMODE(os.stat(ctx["session_dir"]).st_mode) == 0o700
        assert raysim.get(echo.remote(7), timeout=60) == 7
    finally:
        raysim.shutdown()


def test_a_directory_of_another_user_is_refused(monkeypatch):
    from raysim.runtime import node

    base = tempfile.mkdtemp(prefix="theirs-", dir=os.environ["RAYSIM_TEMP_DIR"])
    someone_else = os.getuid() + 1
    # Seen as another user, this process finds both base and base-<uid> not its own.
    monkeypatch.setattr(node.os, "getuid", lambda: someone_else)
    with pytest.raises(ValueError) as info:
        node.make_session_dir(base)
    assert str(info.value) == (
        f"The directory {base + '-' + str(someone_else)!r} for raysim's session belongs to "
        f"user id {os.stat(base).st_uid}, not to you (user id {someone_else}), so its "
        f"sessions would not be private. Tip: pass a directory of your own as _temp_dir to "
        f"raysim.init(), or set RAYSIM_TEMP_DIR.")
