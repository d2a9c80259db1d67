"""The CPU hog of the benchmarks' second pass: one process spinning on the machine's last core.

The cases are not pinned, so they share that core with it; the other core is theirs. Used by
``bench_engine.py --hog``, ``bench_history.py --hog`` and ``bench_subprocess.py --hog``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["HOG_LIMIT", "cpu_hog"]

# Spins until its parent (the benchmark runner) is gone or its time is up: it cannot outlive the
# pass, even when the runner is killed and never gets to stop it.
_HOG = """
import os, sys, time
parent, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while os.getppid() == parent and time.monotonic() < deadline:
    for _ in range(200_000):
        pass
"""
#: A hog never spins longer than this (a pass takes minutes).
HOG_LIMIT = 3 * 3600.0


@contextlib.contextmanager
def cpu_hog() -> Iterator[dict[str, Any]]:
    """A process spinning on the machine's last core for the duration of the block.

    Pinned with ``sched_setaffinity``; the cases are not pinned, so they share that core with
    it (the other core is theirs). Stopped at the end of the block (SIGTERM, then SIGKILL),
    whatever happens in it; ``info["alive"]`` says whether it spun until then.
    """
    core = sorted(os.sched_getaffinity(0))[-1]
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOG, str(os.getpid()), str(HOG_LIMIT)], stdin=subprocess.DEVNULL
    )
    info: dict[str, Any] = {"pid": proc.pid, "core": core, "alive": None}
    try:
        os.sched_setaffinity(proc.pid, {core})
        yield info
    finally:
        info["alive"] = proc.poll() is None
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
