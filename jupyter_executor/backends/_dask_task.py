"""What a dask job runs on its worker: the job's function, with its prints captured.

Self-contained on purpose: nothing here imports jupyter_executor (nor anything outside the
standard library), and the dask backend ships this module's functions by value (cloudpickle),
so that workers need not have jupyter_executor installed (an HPC cluster's workers often run
from another environment).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from typing import Any

#: Characters of a task's output kept (the last ones); what is older is dropped with a note.
LIMIT = 1_000_000

#: The attribute of an exception raised by a job that carries what the job printed.
OUTPUT_ATTR = "_jupyter_executor_output"


class _Buffer:
    """What one task printed, the last :data:`LIMIT` characters of it."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * LIMIT:  # trim now and then, not at every write
            whole = "".join(self.parts)
            self.dropped += len(whole) - LIMIT
            self.parts, self.size = [whole[-LIMIT:]], LIMIT

    def text(self) -> str:
        whole = "".join(self.parts)
        dropped = self.dropped + max(0, len(whole) - LIMIT)
        if dropped:
            return f"[{dropped:,} earlier characters dropped]\n" + whole[-LIMIT:]
        return whole


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


def call_capturing(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, str]:
    """Run on a dask worker: ``fn(*args, **kwargs)`` and what it printed.

    When ``fn`` raises, what it printed travels back on the exception (attribute
    :data:`OUTPUT_ATTR`), so that a failed job keeps its output.
    """
    routes = _routes()
    ident = threading.get_ident()
    buffer = routes[ident] = _Buffer()
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        # (an exception type that refuses attributes loses the output, not its error)
        with contextlib.suppress(Exception):
            setattr(exc, OUTPUT_ATTR, buffer.text())
        raise
    finally:
        routes.pop(ident, None)
    return result, buffer.text()


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
