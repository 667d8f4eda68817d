"""Moving objects between nodes on one machine: raysim's object manager against what the
machine can do.

What it measures (one JSON object per line on stdout):

* ``memcpy``: copying a 1 GB numpy array in memory, GB/s (the ceiling of any copy);
* ``loopback_tcp``: 1 GB sent over one TCP connection on 127.0.0.1 between two threads, from
  one buffer into another, GB/s (the ceiling of a pull, which is that and a little more);
* ``cross_node_get_1MB`` / ``_100MB`` / ``_1GB``: ``ray.get`` in the driver of an array a task
  made on another node: the location lookup, the chunked pull into the driver's node's
  store, and the zero-copy read; GB/s and ms, median of several runs (1 GB: fewer), and the
  ratio to loopback TCP (the target for 1 GB: at least 0.5);
* ``seed_example_1_node`` / ``_3_nodes``: ``raysim trace [--nodes 3]`` of the founding example,
  whole-process wall time, median of 3.

Run it from the repository root: ``python benchmarks/bench_multinode.py`` (about a minute).
The machine is small and shared: repeat before believing a difference.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

GB = 1024 ** 3
MB = 1024 ** 2


def emit(name: str, value: float, unit: str, **extra) -> None:
    print(json.dumps({"name": name, "value": round(value, 4), "unit": unit, **extra}),
          flush=True)


def memcpy_gbps(size: int = GB) -> float:
    src = np.ones(size, dtype=np.uint8)
    dst = np.empty_like(src)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - start)
    return size / min(times) / GB


def loopback_tcp_gbps(size: int = GB, chunk: int = 5 * MB) -> float:
    """Best of 3, sender and receiver in two processes (as two raylets are), into memory
    already touched (as a store's pages are once used)."""
    src = memoryview(np.ones(size, dtype=np.uint8))
    view = memoryview(np.zeros(size, dtype=np.uint8))
    best = float("inf")
    for _ in range(3):
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]
        child = os.fork()
        if child == 0:  # the sender
            conn, _ = server.accept()
            for start in range(0, size, chunk):
                conn.sendall(src[start:start + chunk])
            conn.close()
            os._exit(0)
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            got = 0
            while got < size:
                got += sock.recv_into(view[got:])
        best = min(best, time.perf_counter() - start)
        os.waitpid(child, 0)
        server.close()
    return size / best / GB


def cross_node_gets(tcp_gbps: float) -> None:
    import raysim
    from raysim.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1, resources={"B": 1})
    raysim.init(address=cluster.address, tracing=False)
    try:
        @raysim.remote(resources={"B": 1})
        def make(n):
            return np.ones(n, dtype=np.uint8)

        @raysim.remote(resources={"B": 1})
        def made(array):
            return len(array)  # read on B itself: the object is there, nowhere else

        for label, size, runs in (("1MB", MB, 9), ("100MB", 100 * MB, 5), ("1GB", GB, 3)):
            times = []
            for _ in range(runs):
                ref = make.remote(size)
                assert raysim.get(made.remote(ref)) == size
                start = time.perf_counter()
                array = raysim.get(ref)
                times.append(time.perf_counter() - start)
                assert array.nbytes == size
                del array, ref
            median = statistics.median(times)
            emit(f"cross_node_get_{label}", size / median / GB, "GB/s",
                 median_ms=round(median * 1000, 2),
                 ratio_to_loopback_tcp=round(size / median / GB / tcp_gbps, 3),
                 target=">= 0.5 of loopback TCP" if label == "1GB" else None)
    finally:
        raysim.shutdown()
        cluster.shutdown()


def seed_example(nodes: int) -> float:
    times = []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "raysim.cli", "trace", "--nodes", str(nodes),
                            "--out", out, "examples/seed_example.py"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    os.environ.setdefault("RAYSIM_TEMP_DIR", tempfile.mkdtemp(prefix="raysim-bench-"))
    emit("memcpy", memcpy_gbps(), "GB/s")
    tcp = loopback_tcp_gbps()
    emit("loopback_tcp", tcp, "GB/s")
    cross_node_gets(tcp)
    one = seed_example(1)
    three = seed_example(3)
    emit("seed_example_1_node", one, "s")
    emit("seed_example_3_nodes", three, "s", ratio_to_1_node=round(three / one, 2))


if __name__ == "__main__":
    main()
