"""A driver killed with SIGKILL leaves no runtime process and no shared memory behind."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from traceutil import pid_alive

_DRIVER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import raysim

    ctx = raysim.init(num_cpus=2, trace_path=sys.argv[1])

    @raysim.remote
    class Holder:
        def __init__(self, x):
            self.x = x
        def size(self):
            return self.x.nbytes

    @raysim.remote
    def square(x):
        return x * x

    big = raysim.put(np.ones(10_000_000))
    holder = Holder.remote(big)
    assert raysim.get(holder.size.remote()) == 80_000_000
    assert raysim.get([square.remote(i) for i in range(8)]) == [i * i for i in range(8)]

    def descendants(root):
        children = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        out, todo = [], [root]
        while todo:
            for child in children.get(todo.pop(), []):
                out.append(child)
                todo.append(child)
        return out

    inode = None
    with open("/proc/self/maps") as f:
        for line in f:
            if "memfd:raysim-object-store" in line:
                inode = int(line.split()[4])
    print(json.dumps({"pids": descendants(os.getpid()), "inode": inode,
                      "session_dir": ctx["session_dir"]}), flush=True)
    sys.stdin.read()  # wait to be killed
""")


def _maps_holding(inode: int) -> list[int]:
    holders = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/maps") as f:
                if any(line.split()[4:5] == [str(inode)] and "memfd:raysim" in line for line in f):
                    holders.append(int(entry))
        except OSError:
            continue
    return holders


def test_sigkilled_driver_leaves_nothing_behind(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _DRIVER, str(tmp_path / "t.jsonl")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    pids, inode = info["pids"], info["inode"]
    assert len(pids) >= 6, "GCS, raylet, zygote, 2 task workers and the actor's worker"
    assert inode is not None
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and [p for p in pids if pid_alive(p)]:
        time.sleep(0.05)
    assert [p for p in pids if pid_alive(p)] == [], "every runtime process exits within 5 s"
    assert _maps_holding(inode) == [], "no process maps the store any more: its memory is freed"
    assert not [f for f in os.listdir(info["session_dir"]) if f.endswith(".sock")]
    assert not [f for f in os.listdir("/dev/shm") if "raysim" in f]
