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
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CommandFailed
from ._base import TaskBackend

if TYPE_CHECKING:
    from ..job import Job

__all__ = ["SubprocessBackend", "describe_returncode", "terminate_group"]


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
        argv = [
            sys.executable, "-S", SUPERVISOR, "--grace", str(self.engine.cancel_grace), "--",
            *command,
        ]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env, start_new_session=True,
        )  # fmt: skip
        job.pid = proc.pid
        if job._life is not None:
            job._life.pid_start_time = process_start_time(proc.pid)
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
        with contextlib.suppress(FileNotFoundError):
            exit_file.unlink()
        argv = [sys.executable, "-S", SUPERVISOR, "--detached", "--exit-file", str(exit_file)]
        argv += ["--grace", str(self.engine.cancel_grace), "--", *command]
        with open(log_path, "ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, cwd=cwd,
                env=env, start_new_session=True,
            )  # fmt: skip
        job.pid = proc.pid
        assert job._life is not None
        job._life.pid_start_time = process_start_time(proc.pid)
        self.engine._job_changed(job)  # the history must know the pid before the kernel dies
        self.engine._note_pid(job)
        follower = asyncio.get_running_loop().create_task(follow(log_path, out))
        try:
            returncode = await proc.wait()
        except asyncio.CancelledError:
            follower.cancel()
            if not job._cancel_requested:
                raise  # the engine's loop stops (kernel shutdown): the detached job runs on
            await terminate_group(proc, self.engine.cancel_grace)
            raise
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        return _outcome(job, returncode)


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


def process_start_time(pid: int) -> float | None:
    """The start time of process ``pid`` (with the pid, it names one process for good)."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


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


async def terminate_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL it after ``grace`` seconds."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    # The leader is gone; members of its group that ignored SIGTERM go too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def describe_returncode(returncode: int) -> str:
    """'exited with code 2' or 'was killed by signal SIGTERM'."""
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode).name
        except ValueError:
            sig = str(-returncode)
        return f"was killed by signal {sig}"
    return f"exited with code {returncode}"
