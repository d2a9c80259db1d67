"""The main program of a process-backend worker: ``python -m jupyter_executor._worker``.

Protocol, over pipes: the parent writes length-prefixed frames to the worker's stdin, each a
pickled ``(sources, cwd, env, job)``: ``sources`` maps file names to source lines that exist
only in the kernel (notebook cells), for tracebacks; ``cwd`` and ``env`` are the job's working
directory and whole environment (set before each job, so that a job never sees what the previous
one changed); ``job`` is the cloudpickled ``(job_name, fn, args, kwargs)``. The worker answers
on the file descriptor that was its stdout: ``("got",)`` when it has read a job, ``("out",
stream, text)`` while the job prints, and one ``("ok", result)`` or ``("error",
exception_or_None, message, traceback_text, leaving)`` at the end (``leaving``: the worker exits
after it, for a job that raised ``SystemExit`` or ``KeyboardInterrupt``). File descriptor 1
itself is pointed at stderr, so output written by C code still reaches the parent (through
stderr) and can never corrupt the frames. The worker exits when its stdin closes, and, while a
job runs, when the kernel dies (even by SIGKILL): it cannot outlive the kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import struct
import sys
import threading
import traceback
from typing import Any, BinaryIO

_HEADER = struct.Struct("!Q")
_PR_SET_PDEATHSIG = 1


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    return data if len(data) == size else None


class _Channel:
    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._lock = threading.Lock()

    def send(self, message: Any) -> None:
        import cloudpickle

        data = cloudpickle.dumps(message)
        with self._lock:
            self._file.write(_HEADER.pack(len(data)) + data)


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


def _die_with_the_kernel() -> None:
    """Stop this worker and what its job started when the engine's thread (the kernel) dies.

    The worker runs in its own session, so that a kernel interrupt does not kill it; nothing
    then stops it while a job runs if the kernel is killed (its stdin is read only between
    jobs). Linux signals it when the thread that started it dies; on that SIGTERM (also the
    engine's way to cancel) the whole group is terminated: the job's own child processes too.
    """

    def stop_group(*_: object) -> None:
        # Ignored while the group is signalled, so that this worker cannot die half-way (a
        # second SIGTERM) and leave the job's children behind; then it ends as if unhandled.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.killpg(0, signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    if os.getpgid(0) != os.getpid():
        return  # not the leader of its own group (started by hand): leave the group alone
    signal.signal(signal.SIGTERM, stop_group)
    with contextlib.suppress(Exception):  # not Linux: it still exits when its stdin closes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # A kernel that died before the request took effect closed our stdin: the first read
    # returns nothing and the worker exits.


def main() -> None:
    import cloudpickle

    from jupyter_executor._pickling import install_sources
    from jupyter_executor._traceback import user_frames

    _die_with_the_kernel()
    channel = _Channel(os.dup(1))
    os.dup2(2, 1)
    sys.stdout = _Forward(channel, "stdout")  # type: ignore[assignment,unused-ignore]
    sys.stderr = _Forward(channel, "stderr")  # type: ignore[assignment,unused-ignore]
    stdin = sys.stdin.buffer
    while True:
        frame = read_frame(stdin)
        if frame is None:
            return
        # Tells the parent that the job reached a live worker: one that died before this
        # (killed while idle) did not run it, and the parent gives the job to a fresh worker.
        channel.send(("got",))
        try:
            sources, cwd, env, job = pickle.loads(frame)
            # What the previous job changed is not seen by this one.
            os.chdir(cwd)
            if env != os.environ:
                os.environ.clear()
                os.environ.update(env)
            install_sources(sources)
            name, fn, args, kwargs = cloudpickle.loads(job)
            result = fn(*args, **kwargs)
            if hasattr(result, "__await__"):
                import asyncio

                result = asyncio.run(result)
        except BaseException as exc:
            # without this worker's own frames (the kernel names the cells, see _traceback)
            tb = "".join(traceback.format_exception(type(exc), exc, user_frames(exc.__traceback__)))
            try:
                payload = cloudpickle.dumps(exc)
                cloudpickle.loads(payload)
                carried: Any = exc
            except Exception:
                carried = None
            # sys.exit() or KeyboardInterrupt in a job ends this worker too: the parent is told
            # so that it never gives this worker another job.
            leaving = isinstance(exc, (KeyboardInterrupt, SystemExit))
            channel.send(("error", carried, f"{type(exc).__name__}: {exc}", tb, leaving))
            if leaving:
                return
            continue
        try:
            channel.send(("ok", result))
        except Exception as exc:
            message = f"the result of job {name!r} cannot be sent back (not picklable): {exc}"
            channel.send(("error", None, message, "", False))


if __name__ == "__main__":
    main()
