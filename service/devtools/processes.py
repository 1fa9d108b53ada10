"""Child-process helpers shared by the embedded server and the ``jobsvc dev`` supervisor.

Children started through :func:`spawn` die with their parent (Linux ``PR_SET_PDEATHSIG``) and live in their
own process group, so a Ctrl+C at the terminal reaches only the parent, which then stops them in order.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def parent_death_preexec(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes Linux send `sig` to the child when its parent dies; None elsewhere.

    The kernel tracks the parent *thread*: spawn from a thread that outlives the child (the main one).
    """
    if not sys.platform.startswith("linux"):
        return None
    # Resolved here, before fork: the child must not dlopen or allocate between fork and exec.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent_pid = os.getpid()

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            os._exit(127)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(127)

    return preexec


def spawn(
    args: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: IO[bytes] | int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child tied to this process's life, in its own process group, with no stdin."""
    return subprocess.Popen(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        preexec_fn=parent_death_preexec(),
        process_group=0,
    )


def stop_processes(processes: Sequence[subprocess.Popen[bytes]], timeout_s: float = 10.0) -> None:
    """SIGTERM every running process once, wait up to `timeout_s` in all, then SIGKILL the rest."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + timeout_s
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
