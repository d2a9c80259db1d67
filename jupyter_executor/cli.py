"""The ``jupyter-executor`` command: run flows and notebooks, read the history, cancel runs.

::

    jupyter-executor run flows.py sleepit [--resume] [--force] [--folder DIR] [--max-jobs N]
    jupyter-executor run sleepit          # the flow in ./flows.py or ./sflow.py
    jupyter-executor why final.txt        # which run made it, from which inputs
                                          [--backend B] [--plain]
    jupyter-executor run analysis.ipynb   # the notebook's %%job cells, headless
    jupyter-executor flows flows.py       # the flows a file defines
    jupyter-executor list [NAME] [--folder DIR] [--json]
    jupyter-executor logs NAME [--run N] [--tail N] [--folder DIR]
    jupyter-executor cancel NAME [--folder DIR]
    jupyter-executor schedules list [FOLDER]      # the stored schedules of commands
    jupyter-executor schedules run [FOLDER]       # re-arm them; runs in the foreground

Exit codes: 0 success; 1 a job (or the flow) failed, its log tail printed; 2 usage errors
(unknown flow, missing file); 130 interrupted by Ctrl-C (143 by SIGTERM), the flow's jobs
cancelled and their processes stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO, cast

from . import _procs
from ._duration import DURATIONS, duration_argument, parse_duration
from ._terminal import job_note, seconds
from ._terminal import table as columns
from ._text import safe_text
from .errors import InvalidOption, JupyterExecutorError

if TYPE_CHECKING:
    from ._flow import Flow
    from .engine import Engine
    from .job import Job

__all__ = ["main"]

PROG = "jupyter-executor"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
DEFAULT_FOLDER = ".jupyter_executor"
TAIL_LINES = 20

_SYMBOLS = {
    "created": "·",
    "pending": "·",
    "running": "▶",
    "done": "✔",
    "failed": "✘",
    "cancelled": "⊘",
}
_COLORS = {
    "created": "dim",
    "pending": "dim",
    "running": "cyan",
    "done": "green",
    "failed": "red",
    "cancelled": "yellow",
}


class _Interrupted(BaseException):
    """Raised in the main thread by the SIGINT/SIGTERM handlers; carries the exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# -- entry point ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jupyter-executor`` command line; return the exit code.

    Examples
    --------
    >>> from jupyter_executor.cli import main
    >>> main(["flows", "no-such-file.py"])
    2
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except BrokenPipeError:  # `jupyter-executor list | head`
        with contextlib.suppress(Exception):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return EXIT_OK
    except JupyterExecutorError as exc:
        # A history that cannot be read (corrupt, newer, a folder that cannot be written):
        # its message names the file and what is wrong, which is all a user can act on.
        _err(" ".join(str(exc).split()))
        return EXIT_FAILED
    except OSError as exc:
        # A file of the folder that cannot be read (a log turned into a folder, permissions).
        where = f"{exc.filename}: " if exc.filename is not None else ""
        _err(f"{where}{exc.strerror or exc}")
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run flows of background jobs from the terminal; read their history.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def folder(p: argparse.ArgumentParser, default: str | None = DEFAULT_FOLDER) -> None:
        p.add_argument(
            "--folder",
            default=default,
            metavar="DIR",
            help=f"the engine's folder: history and logs (default: ./{DEFAULT_FOLDER})",
        )

    run = sub.add_parser(
        "run",
        help="run a flow of a .py file, or the %%%%job cells of a notebook",  # argparse %-formats
        description="Run FLOW of FILE.py (a function decorated with @flow), or the %%job cells "
        "of NOTEBOOK.ipynb after its plain cells. Ctrl-C cancels the jobs and exits 130.",
    )
    run.add_argument(
        "file",
        metavar="FILE",
        help="a .py file defining flows, or a .ipynb; or a flow name alone, looked for in "
        "./flows.py, then ./sflow.py",
    )
    run.add_argument("flow", nargs="?", metavar="FLOW", help="the flow to run (.py files)")
    run.add_argument(
        "--resume",
        action="store_true",
        help="skip jobs whose identical earlier run succeeded and whose outputs still exist",
    )
    run.add_argument(
        "--force", action="store_true", help="run every job, even those that are up to date"
    )
    # None: ./.jupyter_executor for flows; for a notebook, whatever the notebook's engine uses
    folder(run, default=None)
    run.add_argument(
        "--max-jobs", type=_positive_int, metavar="N", help="at most N jobs at once (all kinds)"
    )
    run.add_argument(
        "--backend",
        choices=("thread", "process", "async", "dask"),
        help="where functions submitted without backend= run (default: thread)",
    )
    run.add_argument("--plain", action="store_true", help="plain status lines, even on a terminal")
    run.add_argument(
        "--timeout",
        type=duration_argument("--timeout"),
        metavar="DURATION",
        help="notebooks: give up after this long (seconds, or a duration such as 5m)",
    )
    run.set_defaults(handler=_cmd_run)

    flows = sub.add_parser("flows", help="list the flows a .py file defines")
    flows.add_argument("file", metavar="FILE.py")
    flows.set_defaults(handler=_cmd_flows)

    lst = sub.add_parser("list", help="the history of runs recorded in the folder")
    lst.add_argument("name", nargs="?", metavar="NAME", help="only the runs of this job")
    folder(lst)
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    lst.set_defaults(handler=_cmd_list)

    logs = sub.add_parser("logs", help="print the log of a job's run")
    logs.add_argument("name", metavar="NAME")
    logs.add_argument(
        "--run",
        type=int,
        default=-1,
        metavar="N",
        help="which run: 1 = the first (as numbered by `list NAME`), -1 = the last (default)",
    )
    logs.add_argument("--tail", type=_positive_int, metavar="N", help="only the last N lines")
    folder(logs)
    logs.set_defaults(handler=_cmd_logs)

    why = sub.add_parser("why", help="which recorded run made a file, from which inputs")
    why.add_argument("path", metavar="PATH", help="a file declared as an output of a job")
    folder(why)
    why.set_defaults(handler=_cmd_why)

    cancel = sub.add_parser(
        "cancel", help="stop the running (or detached) runs of a job recorded in the folder"
    )
    cancel.add_argument("name", metavar="NAME")
    folder(cancel)
    # The duration grammar of the magics and the API ("90", "1.5", "1m30s"), finite and >= 0:
    # nan or -1 crashed after the SIGTERM was sent, inf waited as long as the job ignored it.
    cancel.add_argument(
        "--grace",
        type=duration_argument("--grace", zero=True),
        default=5.0,
        metavar="DURATION",
        help="time between SIGTERM and SIGKILL (default 5 s)",
    )
    cancel.set_defaults(handler=_cmd_cancel)

    schedules = sub.add_parser(
        "schedules",
        help="list the stored schedules of commands, or run them in the foreground",
        description="The every=/cron= schedules and restart policies of commands are stored "
        "in the engine's folder. 'list' shows them; 'run' re-arms those no live engine (kernel) "
        "has armed and keeps running them until stopped (SIGTERM or Ctrl-C: exit 0), e.g. "
        "under systemd or in a login session. It looks for schedules freed by a kernel that "
        "ended every --rescan seconds.",
    )
    schedules.add_argument("action", choices=("list", "run"), metavar="{list,run}")
    schedules.add_argument(
        "where", nargs="?", metavar="FOLDER", help="the engine's folder (or --folder)"
    )
    folder(schedules)
    schedules.add_argument("--json", action="store_true", help="list: one JSON object per line")
    # Checked by the command (before anything is opened), where `schedules list` ignores it.
    schedules.add_argument(
        "--rescan",
        default="10",
        metavar="DURATION",
        help="run: look for schedules to re-arm this often (default 10 s)",
    )
    schedules.set_defaults(handler=_cmd_schedules)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"takes a whole number >= 1, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _err(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


# -- run -----------------------------------------------------------------------------------------


#: Where `run FLOW` looks for FLOW when no file is named (scriptflow's sflow.py too).
DEFAULT_FLOW_FILES = ("flows.py", "sflow.py")


def _cmd_run(args: argparse.Namespace) -> int:
    path = _run_target(args)
    if path is None:
        return EXIT_USAGE
    if path.suffix == ".ipynb":
        return _run_notebook(path, args)
    if path.suffix != ".py":
        _err(f"run takes a .py file of flows or a .ipynb notebook, not {path.name}")
        return EXIT_USAGE
    flows = _load_flows(path, args.file)
    if flows is None:
        return EXIT_FAILED
    chosen = _choose_flow(flows, args)
    if chosen is None:
        return EXIT_USAGE
    try:
        engine = _make_engine(args)
    except ValueError as exc:
        # The file called get_engine(...) itself when imported, with other options.
        _err(f"{args.file} made its engine when imported: {exc}")
        return EXIT_USAGE
    return run_flow(chosen, engine, live=_wants_live(args), out=sys.stdout)


def _run_target(args: argparse.Namespace) -> Path | None:
    """The file ``run`` runs (``args.file``/``args.flow`` updated when FILE names a flow in
    a default flow file), or None after saying why there is none."""
    path = Path(args.file)
    if args.flow is None and not path.suffix and not path.exists():
        # `run sleepit`: a flow name alone, looked for in ./flows.py, then ./sflow.py
        found = next((Path(f) for f in DEFAULT_FLOW_FILES if Path(f).is_file()), None)
        if found is None:
            _err(f"no file named {args.file!r}, and no {' or '.join(DEFAULT_FLOW_FILES)} here")
            return None
        args.file, args.flow, path = str(found), args.file, found
    if not path.is_file():
        _err(f"no such file: {args.file}")
        return None
    return path


def _run_notebook(path: Path, args: argparse.Namespace) -> int:
    if args.flow is not None:
        _err("a notebook is run whole: drop the flow name")
        return EXIT_USAGE
    from ._nbflow import run_notebook

    return run_notebook(
        path,
        folder=args.folder,
        max_jobs=args.max_jobs,
        resume=args.resume and not args.force,
        force=args.force,
        timeout=args.timeout,
        out=sys.stdout,
    )


def _choose_flow(flows: dict[str, Flow], args: argparse.Namespace) -> Flow | None:
    """The flow ``args.flow`` names (the only one when it names none), or None after
    saying which flows there are."""
    if args.flow is None:
        if len(flows) != 1:
            listing = ", ".join(flows) if flows else "none (decorate a function with @flow)"
            _err(f"give the flow to run: {PROG} run {args.file} FLOW; flows: {listing}")
            return None
        return next(iter(flows.values()))
    chosen = flows.get(args.flow)
    if chosen is None:
        _err(f"no flow {args.flow!r} in {args.file}")
        _print_flows(flows, sys.stderr)
    return chosen


def _make_engine(args: argparse.Namespace) -> Engine:
    from .engine import get_engine

    # The process's engine, so that a flow calling get_engine() gets this one.
    return get_engine(
        folder=args.folder or DEFAULT_FOLDER,
        max_jobs=args.max_jobs,
        resume=args.resume and not args.force,
        force=args.force,
        default_backend=args.backend,
    )


def _wants_live(args: argparse.Namespace) -> bool:
    if args.plain or os.environ.get("TERM") == "dumb":
        return False
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def run_flow(flow: Any, engine: Engine, *, live: bool = False, out: TextIO | None = None) -> int:
    """Run ``flow`` on ``engine`` with a terminal view; return the command's exit code.

    Waits for every job the flow submitted (also those it did not await), then shuts the
    engine down. Ctrl-C (SIGINT) or SIGTERM cancels the jobs, stops their processes and
    returns 130 (143); a failed job or flow returns 1 after printing the failed jobs' log
    tails to stderr.
    """
    out = out if out is not None else sys.stdout
    start = time.monotonic()
    live = live and _has_rich()
    if not live:
        with _whole_lines(out) as out:
            return _run_flow(flow, engine, _PlainView(engine, out), out, start)
    return _run_flow(flow, engine, _LiveView(engine, out), out, start)


def _run_flow(flow: Any, engine: Engine, view: _View, out: TextIO, start: float) -> int:
    interrupted, flow_error = _drive_flow(flow, engine, view)
    jobs = list(engine.jobs.values())
    elapsed = time.monotonic() - start
    counts = {s: sum(1 for j in jobs if j.status.value == s) for s in _SYMBOLS}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no jobs"
    name = getattr(flow, "name", "flow")
    if interrupted:
        print(f"{name}: interrupted after {elapsed:.1f} s ({summary})", file=out)
        return interrupted
    if _report_failures(name, jobs, flow_error):
        print(f"{name}: FAILED after {elapsed:.1f} s ({summary})", file=out)
        out.flush()
        return EXIT_FAILED
    print(f"{name}: done in {elapsed:.1f} s ({summary})", file=out)
    out.flush()
    return EXIT_OK


def _drive_flow(flow: Any, engine: Engine, view: _View) -> tuple[int, BaseException | None]:
    """Run the flow and wait for its jobs; return (the exit code of an interrupt or 0,
    the exception the flow raised or None). The engine is shut down on every path."""
    interrupted = 0
    flow_error: BaseException | None = None
    with _signals() as restore:
        try:
            view.start()
            try:
                flow.run(engine)
            except (_Interrupted, KeyboardInterrupt):
                raise
            except Exception as exc:  # the flow's own failure, or a job's it awaited
                flow_error = exc
                _stop_after_failure(engine, view)
            engine.wait()  # the jobs the flow submitted and did not await
        except _Interrupted as exc:
            interrupted = exc.code
        except KeyboardInterrupt:
            interrupted = EXIT_INTERRUPTED
        finally:
            # A second Ctrl-C must not cut the cleanup short and leave processes behind.
            restore(ignore=True)
            if interrupted:
                view.note("interrupted: cancelling the jobs")
            engine.shutdown()
            view.stop()
    return interrupted, flow_error


def _report_failures(name: str, jobs: list[Job], flow_error: BaseException | None) -> bool:
    """Print the failed jobs' log tails, and the flow's own exception when no job raised
    it, to stderr; return whether the flow failed (also by a job cancelled for cause)."""
    failed = [j for j in jobs if j.status.value == "failed"]
    bad_cancel = [
        j
        for j in jobs
        if j.status.value == "cancelled" and not j.forever and j.cancel_reason != _SHUTDOWN_REASON
    ]
    for job in failed:
        _print_failure(job, sys.stderr)
    own_error = flow_error is not None and not any(
        flow_error is j.exception() or _same_error(flow_error, j) for j in jobs
    )
    if flow_error is not None and own_error:
        print(f"--- flow {name} raised ---", file=sys.stderr)
        traceback.print_exception(flow_error, file=sys.stderr)
    return bool(failed or own_error or bad_cancel)


_SHUTDOWN_REASON = "the engine shut down"


class _Lines(io.TextIOBase):
    """A text stream that passes on whole lines only, each in one write.

    The flow's own prints (``print(a, b)`` is four writes) and the status printer's thread
    share stdout; without this their lines get spliced mid-line.
    """

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target
        self._lock = threading.Lock()
        self._local = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        pending = getattr(self._local, "text", "") + text
        head, newline, rest = pending.rpartition("\n")
        self._local.text = rest
        if newline:
            with self._lock:
                self._target.write(head + newline)
                self._target.flush()
        return len(text)

    def flush(self) -> None:
        rest = getattr(self._local, "text", "")
        self._local.text = ""
        with self._lock:
            if rest:
                self._target.write(rest)
            self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._target, "encoding", "utf-8")


@contextlib.contextmanager
def _whole_lines(out: TextIO) -> Iterator[TextIO]:
    """``out`` as a :class:`_Lines` stream, also standing in for ``sys.stdout`` meanwhile."""
    lines = cast("TextIO", _Lines(out))  # a TextIOBase: what print() and rich need of a TextIO
    swap = out is sys.stdout
    if swap:
        sys.stdout = lines
    try:
        yield lines
    finally:
        lines.flush()
        if swap:
            sys.stdout = out


def _stop_after_failure(engine: Engine, view: _View) -> None:
    """Like make: after a failure start nothing new, but let the running jobs finish
    (their results are recorded, so ``--resume`` will not redo them)."""
    pending = [j for j in engine.jobs.values() if j.status.value in ("created", "pending")]
    for job in pending:
        engine.cancel(job, "the flow failed")
    running = [j for j in engine.jobs.values() if j.status.value == "running" and not j.forever]
    if running:
        names = ", ".join(str(j.name) for j in running[:5]) + (", ..." if len(running) > 5 else "")
        view.note(
            f"the flow failed: waiting for {len(running)} running job(s) ({names}); "
            "Ctrl-C cancels them"
        )


def _same_error(error: BaseException, job: Job) -> bool:
    # `await job` on a cancelled job raises a fresh JobCancelled naming it.
    from .errors import JobCancelled

    return isinstance(error, JobCancelled) and error.name == job.name


def _print_failure(job: Job, stream: TextIO) -> None:
    info = job.info()
    print(f"--- {info.name} failed: {info.error} ---", file=stream)
    tail = job.tail(TAIL_LINES)
    if not tail.strip() and job.log_path is not None and job.log_path.exists():
        tail = "\n".join(_last_lines(job.log_path, TAIL_LINES))
    if tail.strip():
        print(tail.rstrip("\n"), file=stream)
    elif info.traceback:
        print(info.traceback.rstrip("\n"), file=stream)
    if job.log_path is not None:
        print(f"--- log: {job.log_path} ---", file=stream)
    stream.flush()


@contextlib.contextmanager
def _signals() -> Iterator[Callable[..., None]]:
    """SIGINT and SIGTERM raise :class:`_Interrupted` in the main thread while the flow runs.

    A distinct exception (not KeyboardInterrupt) so that code in the flow catching
    KeyboardInterrupt cannot swallow the request to stop, and so SIGTERM gets its own code.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda ignore=False: None
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    codes = {signal.SIGINT: EXIT_INTERRUPTED, signal.SIGTERM: EXIT_TERMINATED}

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise _Interrupted(codes[signal.Signals(signum)])

    for sig in previous:
        signal.signal(sig, handler)
    restored = False

    def restore(ignore: bool = False) -> None:
        nonlocal restored
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_IGN if ignore else old)
        restored = not ignore

    try:
        yield restore
    finally:
        if not restored:
            restore()


# -- terminal views ------------------------------------------------------------------------------


class _View:
    """Shows the engine's jobs while a flow runs. Engine callbacks only queue or flag."""

    def __init__(self, engine: Engine, out: TextIO) -> None:
        self.engine = engine
        self.out = out
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self._unsubscribe = self.engine.subscribe(self._on_event)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def note(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def _on_event(self, event: str, job: Job) -> None:
        raise NotImplementedError


class _PlainView(_View):
    """One line per status change: ``12:00:01 done      solve-1  (2.1 s)``.

    The engine's callback puts (time, job, status) on a queue; a printer thread writes, so a
    slow or blocked stdout never slows the engine.
    """

    def __init__(self, engine: Engine, out: TextIO) -> None:
        super().__init__(engine, out)
        # (time, job or None for a note, status or the note's text); None stops the printer
        self._queue: queue.SimpleQueue[tuple[float, Job | None, str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._last: dict[int, str] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._print_loop, name="cli-view", daemon=True)
        self._thread.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def note(self, text: str) -> None:
        self._queue.put((time.time(), None, text))

    def _on_event(self, event: str, job: Job) -> None:
        if event == "status":
            self._queue.put((time.time(), job, job.status.value))

    def _print_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            when, job, status = item
            stamp = datetime.fromtimestamp(when).strftime("%H:%M:%S")
            if job is None:  # a note
                line = f"{stamp} {status}"
            else:
                if self._last.get(id(job)) == status and status != "running":
                    continue
                self._last[id(job)] = status
                line = f"{stamp} {status:<9} {job.name}"
                if status in ("done", "failed", "cancelled"):
                    info = job.info()
                    if info.duration is not None:
                        line += f"  ({seconds(info.duration)})"
                    if status == "failed" and info.error:
                        line += f"  {info.error}"
                    elif status == "cancelled" and info.cancel_reason:
                        line += f"  {info.cancel_reason}"
                    elif status == "done" and info.attempts == 0:
                        line += "  up to date"
            with contextlib.suppress(Exception):
                print(line, file=self.out, flush=True)


class _LiveView(_View):
    """A rich live table, one line per job: status, name, duration, last line printed.

    Redrawn by rich's own thread at a bounded rate (4/s), from snapshots (``job.info()``);
    the engine callback only sets a flag.
    """

    MAX_ROWS = 40

    def __init__(self, engine: Engine, out: TextIO) -> None:
        super().__init__(engine, out)
        from rich.console import Console

        self._console = Console(file=out)
        self._live: Any = None
        self._started = time.monotonic()

    def start(self) -> None:
        from rich.live import Live

        self._live = Live(
            get_renderable=self._render,
            console=self._console,
            refresh_per_second=4,
            transient=False,
            # The flow's own prints appear above the table instead of tearing it. Jobs' prints
            # are unaffected: the engine routes them to each job's output by context.
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._live.start()
        super().start()

    def stop(self) -> None:
        super().stop()
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    def note(self, text: str) -> None:
        self._console.print(text)

    def _on_event(self, event: str, job: Job) -> None:
        pass  # rich redraws on its own clock from fresh snapshots

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        infos = [job.info() for job in list(self.engine.jobs.values())]
        shown = infos
        hidden = 0
        if len(infos) > self.MAX_ROWS:
            # Keep what moves: running jobs, failures, then the latest finished.
            order = {"running": 0, "failed": 1, "pending": 3, "created": 3}
            shown = sorted(infos, key=lambda i: order.get(i.status, 2))[: self.MAX_ROWS]
            hidden = len(infos) - len(shown)
        longest = max((len(i.name) for i in shown), default=4)
        # Fixed widths for status, name and time, so rows line up and do not jump as they
        # change; the last line printed (or the error) gets what is left, cut with an ellipsis.
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(width=12, no_wrap=True)
        table.add_column(width=min(max(longest, 4), 32), no_wrap=True, overflow="ellipsis")
        table.add_column(width=8, no_wrap=True, justify="right")
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        for info in shown:
            status = info.status
            label = "up to date" if status == "done" and info.attempts == 0 else status
            table.add_row(
                Text(f"{_SYMBOLS.get(status, '?')} {label}", style=_COLORS.get(status, "")),
                Text(info.name, style="bold"),
                Text(seconds(info.duration)),
                Text(job_note(info, result=False)),
            )
        counts: dict[str, int] = {}
        for info in infos:
            counts[info.status] = counts.get(info.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no jobs yet"
        elapsed = seconds(time.monotonic() - self._started)
        more = f" (+{hidden} not shown)" if hidden else ""
        return Group(table, Text(f"{summary} · {elapsed}{more}", style="dim"))


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


# -- flows ---------------------------------------------------------------------------------------


def _cmd_flows(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        _err(f"no such file: {args.file}")
        return EXIT_USAGE
    flows = _load_flows(path, args.file)
    if flows is None:
        return EXIT_FAILED
    _print_flows(flows, sys.stdout)
    return EXIT_OK


def _load_flows(path: Path, given: str) -> dict[str, Flow] | None:
    """The flows of a file, or None after printing why it could not be loaded."""
    from ._flow import load_flows

    try:
        return load_flows(path)
    except Exception:
        _err(f"cannot load {given}:")
        traceback.print_exc()
        return None


def _print_flows(flows: dict[str, Any], stream: TextIO) -> None:
    if not flows:
        print("no flows (decorate a function with @flow)", file=stream)
        return
    print("flows:", file=stream)
    width = max(len(name) for name in flows)
    for name, flow in flows.items():
        kind = "async" if flow.is_async else "sync "
        line = f"  {name:<{width}}  {kind}  {flow.description}".rstrip()
        print(line, file=stream)


# -- history -------------------------------------------------------------------------------------


def _open_store(folder: str, *, write: bool = False) -> Any:
    """The folder's history store, or None (after saying why) when it has none.

    Read-only unless ``write``: reading the history needs no write access to the folder (a
    colleague's runs, a read-only mount). StoreError when it cannot be used (see main).
    """
    path = Path(folder)
    if not (path / "history.db").exists():
        print(f"no history in {folder} (no run recorded there yet)", file=sys.stderr)
        return None
    from .store import HistoryStore

    return HistoryStore(path, "cli", read_only=not write)


def _cmd_why(args: argparse.Namespace) -> int:
    """Say which run made PATH (its latest recorded maker), from which inputs, and whether the
    file still has the content that run wrote."""
    store = _open_store(args.folder)
    if store is None:
        return EXIT_FAILED
    target = Path(args.path).resolve()
    # A path that is not UTF-8 (a byte 0xff of the command line), as the store writes one.
    recorded = safe_text(str(target))
    try:
        rows = store.made(recorded)
    finally:
        store.close()
    if not rows:
        _err(f"no recorded run made {args.path} (only declared outputs= of jobs are recorded)")
        return EXIT_FAILED
    first = rows[0]
    run = [r for r in rows if (r["engine_id"], r["name"], r["attempt"], r["recorded"]) == (
        first["engine_id"], first["name"], first["attempt"], first["recorded"])]  # fmt: skip
    made = next(r for r in run if r["role"] == "output" and r["path"] == recorded)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(first["recorded"]))
    print(
        f"{args.path} was made by job {first['name']!r} (attempt {first['attempt']}, "
        f"engine {first['engine_id']}, recorded {when})"
    )
    try:
        with target.open("rb") as f:
            current = hashlib.file_digest(f, "sha256").hexdigest()  # as the engine records it
    except OSError:
        current = None
    state = (
        "gone since"
        if current is None
        else "unchanged since"
        if current == made["sha256"]
        else "changed since"
    )
    print(f"  sha256 {made['sha256']} ({state})")
    for row in run:
        if row is not made:
            print(f"  {row['role']:<6} {row['path']}  sha256 {row['sha256']}")
    return 0


def _numbered(rows: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Number the runs of each job 1, 2, ... in time order (what --run refers to)."""
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        seen[row["name"]] = seen.get(row["name"], 0) + 1
        out.append((seen[row["name"]], row))
    return out


def _cmd_list(args: argparse.Namespace) -> int:
    store = _open_store(args.folder)
    if store is None:
        return EXIT_OK
    try:
        rows = store.history(args.name)
    finally:
        store.close()
    if args.json:
        for number, row in _numbered(rows):
            print(json.dumps({"run": number, **row}, default=str))
        return EXIT_OK
    if not rows:
        what = f"job {args.name!r}" if args.name else "any job"
        print(f"no run of {what} in {args.folder}", file=sys.stderr)
        return EXIT_OK
    header = ("name", "run", "status", "started", "duration", "exit", "engine", "note")
    table = [header]
    for number, row in _numbered(rows):
        started = row.get("started")
        when = datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S") if started else ""
        exit_code = row.get("exit_code")
        table.append(
            (
                str(row["name"]),
                str(number),
                str(row["status"]),
                when,
                seconds(row.get("duration")),
                "" if exit_code is None else str(exit_code),
                str(row.get("engine_id") or ""),
                _one_line(_note(row)),
            )
        )
    print(columns(table))
    return EXIT_OK


def _note(row: dict[str, Any]) -> str:
    if row.get("error"):
        return str(row["error"])
    if row.get("cancel_reason"):
        return str(row["cancel_reason"])
    if row.get("status") == "done" and row.get("started") is None:
        return str(row.get("result") or "up to date").strip("'\"")
    return ""


def _one_line(text: str, width: int = 60) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _cmd_logs(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    rows = _recorded_runs(folder, args.name)
    files = _log_files(folder, args.name, rows)
    if not files and not rows:
        _err(f"no run and no log of {args.name!r} in {args.folder}")
        return EXIT_FAILED
    count = len(rows) if rows else len(files)
    index = args.run - 1 if args.run > 0 else count + args.run
    if not 0 <= index < count:
        _err(f"{args.name!r} has {count} run(s) in {args.folder}; --run takes 1..{count} or -1")
        return EXIT_USAGE
    path = _log_of_run(rows, files, index)
    if path is None:
        row = rows[index] if rows else {}
        why = (
            "it did not run (up to date, or cancelled before it started)"
            if rows and row.get("started") is None
            else "nothing printed, or its log was rotated away"
        )
        _err(f"run {index + 1} of {args.name!r} has no log: {why}")
        return EXIT_FAILED
    lines = (
        _last_lines(path, args.tail) if args.tail else path.read_text(errors="replace").splitlines()
    )
    for line in lines:
        print(line)
    return EXIT_OK


def _recorded_runs(folder: Path, name: str) -> list[dict[str, Any]]:
    """The runs of ``name`` the history in ``folder`` holds (none without a history)."""
    if not (folder / "history.db").exists():
        return []
    from .store import HistoryStore

    store = HistoryStore(folder, "cli", read_only=True)
    try:
        return store.history(name)
    finally:
        store.close()


def _log_files(folder: Path, name: str, rows: list[dict[str, Any]]) -> list[Path]:
    """The log files of ``name``, oldest first."""
    from ._logs import log_stem, logs_of

    # The job's log file name, and those its recorded runs wrote (older versions named some
    # jobs' logs differently).
    stems = dict.fromkeys([log_stem(name)])
    for row in rows:
        if row.get("log_path"):
            stems[Path(row["log_path"]).name.removesuffix(".log")] = None
    found = {path for stem in stems for path in logs_of(folder / "logs", stem)}
    return sorted(found, key=_mtime)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _log_of_run(rows: list[dict[str, Any]], files: list[Path], index: int) -> Path | None:
    """The log file of run ``index`` (0-based, time order), or None when it left none.

    Each run writes ``NAME.log`` and the next run archives it first (renaming keeps its time),
    but a run that printed nothing, or was skipped as up to date, leaves no file: so runs are
    matched to files by time, the file last written closest to the run's end.
    """
    if not rows:
        return files[index] if index < len(files) else None
    row = rows[index]
    started = row.get("started")
    if started is None:
        return None  # never started: skipped as up to date, or cancelled while pending
    end = row.get("finished") or time.time()
    best: tuple[float, Path] | None = None
    for path in files:
        try:
            written = path.stat().st_mtime
        except OSError:
            continue
        # half a second of slack: file times and the recorded times are taken apart
        if written < started - 0.5:
            continue
        gap = abs(written - end)
        if best is None or gap < best[0]:
            best = (gap, path)
    return best[1] if best is not None and best[0] <= max(1.0, end - started + 1.0) else None


def _last_lines(path: Path, n: int) -> list[str]:
    from collections import deque

    with open(path, errors="replace") as f:
        # More lines than a deque can hold (--tail 1e30) is the whole file.
        return [line.rstrip("\n") for line in deque(f, maxlen=min(n, sys.maxsize))]


# -- cancel --------------------------------------------------------------------------------------


def _cmd_cancel(args: argparse.Namespace) -> int:
    # Writable: the end of a run no engine follows any more is recorded here.
    store = _open_store(args.folder, write=True)
    if store is None:
        return EXIT_FAILED
    try:
        rows = [r for r in store.history(args.name) if r.get("finished") is None]
        running = [r for r in rows if r.get("status") == "running" and r.get("pid")]
        if not running:
            _err(f"no running run of {args.name!r} recorded in {args.folder}")
            return EXIT_FAILED
        stopped = 0
        for row in running:
            proc = _verified_process(row)
            if proc is None:
                if row.get("detached"):
                    # Gone already (or its pid was reused): record that it is over.
                    store.record_exit(
                        row["id"], "failed", None, time.time(), "process gone (found by cancel)"
                    )
                print(f"{args.name}: pid {row['pid']} is not running any more")
                continue
            _procs.stop_group(proc, args.grace)
            if row.get("detached") and not _end_recorded(store, args.name, row["id"]):
                # No engine follows it any more (its kernel is gone): record the end here.
                store.record_exit(
                    row["id"], "cancelled", None, time.time(), f"cancelled by {PROG} cancel"
                )
            print(f"{args.name}: stopped pid {row['pid']} (engine {row.get('engine_id')})")
            stopped += 1
    finally:
        store.close()
    return EXIT_OK if stopped else EXIT_FAILED


def _end_recorded(store: Any, name: str, run_id: int, wait: float = 2.0) -> bool:
    """Whether an engine following the run records its end within ``wait`` seconds.

    A live engine sees its process die and writes the end within its batch delay (50 ms); the
    short bounded wait tells a followed run from an orphaned one without asking the engine.
    """
    deadline = time.monotonic() + wait
    while True:
        rows = [r for r in store.history(name) if r["id"] == run_id]
        if rows and rows[0].get("finished") is not None:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _verified_process(row: dict[str, Any]) -> Any:
    """The recorded process if it is still the same one (pid and start time), else None."""
    recorded = row.get("pid_start_time")
    if recorded is None:
        # Without a start time a reused pid cannot be told apart: never signal a stranger.
        # The run's start, recorded just before its process started, is a coarse one.
        return _procs.find(row.get("pid"), row.get("started"), tolerance=5)
    # A later tool on the same host: allow for a boot time read anew (NTP steps).
    return _procs.find(row.get("pid"), recorded, tolerance=1)


if __name__ == "__main__":  # python -m jupyter_executor.cli
    raise SystemExit(main())


# -- durable schedules ---------------------------------------------------------------------------


def _cmd_schedules(args: argparse.Namespace) -> int:
    folder = args.where or args.folder
    if args.action == "list":
        return _list_schedules(folder, args.json)
    try:
        # Finite and > 0, in the duration grammar: inf would never look again, 0 never rest.
        rescan = parse_duration(args.rescan, "--rescan")
    except InvalidOption:
        expects = f"a number of seconds > 0 or a duration ({DURATIONS})"
        _err(f"--rescan takes {expects}, not {args.rescan!r}")
        return EXIT_USAGE
    return _run_schedules(folder, rescan)


def _list_schedules(folder: str, as_json: bool) -> int:
    from . import _durable

    store = _open_store(folder)
    if store is None:
        return EXIT_OK
    try:
        rows = store.schedules()
    finally:
        store.close()
    if as_json:
        for row in rows:
            print(json.dumps(row, default=str))
        return EXIT_OK
    if not rows:
        print(f"no schedule stored in {folder}")
        return EXIT_OK
    for row in rows:
        spec = row["spec"]
        when = _durable.describe("", spec).strip()
        if row.get("owner") is None:
            armed = "not armed"
        elif _procs.same_process(row.get("owner_pid"), row.get("owner_pid_start_time")):
            armed = f"armed by pid {row['owner_pid']}"
        else:
            armed = "not armed (its engine ended)"
        command = spec["command"]
        shown = command if isinstance(command, str) else " ".join(command)
        print(f"{row['name']}\t{when}\t{armed}\t{_one_line(shown)}")
    return EXIT_OK


def _run_schedules(folder: str, rescan: float) -> int:
    import warnings

    from . import _durable
    from .engine import Engine, rearmed_schedules
    from .errors import StoreError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", _durable.RearmedWarning)
        try:
            engine = Engine(folder=folder)
        except StoreError as exc:
            _err(str(exc))
            return EXIT_USAGE
    for warning in caught:
        print(str(warning.message), flush=True)
    if not rearmed_schedules(engine):
        print(
            f"no schedule to re-arm in {folder} now; looking again every {rescan:g} s", flush=True
        )
    events: queue.SimpleQueue[str] = queue.SimpleQueue()

    def on_event(event: str, job: Job) -> None:
        # Quick, no I/O: the engine may hold its lock. Printed by the main thread.
        if event == "status" and job.status.value in ("running", "done", "failed", "cancelled"):
            reason = job.cancel_reason  # None unless it was cancelled
            error = job.exception() if job.status.value == "failed" else None
            detail = f": {reason or error}" if reason or error else ""
            stamp = datetime.now().strftime("%H:%M:%S")
            events.put(f"{stamp} {job.name} {job.status.value}{detail}")

    engine.subscribe(on_event)
    with _signals() as restore:
        try:
            next_scan = time.monotonic() + rescan
            while True:
                with contextlib.suppress(queue.Empty):
                    print(events.get(timeout=0.5), flush=True)
                    continue
                if time.monotonic() >= next_scan:
                    next_scan = time.monotonic() + rescan
                    phrases = _durable.rearm(engine, warn=False)
                    if phrases:
                        print(_durable.rearm_line(phrases), flush=True)
        except _Interrupted:
            pass
        finally:
            restore(True)  # a second Ctrl-C must not cut the shutdown short
            engine.shutdown()
    return EXIT_OK
