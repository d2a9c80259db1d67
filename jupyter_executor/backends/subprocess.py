"""The subprocess backend: shell commands and argv lists, output streamed through pipes.

Each command starts in a new session (its own process group), so a kernel interrupt, which
signals the kernel's whole group, does not kill it (docs/kernel-notes.md §4); cancelling
terminates the group, then kills it after the engine's grace period.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

from .. import _procs
from ..errors import CommandFailed, StoreError
from ._base import TaskBackend

if TYPE_CHECKING:
    from ..job import Job

__all__ = ["SubprocessBackend", "claim_file_of", "describe_returncode", "terminate_group"]


class SubprocessBackend(TaskBackend):
    """Runs the job's command; the exit code is the result, non-zero is a failure."""

    name = "subprocess"

    async def execute(self, job: Job) -> Any:
        env = {**os.environ, **(job.env or {})}
        env["JUPYTER_EXECUTOR_ID"] = self.engine.id
        env["JUPYTER_EXECUTOR_JOB"] = str(job.name)
        env.setdefault("PYTHONUNBUFFERED", "1")  # child Python output arrives as it is printed
        cwd = os.fspath(job.cwd) if job.cwd is not None else None
        if cwd is not None and not os.path.isdir(cwd):
            msg = f"working directory {cwd!r} of job {job.name!r} does not exist"
            raise FileNotFoundError(msg)
        target = job.target
        if isinstance(target, str):
            command = ["/bin/sh", "-c", target]
        else:
            command = list(map(os.fspath, target))
            found = shutil.which(command[0], path=env.get("PATH"))
            if found is None and not os.path.exists(os.path.join(cwd or ".", command[0])):
                msg = f"program {command[0]!r} of job {job.name!r} not found"
                raise FileNotFoundError(msg)
        if job.detach:
            return await self._run_detached(job, command, env, cwd)
        # Write-ahead: the run is on disk before its process exists. An attached command dies
        # with its kernel (its supervisor sees to it), so a record that cannot be written is
        # only logged by the store, and the job runs anyway.
        with contextlib.suppress(StoreError, TimeoutError):
            await self._write_ahead(job)
        argv = [
            sys.executable, "-S", SUPERVISOR, "--grace", str(self.engine.cancel_grace),
            "--parent", str(os.getpid()), "--", *command,
        ]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env, start_new_session=True,
        )  # fmt: skip
        job.pid = proc.pid
        if job._life is not None:
            job._life.pid_start_time = _procs.start_time(proc.pid)
        self.engine._job_changed(job)  # the history knows the pid (for `jupyter-executor cancel`)
        self.engine._note_pid(job)
        try:
            out = job.output
            await asyncio.gather(
                pump(proc.stdout, out.write, "stdout"), pump(proc.stderr, out.write, "stderr")
            )
            returncode = await proc.wait()
        except asyncio.CancelledError:
            await terminate_group(proc, self.engine.cancel_grace)
            raise
        return _outcome(job, returncode)

    async def _run_detached(
        self, job: Job, command: list[str], env: dict[str, str], cwd: str | None
    ) -> Any:
        # The process writes its log itself (a pipe would break when the kernel dies) and its
        # exit status to a file, so that a later kernel can re-attach and learn how it ended.
        out = job.output
        out.start_log()
        log_path = job.log_path
        assert log_path is not None
        exit_file = exit_file_of(log_path)
        claim_file = claim_file_of(log_path)
        for stale in (exit_file, claim_file):  # an earlier run's
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        # Write-ahead: a detached process outlives the kernel, so it must never run unknown
        # to the history. Its run is committed first (without a pid); an engine killed before
        # it learns the pid leaves the claim file, through which the next engine finds the
        # process, or stops it from starting (see _supervise.py).
        try:
            await self._write_ahead(job)
        except (StoreError, TimeoutError) as exc:
            msg = f"detached job {job.name!r} not started: its run could not be recorded: {exc}"
            raise StoreError(msg) from exc
        argv = [sys.executable, "-S", SUPERVISOR, "--detached", "--exit-file", str(exit_file)]
        argv += ["--claim-file", str(claim_file)]
        argv += ["--grace", str(self.engine.cancel_grace), "--", *command]
        with open(log_path, "ab") as log:
            proc = _Detached.start(argv, log, cwd, env)
        job.pid = proc.pid
        assert job._life is not None
        job._life.pid_start_time = _procs.start_time(proc.pid)
        self.engine._job_changed(job)  # the history must know the pid before the kernel dies
        self.engine._note_pid(job)
        follower = asyncio.get_running_loop().create_task(follow(log_path, out))
        try:
            returncode = await proc.wait()
        except asyncio.CancelledError:
            follower.cancel()
            if not job._cancel_requested:
                proc.forget()
                raise  # the engine's loop stops (kernel shutdown): the detached job runs on
            await terminate_group(proc, self.engine.cancel_grace)
            raise
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        return _outcome(job, returncode)

    async def _write_ahead(self, job: Job) -> None:
        """Commit ``job``'s run (running, no pid yet) to the history before its process starts."""
        store = self.engine._store
        if store is None:
            return
        self.engine._job_changed(job)
        # In a thread: the engine's loop goes on running the other jobs meanwhile.
        await asyncio.to_thread(store.flush, store.busy_timeout)


class _Detached:
    """A detached job's process, started by :class:`subprocess.Popen`, awaited on the loop.

    Not an asyncio subprocess: asyncio kills the child of a subprocess transport that is closed
    or garbage-collected while the child runs, which is what happens to a pending job's
    transport when the engine's loop stops at kernel shutdown (seen on Python 3.13) — and a
    detached job must outlive its kernel. Its end is awaited through a pidfd on Linux (no
    thread), else by a daemon thread blocked in ``waitpid``.
    """

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._ended: asyncio.Future[int] | None = None
        self._pidfd: int | None = None

    @classmethod
    def start(cls, argv: list[str], log: IO[bytes], cwd: str | None, env: dict[str, str]) -> Self:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=cwd, env=env,
            start_new_session=True,
        )  # fmt: skip
        return cls(popen)

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        if self._popen.poll() is not None:
            return self._popen.returncode
        if self._ended is None:
            self._ended = self._watch()
        return await asyncio.shield(self._ended)

    def _watch(self) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[int] = loop.create_future()

        def reap() -> None:
            self.forget()
            code = self._popen.wait()  # it has ended: this does not block
            if not ended.done():
                ended.set_result(code)

        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # no pidfd (macOS, an old Linux)

            def block() -> None:
                self._popen.wait()
                with contextlib.suppress(RuntimeError):  # the loop has stopped meanwhile
                    loop.call_soon_threadsafe(reap)

            threading.Thread(
                target=block, name=f"jupyter-executor-wait-{self.pid}", daemon=True
            ).start()
            return ended
        loop.add_reader(self._pidfd, reap)
        return ended

    def forget(self) -> None:
        """Stop watching (the process runs on): release the pidfd."""
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)


def _outcome(job: Job, returncode: int) -> int:
    if returncode != 0:
        raise CommandFailed(
            f"command {job.describe()!r} {describe_returncode(returncode)}", returncode
        )
    return returncode


SUPERVISOR = str(Path(__file__).resolve().parent.parent / "_supervise.py")


def exit_file_of(log_path: Path) -> Path:
    """Where a detached job's supervisor writes the exit status."""
    return log_path.with_name(log_path.stem + ".exit.json")


def claim_file_of(log_path: Path) -> Path:
    """Where a detached job's supervisor writes its pid as it starts (see _supervise.py)."""
    return log_path.with_name(log_path.stem + ".claim.json")


async def follow(path: Path, out: Any, interval: float = 0.25) -> None:
    """Copy what a detached process appends to its log file into the job's tail."""
    position = [path.stat().st_size if path.exists() else 0]
    try:
        while True:
            await asyncio.sleep(interval)
            _read_new(path, out, position)
    finally:
        _read_new(path, out, position)


def _read_new(path: Path, out: Any, position: list[int]) -> None:
    try:
        with open(path, "rb") as f:
            f.seek(position[0])
            data = f.read()
    except FileNotFoundError:
        return
    if data:
        position[0] += len(data)
        out.write(data.decode("utf-8", errors="replace"), "stdout", log=False)


async def pump(stream: asyncio.StreamReader | None, write: Any, name: str) -> None:
    """Copy a pipe into a job's output, decoding UTF-8 incrementally."""
    if stream is None:
        return
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            tail = decoder.decode(b"", final=True)
            if tail:
                write(tail, name)
            return
        text = decoder.decode(chunk)
        if text:
            write(text, name)


# Terminations under way: they finish even when the task that started them is cancelled.
_terminating: set[asyncio.Task[None]] = set()


async def terminate_group(proc: asyncio.subprocess.Process | _Detached, grace: float) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL it after ``grace`` seconds.

    The processes that ``proc`` started in a session of their own (out of reach of the group's
    signals) get the same. It runs to its end even when the caller is cancelled meanwhile (a
    timeout and a cancel of the same job, an engine shutting down): cut short after the
    SIGTERM, it would leave behind the members that ignore SIGTERM, or that were forked just
    then (a child between fork and exec still has the parent's Python handler, which swallows
    the signal). Call it promptly once ``proc`` has ended: the group is then killed by the id
    of a leader that no longer exists, which stays safe only while some member holds the id.
    """
    task = asyncio.ensure_future(_terminate(proc, grace))
    _terminating.add(task)
    task.add_done_callback(_terminating.discard)
    await asyncio.shield(task)


async def _terminate(proc: asyncio.subprocess.Process | _Detached, grace: float) -> None:
    pgid = proc.pid
    others: list[Any] = []
    if proc.returncode is None:
        others = _procs.other_sessions(pgid)
        _procs.signal_group(pgid, others, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
    # The leader is gone (or had its grace): the members of its group that ignored SIGTERM, or
    # were forked while it was sent, go too, while the group id is still theirs.
    _procs.signal_group(pgid, others, signal.SIGKILL)
    await proc.wait()


def describe_returncode(returncode: int) -> str:
    """'exited with code 2' or 'was killed by signal SIGTERM'."""
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode).name
        except ValueError:
            sig = str(-returncode)
        return f"was killed by signal {sig}"
    return f"exited with code {returncode}"
