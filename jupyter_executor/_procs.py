"""Process identity and process-group signals, written once.

A pid alone does not name a process for good: once it ends, the system may give its pid to
another. A pid and its start time do, so every record of a process keeps both, and nothing is
ever signalled unless both still match (:func:`find`, :func:`same_process`).

A job's command runs in a process group of its own, led by the command itself (attached: started
by the zygote), its supervisor (detached) or its worker (process backend): stopping a job
signals the whole group, then the descendants that left it (``setsid``), SIGTERM first and
SIGKILL after a grace period (:func:`stop_group` here, blocking;
``backends.subprocess.terminate_group`` on the engine's loop, built on :func:`signal_group`).

psutil is imported when a function needs it, so that importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil

__all__ = [
    "SAME_START",
    "find",
    "group_of",
    "other_sessions",
    "same_process",
    "signal_group",
    "start_time",
    "stop_group",
]

#: How far apart two start times of one process may be read (seconds): psutil derives them
#: from clock ticks since boot (10 ms) and the boot time, which it reads to the second.
SAME_START = 0.05


def start_time(pid: int) -> float | None:
    """The start time of process ``pid`` (with the pid, it names one process for good).

    None when the process does not exist or cannot be inspected.
    """
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError, ValueError):
        return None


def find(pid: Any, started: Any, tolerance: float = SAME_START) -> psutil.Process | None:
    """The running process ``pid`` if it started at ``started`` (not a recycled pid), else None.

    A zombie (dead, not yet reaped by its parent) does not run. ``tolerance`` is how far apart
    the two start times may be, in seconds.
    """
    if not pid or started is None:
        return None
    import psutil

    try:
        proc = psutil.Process(int(pid))
        if abs(proc.create_time() - float(started)) > tolerance:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.Error, OSError, ValueError, TypeError):
        return None
    return proc


def same_process(pid: Any, started: Any, tolerance: float = SAME_START) -> bool:
    """True when ``pid`` runs and started at ``started`` (see :func:`find`)."""
    return find(pid, started, tolerance) is not None


def group_of(pid: int) -> int | None:
    """The process group of ``pid``; None when it is gone."""
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def other_sessions(pgid: int) -> list[psutil.Process]:
    """The descendants of ``pgid``'s leader that left its process group (``setsid``)."""
    try:
        import psutil

        return [p for p in psutil.Process(pgid).children(recursive=True) if group_of(p.pid) != pgid]
    except Exception:  # the leader is gone, or psutil cannot see it: nothing more to reach
        return []


def signal_group(pgid: int, others: list[psutil.Process], sig: int) -> None:
    """Send ``sig`` to the process group ``pgid`` and to ``others`` that still run.

    ``others`` are checked by start time (psutil does it), so a recycled pid is not signalled.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for other in others:
        with contextlib.suppress(Exception):
            if other.is_running():  # the same process (pid and start time), not a reused pid
                other.send_signal(sig)


def stop_group(proc: psutil.Process, grace: float) -> None:
    """SIGTERM the group that ``proc`` leads and its descendants, then SIGKILL what is left.

    Waits up to ``grace`` seconds for them to end after the SIGTERM. When ``proc`` does not
    lead its own group, only it and its descendants are signalled: never the group of
    whoever started it (a shell running this command, say). Blocking: call it from a thread
    or a command-line tool, not from an event loop.
    """
    import psutil

    leader = group_of(proc.pid) == proc.pid
    members = [proc]
    with contextlib.suppress(psutil.Error):
        members += proc.children(recursive=True)

    def send(sig: int) -> None:
        if leader:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        for member in members:
            with contextlib.suppress(psutil.Error):
                if member.is_running():  # not a recycled pid
                    member.send_signal(sig)

    send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    _gone, alive = psutil.wait_procs(members, timeout=grace)
    # The group may hold members that are not descendants any more (re-parented to init).
    while leader and not alive and _group_exists(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive or (leader and _group_exists(proc.pid)):
        send(signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
