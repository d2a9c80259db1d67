"""Re-attaching to the detached commands an earlier kernel left running in the same folder.

(:mod:`._detached` is the other half: running Python, shipped by value, as a detached command.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _procs
from ._procs import same_process
from ._protocols import CANCELLED
from ._scheduler import Scheduler
from ._status import Status
from .errors import (
    CommandFailed,
    StoreError,
)
from .job import Job

logger = logging.getLogger("jupyter_executor")


class Reattach(Scheduler):
    """Re-attach to the detached commands an earlier kernel left running."""

    if TYPE_CHECKING:

        def log_path(self, name: str) -> Path: ...

    def _reattach(self) -> None:
        """Take back the detached jobs that an earlier kernel left running in this folder.

        Also closes the runs that a kernel which died left open: without this they would stay
        "running" or "pending" in the history forever. A run whose engine's process (on this
        host) is gone ends as failed when it was running (attached processes die with their
        kernel: their supervisor kills them), as cancelled when it had not started.
        """
        here = socket.gethostname()
        for row in self._store.running_attached():
            if not _orphaned(row, here, self.id):
                continue
            now = time.time()
            if row.get("status") == Status.RUNNING.value:
                self._store.record_exit(
                    row["id"], "failed", None, now, "the kernel died while it ran"
                )
            else:
                reason = "the kernel died before it started"
                self._store.record_exit(row["id"], "cancelled", None, now, None, reason)
        for row in self._store.running_detached():
            self._take_back(row, here)

    def _take_back(self, row: dict[str, Any], here: str) -> None:
        """Watch again the detached run ``row`` if its process runs; else record how it ended."""
        from .backends.subprocess import claim_file_of, exit_file_of

        name = row["name"]
        log_path = Path(row["log_path"]) if row.get("log_path") else self.log_path(name)
        exit_file = exit_file_of(log_path)
        if row.get("pid") is None:
            # Recorded before its process started (write-ahead); its engine died before
            # it recorded the pid, or is starting it right now.
            if _engine_alive(row, here):
                return
            pid = _claimed_pid(claim_file_of(log_path))
            if pid is None:
                reason = "the kernel died before it started"
                self._store.record_exit(row["id"], "cancelled", None, time.time(), None, reason)
                return
            row["pid"], row["pid_start_time"] = pid, _supervisor_start_time(pid, log_path)
            if row["pid_start_time"] is not None:
                self._store.record_pid(row["id"], pid, row["pid_start_time"])
        if name in self._jobs or not same_process(row.get("pid"), row.get("pid_start_time")):
            status, code, error = _read_exit(exit_file)
            self._store.record_exit(row["id"], status, code, time.time(), error)
            return
        job = _reattached_job(row, name)
        with self._lock:
            self._jobs[name] = job
            job.engine = self._as_engine
            self._move(job, Status.PENDING)
            self._move(job, Status.RUNNING)
            job.submitted = row.get("submitted") or time.time()
            job.started = row.get("started") or time.time()
            job.attempts = int(row.get("attempt") or 1)
            job.pid = int(row["pid"])
            assert job.runstate.life is not None
            job.runstate.life.pid_start_time = row.get("pid_start_time")
            job.runstate.life.reattached = int(row["id"])
            self._unfinished += 1
            self._running += 1
        self._record("reattached", job, f"pid {job.pid}")
        self._call_soon(self._start_watch, job, exit_file)

    def _start_watch(self, job: Job, exit_file: Path) -> None:
        backend = self._backend("subprocess")
        backend.running += 1
        assert self._loop is not None
        task = self._loop.create_task(self._watch_detached(job, exit_file))
        job.runstate.task = task
        # A cancel is carried out when the task ends, not in its coroutine: a cancel posted
        # right after the re-attach (`%jobs cancel` as soon as a new kernel's engine is up)
        # can reach the loop in the same turn as this, and a task cancelled before its first
        # step never runs its coroutine's body: the job said cancelled, its process ran on.
        task.add_done_callback(functools.partial(self._watch_cancelled, job))

    def _watch_cancelled(self, job: Job, task: asyncio.Task[None]) -> None:
        """(loop thread) Stop the process of a re-attached job whose watch was cancelled."""
        if not task.cancelled() or not job.cancel_requested:
            return  # it ended by itself, or the engine stopped: a detached job runs on
        assert self._loop is not None
        stopping = self._loop.create_task(self._stop_reattached(job))
        # The job's task from now on: it ends when its group is stopped and its end recorded
        # (the backend settles a job whose own task was cancelled: that was the watch).
        job.runstate.task = stopping
        _stopping.add(stopping)
        stopping.add_done_callback(_stopping.discard)

    async def _stop_reattached(self, job: Job) -> None:
        """Stop the group of a cancelled re-attached job, then record and settle its end.

        The group is stopped in a thread: it waits up to the grace for a command that ignores
        SIGTERM, and on the loop that wait held every other job of the engine.
        """
        assert job.pid is not None
        stop = asyncio.ensure_future(asyncio.to_thread(_kill_group, job.pid, self.cancel_grace))
        with contextlib.suppress(asyncio.CancelledError):  # the engine stops: it goes on
            await asyncio.shield(stop)
        life = job.runstate.life
        if self._store is not None and life is not None and life.reattached is not None:
            reason = job.runstate.cancel_reason or "cancelled"
            try:
                self._store.record_exit(
                    life.reattached, "cancelled", None, time.time(), None, reason
                )
            except StoreError:
                logger.exception("jupyter_executor: cannot record the end of %s", job.name)
        self._finish(job, exc=CANCELLED)
        _detach_from_row(job)

    async def _watch_detached(self, job: Job, exit_file: Path) -> None:
        import psutil

        from .backends.subprocess import describe_returncode, follow

        log_path = job.log_path
        assert log_path is not None and job.pid is not None
        follower = asyncio.get_running_loop().create_task(follow(log_path, job.output))
        try:
            with contextlib.suppress(psutil.NoSuchProcess):
                await _gone(psutil.Process(job.pid))
        except asyncio.CancelledError:
            follower.cancel()
            raise  # a cancel requested is carried out by _watch_cancelled
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        status, code, error = _read_exit(exit_file)
        if self._store is not None:
            assert job.runstate.life is not None and job.runstate.life.reattached is not None
            self._store.record_exit(job.runstate.life.reattached, status, code, time.time(), error)
        if status == "done":
            self._finish(job, code)
        else:
            rc = code if code is not None else -1
            self._finish(
                job,
                exc=CommandFailed(
                    f"command {job.describe()!r} {describe_returncode(rc)}"
                    if code is not None
                    else str(error),
                    rc,
                ),
            )
        _detach_from_row(job)


# Stops of re-attached jobs under way (the loop keeps only weak references to its tasks).
_stopping: set[asyncio.Task[None]] = set()


async def _gone(proc: Any) -> None:
    """Until ``proc`` (a ``psutil.Process``, not our child) has ended.

    On the loop, through a pidfd; else by looking every 0.25 s. Not in a thread blocked in
    ``proc.wait()``: nothing can stop it, and the executor's threads are joined at interpreter
    exit, so a kernel or a ``jupyter-executor schedules run`` that re-attached to a detached
    command could not exit (nor end on SIGTERM) before that command did.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd (macOS, an old Linux)
        while proc.is_running() and proc.status() != "zombie":
            await asyncio.sleep(0.25)
        return
    from .backends.subprocess import pidfd_exited

    try:
        await pidfd_exited(fd)
    finally:
        os.close(fd)


def _detach_from_row(job: Job) -> None:
    """The re-attached run of ``job`` is recorded as ended: from now on its runs are its own.

    While it is set, the history skips the job (the run's row is the earlier kernel's): kept
    after the end, a rerun ran unrecorded, even its write-ahead, so that a kernel dying then
    left a detached process that no engine knew of.
    """
    if job.runstate.life is not None:
        job.runstate.life.reattached = None


def _reattached_job(row: dict[str, Any], name: str) -> Job:
    """The job of the re-attached run ``row``, its command read back from its supervisor.

    The history keeps only the command's description: a job made of it ran the description
    as a shell command when rerun (or ``slow(...)`` for a detached function). The supervisor's
    command line ends with the command, and its working directory and environment are the
    command's, so a rerun runs again what ran.
    """
    import psutil

    shown = row.get("description") or name
    try:
        proc = psutil.Process(int(row["pid"]))
        argv, cwd, env = proc.cmdline(), proc.cwd(), proc.environ()
    except (psutil.Error, OSError, ValueError):
        return Job(shown, name=name, detach=True)  # it ended just now: its watch ends at once
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    if not command:
        return Job(shown, name=name, detach=True)
    if command[1:3] == ["-m", "jupyter_executor._detached"]:
        from ._detached import DetachedPython

        python = DetachedPython(command, name=name, detach=True, cwd=cwd, env=env)
        python.shown = shown
        return python
    return Job(command, name=name, detach=True, cwd=cwd, env=env)


def _orphaned(row: dict[str, Any], here: str, engine_id: str) -> bool:
    """True when the attached run ``row`` was left open by an engine that is gone."""
    if row.get("engine_pid") is not None:
        # The engine recorded where it ran: its runs are over when that process is (a live
        # engine of another notebook, or one on another host we cannot see, keeps them).
        return not _engine_alive(row, here)
    # An older version's engine: judged by the run's process, if it has one.
    return not (
        row.get("engine_id") == engine_id
        or row.get("pid") is None
        or same_process(row["pid"], row.get("pid_start_time"))
    )


def _engine_alive(row: dict[str, Any], here: str) -> bool:
    """Whether the engine of a run is alive (or on another host, where we cannot tell)."""
    if row.get("engine_pid") is None:
        return False
    if row.get("engine_host") != here:
        return True
    return same_process(row["engine_pid"], row.get("engine_pid_start_time"))


def _claimed_pid(claim_file: Path) -> int | None:
    """The pid a detached job's supervisor claimed its run with; None: it never will.

    No claim yet: the engine claims the run itself, so that a supervisor still starting
    exits without running the command (see _supervise.py).
    """
    import json

    from ._supervise import claim

    for _ in range(3):
        try:
            data = json.loads(claim_file.read_text())
        except FileNotFoundError:
            try:
                if claim(str(claim_file), json.dumps({"pid": None})):
                    return None
            except OSError:
                return None  # no logs folder: no supervisor could have claimed it either
            continue  # the supervisor claimed it meanwhile: read its pid
        except (OSError, ValueError, RecursionError):  # (not JSON, or nested beyond reason)
            return None
        pid = data.get("pid") if isinstance(data, dict) else None
        return pid if isinstance(pid, int) else None
    return None


def _supervisor_start_time(pid: int, log_path: Path) -> float | None:
    """The start time of ``pid`` if it is the supervisor of the job logging to ``log_path``."""
    import psutil

    from .backends.subprocess import claim_file_of

    try:
        proc = psutil.Process(pid)
        if str(claim_file_of(log_path)) not in proc.cmdline():
            return None  # the pid was reused: the supervisor ended
        return float(proc.create_time())
    except (psutil.Error, ValueError, OverflowError):  # (a claim file with no real pid)
        return None


def _read_exit(exit_file: Path) -> tuple[str, int | None, str | None]:
    import json

    try:
        code = json.loads(exit_file.read_text())["returncode"]
        # An exit status (a code, or minus a signal): a file of another shape is not ours.
        if isinstance(code, bool) or not isinstance(code, int) or not -256 < code < 256:
            raise TypeError(code)
    except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError):
        return (
            "failed",
            None,
            "the detached process ended while no kernel watched it, and left no exit status",
        )
    if code == 0:
        return "done", 0, None
    return "failed", code, f"exit code {code}"


def _kill_group(pid: int, grace: float) -> None:
    """Stop the group of the re-attached supervisor ``pid`` (SIGTERM, SIGKILL after ``grace``)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        _procs.stop_group(psutil.Process(pid), grace)
