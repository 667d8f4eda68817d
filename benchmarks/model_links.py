"""The links of ``bench_model.py``: a network namespace of its own, and ``htb`` on its ``lo``
giving each node's object manager an egress of known speed, shared fairly by its flows.

Each node's object manager listens on a fixed port (``PORT_BASE + i``), so its traffic is told
apart by its TCP source port. Under ``lo``'s root ``htb`` each port has a class whose rate and
ceil are the link's: all it sends together. This kernel has no ``fq_codel``, ``sfq`` or ``fq``
to share that class fairly among its flows, and one FIFO lets them share it as TCP on a
loss-free link does: the first flow in finishes first. So the class is made a stochastic fair
queue out of ``htb`` itself: ``QUEUES`` children, each with a rate of link/``QUEUES`` and a
ceil of the link, the same prio and quantum; a packet goes to the child its destination port
(the puller's ephemeral one, new for each pull) hashes to. An active child sends its own
rate, then borrows the parent's unused rate, which ``htb`` lends round robin among the
borrowing children, a quantum each (DRR): flows in different children share the link about
equally, a lone flow has all of it. Two flows in one child share it as one FIFO does, so
each gets half a fair share: with ``QUEUES`` = 256 (the most a ``u32`` hash table holds),
the 24 pulls the ``tasks`` program makes from the head at once collide about once (with 64,
about four times: measured, the flows that collided ended 25 % later than the others).

Linux picks even ports for ``connect()`` (it keeps odd ones for ``bind()``), so the hash takes
the destination port's bits 1 to 8, not 0 to 7, which would leave half the children unused.
The hash is a ``u32`` hash table per port (one lookup, not a list of filters to walk).

Runs in: ``bench_model.py``'s processes; namespaces need root, the rest runs inside one.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Iterator

NAMESPACE_PREFIX = "raysim-bench-"
# Node i's object manager listens on PORT_BASE + i; the calibration streams come from
# CALIBRATION_PORT (shaped like a node) and latency pings use PING_PORT (not shaped).
PORT_BASE = 21000
CALIBRATION_PORT = 21009
PING_PORT = 21008
QUEUES = 256  # children per node class: the fair queue's buckets (u32's most)
_PORT_SHIFT = 1  # the destination port's bit 0 is always 0 for connect(): skip it


# ----------------------------------------------------------------------------------------
# The namespace (host namespace, root)


def missing_requirement() -> str | None:
    import shutil

    if os.geteuid() != 0:
        return ("needs root: it creates a network namespace (ip netns add) and shapes its "
                "loopback with tc. Tip: run it as root (sudo python "
                "benchmarks/bench_model.py), or print an earlier run's report with "
                "--report DIR, which needs neither.")
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return (f"needs the {tool!r} command (iproute2), which is not on PATH. Tip: "
                    f"apt-get install iproute2.")
    return None


def namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def remove_stale_namespaces() -> None:
    """Namespaces of earlier runs whose process is gone (killed before its ``finally``)."""
    for name in namespaces():
        match = re.fullmatch(re.escape(NAMESPACE_PREFIX) + r"(\d+)", name)
        if not match or _alive(int(match.group(1))):
            continue
        left = _namespace_pids(name)
        if left:
            print(f"warning: stale namespace {name} still holds processes {left}; its name "
                  f"is removed, they are left alone", file=sys.stderr)
        subprocess.run(["ip", "netns", "del", name], timeout=10)
        print(f"removed stale network namespace {name}", flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespace_pids(name: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                         timeout=10)
    return [int(pid) for pid in out.stdout.split()]


@contextlib.contextmanager
def namespace(name: str) -> Iterator[None]:
    """A network namespace with ``lo`` up, removed on the way out: after its processes (all
    started by this run) have ended, by themselves or killed."""
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True,
                          timeout=10)
    if made.returncode != 0:
        raise SystemExit(f"bench_model.py: cannot create network namespace {name}: "
                         f"{made.stderr.strip()}. Tip: this needs CAP_SYS_ADMIN (root "
                         f"outside a restricted container).")
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                       check=True, timeout=10)
        yield
    finally:
        _end_processes_in(name)
        subprocess.run(["ip", "netns", "del", name], timeout=10)
        if name in namespaces():
            print(f"warning: network namespace {name} could not be removed. Tip: ip netns "
                  f"del {name}", file=sys.stderr)


def _end_processes_in(name: str, wait_s: float = 10.0) -> None:
    """Processes still in the namespace are this run's (a raylet outliving a killed driver
    exits by itself soon): wait for them a while, then kill each by its pid."""
    deadline = time.monotonic() + wait_s
    while _namespace_pids(name) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling external state: processes in another namespace
    for pid in _namespace_pids(name):
        print(f"warning: killing process {pid}, left in namespace {name}", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# ----------------------------------------------------------------------------------------
# Shaping (inside the namespace)


def classid(index: int) -> str:
    """The class of the index-th shaped port: all it sends."""
    return f"1:{index + 1:x}"


def child_classid(index: int, queue: int) -> str:
    return f"1:{(index + 1) * 0x100 + queue:x}"


def queue_of(port: int) -> int:
    """The child a packet to ``port`` (the receiver's port) goes to."""
    return (port >> _PORT_SHIFT) % QUEUES


def shape(rate_bps: int, ports: list[int]) -> None:
    """Per port, a class at ``rate_bps`` fed by a filter on the TCP source port, shared by
    ``QUEUES`` children fed by a hash of the destination port. Unmatched traffic (requests,
    acknowledgements, anything else) skips htb's classes through its direct queue, unshaped."""
    unshape()
    with open("/sys/class/net/lo/mtu") as f:
        packet = int(f.read()) + 14  # lo's 64 KiB MTU, and its link header
    # TCP on lo hands the qdisc packets as big as the MTU (64 KiB). A bucket must hold one,
    # or the class overshoots its rate; every byte more lets the start of a transfer through
    # at memory speed (measured once: a 1 MB stream at 1 Gbit/s came out at 1.26 Gbit/s with
    # one packet of burst, 1.39 with two, 1.58 with four; 30 MB at 1.005 with all three). So
    # one packet, for the rate (burst) and the ceil (cburst), parent and children alike.
    # The quantum (bytes a borrowing child sends per round) is one packet too: smaller would
    # still send whole packets, larger makes the rounds coarser. Every class is given its
    # quantum, so r2q (which derives one from the rate) is left alone: it is used by none.
    burst = quantum = packet
    child_rate = max(8, rate_bps // QUEUES)
    mask = (QUEUES - 1) << _PORT_SHIFT  # of the TCP header's first word: dport's bits
    lines = ["qdisc add dev lo root handle 1: htb"]
    for index, port in enumerate(ports):
        lines.append(f"class add dev lo parent 1: classid {classid(index)} htb "
                     f"rate {rate_bps}bit ceil {rate_bps}bit burst {burst} cburst {burst} "
                     f"quantum {quantum}")
        for queue in range(QUEUES):
            lines.append(f"class add dev lo parent {classid(index)} "
                         f"classid {child_classid(index, queue)} htb rate {child_rate}bit "
                         f"ceil {rate_bps}bit burst {burst} cburst {burst} "
                         f"quantum {quantum} prio 0")
        table = f"{index + 1:x}"  # a u32 hash table of its own (800 is the root's)
        lines.append(f"filter add dev lo parent 1: prio 1 handle {table}: protocol ip u32 "
                     f"divisor {QUEUES}")
        lines.append(f"filter add dev lo parent 1: prio 1 protocol ip u32 ht 800:: "
                     f"match ip protocol 6 0xff match ip sport {port} 0xffff "
                     f"hashkey mask 0x{mask:08x} at 20 link {table}:")
        for queue in range(QUEUES):
            lines.append(f"filter add dev lo parent 1: prio 1 protocol ip u32 "
                         f"ht {table}:{queue:x}: match u32 0 0 "
                         f"flowid {child_classid(index, queue)}")
    done = subprocess.run(["tc", "-batch", "-"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"bench_model.py: tc -batch failed: {done.stderr.strip()}. Tip: "
                         f"the kernel needs the htb qdisc and the u32 classifier (sch_htb, "
                         f"cls_u32).")


def unshape() -> None:
    subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True,
                   timeout=10)


def class_bytes() -> dict[str, int]:
    """Bytes each htb class (node classes and their children) has sent so far, by id."""
    out = subprocess.run(["tc", "-s", "class", "show", "dev", "lo"], capture_output=True,
                         text=True, timeout=10).stdout
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"class htb (\S+) .*?\n\s*Sent (\d+) bytes", out)}


# ----------------------------------------------------------------------------------------
# Calibration: streams through a shaped class, and loopback's latency


def tcp_rates(port: int, size: int, streams: int = 1) -> list[tuple[float, int]]:
    """``streams`` TCP streams of ``size`` bytes each, sent at once from ``port``: for each,
    its bits per second (from the moment all are connected to its last byte) and the child
    queue it went through."""
    def send(conn: socket.socket) -> None:
        chunk = memoryview(bytearray(4 * 1024 * 1024))
        for start in range(0, size, len(chunk)):
            conn.sendall(chunk[:min(len(chunk), size - start)])

    child = _forked_server(port, send, streams)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(streams)]
    queues = [queue_of(s.getsockname()[1]) for s in socks]
    ends = [0.0] * streams
    got = [0] * streams

    def receive(i: int) -> None:
        buffer = memoryview(bytearray(1 << 20))
        while got[i] < size:
            n = socks[i].recv_into(buffer)
            if n == 0:
                break
            got[i] += n
        ends[i] = time.perf_counter()

    began = time.perf_counter()
    threads = [threading.Thread(target=receive, args=(i,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for sock in socks:
        sock.close()
    os.waitpid(child, 0)
    return [(got[i] * 8 / (ends[i] - began), queues[i]) for i in range(streams)]


def tcp_rate(port: int, size: int) -> float:
    """Bits per second of one TCP stream of ``size`` bytes sent from ``port``."""
    return tcp_rates(port, size)[0][0]


def loopback_latency(rounds: int = 2000) -> float:
    """One-way latency on lo: the median round trip of one byte over TCP, halved."""
    def echo(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(rounds):
            conn.sendall(conn.recv(1))

    child = _forked_server(PING_PORT, echo)
    times = []
    with socket.create_connection(("127.0.0.1", PING_PORT), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(rounds):
            began = time.perf_counter_ns()
            sock.sendall(b"x")
            sock.recv(1)
            times.append(time.perf_counter_ns() - began)
    os.waitpid(child, 0)
    return statistics.median(times) / 2 / 1e9


def _forked_server(port: int, serve, connections: int = 1) -> int:
    """A child process that accepts ``connections`` connections on ``port``, then runs
    ``serve(conn)`` on each at once (a thread each) and exits (also if they do not all come
    within 30 s): a peer in another process, as nodes are."""
    server = socket.create_server(("127.0.0.1", port), backlog=connections)
    server.settimeout(30)
    child = os.fork()
    if child == 0:
        try:
            conns = []
            for _ in range(connections):
                conn, _ = server.accept()
                conn.settimeout(60)
                conns.append(conn)
            threads = [threading.Thread(target=serve, args=(c,)) for c in conns]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for conn in conns:
                conn.close()
        finally:
            os._exit(0)
    server.close()
    return child
