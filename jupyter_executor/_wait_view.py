"""What a blocking wait in a notebook cell shows: the jobs it waits for, live, under the cell.

``engine.wait()``, ``engine.orchestrate()`` and ``%jobs wait`` block the kernel's main thread, so
nothing the cell could run updates a widget meanwhile, and a job's own view may be far up the
notebook (or, for jobs submitted from Python, nowhere). The engine calls the hook the extension
installs (:func:`jupyter_executor.engine.set_wait_display`) when such a wait starts; in a kernel it
is a :class:`CellWaitView`: a plain ``display_data`` output of the waiting cell (each job's status
and duration, then the last lines the jobs printed as ``[job NAME] line``), updated in place
(``update_display_data``) by a thread of its own a few times a second while the cell waits, and
once more with the final state when the wait ends. Its messages are parented to the waiting cell's
request explicitly: the thread has no parent header of its own (ipykernel 7 keeps it in a context
variable), and front ends drop output whose parent they do not track.
"""

from __future__ import annotations

import collections
import re
import threading
import time
import uuid
from types import TracebackType
from typing import Any

from ._status import FINISHED
from ._text import safe_text

__all__ = ["CellWaitView"]

#: Jobs listed by name (the others are counted), and output lines kept under them.
MAX_JOBS = 12
TAIL_LINES = 12
LINE_CHARS = 200
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")


class CellWaitView:
    """A live, compact text view of ``jobs`` under the cell running in ``kernel`` (a context
    manager: shown on enter, updated until exit, left with the final state).

    Parameters
    ----------
    kernel
        The ipykernel ``Kernel`` (``shell.kernel``); entered on its main thread, in the cell.
    engine
        The engine whose events wake the updates.
    jobs
        The jobs waited for.
    interval
        Minimum seconds between two updates.
    """

    def __init__(self, kernel: Any, engine: Any, jobs: list[Any], *, interval: float = 0.25):
        self._kernel = kernel
        self._engine = engine
        self._jobs = list(jobs)
        self._interval = interval
        self._parent = kernel.get_parent("shell")  # the waiting cell's execute request
        self._display_id = f"jupyter-executor-wait-{uuid.uuid4().hex}"
        self._ids = {id(j) for j in self._jobs}
        self._lock = threading.Lock()
        self._dirty: dict[int, Any] = {}
        self._seen: dict[int, int] = {}
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._unsubscribe: Any = None
        self._thread: threading.Thread | None = None

    # context manager ----------------------------------------------------------------------------
    def __enter__(self) -> CellWaitView:
        with self._lock:
            self._dirty = {id(j): j for j in self._jobs}  # the lines printed before the wait
        self._send("display_data", self._text())
        self._unsubscribe = self._engine.subscribe(self._on_event)
        self._thread = threading.Thread(
            target=self._run, name="jupyter-executor-wait-view", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            self._dirty = {id(j): j for j in self._jobs}  # a last look at every job
        self._send("update_display_data", self._text())

    # updates ------------------------------------------------------------------------------------
    def _on_event(self, event: str, job: Any) -> None:
        # any thread, maybe under the engine's lock: only note it
        if id(job) in self._ids and event in ("output", "display", "status", "progress"):
            with self._lock:
                self._dirty[id(job)] = job
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.wait(self._interval):  # coalesce a burst of lines into one update
                return
            self._wake.clear()
            try:
                self._send("update_display_data", self._text())
            except Exception:  # the kernel is going away: nothing to show it on
                return

    def _text(self) -> str:
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        for key, job in dirty.items():
            out = job.runstate.output
            if out is None:
                continue
            self._seen[key], lines = out.lines_since(self._seen.get(key, 0))
            for line in lines:
                clean = _ANSI.sub("", line)
                if len(clean) > LINE_CHARS:
                    clean = clean[: LINE_CHARS - 1] + "…"
                self._tail.append(f"[job {job.name}] {clean}")
        now = time.time()
        counts: collections.Counter[str] = collections.Counter()
        rows: list[str] = []
        for job in self._jobs:
            status = job.status.value
            counts[status] += 1
            if len(rows) < MAX_JOBS:
                rows.append(f"  {job.name}  {status}{_took(job, now)}")
        total = len(self._jobs)
        done = sum(n for s, n in counts.items() if s in {f.value for f in FINISHED})
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        verb = "waited for" if done == total else "waiting for"
        head = f"{verb} {total} job{'s' if total != 1 else ''}: {summary}"
        if total > MAX_JOBS:
            rows.append(f"  ... and {total - MAX_JOBS} more")
        return "\n".join([head, *rows, *self._tail])

    def _send(self, msg_type: str, text: str) -> None:
        content = {
            "data": {"text/plain": safe_text(text)},  # job output may hold lone surrogates
            "metadata": {},
            "transient": {"display_id": self._display_id},
        }
        kernel = self._kernel
        kernel.session.send(
            kernel.iopub_socket, msg_type, content, parent=self._parent, ident=b"display_data"
        )


def _took(job: Any, now: float) -> str:
    started = job.started
    if started is None:
        return ""
    end = job.finished if job.finished is not None and job.done() else now
    return f"  {max(0.0, end - started):.1f} s"
