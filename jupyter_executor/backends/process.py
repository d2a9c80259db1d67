"""The process backend: functions in worker processes, shipped with cloudpickle.

Workers are kept and reused (starting Python costs tens of milliseconds). One worker runs one job
at a time; a job that is cancelled, or whose worker crashes (segfault, ``os._exit``), takes only
its own worker down: the job fails with :class:`WorkerCrashed` (or is cancelled) and the next job
gets a fresh worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import sys
from typing import TYPE_CHECKING, Any

import cloudpickle

from .._pickling import dumps_with_sources
from .._worker import _HEADER
from ..errors import WorkerCrashed
from ..job import resolve_args
from ._base import TaskBackend
from .subprocess import pump, terminate_group

if TYPE_CHECKING:
    from .._protocols import BackendHost
    from ..job import Job

__all__ = ["ProcessBackend"]


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.job: Job | None = None
        # Output written at the file-descriptor level (C code) comes through stderr.
        self.stderr_task = asyncio.get_running_loop().create_task(
            pump(proc.stderr, self._raw_output, "stderr")
        )

    def _raw_output(self, text: str, stream: str) -> None:
        if self.job is not None:
            self.job.output.write(text, stream)

    async def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(_HEADER.pack(len(data)) + data)
        await self.proc.stdin.drain()

    async def receive(self) -> Any:
        assert self.proc.stdout is not None
        head = await self.proc.stdout.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(head)
        return cloudpickle.loads(await self.proc.stdout.readexactly(size))


class ProcessBackend(TaskBackend):
    """Runs callables in reusable worker processes (``python -m jupyter_executor._worker``)."""

    name = "process"

    def __init__(self, engine: BackendHost) -> None:
        super().__init__(engine)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()

    def _environment(self) -> dict[str, str]:
        """The kernel's environment as a worker gets it (when it starts, and before each job)."""
        env = {**os.environ, "JUPYTER_EXECUTOR_ID": self.engine.id, "PYTHONUNBUFFERED": "1"}
        # Functions are pickled by reference when their module is importable here: give the
        # worker the same import path (this package, the notebook's folder, sys.path edits).
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        paths = [package_root, *(p or os.getcwd() for p in sys.path)]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if os.path.isdir(p)))
        return env

    async def _spawn(self) -> _Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "jupyter_executor._worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self._environment(), start_new_session=True,
        )  # fmt: skip
        worker = _Worker(proc)
        self._all.add(worker)
        return worker

    async def execute(self, job: Job) -> Any:
        args, kwargs = resolve_args(job)
        # A reused worker must not show a job what the previous one left (os.chdir, os.environ):
        # each job gets the working directory and environment it would get in a fresh worker,
        # the kernel's as the job starts (like a subprocess job), with its own cwd= and env=.
        cwd = os.path.abspath(job.cwd) if job.cwd is not None else os.getcwd()
        if not os.path.isdir(cwd):
            msg = f"working directory {cwd!r} of job {job.name!r} does not exist"
            raise FileNotFoundError(msg)
        env = {**self._environment(), **(job.env or {}), "JUPYTER_EXECUTOR_JOB": str(job.name)}
        try:
            # The worker's linecache gets the sources only the kernel knows (notebook cells),
            # before it unpickles the job: see _worker.main.
            data, sources = dumps_with_sources((job.name, job.target, args, kwargs))
            frame = (sources, cwd, env, data)
            payload = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            msg = f"job {job.name!r} cannot be sent to a worker process: {exc}"
            raise TypeError(msg) from exc
        while True:
            reused = self._take_idle()
            worker = reused or await self._spawn()
            worker.job = job
            job.pid = worker.proc.pid
            keep = got = leaving = False
            try:
                await worker.send(payload)
                while True:
                    message = await worker.receive()
                    kind = message[0]
                    if kind == "got":
                        got = True
                    elif kind == "out":
                        job.output.write(message[2], message[1])
                    elif kind == "ok":
                        keep = True
                        return message[1]
                    else:
                        _, carried, text, tb, leaving = message
                        keep = not leaving
                        error = (
                            carried if isinstance(carried, BaseException) else RuntimeError(text)
                        )
                        error._jupyter_executor_tb = tb  # type: ignore[attr-defined]
                        raise error
            except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError):
                returncode = await worker.proc.wait()
                if not got and reused is not None:
                    # It died while idle (killed from outside, or by a thread its last job
                    # left behind) and never read this job: a fresh worker runs it.
                    continue
                raise WorkerCrashed(_crash_message(job, returncode)) from None
            except asyncio.CancelledError:
                await terminate_group(worker.proc, self.engine.cancel_grace)
                raise
            finally:
                worker.job = None
                if keep and worker.proc.returncode is None and not self.engine.closed:
                    self._idle.append(worker)
                else:
                    await self._discard(worker, leaving)

    def _take_idle(self) -> _Worker | None:
        """An idle worker that is still alive, or None (the dead ones are dropped)."""
        while self._idle:
            worker = self._idle.pop()
            if worker.proc.returncode is None:
                return worker
            self._all.discard(worker)
        return None

    async def _discard(self, worker: _Worker, leaving: bool = False) -> None:
        self._all.discard(worker)
        if worker.proc.returncode is None:
            if leaving:  # it said it exits (sys.exit in its job): give it a moment to
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(worker.proc.wait()), 1.0)
            await terminate_group(worker.proc, 1.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.stderr_task, 1.0)

    async def aclose(self) -> None:
        self._idle.clear()
        for worker in list(self._all):
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()  # a worker exits when its stdin closes
        for worker in list(self._all):
            try:
                await asyncio.wait_for(worker.proc.wait(), 2.0)
            except TimeoutError:
                await terminate_group(worker.proc, 1.0)
            await self._discard(worker)


def _crash_message(job: Job, returncode: int) -> str:
    if returncode < 0:
        try:
            how = f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"was killed by signal {-returncode}"
    else:
        how = f"exited with code {returncode}"
    return (
        f"the worker process running job {job.name!r} {how} (a crash, os._exit or the OOM "
        "killer); the engine goes on with a new worker"
    )
