"""The subprocess backend: shell commands and argv lists, output streamed through pipes.

Each command starts in a new session (its own process group), so a kernel interrupt, which
signals the kernel's whole group, does not kill it (kernel-facts §4); cancelling terminates the
group, then kills it after the engine's grace period.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
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
        options: dict[str, Any] = {
            "stdin": asyncio.subprocess.DEVNULL,
            "stdout": asyncio.subprocess.PIPE,
            "stderr": asyncio.subprocess.PIPE,
            "cwd": cwd,
            "env": env,
            "start_new_session": True,
        }
        target = job.target
        if isinstance(target, str):
            proc = await asyncio.create_subprocess_shell(target, **options)
        else:
            proc = await asyncio.create_subprocess_exec(*map(os.fspath, target), **options)
        job.pid = proc.pid
        try:
            out = job.output
            await asyncio.gather(
                pump(proc.stdout, out.write, "stdout"), pump(proc.stderr, out.write, "stderr")
            )
            returncode = await proc.wait()
        except asyncio.CancelledError:
            await terminate_group(proc, self.engine.cancel_grace)
            raise
        if returncode != 0:
            raise CommandFailed(
                f"command {job.describe()!r} {describe_returncode(returncode)}", returncode
            )
        return returncode


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
