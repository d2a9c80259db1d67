"""What a dask job runs on its worker: the job's function, with its prints captured.

Self-contained on purpose: nothing here imports jupyter_executor (nor anything outside the
standard library but ``distributed``, which a dask worker has), and the dask backend ships this
module's functions by value (cloudpickle), so that workers need not have jupyter_executor
installed (an HPC cluster's workers often run from another environment).

What a task prints reaches the kernel twice, and is written there once:

* **live**: at most every :data:`INTERVAL` seconds, what was printed since the last batch goes
  to the scheduler as a worker event (``Worker.log_event``) on the engine's topic, as
  ``{"key", "start", "data"}``: the task's key, the offset of the batch in the task's output
  (characters), and its text (UTF-8 bytes, lone surrogates kept). A batch holds at most
  :data:`MAX_BATCH` characters, the last ones, from a line's start: a job printing faster
  than that (320 kB/s) has the rest skipped, and the kernel writes a note in its place (a
  bounded stream, whatever the job prints);
* **at the end**, with the result or on the exception: the last :data:`LIMIT` characters and
  the total count, from which the kernel writes what the live batches did not bring yet.

A task that is cancelled meets the kernel's :func:`claim` on its worker: either the task had
started (dask cannot stop it, and the kernel says so), or it is marked there and never starts.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

#: Characters of a task's output kept (the last ones); what is older is dropped with a note.
LIMIT = 1_000_000

#: Seconds between two live batches of a task's output.
INTERVAL = 0.2

#: Characters of one live batch at most (the last ones printed in that interval).
MAX_BATCH = 64_000

#: The attribute of an exception raised by a job that carries what the job printed.
OUTPUT_ATTR = "_jupyter_executor_output"

#: Sends one live batch: ``publish(start, text)``.
Publish = Callable[[int, str], None]

#: Keys of tasks cancelled before they started kept per worker process (the oldest dropped):
#: a task cancelled in time is released by its worker and never comes to read its mark.
MAX_MARKS = 10_000

#: The lock, the keys of the tasks running and those cancelled before they started.
_Marks = tuple[threading.Lock, set[str], dict[str, None]]


def _last(text: str, size: int) -> str:
    """The last ``size`` characters of ``text``, from a line's start when it had to be cut."""
    if len(text) <= size:
        return text
    text = text[-size:]
    newline = text.find("\n", 0, len(text) - 1)
    return text[newline + 1 :] if newline >= 0 else text


class _Buffer:
    """What one task printed: the last :data:`LIMIT` characters, and live batches of it.

    Written by the task's thread, flushed by a timer thread: a lock guards both.
    """

    def __init__(self, publish: Publish | None = None) -> None:
        self.parts: list[str] = []
        self.size = 0
        #: Characters written in all (offsets of live batches count from the first one).
        self.total = 0
        self._lock = threading.Lock()
        self._publish = publish
        self._pending: list[str] = []
        self._pending_size = 0
        self._timer: threading.Timer | None = None
        self._closed = False

    def write(self, text: str) -> None:
        with self._lock:
            self.parts.append(text)
            self.size += len(text)
            self.total += len(text)
            if self.size > 2 * LIMIT:  # trim now and then, not at every write
                whole = _last("".join(self.parts), LIMIT)
                self.parts, self.size = [whole], len(whole)
            if self._publish is None or self._closed:
                return
            self._pending.append(text)
            self._pending_size += len(text)
            if self._pending_size > 2 * MAX_BATCH:
                # A flood between two batches: keep what the batch can carry, the last part.
                pending = _last("".join(self._pending), MAX_BATCH)
                self._pending, self._pending_size = [pending], len(pending)
            if self._timer is None:
                # One timer per batch, started by the batch's first write: a silent task
                # costs nothing, a printing one sends at most one batch per INTERVAL.
                self._timer = threading.Timer(INTERVAL, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Send what was printed since the last batch (the timer calls it)."""
        with self._lock:
            self._timer = None
            if self._closed or not self._pending or self._publish is None:
                return
            text = _last("".join(self._pending), MAX_BATCH)
            self._pending, self._pending_size = [], 0
            start = self.total - len(text)
            # (a lost batch is written at the end from the kept text: never fail the task)
            with contextlib.suppress(Exception):
                self._publish(start, text)

    def close(self) -> tuple[str, int]:
        """Stop the live batches; return the kept text and the total count."""
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return _last("".join(self.parts), LIMIT), self.total


class _Router:
    """A ``sys.stdout``/``sys.stderr`` stand-in sending a task thread's writes to its buffer.

    Installed once per worker process; the routes (thread id -> buffer) are an attribute of the
    installed object, so that later tasks, whose copy of this module is a new one (shipped by
    value), find and share them.
    """

    def __init__(self, stream: Any, routes: dict[int, _Buffer]) -> None:
        self._stream = stream
        self._jupyter_executor_routes = routes

    def write(self, text: str) -> int:
        buffer = self._jupyter_executor_routes.get(threading.get_ident())
        if buffer is None:
            return int(self._stream.write(text))
        buffer.write(text)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _routes() -> dict[int, _Buffer]:
    # Every task gets its own copy of this module's globals (shipped by value), so what must be
    # shared by the tasks of a worker process lives in ``sys``: ``setdefault`` makes one lock
    # for all of them, atomically (a module-level lock could not be pickled anyway).
    lock = vars(sys).setdefault("_jupyter_executor_lock", threading.Lock())
    with lock:
        routes: dict[int, _Buffer] | None = getattr(sys.stdout, "_jupyter_executor_routes", None)
        if routes is None:
            routes = {}
            sys.stdout = _Router(sys.stdout, routes)
            sys.stderr = _Router(sys.stderr, routes)
        return routes


def _marks() -> _Marks:
    # In ``sys``, as the routes: every task has its own copy of this module (shipped by value).
    marks: _Marks | None = vars(sys).get("_jupyter_executor_marks")
    if marks is None:
        marks = vars(sys).setdefault(
            "_jupyter_executor_marks", (threading.Lock(), set(), {})
        )  # fmt: skip
    return marks


def claim(key: str) -> bool:
    """Run on a dask worker (``Client.run``) before its task ``key`` is cancelled.

    Returns True when the task runs there (dask cannot stop it). Otherwise the task is marked
    so that it never starts, should it come to start before the cancel reaches the worker:
    the answer stays true whatever the order of the two.
    """
    lock, running, cancelled = _marks()
    with lock:
        if key in running:
            return True
        cancelled[key] = None
        if len(cancelled) > MAX_MARKS:
            del cancelled[next(iter(cancelled))]
        return False


def _publisher(topic: str | None, key: str) -> Publish | None:
    """Sends live batches of the task ``key`` as events of ``topic`` (None: no live output)."""
    if topic is None:
        return None
    try:
        from distributed import get_worker

        worker = get_worker()  # in the task's thread: the timer's thread is not a task's
    except Exception:
        return None  # not on a dask worker (a test calling this directly): output at the end

    def publish(start: int, text: str) -> None:
        # bytes: msgpack carries them as they are, lone surrogates (odd file names) included
        data = text.encode("utf-8", "surrogatepass")
        worker.log_event(topic, {"key": key, "start": start, "data": data})

    return publish


def call_capturing(
    fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    topic: str | None = None,
    key: str = "",
) -> tuple[Any, tuple[str, int]]:
    """Run on a dask worker: ``fn(*args, **kwargs)`` and what it printed.

    Returns ``(result, (kept text, total characters))``. With a ``topic``, what the task
    prints is also sent as it goes (see the module's docstring). When ``fn`` raises, what it
    printed travels back on the exception (attribute :data:`OUTPUT_ATTR`), so that a failed
    job keeps its output.
    """
    lock, running, cancelled = _marks()
    with lock:
        if key in cancelled:
            # Its job was told it never ran (claim): nobody waits for this result.
            del cancelled[key]
            return None, ("", 0)
        running.add(key)
    routes = _routes()
    ident = threading.get_ident()
    buffer = routes[ident] = _Buffer(_publisher(topic, key))
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        # (an exception type that refuses attributes loses the output, not its error)
        with contextlib.suppress(Exception):
            setattr(exc, OUTPUT_ATTR, buffer.close())
        raise
    finally:
        routes.pop(ident, None)
        with lock:
            running.discard(key)
    return result, buffer.close()


def run_command(command: str | list[str], cwd: str | None, env: dict[str, str] | None) -> int:
    """Run on a dask worker: a job's command in a subprocess; what it prints is the job's.

    A command string runs through the shell, an argv list without. Returns the exit code (0);
    a non-zero exit raises ``subprocess.CalledProcessError`` (the engine turns it into its
    ``CommandFailed``).
    """
    with subprocess.Popen(
        command,
        shell=isinstance(command, str),
        cwd=cwd,
        env={**os.environ, **env} if env else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
        returncode = proc.wait()
    if returncode != 0:
        raise subprocess.CalledProcessError(returncode, command)
    return 0
