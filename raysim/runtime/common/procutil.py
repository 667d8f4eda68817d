"""Small Linux process helpers: dying with the parent, turning SIGTERM into a clean exit.

Ray leaves processes behind when its driver is SIGKILLed (RAY_BEHAVIOUR.md); raysim must
not. Three layers make sure it does not:

1. GCS and raylet exit when their connection to the driver closes (the kernel closes a dead
   process's sockets), cleaning up on the way out.
2. Every runtime process asks the kernel to signal it when its parent dies
   (``PR_SET_PDEATHSIG``), in case it is busy and not reading its socket.
3. The object store is a memfd with no name: the kernel frees it with its last user.

Runs in: every runtime process (GCS, raylet, zygote, workers).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15

try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _libc = None


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Have the kernel send ``sig`` to this process when its parent exits."""
    if _libc is None:
        return
    parent = os.getppid()
    _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before we asked
        os.kill(os.getpid(), sig)


def set_process_name(name: str) -> None:
    """Name the process as ``ps`` and ``top`` show it (15 characters at most)."""
    if _libc is not None:
        _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit, so ``finally`` blocks (socket removal, trace flush) run."""

    def _handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sys.exit(0)

    signal.signal(signal.SIGTERM, _handler)


def exit_status(status: int) -> int:
    """``os.waitpid`` status to an exit code; a death by signal N gives -N, as subprocess."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def alive(pid: int) -> bool:
    """Is the process running (not gone, not a zombie waiting to be reaped)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
