"""The subprocess backend: shell commands and argv lists, output streamed through pipes.

Each command starts in a new session (its own process group), so a kernel interrupt, which
signals the kernel's whole group, does not kill it (docs/kernel-notes.md §4); cancelling
terminates the group, then kills it after the engine's grace period.

Each command is supervised: its group is stopped when the kernel dies, even by SIGKILL. The
attached commands are started and supervised by the engine's zygote (:class:`_Zygote`, one
small process started with the first command; ``_supervise.py --zygote``), which costs a
``posix_spawn``; a detached command has a supervisor process of its own (``_supervise.py``: it
must outlive the kernel, and the zygote does not), as does every command where no pidfd can
watch the kernel (not Linux) or that the zygote cannot take (an environment too big for one
message).
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import errno
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

from .. import _procs
from .._text import env_text
from ..errors import CommandFailed, JupyterExecutorError, StoreError
from ._base import TaskBackend

if TYPE_CHECKING:
    from ..job import Job

__all__ = ["SubprocessBackend", "claim_file_of", "describe_returncode", "terminate_group"]


class SubprocessBackend(TaskBackend):
    """Runs the job's command; the exit code is the result, non-zero is a failure."""

    name = "subprocess"

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self._zygote: _Zygote | None = None
        # Attached commands holding descriptors (starting, or started and not ended), and the
        # commands waiting for one of them to end (see _start_when_descriptors_allow).
        self._holding = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def aclose(self) -> None:
        zygote, self._zygote = self._zygote, None
        if zygote is not None:
            await zygote.close()

    async def execute(self, job: Job) -> Any:
        command, env, cwd = _command_of(job, self.engine.id)
        if job.detach:
            return await self._run_detached(job, command, _whole(env), cwd)
        try:
            proc = await self._start_when_descriptors_allow(job, command, env, cwd)
        except _CannotRun as exc:  # as a supervisor says it: on stderr, and status 127
            job.output.write(f"cannot run {command[0]!r}: {exc.strerror}\n", "stderr")
            return _outcome(job, 127)
        try:
            return await self._attached(job, proc)
        finally:
            self._release()

    async def _start_when_descriptors_allow(
        self, job: Job, command: list[str], env: dict[str, str], cwd: str | None
    ) -> asyncio.subprocess.Process | _Forked:
        """:meth:`_start`, waiting while the kernel has no file descriptor to spare for it.

        Each running command holds four in the kernel (its two pipes, a pidfd, its log): a
        burst of commands with no limit reached the process's limit (``ulimit -n``, often
        1,024) at a few hundred, and the commands past it failed with "Too many open files";
        so did anything else of the kernel's that opened a file meanwhile. The commands past
        :func:`_descriptor_room` now wait for one of the others to end, and so does one that
        finds no descriptor left all the same. With none running, nothing would free one: it
        fails.
        """
        while True:
            if self._holding >= _descriptor_room():
                await self._wait_turn()
                continue
            self._holding += 1
            try:
                return await self._start(job, command, env, cwd)
            except BaseException as exc:
                # It freed nothing the others could use: no waiter is woken for it.
                self._holding -= 1
                if not isinstance(exc, OSError) or exc.errno not in (errno.EMFILE, errno.ENFILE):
                    raise
                if not self._holding:
                    raise  # none of the others will end and free one
            await self._wait_turn()

    async def _wait_turn(self) -> None:
        """Wait for a started command to end (see :meth:`_release`)."""
        freed = asyncio.get_running_loop().create_future()
        self._waiting.append(freed)
        try:
            await freed
        except asyncio.CancelledError:
            if freed in self._waiting:
                self._waiting.remove(freed)
            elif freed.done() and not freed.cancelled():
                self._wake_one()  # (woken, then cancelled: the turn goes to the next)
            raise

    def _release(self) -> None:
        """A started command ended (its descriptors are closed): wake a command waiting."""
        self._holding -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _attached(self, job: Job, proc: asyncio.subprocess.Process | _Forked) -> Any:
        """Follow a started attached command to its end: its pid, output and exit status."""
        job.pid = proc.pid
        if job.runstate.life is not None:
            job.runstate.life.pid_start_time = _procs.start_time(proc.pid)
        self.engine.job_changed(job)  # the history knows the pid (for `jupyter-executor cancel`)
        self.engine.note_pid(job)
        try:
            await _copy_output(proc, job.output.write)
            returncode = await proc.wait()
        except asyncio.CancelledError:
            await terminate_group(proc, self.engine.cancel_grace)
            raise
        except OSError as exc:  # its zygote was killed: the command was stopped
            msg = (
                f"command {job.describe()!r} was stopped: {exc.strerror or exc} (it supervised "
                "the command); its exit status is unknown"
            )
            raise JupyterExecutorError(msg) from exc
        return _outcome(job, returncode)

    async def _start(
        self, job: Job, command: list[str], env: dict[str, str], cwd: str | None
    ) -> asyncio.subprocess.Process | _Forked:
        """Start an attached ``command``: by the zygote, else under a supervisor of its own.

        ``env``: what the command's environment adds to the kernel's (see :func:`_command_of`).
        """
        # Write-ahead: the run is on disk before its process exists. An attached command dies
        # with its kernel (its supervisor sees to it), so a record that cannot be written is
        # only logged by the store, and the job runs anyway.
        with contextlib.suppress(StoreError, TimeoutError):
            await self._write_ahead(job)
        grace = self.engine.cancel_grace
        if self._zygote is None and _Zygote.usable():
            self._zygote = _Zygote()
        if self._zygote is not None:
            proc = await self._zygote.spawn(command, env, cwd or _here(), grace)
            if proc is not None:
                return proc
        env = _whole(env)
        # No zygote here (no pidfd), or it could not start or take this command: a supervisor
        # (one interpreter) of its own.
        argv = [
            sys.executable, "-S", SUPERVISOR, "--grace", str(grace),
            "--parent", str(os.getpid()), "--", *command,
        ]  # fmt: skip
        return await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env, start_new_session=True,
        )  # fmt: skip

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
            proc = Detached.start(argv, log, cwd, env)
        job.pid = proc.pid
        assert job.runstate.life is not None
        job.runstate.life.pid_start_time = _procs.start_time(proc.pid)
        self.engine.job_changed(job)  # the history must know the pid before the kernel dies
        self.engine.note_pid(job)
        follower = asyncio.get_running_loop().create_task(follow(log_path, out))
        try:
            returncode = await proc.wait()
        except asyncio.CancelledError:
            follower.cancel()
            if not job.runstate.cancel_requested:
                proc.forget()
                raise  # the engine's loop stops (kernel shutdown): the detached job runs on
            await terminate_group(proc, self.engine.cancel_grace)
            raise
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        return _outcome(job, returncode)

    async def _write_ahead(self, job: Job) -> None:
        """Commit ``job``'s run (running, no pid yet) to the history before its process starts.

        Raises
        ------
        StoreError
            The run could not be written.
        TimeoutError
            Not written within the store's busy timeout.
        """
        store = self.engine.store
        if store is None:
            return
        self.engine.job_changed(job)
        # The writer settles the future itself: the loop goes on running the other jobs
        # meanwhile, and the commands that start while it waits share its commit (it writes
        # everything queued when it wakes: one commit for a burst's starts, not one per job).
        flushed = store.flushed(asyncio.get_running_loop())
        await asyncio.wait_for(flushed, store.busy_timeout)


class Detached:
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


class _Forked:
    """A command started by the zygote, seen like an asyncio subprocess: pid, pipes, wait.

    Its end comes from the zygote, which reaps it. Should the zygote die first (killed by
    someone), the engine stops the command (nothing would stop it with the kernel any more)
    and its end cannot be known: :meth:`wait` then waits for the process to be gone (through
    a pidfd opened while it ran) and raises the zygote's error.
    """

    def __init__(
        self, pid: int, ended: asyncio.Future[int], pipes: tuple[int, int] | None = None
    ) -> None:
        self.pid = pid
        self._ended = ended
        self._pipes = pipes  # the read ends of its stdout and stderr, until drained
        self._pidfd: int | None = None
        self._watch: asyncio.Future[None] | None = None  # (see _gone)
        if not ended.done():
            with contextlib.suppress(OSError):  # gone already: its end is on its way
                self._pidfd = os.pidfd_open(pid)
            ended.add_done_callback(self._release)

    @property
    def returncode(self) -> int | None:
        ended = self._ended
        if ended.done() and not ended.cancelled() and ended.exception() is None:
            return ended.result()
        return None

    async def drain(self, write: Callable[[str, str], Any]) -> None:
        """Copy its stdout and stderr into ``write(text, name)`` until both end.

        Read on the loop by :class:`_PipeCopy`, not by two asyncio streams: a stream costs a
        transport, a protocol, a task and their loop rounds per pipe, which made up a third of
        a short command's cost in the kernel (issue 14).
        """
        pipes, self._pipes = self._pipes, None
        if pipes is None:
            return
        copy = _PipeCopy(asyncio.get_running_loop(), pipes, write)
        try:
            await copy.done
        finally:
            copy.close()  # cancelled: stop reading (the command is being stopped)

    async def wait(self) -> int:
        try:
            return await asyncio.shield(self._ended)
        except OSError:  # the zygote is gone
            await self._gone()
            raise

    async def _gone(self) -> None:
        # One watch, however many wait: a second reader of the same pidfd would replace the
        # first's callback on the loop, and the first would wait for ever.
        if self._watch is None:
            if self._pidfd is None:
                return
            self._watch = asyncio.ensure_future(self._watch_gone(self._pidfd))
        await asyncio.shield(self._watch)

    async def _watch_gone(self, pidfd: int) -> None:
        try:
            await pidfd_exited(pidfd)
        finally:  # gone, or the loop stops: the pidfd is closed either way (it leaked before)
            self._pidfd = None
            os.close(pidfd)

    def _release(self, ended: asyncio.Future[int]) -> None:
        if ended.exception() is None:  # else the pidfd still serves :meth:`wait`
            fd, self._pidfd = self._pidfd, None
            if fd is not None:
                os.close(fd)


class _Zygote:
    """The engine's end of a zygote (``_supervise.py --zygote``): one small process, started
    once, that starts and supervises every attached command.

    A command costs it a ``posix_spawn``, against a new interpreter (tens of milliseconds) or
    a forked supervisor (2-3 ms of CPU) per command; each gets what a supervisor gives (own
    session, its group stopped when the kernel dies, its exit status). It exists where a pidfd
    can watch the kernel (Linux): the zygote's parent is the kernel only until it dies.
    Requests go over a ``SOCK_SEQPACKET`` socket, one message each, with the command's pipes
    attached; the answers are read on the engine's loop. Should the zygote die before the
    kernel, the engine stops the commands it had started (see :meth:`_fail`).
    """

    def __init__(self) -> None:
        import itertools

        self._ids = itertools.count()
        self._started: dict[int, asyncio.Future[int]] = {}
        self._ended: dict[int, asyncio.Future[int]] = {}
        self._running: dict[int, tuple[int, float]] = {}  # request id -> (command pid, grace)
        self._grace: dict[int, float] = {}  # request id -> grace, until it has started
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._broken = False
        self._base: dict[Any, Any] | None = None  # the kernel's environment it was last sent
        self._outbox: collections.deque[_Post] = collections.deque()  # posted, not yet sent
        self._blocked = False  # the socket is full: _send waits for it to be writable
        # The largest request the socket takes (its send buffer, less a margin for what the
        # kernel adds): larger ones fail with EMSGSIZE, and go to a supervisor instead.
        self._largest = 0

    @staticmethod
    def usable() -> bool:
        """Whether a pidfd can watch a process here (Linux 5.3 and later)."""
        try:
            os.close(os.pidfd_open(os.getpid()))
        except (AttributeError, OSError):
            return False
        return True

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-S", SUPERVISOR, "--zygote", str(theirs.fileno()),
                 "--parent", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=[theirs.fileno()],
                start_new_session=True,  # a kernel interrupt (its group's SIGINT) misses it
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._largest = ours.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - 4096
        asyncio.get_running_loop().add_reader(ours.fileno(), self._read)
        self._sock = ours
        return ours

    async def spawn(
        self, command: list[str], env: dict[str, str], cwd: str | None, grace: float
    ) -> _Forked | None:
        """A process started for ``command`` by the zygote; None when the zygote cannot serve."""
        if self._broken:
            return None
        loop = asyncio.get_running_loop()
        try:
            sock = self._sock or self._start()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise  # no descriptor left for now (the caller waits for one)
            self._broken = True
            return None
        key = next(self._ids)
        request = {"id": key, "argv": command, "env": env, "cwd": cwd, "grace": grace}
        message = json.dumps(request).encode()
        if len(message) > self._largest:
            return None  # too big for one message (EMSGSIZE): a supervisor of its own
        # The kernel's environment goes in a message of its own before the first request, and
        # again when it changed since: 40-odd variables made into a dict, encoded and decoded
        # with each command were a tenth of its cost on both sides (issue 14). The messages
        # reach the zygote in the order they are posted, and a base is never taken back (a
        # command cancelled before its request left takes back only that). os.environ._data
        # (its variables as bytes) is compared as it is: a dict's comparison, in C.
        seen = getattr(os.environ, "_data", None)
        if seen is None or seen != self._base:
            base = json.dumps({"base": dict(os.environ)}).encode()
            if len(base) > self._largest:
                return None
            self._outbox.append(_Post(base))
            self._base = None if seen is None else dict(seen)
        out_r, out_w = os.pipe()
        try:
            err_r, err_w = os.pipe()
        except OSError:  # (no descriptor left: the caller waits for one)
            os.close(out_r)
            os.close(out_w)
            raise
        self._grace[key] = grace
        started = self._started[key] = loop.create_future()
        ended = self._ended[key] = loop.create_future()
        post = _Post(message, (out_w, err_w))
        self._outbox.append(post)
        self._send(sock)
        try:
            pid = await asyncio.shield(started)
        except asyncio.CancelledError:
            if post in self._outbox:  # never sent: nothing will run
                self._outbox.remove(post)
                post.close()
                self._forget(key)
                for fd in (out_r, err_r):
                    os.close(fd)
                raise
            # Cancelled while it forks: it runs, or will, so it is stopped once it does.
            with contextlib.suppress(Exception):
                doomed = _Forked(await started, ended)
                await terminate_group(doomed, grace)
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        except OSError:  # it could not be sent, or the zygote died (see _fail)
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        return _Forked(pid, ended, (out_r, err_r))

    def _send(self, sock: socket.socket) -> None:
        """Send the requests posted, in order, as long as the socket takes them.

        When it is full (a burst of commands, faster than the zygote starts them), the rest
        wait for it to be writable again: refused with EAGAIN, they were taken for a zygote
        gone, and the commands it ran were stopped.
        """
        outbox = self._outbox
        while outbox:
            post = outbox[0]
            try:
                socket.send_fds(sock, [post.message], post.fds)
            except (BlockingIOError, InterruptedError):
                if not self._blocked:
                    self._blocked = True
                    asyncio.get_running_loop().add_writer(sock.fileno(), self._send, sock)
                return
            except OSError:
                outbox.popleft()
                post.close()
                self._fail(OSError("the zygote is gone"))
                return
            outbox.popleft()
            post.close()
        if self._blocked:
            self._blocked = False
            asyncio.get_running_loop().remove_writer(sock.fileno())

    def _drop(self, sock: socket.socket) -> None:
        """Stop reading and sending on ``sock``; drop the requests not sent."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            loop.remove_reader(sock.fileno())
        if self._blocked:
            self._blocked = False
            with contextlib.suppress(Exception):
                loop.remove_writer(sock.fileno())
        while self._outbox:
            self._outbox.popleft().close()

    def _forget(self, key: int) -> None:
        for table in (self._started, self._ended, self._grace):
            table.pop(key, None)

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            message = sock.recv(256)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        if not message:
            self._fail(OSError("the zygote ended"))
            return
        what, key, value = message.decode().split()
        ident, number = int(key), int(value)
        if what == "started":
            self._running[ident] = (number, self._grace.pop(ident, 0.0))
            _settle(self._started.pop(ident, None), number)
        elif what == "failed":  # the command could not be started
            self._ended.pop(ident, None)
            self._grace.pop(ident, None)
            _settle(self._started.pop(ident, None), _CannotRun(number, os.strerror(number)))
        else:
            self._running.pop(ident, None)
            _settle(self._ended.pop(ident, None), os.waitstatus_to_exitcode(number))

    def _fail(self, error: OSError) -> None:
        """The zygote is gone: pending starts fail, and no end will ever be known.

        The commands it started are stopped (SIGTERM, SIGKILL after their grace): nothing
        would stop them when the kernel dies. Their jobs fail once they are gone.
        """
        self._broken = True
        loop = asyncio.get_running_loop()
        for pid, grace in self._running.values():
            others = _procs.other_sessions(pid)
            _procs.signal_group(pid, others, signal.SIGTERM)
            loop.call_later(grace, _procs.signal_group, pid, others, signal.SIGKILL)
        self._running.clear()
        self._grace.clear()
        if self._sock is not None:
            self._drop(self._sock)
        for futures in (self._started, self._ended):
            for future in futures.values():
                _settle(future, error)
            futures.clear()

    async def close(self) -> None:
        """Let the zygote go (it exits when its socket closes) and reap it."""
        sock, self._sock = self._sock, None
        self._broken = True
        if sock is not None:
            self._drop(sock)
            sock.close()
        for future in self._started.values():  # (posted, never sent: their jobs were stopped)
            _settle(future, OSError("the engine shut down"))
        proc, self._proc = self._proc, None
        if proc is not None:
            # Waited for on the loop, through a pidfd, not in a thread: an engine shut down at
            # interpreter exit (atexit) can start no thread any more ("can't register atexit
            # after shutdown"), which left the zygote unreaped and a traceback on stderr.
            pidfd = os.pidfd_open(proc.pid)  # (a zygote exists only where pidfds do)
            try:
                try:
                    await asyncio.wait_for(pidfd_exited(pidfd), 10)
                except TimeoutError:
                    proc.kill()
                    await pidfd_exited(pidfd)
            finally:
                os.close(pidfd)
            proc.wait()  # it has exited: this reaps it at once


async def pidfd_exited(pidfd: int) -> None:
    """Return once the process of ``pidfd`` has exited (its pidfd is readable then)."""
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await gone
    finally:
        loop.remove_reader(pidfd)


def _command_of(job: Job, engine_id: str) -> tuple[list[str], dict[str, str], str | None]:
    """The argv, environment and working directory of ``job``'s command, checked.

    The environment is what the command's adds to the kernel's (``os.environ``), which
    :func:`_whole` makes whole: the zygote has the kernel's already.
    """
    env = {**job.env} if job.env else {}
    env["JUPYTER_EXECUTOR_ID"] = engine_id
    env["JUPYTER_EXECUTOR_JOB"] = env_text(job.name)
    if "PYTHONUNBUFFERED" not in env and "PYTHONUNBUFFERED" not in os.environ:
        env["PYTHONUNBUFFERED"] = "1"  # child Python output arrives as it is printed
    cwd = os.fspath(job.cwd) if job.cwd is not None else None
    if cwd is not None and not os.path.isdir(cwd):
        msg = f"working directory {cwd!r} of job {job.name!r} does not exist"
        raise FileNotFoundError(msg)
    target = job.target
    if isinstance(target, str):
        return ["/bin/sh", "-c", target], env, cwd
    command = list(map(os.fspath, target))
    if not _found(command[0], env.get("PATH", os.environ.get("PATH"))) and not os.path.exists(
        os.path.join(cwd or ".", command[0])
    ):
        msg = f"program {command[0]!r} of job {job.name!r} not found"
        raise FileNotFoundError(msg)
    return command, env, cwd


#: Descriptors per attached command in the kernel (two pipes, a pidfd, its log file), and
#: the share of the process's limit left to the rest of the kernel (its sockets, files).
_PER_COMMAND = 4
_SPARE = 8


def _descriptor_room() -> int:
    """How many attached commands may hold descriptors at once under ``ulimit -n`` now."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return sys.maxsize
    return max(1, (soft - max(64, soft // _SPARE)) // _PER_COMMAND)


def _whole(env: dict[str, str]) -> dict[str, str]:
    """The whole environment of a command whose own adds ``env`` to the kernel's."""
    return {**os.environ, **env}


#: Programs found on a PATH: (name, PATH) -> True. Looking one up stats each folder of the PATH
#: (a tenth of a short command's cost in the engine); one found stays found (a program removed
#: since fails to start: "cannot run", status 127). Bounded: cleared when it holds too many.
_programs: dict[tuple[str, str | None], bool] = {}


def _found(name: str, path: str | None) -> bool:
    """Whether the program ``name`` is on ``path`` (``shutil.which``, its finds cached)."""
    key = (name, path)
    if key in _programs:
        return True
    if shutil.which(name, path=path) is None:
        return False
    if os.sep not in name:  # (a path is looked for from the working directory, which changes)
        if len(_programs) >= 1024:
            _programs.clear()
        _programs[key] = True
    return True


def _here() -> str | None:
    """The kernel's working directory now (a zygote started earlier has its own)."""
    try:
        return os.getcwd()
    except OSError:  # deleted: the command inherits the zygote's, as good as any
        return None


class _CannotRun(OSError):
    """The zygote could not start a command (no such program, not executable, ...)."""


class _Post:
    """A message to the zygote not sent yet, with the descriptors it hands over (a command's
    stdout and stderr: closed here once sent, or dropped)."""

    __slots__ = ("fds", "message")

    def __init__(self, message: bytes, fds: tuple[int, ...] = ()) -> None:
        self.message = message
        self.fds = fds

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


def _settle(future: asyncio.Future[int] | None, outcome: int | BaseException) -> None:
    if future is None or future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
        future.exception()  # retrieved: an unawaited one must not warn
    else:
        future.set_result(outcome)


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
    # One decoder for the whole log: a character the process wrote in two pieces, one before
    # a read and one after, is one character (decoded read by read, it was two U+FFFD).
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        while True:
            await asyncio.sleep(interval)
            _read_new(path, out, position, decoder)
    finally:
        _read_new(path, out, position, decoder, final=True)


def _read_new(
    path: Path,
    out: Any,
    position: list[int],
    decoder: codecs.IncrementalDecoder,
    final: bool = False,
) -> None:
    try:
        with open(path, "rb") as f:
            f.seek(position[0])
            data = f.read()
    except FileNotFoundError:
        data = b""
    position[0] += len(data)
    text = decoder.decode(data, final)
    if text:
        out.write(text, "stdout", log=False)


async def _copy_output(
    proc: asyncio.subprocess.Process | _Forked, write: Callable[[str, str], Any]
) -> None:
    """Copy the output of an attached command into ``write(text, name)`` until it ends."""
    if isinstance(proc, _Forked):
        await proc.drain(write)
    else:
        await asyncio.gather(pump(proc.stdout, write, "stdout"), pump(proc.stderr, write, "stderr"))


class _PipeCopy:
    """Copies the pipes of a command (stdout, stderr) into ``write(text, name)`` on the loop.

    Each pipe is read when the loop says it is readable, 64 KiB at most at a time, decoded as
    UTF-8 incrementally (invalid bytes replaced); at its end it is closed. :attr:`done` is
    set when both have ended, or fails with what ``write`` raised (then both are closed).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fds: tuple[int, int],
        write: Callable[[str, str], Any],
    ) -> None:
        self._loop = loop
        self._write = write
        self._open: list[int] = []
        self.done: asyncio.Future[None] = loop.create_future()
        try:
            for fd, name in zip(fds, ("stdout", "stderr"), strict=True):
                os.set_blocking(fd, False)
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                loop.add_reader(fd, self._readable, fd, name, decoder)
                self._open.append(fd)
        except BaseException:
            # The pipes not registered yet are closed here, the others by close(): each once
            # (a descriptor closed twice may be another thread's by then).
            for fd in fds:
                if fd not in self._open:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self.close()
            raise

    def _readable(self, fd: int, name: str, decoder: codecs.IncrementalDecoder) -> None:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # as an end: nothing more can come from it
        try:
            text = decoder.decode(data, final=not data)
            if text:
                self._write(text, name)
        except Exception as exc:  # the output's own failure ends the copy, as pump's does
            self.close()
            if not self.done.done():
                self.done.set_exception(exc)
            return
        if not data:
            self._end(fd)

    def _end(self, fd: int) -> None:
        self._loop.remove_reader(fd)
        self._open.remove(fd)
        os.close(fd)
        if not self._open and not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        """Stop reading and close the pipes still open (idempotent)."""
        while self._open:
            fd = self._open.pop()
            self._loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)


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


async def terminate_group(
    proc: asyncio.subprocess.Process | Detached | _Forked, grace: float
) -> None:
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


async def _terminate(proc: asyncio.subprocess.Process | Detached | _Forked, grace: float) -> None:
    pgid = proc.pid
    others: list[Any] = []
    if proc.returncode is None:
        others = _procs.other_sessions(pgid)
        _procs.signal_group(pgid, others, signal.SIGTERM)
        with contextlib.suppress(TimeoutError, OSError):  # OSError: a zygote lost meanwhile
            await asyncio.wait_for(asyncio.shield(proc.wait()), grace)
    # The leader is gone (or had its grace): the members of its group that ignored SIGTERM, or
    # were forked while it was sent, go too, while the group id is still theirs.
    _procs.signal_group(pgid, others, signal.SIGKILL)
    with contextlib.suppress(OSError):
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
