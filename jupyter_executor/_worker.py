"""The process backend's worker processes, and the fork server that starts them.

Started as ``python -c <BOOT> <this file> zygote``: the **fork server** (zygote). It imports
nothing of jupyter_executor (this file is run by path, so the package's ``__init__`` and its
imports are not paid for), preloads cloudpickle after its first fork, and forks a worker each
time the kernel asks, over the socket that is its stdin: the request carries the worker's three
pipes (file descriptors passed with ``SCM_RIGHTS``), the answer its pid; when a worker ends, the
fork server (its parent) reaps it and sends its exit code. Forking a warm process costs a few
milliseconds where starting Python and importing cloudpickle costs 50 or more; the kernel itself
is never forked (it has threads). The fork server exits when its socket closes or the kernel's
engine thread dies (``PR_SET_PDEATHSIG``).

A **worker** runs jobs one at a time, in its main thread, in a session of its own (so that a
kernel interrupt does not reach it, and cancelling a job kills its whole process group). Being a
fork of the fork server, it shows the same command line (``... _worker.py zygote``) in ``ps``.
Protocol, over pipes: the parent writes length-prefixed pickled frames to the worker's stdin:

* ``("job", id, sources, cwd, base, extra, job)``: ``sources`` maps file names to source lines
  that exist only in the kernel (notebook cells), for tracebacks; ``cwd`` is the job's working
  directory and ``{**base, **extra}`` its whole environment (both set before each job, so that a
  job never sees what the previous one changed): ``base`` is the kernel's (None when it is the
  same as for the previous job), ``extra`` the job's own variables; ``job`` is the cloudpickled
  ``(job_name, fn, args, kwargs)``. A worker may be sent the next job while one runs
  (prefetch): a reader thread queues it;
* ``("revoke", id)``: give back that job if it has not started (``("revoked", id)``), so that
  the kernel can run it on a worker that became free first;
* ``("exit",)``: the kernel closes this worker's stdin next; without it, the end of stdin means
  that the kernel died, and the worker stops its process group at once (the job's own children
  too), even in the middle of a job.

The worker reads these frames from a copy of that pipe, and its stdin becomes ``/dev/null``: a
job that reads stdin gets an end of file, never the kernel's frames.

The worker answers on the file descriptor that was its stdout: ``("got", id)`` when it starts a
job, ``("out", stream, text)`` while the job prints, and one ``("ok", result)`` or ``("error",
exception_or_None, message, traceback_text, leaving)`` at the end (``leaving``: the worker exits
after it, for a job that raised ``SystemExit`` or ``KeyboardInterrupt``). File descriptor 1
itself is pointed at stderr, so output written by C code still reaches the parent (through
stderr) and can never corrupt the frames. After each job, before it says how the job ended,
the worker writes :data:`END_MARK` to stderr: the kernel, which reads stderr and the frames
apart, knows by it which job wrote what came before (the worker runs the jobs it holds one
after the other without waiting for the kernel to read).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import sys
import threading
from collections import deque

# Only what a worker needs to start, for it starts on the way to a first job's result: ctypes,
# traceback and linecache are imported where they are used, typing (3 ms) only by
# the type checker (which treats any TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

HEADER = struct.Struct("!Q")
#: A fork server's message to the kernel: kind (b"P": forked, b"X": exited), pid, exit code.
REPORT = struct.Struct("!cii")
#: Written by a worker to its stderr pipe after each job (see main): what its file descriptors
#: 1 and 2 carried before it is that job's (the kernel reads the pipe and the frames apart).
END_MARK = b"\x00\x00\x1b]jupyter-executor:end\x07\x00\x00"
_PR_SET_PDEATHSIG = 1
#: Seconds without a fork request, after its first fork, before a fork server preloads.
_PRELOAD_AFTER = 0.1

#: Runs this file by path as ``__main__`` (``python -c BOOT <path> [zygote]``): unlike ``-m``,
#: without importing the package (whose ``__init__`` imports the engine: 0.3 s and more), and
#: unlike ``python <path>``, without putting the package's folder first on ``sys.path`` (its
#: module names would shadow the user's). Its code comes from the bytecode cache when there is
#: one (the kernel's import of this module writes it): compiling this file is 2 ms of every
#: fork server's start.
BOOT = (
    "import sys;from importlib.machinery import SourceFileLoader as L;"
    "f=__file__=sys.argv[1];exec(L('__main__',f).get_code('__main__'))"
)

#: Frames in these folders lead a job's traceback in the worker and are dropped (as in
#: ``jupyter_executor._traceback``, which this file does not import).
_OWN = (
    os.path.dirname(os.path.realpath(__file__)) + os.sep,
    os.path.join(os.path.dirname(os.path.realpath(os.__file__)), "asyncio") + os.sep,
)


class _Frames:
    """The kernel's frames, read from a file descriptor with a buffer of its own.

    Not a ``BufferedReader``: its lock is held by the reader thread, blocked in a read, for as
    long as no frame comes, and a process the job forks inherits it held; closing or freeing
    that reader there waits for ever (see :func:`_leave_the_pipes`).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()

    def read(self, size: int) -> bytes | None:
        """The next ``size`` bytes; None at the end of the pipe."""
        buffer = self._buffer
        while len(buffer) < size:
            chunk = os.read(self.fd, max(1 << 16, size - len(buffer)))
            if not chunk:
                return None
            buffer += chunk
        data = bytes(buffer[:size])
        del buffer[:size]
        return data


def read_frame(stream: _Frames) -> bytes | None:
    head = stream.read(HEADER.size)
    if head is None:
        return None
    (size,) = HEADER.unpack(head)
    return stream.read(size)


def _dumps(message: Any) -> bytes:
    # Plain pickle first: output frames and most results need nothing more (and cloudpickle
    # is not imported by a worker whose jobs never need it).
    try:
        return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        import cloudpickle

        return bytes(cloudpickle.dumps(message))


class _Channel:
    def __init__(self, fd: int) -> None:
        self.file = os.fdopen(fd, "wb", buffering=0)
        self._lock = threading.Lock()

    @staticmethod
    def frame(message: Any) -> bytes:
        data = _dumps(message)
        return HEADER.pack(len(data)) + data

    def write(self, frames: bytes) -> None:
        with self._lock:
            self.file.write(frames)

    def send(self, message: Any) -> None:
        self.write(self.frame(message))


class _Forward:
    """sys.stdout/sys.stderr of the worker: every write becomes an ``out`` frame."""

    def __init__(self, channel: _Channel, stream: str) -> None:
        self._channel = channel
        self._stream = stream
        self.encoding = "utf-8"

    def write(self, text: str) -> int:
        if text:
            self._channel.send(("out", self._stream, str(text)))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _stop_group(*_: object) -> None:
    # Ignored while the group is signalled, so that this process cannot die half-way (a
    # second SIGTERM) and leave the job's children behind; then it ends as if unhandled.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _stop_on_sigterm() -> None:
    """On SIGTERM (how the engine cancels a job, and how a dying kernel is noticed), terminate
    the whole process group: the job's own child processes too."""
    if os.getpgid(0) == os.getpid():  # not when started by hand inside another group
        signal.signal(signal.SIGTERM, _stop_group)


def _die_with_the_kernel() -> None:
    """Get SIGTERM when the thread that started this process (the engine's) dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:  # not Linux: the end of its socket still says it
        pass


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    first = tb
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_OWN):
        tb = tb.tb_next
    return tb if tb is not None else first


def _install_sources(sources: dict[str, list[str]]) -> None:
    # As jupyter_executor._pickling.install_sources (not imported: see the module docstring).
    if not sources:
        return
    import linecache

    for filename, lines in sources.items():
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)


class _Inbox:
    """The jobs sent to this worker and not started yet, filled by the reader thread."""

    def __init__(self) -> None:
        self.jobs: deque[tuple[Any, ...]] = deque()
        self.cond = threading.Condition()
        self.closed = False  # stdin ended
        self.exiting = False  # the kernel said it closes stdin (not a dying kernel)


def _read(stdin: _Frames, inbox: _Inbox, channel: _Channel) -> None:
    """(reader thread) Queue the jobs, answer revokes, notice the end of stdin."""
    while True:
        frame = read_frame(stdin)
        if frame is None:
            with inbox.cond:
                inbox.closed = True
                inbox.cond.notify()
                if inbox.exiting:
                    return
            # The kernel died (nobody said goodbye): stop the job and its children now. The
            # handler runs in the main thread (signal.signal works only there).
            os.kill(os.getpid(), signal.SIGTERM)
            return
        message = pickle.loads(frame)
        kind = message[0]
        with inbox.cond:
            if kind == "job":
                inbox.jobs.append(message)
                inbox.cond.notify()
            elif kind == "revoke":
                for queued in inbox.jobs:
                    if queued[1] == message[1]:
                        inbox.jobs.remove(queued)
                        channel.send(("revoked", message[1]))
                        break
            elif kind == "exit":
                inbox.exiting = True


class _Environment:
    """Sets ``os.environ`` to each job's environment, changing only the variables that differ.

    Clearing and refilling it called putenv/unsetenv for every variable at every job (most of a
    tiny job's time in the worker). What was applied last is compared with what is there now
    (CPython's raw dict: one C-level comparison) to see whether the last job changed anything.
    """

    def __init__(self) -> None:
        self.applied: dict[str, str] | None = None
        self.snapshot: dict[Any, Any] | None = None

    def apply(self, env: dict[str, str]) -> None:
        environ = os.environ
        raw = getattr(environ, "_data", None)
        if self.applied is not None and raw is not None and raw == self.snapshot:
            old = self.applied  # untouched since: the differences are between the two dicts
        else:
            old = dict(environ)
        for key in old.keys() - env.keys():
            environ.pop(key, None)
        for key, value in env.items():
            if old.get(key) != value:
                environ[key] = value
        self.applied = env
        self.snapshot = dict(raw) if isinstance(raw, dict) else None


def main() -> None:
    """A worker's main loop (its stdin, stdout and stderr are the kernel's pipes)."""
    _stop_on_sigterm()
    channel = _Channel(os.dup(1))
    os.dup2(2, 1)
    sys.stdout = _Forward(channel, "stdout")  # type: ignore[assignment,unused-ignore]
    sys.stderr = _Forward(channel, "stderr")  # type: ignore[assignment,unused-ignore]
    # The kernel's frames are read from a copy of stdin (not inherited by the job's
    # commands: os.dup makes it close-on-exec), and stdin itself becomes /dev/null: a job
    # that reads it (input(), a library that prompts) gets EOFError at once, as a subprocess
    # job does, instead of waiting for ever on the pipe, or taking the kernel's next frame.
    frames = _Frames(os.dup(0))
    # The stderr pipe, for END_MARK: a copy, so that a job that closes or moves its fd 2 does
    # not take the marks away (each job's output would then be shown with the wrong job).
    marks = os.dup(2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.register_at_fork(after_in_child=lambda: _leave_the_pipes(channel, frames, marks))
    inbox = _Inbox()
    environment = _Environment()
    base: dict[str, str] = dict(os.environ)
    reader = threading.Thread(target=_read, args=(frames, inbox, channel), name="jobs", daemon=True)
    reader.start()
    # (forked from a fork server that preloaded it, or one more import to make when idle)
    warm = "cloudpickle" in sys.modules
    end = b""  # how the last job ended, not sent yet
    ran = False
    while True:
        if not warm and ran and not end:
            with inbox.cond:
                idle = not inbox.jobs and not inbox.closed
            if idle:
                # Idle for the first time: import cloudpickle now (25-50 ms), which a job
                # pickled by value needs, rather than when such a job waits for it. Not
                # before the first job (a cold start must not wait for it), not in a thread
                # (a job that forks would find the import half done in its child).
                warm = True
                with contextlib.suppress(ImportError):
                    import cloudpickle  # noqa: F401
        with inbox.cond:
            if end and (not inbox.jobs or inbox.closed):
                channel.write(end)  # nothing to start: say it now, then wait
                end = b""
            while not inbox.jobs and not inbox.closed:
                inbox.cond.wait()
            if inbox.closed:
                return  # what was queued is the kernel's to give to another worker
            _, job_id, sources, cwd, new_base, extra, job = inbox.jobs.popleft()
            if new_base is not None:  # None: the same as the previous job's
                base = new_base
            # Sent under the lock: a revoke of this job now finds it gone, and the kernel
            # reads "got" before any "revoked" that could have named it. With the end of the
            # previous job, in one write: one wake-up of the kernel per job, not two.
            channel.write(end + channel.frame(("got", job_id)))
            end = b""
        end, keep = _run(channel, environment, sources, cwd, {**base, **extra}, job)
        with contextlib.suppress(OSError):
            os.write(marks, END_MARK)  # before the kernel is told the job ended
        with contextlib.suppress(OSError):
            # Nor does a job see the fds 1 and 2 the previous one closed or moved.
            os.dup2(marks, 1)
            os.dup2(marks, 2)
        ran = True
        if not keep:
            channel.write(end)
            return


def _leave_the_pipes(channel: _Channel, frames: _Frames, marks: int) -> None:
    """(a process a job forks, e.g. ``multiprocessing``'s fork) Close the worker's two pipes
    to the kernel; print to the file descriptors instead.

    Left open, they outlive the worker in its child: the kernel, which learns that a worker
    ended from the end of its pipe, would wait for the child too, the worker's job shown
    running and the jobs it held pending, after a crash, for as long as the child runs. The
    child's output goes on reaching the kernel through file descriptors 1 and 2 (the worker's
    stderr pipe, shown as the job's output while the job runs).
    """
    with contextlib.suppress(OSError, ValueError):  # (a child's child: closed already)
        channel.file.close()  # unbuffered: no lock
    for fd in (frames.fd, marks):
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout, sys.stderr = _text_on(1), _text_on(2)


def _text_on(fd: int) -> Any:
    """A line-buffered text stream on ``fd`` (left open when the stream is closed)."""
    return os.fdopen(fd, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)


def _run(
    channel: _Channel,
    environment: _Environment,
    sources: Any,
    cwd: str,
    env: dict[str, str],
    job: bytes,
) -> tuple[bytes, bool]:
    """Run one job; return the frame that says how it ended, and False when the worker must
    exit after it."""
    name = "?"
    try:
        # What the previous job changed is not seen by this one.
        os.chdir(cwd)
        environment.apply(env)
        _install_sources(sources)
        name, fn, args, kwargs = pickle.loads(job)  # cloudpickle's output: plain loads reads it
        result = fn(*args, **kwargs)
        if hasattr(result, "__await__"):
            import asyncio

            result = asyncio.run(result)
    except BaseException as exc:
        import traceback

        # without this worker's own frames (the kernel names the cells, see _traceback)
        tb = "".join(traceback.format_exception(type(exc), exc, _user_frames(exc.__traceback__)))
        try:
            payload = _dumps(exc)
            pickle.loads(payload)
            carried: Any = exc
        except Exception:
            carried = None
        # sys.exit() or KeyboardInterrupt in a job ends this worker too: the parent is told
        # so that it never gives this worker another job.
        leaving = isinstance(exc, (KeyboardInterrupt, SystemExit))
        message = ("error", carried, f"{type(exc).__name__}: {_str(exc)}", tb, leaving)
        return channel.frame(message), not leaving
    try:
        return channel.frame(("ok", result)), True
    except Exception as exc:
        text = f"the result of job {name!r} cannot be sent back (not picklable): {_str(exc)}"
        return channel.frame(("error", None, text, "", False)), True


def _str(exc: BaseException) -> str:
    """``str(exc)``, or what ``traceback`` shows when the exception's ``__str__`` raises (the
    worker must report the job's failure, not die of it)."""
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"


def zygote(preload: bool = False) -> None:
    """The fork server's loop: fork a worker per request, report the ends of its workers.

    ``preload``: import cloudpickle before serving (a prestarted server, which no job waits
    for yet); else only once idle after its first forks.
    """
    import socket

    _stop_on_sigterm()
    _die_with_the_kernel()
    sock = socket.socket(fileno=0)  # stdin is our end of the kernel's socket pair

    def report(kind: bytes, pid: int, code: int) -> None:
        # SIGCHLD is blocked while a report is written: one report never cuts into another.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            with contextlib.suppress(OSError):  # the kernel is gone: nobody to tell
                sock.sendall(REPORT.pack(kind, pid, code))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def reap(*_: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            report(b"X", pid, os.waitstatus_to_exitcode(status))

    signal.signal(signal.SIGCHLD, reap)
    preloaded = preload
    if preload:
        with contextlib.suppress(ImportError):
            import cloudpickle
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(sock, 16, 3)
        except TimeoutError:
            # Idle for a moment after the first forks: now preload cloudpickle (which most
            # jobs need) for the workers forked later, without slowing the first ones down.
            preloaded = True
            sock.settimeout(None)
            with contextlib.suppress(ImportError):
                import cloudpickle  # noqa: F401
            continue
        except OSError:
            return
        if len(fds) != 3:
            return  # the socket closed (the engine shut down or died)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _become_worker(sock, fds)
                code = 0
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        report(b"P", pid, 0)
        if not preloaded:
            sock.settimeout(_PRELOAD_AFTER)


def _become_worker(sock: Any, fds: list[int]) -> None:
    """(a fork server's child) Take the kernel's pipes as stdin/stdout/stderr and serve jobs."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sock.close()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.setsid()  # its own session and process group: see the module docstring
    main()


def _entry() -> None:
    # (``python -c BOOT <this file> [zygote [preload]]``: sys.argv is ["-c", file, ...])
    if sys.argv[2:3] == ["zygote"]:
        zygote(preload=sys.argv[3:4] == ["preload"])
    else:
        main()


if __name__ == "__main__":
    _entry()
