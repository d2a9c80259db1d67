"""The process backend: functions in worker processes, shipped with cloudpickle.

Workers are forked by a fork server (see :mod:`.._worker`): one Python, started on first use,
that imports cloudpickle once; a new worker then costs a fork, not a Python start. The kernel
itself is never forked (it has threads). Workers are kept and reused; as many run at once as
the backend's limit.

Each worker may hold a few more jobs than it runs (prefetch, ``PREFETCH``): it starts the next
job the moment the last one ends, without waiting for the kernel's loop, which on a busy
machine may take milliseconds to get a turn; the jobs handed to it meanwhile are written to it
together (``SEND_BELOW``), one wake-up of the worker for several jobs. A job handed over in
advance takes a slot of the engine but stays pending (the backend ``holds``) until its worker
says it starts it; cancelling it then takes it back without stopping anything. When another
worker becomes free first, a job is taken back (revoked) from the busy one and runs on the
free one, so that it does not wait behind a long job while a worker idles.

A job that is cancelled, or whose worker crashes (segfault, ``os._exit``), takes only its own
worker down: the job fails with :class:`WorkerCrashed` (or is cancelled), the job queued behind
it on that worker goes to another one, and the next job gets a fresh worker.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import itertools
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from .. import _worker
from .._protocols import CANCELLED
from .._status import Status
from .._text import env_text, error_text
from .._worker import BOOT, END_MARK, HEADER, REPORT
from ..errors import WorkerCrashed
from ..job import resolve_args
from ._base import TaskBackend

# cloudpickle (through _pickling) and the subprocess backend's helpers are imported where they
# are used: this module is imported for a first job, whose fork server starts in parallel with
# those imports (see ProcessBackend.__init__); a cold start is mostly that server's start.

if TYPE_CHECKING:
    from .._protocols import BackendHost
    from ..job import Job
    from .subprocess import Detached

__all__ = ["ProcessBackend"]

logger = logging.getLogger(__name__)

#: Jobs a worker holds beyond the one it runs. 1,000 tiny jobs on 2 workers, loaded machine:
#: 1 -> 87 µs per job, 3 -> 76, 5 -> 63 (fewer writes, see SEND_BELOW).
PREFETCH = 5
#: The same under an engine's ``max_jobs``, which held jobs count in though they are pending:
#: few, so that they do not keep other backends' jobs from its slots.
PREFETCH_UNDER_MAX_JOBS = 1
#: Jobs handed to a worker are sent to it when it has at most this many sent and not started,
#: several in one write: each write wakes the worker, and a wake-up cost the kernel 7-11 µs of
#: CPU and 25-30 µs of its loop's time on a loaded 2-core machine (a third of a tiny job).
SEND_BELOW = 1
#: A job whose worker died before starting it goes to another worker at most this many times
#: (a worker that cannot even start would otherwise be replaced forever).
MAX_HANDOVERS = 3
#: The exit code given to a worker whose end could not be known (its fork server died first).
UNKNOWN_EXIT = 1 << 16  # out of the range of exit codes (0-255) and signals (< 0)

_ids = itertools.count(1)


@dataclass(eq=False)
class _Forked:
    """A worker process forked by the fork server, shaped like an asyncio ``Process``:
    ``pid``, ``returncode``, ``wait()`` and the three pipes (what ``terminate_group`` uses)."""

    pid: int
    stdin: asyncio.StreamWriter
    stdout: asyncio.StreamReader
    stderr: int  # the read end of its stderr pipe (see _RawOutput)
    ended: asyncio.Future[int]  # its exit status, from the fork server

    @property
    def returncode(self) -> int | None:
        return self.ended.result() if self.ended.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self.ended)


class _Zygote:
    """The kernel's end of the fork server: asks for workers, learns when they end."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.proc: Detached | None = None
        self.sock: socket.socket | None = None
        self._forks: deque[asyncio.Future[int]] = deque()  # pid replies come in request order
        self._ends: dict[int, asyncio.Future[int]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._stderr: asyncio.Task[None] | None = None
        self.lost = False

    async def start(self, env: dict[str, str], preload: bool = False) -> None:
        # A plain Popen (a few tenths of a millisecond), awaited through a pidfd: an asyncio
        # subprocess took 10-25 ms to hand it over (its pipes' transports, a watcher thread),
        # during which the kernel could not prepare the first job while the server boots.
        ours, theirs = socket.socketpair()
        try:
            popen = subprocess.Popen(
                [
                    sys.executable, "-c", BOOT, os.path.realpath(_worker.__file__), "zygote",
                    *(["preload"] if preload else []),
                ],
                stdin=theirs.fileno(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=env, start_new_session=True,
            )  # fmt: skip
        finally:
            theirs.close()
        from .subprocess import Detached, pump  # (imported while the server boots)

        self.proc = Detached(popen)
        ours.setblocking(False)
        self.sock = ours
        self._reader = self.loop.create_task(self._read())
        # What it says on stderr (it failed to start, a fork failed) goes to the log, not to
        # the kernel's stderr (which a kernel shows in whatever cell ran last).
        assert popen.stderr is not None
        stderr = asyncio.StreamReader()
        await self.loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stderr), popen.stderr
        )
        self._stderr = self.loop.create_task(pump(stderr, _log_stderr, "stderr"))

    def end_of(self, pid: int) -> asyncio.Future[int]:
        future = self._ends.get(pid)
        if future is None:
            future = self._ends[pid] = self.loop.create_future()
        return future

    async def _read(self) -> None:
        assert self.sock is not None
        buffer = b""
        try:
            while True:
                data = await self.loop.sock_recv(self.sock, 4096)
                if not data:
                    break
                buffer += data
                while len(buffer) >= REPORT.size:
                    kind, pid, code = REPORT.unpack_from(buffer)
                    buffer = buffer[REPORT.size :]
                    if kind == b"P":
                        if self._forks:
                            future = self._forks.popleft()
                            if not future.done():
                                future.set_result(pid)
                    else:
                        end = self.end_of(pid)
                        if not end.done():
                            end.set_result(code)
        except (OSError, asyncio.CancelledError):
            pass
        self._lose()

    def _lose(self) -> None:
        """The fork server is gone: no more forks; its workers' ends are watched directly."""
        self.lost = True
        while self._forks:
            future = self._forks.popleft()
            if not future.done():
                future.set_exception(OSError("the process backend's fork server died"))
        for pid, end in self._ends.items():
            if not end.done():
                _watch_end(self.loop, pid, end)

    async def fork(self) -> _Forked:
        """A new worker, its pipes connected to this process."""
        assert self.sock is not None
        loop = self.loop
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        theirs = [stdin_r, stdout_w, stderr_w]
        kept = [stdin_w, stdout_r, stderr_r]
        future: asyncio.Future[int] = loop.create_future()
        try:
            socket.send_fds(self.sock, [b"F"], theirs)
            self._forks.append(future)
        except BaseException as exc:
            for fd in kept:
                os.close(fd)
            if isinstance(exc, OSError):
                self._lose()  # its socket is closed: it is gone
            raise
        finally:
            for fd in theirs:
                os.close(fd)  # the worker's ends: the fork server has its own copies now
        stdin_fd, stdout_fd, stderr_fd = kept
        try:
            pid = await future
        except BaseException:
            for fd in kept:
                os.close(fd)
            raise
        stdout = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stdout), os.fdopen(stdout_fd, "rb", 0)
        )
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(stdin_fd, "wb", 0)
        )
        stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        return _Forked(pid, stdin, stdout, stderr_fd, self.end_of(pid))

    def forget(self, pid: int) -> None:
        self._ends.pop(pid, None)

    async def close(self) -> None:
        if self.sock is not None:
            self.sock.close()  # the fork server exits when its socket closes
        if self._reader is not None:
            self._reader.cancel()
        if self.proc is not None:
            try:
                await asyncio.wait_for(self.proc.wait(), 2.0)
            except TimeoutError:
                await terminate_group(self.proc, 1.0)
        if self._stderr is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stderr, 1.0)


class _RawOutput:
    """A worker's stderr pipe, where its file descriptors 1 and 2 write, read on the loop.

    The text (decoded as UTF-8, invalid bytes replaced) goes to ``text(str)``, and each
    ``END_MARK`` the worker writes after a job is taken out and told to ``mark()``: the text
    between two marks is one job's. Which job's cannot be told from when the kernel reads it:
    the worker runs the jobs it holds one after the other without waiting for the kernel, and
    this pipe and the frames are read apart. The pipe is read when the loop finds it readable,
    and by :meth:`drain` before a job is settled.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, text: Any, mark: Any) -> None:
        self._loop = loop
        self._fd: int | None = fd
        self._text = text
        self._mark = mark
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = b""  # the end of the last read, which may be the start of a mark
        self.done: asyncio.Future[None] = loop.create_future()
        os.set_blocking(fd, False)
        loop.add_reader(fd, self.drain)

    def drain(self) -> None:
        """Copy what the pipe holds now: at most 16 reads of 64 KiB (a job that writes without
        end must not keep the loop here; the loop calls again while the pipe is readable)."""
        for _ in range(16):
            if self._fd is None:
                return
            try:
                data = os.read(self._fd, 65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""  # as an end: nothing more can come from it
            if not data:
                self._emit(self._held, final=True)
                self.close()
                return
            data, self._held = self._held + data, b""
            while (at := data.find(END_MARK)) >= 0:
                self._emit(data[:at], final=True)
                self._mark()
                data = data[at + len(END_MARK) :]
            keep = _mark_begun(data)
            if keep:
                data, self._held = data[:-keep], data[-keep:]
            self._emit(data)

    def _emit(self, data: bytes, final: bool = False) -> None:
        text = self._decoder.decode(data, final=final)
        if final:
            self._decoder.reset()
        if text:
            with contextlib.suppress(Exception):  # a job's output that failed: not ours
                self._text(text)

    def close(self) -> None:
        """Stop reading and close the pipe (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            self._loop.remove_reader(fd)
            os.close(fd)
        if not self.done.done():
            self.done.set_result(None)


def _mark_begun(data: bytes) -> int:
    """How many bytes at the end of ``data`` are the start of an ``END_MARK`` (0: none)."""
    for size in range(min(len(data), len(END_MARK) - 1), 0, -1):
        if data.endswith(END_MARK[:size]):
            return size
    return 0


def _log_stderr(text: str, _stream: str) -> None:
    logger.warning("jupyter_executor process backend's fork server: %s", text.rstrip())


async def terminate_group(proc: Any, grace: float) -> None:
    """The subprocess backend's ``terminate_group`` (imported when first needed)."""
    from .subprocess import terminate_group

    await terminate_group(proc, grace)


def _proc(proc: _Forked) -> Any:
    """``proc`` for ``terminate_group``, which uses what a ``_Forked`` has of a ``Process``."""
    return cast(Any, proc)


def _watch_end(loop: asyncio.AbstractEventLoop, pid: int, end: asyncio.Future[int]) -> None:
    """Settle ``end`` when ``pid`` (not our child: its exit code is lost) is gone."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        end.set_result(UNKNOWN_EXIT)  # already gone
        return

    def gone() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        if not end.done():
            end.set_result(UNKNOWN_EXIT)

    loop.add_reader(fd, gone)


class _Run:
    """One attempt of a job on a worker, from its hand-over to its end."""

    __slots__ = (
        "cancelled", "ended", "handovers", "id", "job", "on_end", "on_start", "payload", "sent",
        "started", "worker",
    )  # fmt: skip

    def __init__(self, job: Job) -> None:
        self.job = job
        self.id = next(_ids)
        #: (sources, cwd, base env, job's env, pickled job): see _worker's docstring.
        self.payload: (
            tuple[dict[str, list[str]], str, dict[str, str], dict[str, str], bytes] | None
        ) = None
        self.worker: _Worker | None = None
        self.sent = False  # written to its worker (else it waits in the worker's outbox)
        self.started = False  # the worker said "got"
        self.cancelled = False
        self.ended = False
        self.handovers = 0
        #: Called once with ("ok", result), ("error", exception) or ("cancelled", None).
        self.on_end: Any = None
        #: Called when its worker starts it (None: nothing to tell).
        self.on_start: Any = None

    def end(self, kind: str, value: Any) -> None:
        if not self.ended:
            self.ended = True
            self.on_end(kind, value)


class _Worker:
    def __init__(self, backend: ProcessBackend) -> None:
        self.backend = backend
        self.proc: _Forked | None = None  # None while it is being forked
        #: The jobs handed to it, in order: the one it runs (started), then those it holds.
        self.runs: deque[_Run] = deque()
        #: Those of ``runs`` not written to it yet (see SEND_BELOW), in order.
        self.outbox: list[_Run] = []
        self.leaving = False  # it said it exits, or it is being stopped: no more jobs
        self.served = False  # it started a job (see ProcessBackend._lost)
        self.reader: asyncio.Task[None] | None = None
        self.raw: _RawOutput | None = None
        # Whose is what comes through the stderr pipe (see _RawOutput): the jobs started and
        # not ended there yet, in order; and what came there from jobs the worker started
        # before the kernel read that it did ([texts, ended] each, in order).
        self._raw_open: deque[_Run] = deque()
        self._raw_ahead: deque[list[Any]] = deque()
        self.last_env: dict[str, str] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def current(self) -> _Run | None:
        return self.runs[0] if self.runs and self.runs[0].started else None

    def _raw_text(self, text: str) -> None:
        # Output written at the file-descriptor level (C code, os.write, a command the job
        # runs) comes through stderr.
        if self._raw_open:
            self._raw_open[0].job.output.write(text, "stderr")
            return
        ahead = self._raw_ahead
        if not ahead or ahead[-1][1]:
            ahead.append([[], False])
        ahead[-1][0].append(text)

    def _raw_mark(self) -> None:
        # The end of a job's output on the stderr pipe: what follows is the next job's.
        if self._raw_open:
            self._raw_open.popleft()
        elif self._raw_ahead and not self._raw_ahead[-1][1]:
            self._raw_ahead[-1][1] = True
        else:
            self._raw_ahead.append([[], True])

    def _raw_started(self, run: _Run) -> None:
        # ``run`` started: it owns the oldest output not given to a job yet.
        if self._raw_ahead:
            texts, ended = self._raw_ahead.popleft()
            for text in texts:
                run.job.output.write(text, "stderr")
            if ended:
                return
        self._raw_open.append(run)

    def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.send_frames(HEADER.pack(len(data)) + data)

    def _run_frame(self, run: _Run) -> bytes:
        assert run.payload is not None
        sources, cwd, base, extra, data = run.payload
        # The kernel's environment only when it differs from the last one sent (it is the same
        # for most jobs, and it is most of a small job's frame): None says "the same again".
        same = base is self.last_env or base == self.last_env
        self.last_env = base
        message = ("job", run.id, sources, cwd, None if same else base, extra, data)
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        run.sent = True
        return HEADER.pack(len(data)) + data

    def post(self, run: _Run) -> None:
        """Send ``run`` now, or with the next ones when this worker has enough to start."""
        self.outbox.append(run)
        self.flush_if_low()

    def flush_if_low(self) -> None:
        if self.outbox and self.proc is not None:
            waiting = sum(1 for r in self.runs if r.sent and not r.started)
            if waiting <= SEND_BELOW:
                self.flush()

    def flush(self) -> None:
        """Write what waits in the outbox, in one write."""
        runs, self.outbox = self.outbox, []
        self.send_frames(b"".join([self._run_frame(run) for run in runs]))

    def take_back(self, run: _Run) -> bool:
        """Take ``run`` back if it was not sent yet (True); else the worker must give it back."""
        if run.sent:
            return False
        if run in self.outbox:  # (not there while the worker is being forked)
            self.outbox.remove(run)
        self.runs.remove(run)
        run.worker = None
        return True

    def send_frames(self, frames: bytes) -> None:
        assert self.proc is not None
        stdin = self.proc.stdin
        if stdin.is_closing():
            return  # it is being stopped: its reader settles what it held
        with contextlib.suppress(ConnectionError, RuntimeError):  # it died: its reader says so
            stdin.write(frames)

    async def receive(self) -> Any:
        assert self.proc is not None
        head = await self.proc.stdout.readexactly(HEADER.size)
        (size,) = HEADER.unpack(head)
        data = await self.proc.stdout.readexactly(size)
        try:
            # (what cloudpickle writes, plain pickle reads: cloudpickle.loads is pickle.loads)
            return pickle.loads(data)
        except Exception as exc:
            # A class that only the worker can import (its job put a folder on sys.path), a
            # broken __setstate__: what the worker sent is whole, only not readable here.
            return ("unreadable", error_text(exc))

    def start(self, proc: _Forked) -> None:
        self.proc = proc
        loop = asyncio.get_running_loop()
        self.raw = _RawOutput(loop, proc.stderr, self._raw_text, self._raw_mark)
        self.reader = loop.create_task(self._read())
        self.outbox = list(self.runs)
        if self.outbox:
            self.flush()

    async def _read(self) -> None:
        """Follow what the worker says until it ends."""
        try:
            while True:
                message = await self.receive()
                kind = message[0]
                if kind == "got":
                    self._got(message[1])
                elif kind == "out":
                    run = self.current()
                    if run is not None:
                        run.job.output.write(message[2], message[1])
                elif kind == "revoked":
                    self._revoked(message[1])
                elif kind == "unreadable":
                    self._unreadable(message[1])
                else:  # "ok" or "error": the job it ran ended
                    self._ended(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        await self.backend._lost(self)

    def _ending(self, run: _Run) -> None:
        # What the job wrote at the file-descriptor level, and the mark after it, are in the
        # stderr pipe by now (the worker wrote them before it said the job ended): read them
        # before the job is settled, or its output would come after its end.
        if self.raw is not None:
            self.raw.drain()
        if run in self._raw_open:  # (no mark: the worker could not write it)
            self._raw_open.remove(run)

    def _unreadable(self, why: str) -> None:
        # Only the end of a job carries the user's objects (its result, its exception): a
        # frame that cannot be unpickled here ends the job the worker runs, which goes on.
        run = self.current()
        if run is None:  # not a job's end: nothing can be trusted of this worker
            self.leaving = True
            self.backend._stop_worker(self, kill=True)
            return
        text = (
            f"what job {run.job.name!r} sent back from its worker process (its result or its "
            f"exception) cannot be unpickled in the kernel: {why}"
        )
        self._ended(("error", None, text, "", False))

    def _got(self, run_id: int) -> None:
        # The worker starts a job it held.
        run = self._find(run_id)
        if run is None:
            return
        run.started = True
        self.served = True
        if run.cancelled:  # cancelled while held: it must not run
            self.leaving = True
            self.backend._stop_worker(self, kill=True)
            return
        assert self.proc is not None
        run.job.pid = self.proc.pid
        if run.on_start is not None:
            run.on_start()
        self._raw_started(run)  # (once started: a job's start clears what it showed before)
        self.flush_if_low()

    def _revoked(self, run_id: int) -> None:
        # The worker gave back a job it held and had not started.
        run = self._find(run_id)
        if run is None:
            return
        self.runs.remove(run)
        run.worker = None
        if not run.cancelled:
            self.backend._hand_over(run)
        self.backend._refill(self)
        self.flush_if_low()

    def _ended(self, message: tuple[Any, ...]) -> None:
        # The job the worker ran ended: ("ok", value) or ("error", carried, text, tb, leaving).
        run = self.runs[0]
        self._ending(run)
        self.runs.popleft()
        if message[0] == "ok":
            run.end("ok", message[1])
        else:
            _, carried, text, tb, leaving = message
            if leaving:
                self.leaving = True
            error = carried if isinstance(carried, BaseException) else RuntimeError(text)
            error._jupyter_executor_tb = tb  # type: ignore[attr-defined]
            run.end("error", error)
        self.backend._refill(self)

    def _find(self, run_id: int) -> _Run | None:
        for run in self.runs:
            if run.id == run_id:
                return run
        return None


class ProcessBackend(TaskBackend):
    """Runs callables in reusable worker processes forked by a fork server."""

    name = "process"
    holds = True  # a job held by a worker (prefetched) is pending until the worker starts it

    def __init__(self, engine: BackendHost) -> None:
        super().__init__(engine)
        self._workers: list[_Worker] = []
        self._waiting: deque[_Run] = deque()  # handed to no worker yet (all full)
        self._zygote: _Zygote | None = None
        self._zygote_lock = asyncio.Lock()
        self._stopping: set[asyncio.Task[Any]] = set()
        self._path_cache: tuple[tuple[tuple[str, ...], str], str] | None = None
        self._active: dict[Job, _Run] = {}  # the runs started without a task, by job
        self._env_cache: tuple[dict[Any, Any], str, dict[str, str]] | None = None
        # The jobs started before the fork server was spawned, in order (None once it was).
        self._early: list[Job] | None = []

    async def _zygote_ready(self, preload: bool = False) -> _Zygote:
        async with self._zygote_lock:
            zygote = self._zygote
            if zygote is None or zygote.lost:
                zygote = _Zygote(asyncio.get_running_loop())
                await zygote.start(self._environment(), preload)
                self._zygote = zygote
            return zygote

    async def prestart(self) -> None:
        """(``Engine.prestart``) Start the fork server now, preloading cloudpickle, before any
        job: the first job's worker is then a fork away. The kernel's side of pickling is
        imported meanwhile."""
        await self._zygote_ready(preload=True)
        from .. import _pickling  # noqa: F401

        if self._early == []:
            self._early = None  # no job needs to wait for the server: it is there

    async def _start_early(self) -> None:
        """The first jobs: their fork server is started first, so that Python starts in there
        while this process imports what the jobs need and pickles them (a cold start is mostly
        that start; the imports are 10-30 ms)."""
        with contextlib.suppress(Exception):  # (the jobs' own start says why they cannot run)
            await self._zygote_ready()
        jobs, self._early = self._early or [], None
        for job in jobs:
            if job.runstate.cancel_requested:
                self._end(job, "cancelled", None)
            else:
                self.start(job)

    # The engine's limit is the number of workers; the backend takes up to PREFETCH more
    # jobs per worker, which hold slots of the engine while they stay pending (``holds``).
    @property
    def limit(self) -> int | None:
        workers = self._max_workers
        return None if workers is None else workers * (1 + self._prefetch())

    @limit.setter
    def limit(self, value: int | None) -> None:
        self._max_workers = value

    def _prefetch(self) -> int:
        return PREFETCH if self.engine.max_jobs is None else PREFETCH_UNDER_MAX_JOBS

    def _environment(self) -> dict[str, str]:
        """The kernel's environment as a worker gets it (when it starts, and before each job).

        The same dict while nothing changed: decoding ``os.environ`` into a new dict cost
        15-40 µs per job; comparing its raw bytes with the last ones costs 1 µs.
        """
        raw = getattr(os.environ, "_data", None)  # CPython's bytes -> bytes dict
        path = self._python_path()
        cached = self._env_cache
        if cached is not None and raw is not None and cached[0] == raw and cached[1] == path:
            return cached[2]
        env = {**os.environ, "JUPYTER_EXECUTOR_ID": self.engine.id, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = path
        if isinstance(raw, dict):
            self._env_cache = (dict(raw), path, env)
        return env

    def _python_path(self) -> str:
        # Functions are pickled by reference when their module is importable here: give the
        # worker the same import path (this package, the notebook's folder, sys.path edits).
        # Cached while sys.path and the working directory stay the same (it stats each entry).
        key = (tuple(sys.path), os.getcwd())
        if self._path_cache is None or self._path_cache[0] != key:
            package_root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
            paths = [package_root, *(p or key[1] for p in key[0])]
            value = os.pathsep.join(dict.fromkeys(p for p in paths if os.path.isdir(p)))
            self._path_cache = (key, value)
        return self._path_cache[1]

    def _prepare(self, job: Job) -> _Run:
        """The job as a worker gets it (raises when it cannot be sent)."""
        args, kwargs = resolve_args(job)
        # A reused worker must not show a job what the previous one left (os.chdir, os.environ):
        # each job gets the working directory and environment it would get in a fresh worker,
        # the kernel's as the job starts (like a subprocess job), with its own cwd= and env=.
        if job.cwd is None:
            cwd = os.getcwd()
        else:
            cwd = os.path.abspath(job.cwd)
            if not os.path.isdir(cwd):
                msg = f"working directory {cwd!r} of job {job.name!r} does not exist"
                raise FileNotFoundError(msg)
        # The kernel's environment (the same dict for most jobs, sent to a worker only when it
        # changed), and this job's own variables on top.
        base = self._environment()
        extra = {**(job.env or {}), "JUPYTER_EXECUTOR_JOB": env_text(job.name)}
        payload = (job.name, job.target, args, kwargs)
        try:
            data = _by_reference(payload)
            if data is None:
                # The worker's linecache gets the sources only the kernel knows (notebook
                # cells), before it unpickles the job: see _worker.main.
                from .._pickling import dumps_with_sources

                data, sources = dumps_with_sources(payload)
            else:
                sources = {}
        except Exception as exc:
            msg = f"job {job.name!r} cannot be sent to a worker process: {exc}"
            raise TypeError(msg) from exc
        run = _Run(job)
        run.payload = (sources, cwd, base, extra, data)
        return run

    def start(self, job: Job) -> None:
        life = job.runstate.life
        if life is not None and (life.before is not None or life.after is not None):
            # Its hooks run around execute() in a task: its attempt starts with them.
            self.engine.started(job)
            super().start(job)
            return
        if self._early is not None:
            self._early.append(job)
            if len(self._early) == 1:
                task = self.loop.create_task(self._start_early())
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)
            return
        # Most jobs: no task, no coroutine; the worker's reader ends the run (see _end).
        try:
            run = self._prepare(job)
        except Exception as exc:
            # Ended at the next turn, not from inside start(): the engine may be starting a
            # queue of such jobs, and each end would start the next one a level deeper.
            self.loop.call_soon(self._end, job, "error", exc)
            return
        run.on_end = functools.partial(self._end, job)
        run.on_start = functools.partial(self.engine.started, job)
        self._active[job] = run
        self._hand_over(run)

    def _end(self, job: Job, kind: str, value: Any) -> None:
        """(loop thread) A run ended: tell the engine, and start the dependent it hands back."""
        self._active.pop(job, None)
        engine = self.engine
        if kind == "cancelled":
            engine.finish(job, exc=CANCELLED)  # (a held job: it never ran, nor counts as run)
            return
        if job.status is Status.PENDING:
            # Ended before its worker started it (it could not be sent, its workers kept
            # dying): that was its attempt.
            engine.started(job)
        if kind == "ok":
            nxt = engine.finish(job, value, handoff=self)
        else:
            nxt = engine.finish(job, exc=value, handoff=self)
        if nxt is not None:
            self.start(nxt)

    def cancel(self, job: Job) -> None:
        run = self._active.get(job)
        if run is None:
            super().cancel(job)  # a job run by execute() in a task
            return
        task = self.loop.create_task(self._cancel_run(run))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _cancel_run(self, run: _Run) -> None:
        await self._cancel(run)
        run.end("cancelled", None)

    async def execute(self, job: Job) -> Any:
        """(jobs with before=/after= hooks) The run, awaited in the job's task."""
        run = self._prepare(job)
        done: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()

        def settle(kind: str, value: Any) -> None:
            if not done.done():
                done.set_result((kind, value))

        run.on_end = settle
        self._hand_over(run)
        try:
            kind, value = await done
        except asyncio.CancelledError:
            await self._cancel(run)
            raise
        if kind == "ok":
            return value
        if kind == "cancelled":
            raise asyncio.CancelledError
        raise value

    # -- handing jobs to workers (loop thread) ---------------------------------------------------

    def _busy(self) -> int:
        return sum(1 for w in self._workers if w.runs and not w.leaving)

    def _hand_over(self, run: _Run) -> None:
        """Give ``run`` to a free worker, a new one, or one that can hold it; else it waits."""
        limit = self._max_workers
        usable = [w for w in self._workers if not w.leaving]
        room = limit is None or self._busy() < limit
        if room:
            for worker in usable:
                if not worker.runs:
                    self._assign(run, worker)
                    return
            if limit is None or len(usable) < limit:
                worker = _Worker(self)
                self._workers.append(worker)
                self._assign(run, worker)
                task = self.loop.create_task(self._start_worker(worker))
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)
                return
        prefetch = self._prefetch()
        held = [w for w in usable if w.runs and len(w.runs) <= prefetch]
        if held:
            self._assign(run, min(held, key=lambda w: len(w.runs)))
            return
        self._waiting.append(run)

    def _assign(self, run: _Run, worker: _Worker) -> None:
        run.worker = worker
        run.sent = False  # (one given back by another worker was sent to that one)
        worker.runs.append(run)
        if worker.proc is not None:
            worker.post(run)

    def _refill(self, worker: _Worker) -> None:
        """(a worker's job ended or was given back) Give it waiting work, or take back a job
        held by a busy worker when this one is free."""
        if worker.leaving:
            return
        prefetch = self._prefetch()
        while self._waiting and len(worker.runs) <= prefetch:
            run = self._waiting.popleft()
            if not run.cancelled:
                self._assign(run, worker)
        if worker.runs:
            return
        limit = self._max_workers
        if limit is not None and sum(not w.leaving for w in self._workers) > limit:
            # The limit was lowered: this worker is one too many.
            worker.leaving = True
            self._stop_worker(worker)
            return
        self._take_back_for(worker)

    def _take_back_for(self, free: _Worker) -> None:
        """Revoke the last job held (not started) by another worker: it comes back as
        "revoked" and runs on ``free``."""
        for other in self._workers:
            if other is free or other.leaving or other.proc is None:
                continue
            held = [r for r in other.runs if not r.started and not r.cancelled]
            if held:
                if other.take_back(held[-1]):
                    self._assign(held[-1], free)
                else:
                    other.send(("revoke", held[-1].id))
                return

    async def _start_worker(self, worker: _Worker) -> None:
        try:
            proc = await self._fork()
        except Exception as exc:
            self._workers.remove(worker)
            for run in worker.runs:
                msg = f"cannot start a worker process for job {run.job.name!r}: {exc}"
                run.end("error", WorkerCrashed(msg))
            return
        if worker.leaving:  # stopped (shutdown) while it was forked
            self._workers.remove(worker)
            os.close(proc.stderr)  # (no _RawOutput owns it yet)
            await self._discard_proc(proc)
            return
        worker.start(proc)

    async def _fork(self) -> _Forked:
        zygote = await self._zygote_ready()
        try:
            return await zygote.fork()
        except OSError:
            if not zygote.lost:
                raise
        # The fork server died as it was asked (killed, by the OOM killer or by hand), before
        # the engine knew: once more, with a new one.
        zygote = await self._zygote_ready()
        return await zygote.fork()

    async def _lost(self, worker: _Worker) -> None:
        """(its reader) A worker ended: settle its job, give the held ones to others."""
        if worker in self._workers:
            self._workers.remove(worker)
        assert worker.proc is not None
        returncode = await worker.proc.wait()
        if returncode != 0:
            # It crashed or was killed: what its job started in its process group (a forked
            # child, a pool) would be left running with nobody to stop it.
            await terminate_group(_proc(worker.proc), 0.0)
        if worker.raw is not None:
            # The rest of what its job wrote; not longer: a process it forked may hold the pipe.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(worker.raw.done), 1.0)
            worker.raw.close()
        if self._zygote is not None:
            self._zygote.forget(worker.proc.pid)
        runs, worker.runs, worker.outbox = list(worker.runs), deque(), []
        # Only a worker that died before it started any job counts against the jobs it held:
        # one that ran jobs (then crashed in one, was stopped by a cancel or a timeout) says
        # nothing of the jobs behind it, which must not fail for another job's crashes.
        suspect = not worker.served
        for run in runs:
            if run.ended or run.cancelled:
                continue
            run.worker = None
            if run.started:
                run.end("error", WorkerCrashed(_crash_message(run.job, returncode)))
            elif suspect and run.handovers >= MAX_HANDOVERS:
                run.end("error", WorkerCrashed(_never_started(run.job, returncode)))
            else:
                # It never started this job (it died while holding it, or idle): another
                # worker runs it.
                run.handovers += suspect
                self._hand_over(run)
        for _ in range(len(self._waiting)):
            if not self._waiting:
                break
            self._hand_over(self._waiting.popleft())

    async def _cancel(self, run: _Run) -> None:
        """``run``'s job was cancelled: drop it if it waits, take it back if a worker holds it,
        kill its worker's process group if it runs."""
        run.cancelled = True
        worker = run.worker
        if worker is None:
            with contextlib.suppress(ValueError):
                self._waiting.remove(run)
            return
        if not run.started:
            if worker.take_back(run):
                return
            if worker.proc is not None:
                worker.send(("revoke", run.id))  # if it starts meanwhile, "got" stops it
            return
        worker.leaving = True
        assert worker.proc is not None
        await terminate_group(_proc(worker.proc), self.engine.cancel_grace)

    def _stop_worker(self, worker: _Worker, kill: bool = False) -> None:
        if kill:
            assert worker.proc is not None
            coro = terminate_group(_proc(worker.proc), self.engine.cancel_grace)
        else:
            coro = self._discard(worker)
        task = self.loop.create_task(coro)
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _discard(self, worker: _Worker) -> None:
        if worker.proc is None:
            return
        worker.send(("exit",))
        with contextlib.suppress(Exception):
            worker.proc.stdin.close()
        await self._discard_proc(worker.proc, grace=1.0 if not worker.runs else 0.0)

    async def _discard_proc(self, proc: _Forked, grace: float = 1.0) -> None:
        if proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), grace)
            await terminate_group(_proc(proc), 1.0)

    async def aclose(self) -> None:
        for run in self._waiting:  # (held by no worker yet: pending for the engine)
            run.cancelled = True
            run.end("cancelled", None)
        self._waiting.clear()
        workers = list(self._workers)
        for worker in workers:
            worker.leaving = True
            if worker.proc is not None:
                worker.send(("exit",))  # then the end of its stdin: it exits
                with contextlib.suppress(Exception):
                    worker.proc.stdin.close()
        for worker in workers:
            if worker.proc is None:
                continue
            try:
                await asyncio.wait_for(worker.proc.wait(), 2.0)
            except TimeoutError:
                await terminate_group(_proc(worker.proc), 1.0)
            if worker.reader is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(worker.reader), 2.0)
        if self._stopping:
            await asyncio.wait(list(self._stopping), timeout=5.0)
        if self._zygote is not None:
            await self._zygote.close()
            self._zygote = None
        # What a worker still held when it stopped never ran (a started job was settled by the
        # engine as it stopped: this does nothing to it).
        for worker in workers:
            for run in worker.runs:
                run.cancelled = True
                run.end("cancelled", None)


def _by_reference(payload: tuple[Any, Any, Any, Any]) -> bytes | None:
    """``payload`` pickled by plain pickle, when that is what cloudpickle would write; else None.

    cloudpickle pickles by value only what a worker could not import: code of ``__main__`` (a
    notebook's cells), of modules registered by value, or not reachable by its name (lambdas,
    local functions: plain pickle refuses those). Anything else it pickles by reference, as
    plain pickle does, 7 times faster (0.7 µs against 5 for a small job: its Python hook runs
    for every object). A pickle that names ``__main__`` or a module registered by value (a
    module's name is in the pickle of a reference to it) goes to cloudpickle; a target from
    ``__main__`` at once (its arguments, maybe large, would be pickled twice).
    """
    registered = _by_value_modules()
    if registered is None or getattr(payload[1], "__module__", None) == "__main__":
        return None
    try:
        data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None
    if b"__main__" in data or any(name.encode() in data for name in registered):
        return None
    return data


def _by_value_modules() -> Collection[str] | None:
    """The modules registered with ``cloudpickle.register_pickle_by_value`` (None: unknown)."""
    module = sys.modules.get("cloudpickle.cloudpickle")
    if module is None:
        return ()  # not imported: none (and a first job need not wait for its import)
    registered = getattr(module, "_PICKLE_BY_VALUE_MODULES", None)
    return None if registered is None else tuple(registered)


def _never_started(job: Job, returncode: int) -> str:
    return (
        f"job {job.name!r} did not start: {MAX_HANDOVERS + 1} worker processes in a row ended "
        f"before they could start a job (the last one {_how(returncode)})"
    )


def _crash_message(job: Job, returncode: int) -> str:
    return (
        f"the worker process running job {job.name!r} {_how(returncode)} (a crash, os._exit "
        "or the OOM killer); the engine goes on with a new worker"
    )


def _how(returncode: int) -> str:
    if returncode == UNKNOWN_EXIT:
        how = "ended (its exit code was lost with the process backend's fork server)"
    elif returncode < 0:
        try:
            how = f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            how = f"was killed by signal {-returncode}"
    else:
        how = f"exited with code {returncode}"
    return how
