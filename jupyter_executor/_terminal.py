"""The plain-text views of jobs: one rendering shared by terminal IPython and the command line.

- :func:`table` lays rows out in columns (every column padded but the last, which takes what is
  left); :func:`text_table` (``%jobs`` in terminal IPython) and ``jupyter-executor list`` both
  print with it.
- :func:`seconds` writes a duration, :func:`job_note` what a job's line says after its time
  (error, why it was cancelled, result or last line), :func:`describe` one job in a few lines.
- :class:`TerminalEcho` prints each new job line as ``[job NAME] line`` while terminal IPython's
  prompt waits (above the prompt, through prompt_toolkit's ``patch_stdout``), holds them back
  while a foreground cell runs and prints them when it ends.

Nothing here imports IPython: the echo is handed the shell.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from . import _capture
from ._snapshot import snapshot_of
from ._text import safe_text

logger = logging.getLogger("jupyter_executor")

__all__ = [
    "TerminalEcho",
    "describe",
    "job_note",
    "lifecycle_notes",
    "routed_patch_stdout",
    "seconds",
    "table",
    "temporary_echo",
    "text_table",
]

_FINISHED = ("done", "failed", "cancelled")


def seconds(value: float | None) -> str:
    """A duration as a person reads it: ``1.2 s``, ``3m05s``, ``2h10m`` ("" for None)."""
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def table(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (the first one a header) in columns two spaces apart; the last column is not
    padded, and trailing spaces are dropped."""
    if not rows:
        return ""
    fixed = len(rows[0]) - 1
    widths = [max(len(row[i]) for row in rows) for i in range(fixed)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(row[:fixed], widths, strict=True)), row[fixed]])
        .rstrip()
        for row in rows
    )  # fmt: skip


def job_note(info: Any, *, result: bool = True) -> str:
    """What a job's line shows after its time: its error, why it was cancelled, ``-> result``
    (with ``result``), or the last line it printed. ``info`` is a :class:`~.job.JobInfo`."""
    if info.status == "failed" and info.error:
        return str(info.error)
    if info.status == "cancelled" and info.cancel_reason:
        return str(info.cancel_reason)
    if result and info.status == "done" and info.result is not None:
        return f"-> {info.result}"
    return str(info.last_line or "")


def lifecycle_notes(info: Any) -> list[str]:
    """``next run at ...``, ``restarting (2)``, ``serving at URL`` for long-running jobs."""
    notes = []
    if info.next_run is not None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.next_run))
        notes.append(f"next run at {stamp}")
    if info.restarts:
        notes.append(
            f"restarting ({info.restarts})"
            if info.status in ("pending", "running")
            else f"restarted {info.restarts} times"
        )
    if info.url:
        notes.append(f"serving at {info.url}")
    return notes


def describe(job: Any, lines: int = 0) -> str:
    """``[job NAME] status (backend, 1.2 s)``, then its last lines, result or error."""
    info = job.info()
    elapsed = f", {seconds(info.duration)}" if info.duration is not None else ""
    text = [f"[job {info.name}] {info.status} ({info.backend}{elapsed}): {info.description}"]
    if lines:
        tail = job.tail(lines)
        if tail:
            text.append(tail)
    if info.status == "done" and info.result is not None:
        text.append(f"-> {info.result}")
    elif info.error:
        text.append(info.error)
    text.extend(lifecycle_notes(info))
    # A name or output may hold lone surrogates (a non-UTF-8 file name): a terminal's strict
    # stdout would refuse the whole text.
    return safe_text("\n".join(text))


def text_table(engine: Any) -> str:
    """One line per job: name, status, backend, duration, last line / result / error."""
    jobs = list(engine.jobs.values())
    if not jobs:
        return "no jobs"
    rows = [("NAME", "STATUS", "BACKEND", "TIME", "LAST")]
    for job in jobs:
        info = job.info()
        last = job_note(info)
        if info.status == "pending":
            last = "; ".join(lifecycle_notes(info)) or last  # when it runs next, not its past
        note = " ".join(last.split())[:60]  # one line: a multi-line error would break the table
        rows.append((info.name, info.status, info.backend, seconds(info.duration), note))
    return safe_text(table(rows))  # as describe(): printable on a strict stdout


class TerminalEcho:
    """Print job output in terminal IPython as ``[job NAME] line``.

    Lines are printed while the prompt waits for input (prompt_toolkit puts them above the
    prompt), held back while a foreground cell runs, and printed when it ends. One daemon
    thread, woken by engine events, coalescing bursts; :meth:`close` stops it.
    """

    interval = 0.2

    def __init__(self, shell: Any, engine: Any, stream: Callable[[], Any] | None = None) -> None:
        self._shell = shell
        self.engine = engine
        self._stream = stream or (lambda: sys.stdout)
        self._lock = threading.Lock()
        self._print_lock = threading.Lock()
        self._dirty: dict[str, Any] = {}
        self._seen: dict[int, int] = {}  # per job: index of the next line to print
        self._shown_status: dict[int, str] = {}
        self._displays: dict[int, int] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._busy = False
        self._unsubscribe = engine.subscribe(self._on_event)
        shell.events.register("pre_run_cell", self._pre_run_cell)
        shell.events.register("post_run_cell", self._post_run_cell)
        self._thread = threading.Thread(target=self._run, name="jupyter-executor-echo", daemon=True)
        self._thread.start()

    def _on_event(self, event: str, job: Any) -> None:
        # called from any thread, maybe under the engine's lock: just note it
        if event in ("output", "display", "status"):
            with self._lock:
                self._dirty[str(job.name)] = job
            self._wake.set()

    def _pre_run_cell(self, *_: Any) -> None:
        self._busy = True

    def _post_run_cell(self, *_: Any) -> None:
        self._busy = False
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.wait(self.interval):  # coalesce a burst of writes
                return
            self._wake.clear()
            if not self._busy:
                try:
                    self.flush()
                except Exception:  # (a closed or broken stdout) logged; the echo goes on
                    logger.exception("jupyter_executor: cannot echo the jobs' output")

    def flush(self) -> None:
        """Print what is new since the last call (any thread)."""
        # one flush at a time (echo thread and post_run_cell): each line is printed once
        with self._print_lock:
            with self._lock:
                dirty, self._dirty = self._dirty, {}
            text: list[str] = []
            for job in dirty.values():
                text.extend(f"[job {job.name}] {line}" for line in self._new_lines(job))
            if text:
                stream = self._stream()
                # safe_text: one line with a lone surrogate must not lose the whole batch
                stream.write(safe_text("\n".join(text)) + "\n")
                stream.flush()

    def _new_lines(self, job: Any) -> list[str]:
        # The snapshot key, not id(job): a new job may reuse a removed job's address, and
        # would inherit how many of its lines were printed (and that its end was).
        key = snapshot_of(job).key
        info = job.info()
        out = job.runstate.output  # not job.output: a job that printed nothing gets no Output made
        new: list[str] = []
        if out is not None:
            new.extend(self._complete_lines(key, out))
            displays = out.displays
            seen = self._displays.get(key, 0)
            new.extend(str(data.get("text/plain", "<display>")) for data, _ in displays[seen:])
            self._displays[key] = len(displays)
        finished = info.status in _FINISHED
        if finished and self._shown_status.get(key) != info.status:
            self._shown_status[key] = info.status
            partial = getattr(out, "_partial", "") if out is not None else ""
            if partial.strip():
                new.append(partial)  # the job ended without a final newline
            took = f" in {info.duration:.1f} s" if info.duration is not None else ""
            if info.status == "done":
                result = f" -> {info.result}" if info.result is not None else ""
                new.append(f"done{took}{result}")
            else:
                new.append(f"{info.status}{took}: {info.error}")
        return new

    def _complete_lines(self, key: int, out: Any) -> list[str]:
        start = self._seen.get(key, 0)
        self._seen[key], lines = out.lines_since(start)
        return list(lines)

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        """Print lines as they come while the running cell blocks in a wait (a wait shows its
        jobs); held back again after it, until the cell ends."""
        busy, self._busy = self._busy, False
        self._wake.set()
        try:
            yield
        finally:
            self.flush()
            self._busy = busy

    def close(self) -> None:
        """Stop the thread and unhook from the shell and the engine (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self._unsubscribe()
        for event, fn in (
            ("pre_run_cell", self._pre_run_cell),
            ("post_run_cell", self._post_run_cell),
        ):
            with contextlib.suppress(ValueError):
                self._shell.events.unregister(event, fn)
        if self._thread is not threading.current_thread():
            self._thread.join(5)


@contextlib.contextmanager
def temporary_echo(shell: Any, engine: Any) -> Iterator[None]:
    """Echo the lines of another engine than the kernel's while a terminal cell waits for it."""
    echo = TerminalEcho(shell, engine)
    try:
        yield
    finally:
        echo.flush()
        echo.close()


@contextlib.contextmanager
def routed_patch_stdout(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[None]:
    """prompt_toolkit's ``patch_stdout``, then the job output routing over its proxy."""
    # IPython's prompt replaces sys.stdout by prompt_toolkit's proxy while it waits for input;
    # wrap that proxy too, or jobs printing while the prompt waits would bypass their capture.
    with original(*args, **kwargs):
        _capture.install()
        yield
