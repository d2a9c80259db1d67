"""The IPython side of the extension: what the magics do, and the glue they need.

- **Display routing.** ``display(obj)`` inside a job is captured by wrapping the shell's
  ``display_pub.publish``: when the calling context belongs to a job, the mimebundle goes to
  that job's :class:`~jupyter_executor._capture.Output` instead of the cell that happens to be
  running (``print`` is routed by the engine's stream proxy; docs/kernel-notes.md §1).
- **Views.** In a kernel, a ``%%job`` cell displays the job's live view (``widget.JobView``) and
  ``%jobs`` the dashboard; both are created in the cell (on the main thread) and then updated
  from the engine's events by the widgets themselves (docs/kernel-notes.md §3).
- **Terminal IPython.** No widgets: :class:`TerminalEcho` prints each new job line as
  ``[job NAME] line`` while the prompt waits (above the prompt, through prompt_toolkit's
  ``patch_stdout``), holds them back while a foreground cell runs and prints them when it ends.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from . import _capture, _pyplot, _traceback
from ._capture import current_output
from ._cell import CellError, analyse
from .errors import JupyterExecutorError

__all__ = [
    "TerminalEcho",
    "activate",
    "deactivate",
    "jobs_command",
    "set_engine_defaults",
    "show_dashboard",
    "submit_cell",
    "submit_command",
]


# The engine options set by ``JobMagics`` (``%config JobMagics.folder = ...``, or the profile's
# ipython_config.py); used when the magics create the kernel's engine, not once it exists.
_engine_defaults: dict[str, Any] = {}


def set_engine_defaults(options: Mapping[str, Any]) -> None:
    """Use ``options`` (``Engine`` keyword arguments) when the magics create the engine."""
    _engine_defaults.clear()
    _engine_defaults.update(options)


def _engine() -> Any:
    from . import engine as engine_module

    current = engine_module._default
    if current is None or current.closed:
        return engine_module.get_engine(**_engine_defaults)
    return engine_module.get_engine()


def is_kernel(shell: Any) -> bool:
    """True in a Jupyter kernel (widgets can be shown), False in terminal IPython."""
    return getattr(shell, "kernel", None) is not None


# -- submitting ----------------------------------------------------------------------------------


def _check_name(engine: Any, name: str | None) -> bool:
    """Return True when ``name`` belongs to a finished job the new one replaces."""
    if name is None:
        return False
    existing = engine.jobs.get(name)
    if existing is None:
        return False
    if not existing.done():
        msg = (
            f"job {name!r} is still {existing.status.value}: stop it with "
            f"`%jobs cancel {name}` and run this cell again, or give the cell another name"
        )
        raise UsageError(msg)
    return True


def submit_cell(
    shell: Any,
    raw: str,
    *,
    name: str | None,
    backend: str | None,
    requires: Sequence[str],
    retries: int,
    timeout: float | None,
    forever: bool,
    lifecycle: Mapping[str, Any] | None = None,
) -> None:
    """``%%job``: analyse the cell, submit it, show its view.

    ``lifecycle`` holds the long-running options (``every``, ``restart``, ``inputs``...) as
    :class:`~jupyter_executor.Job` takes them.
    """
    from ._cell import CellJob

    engine = _engine()
    replace = _check_name(engine, name)
    lifecycle = dict(lifecycle or {})
    detach = bool(lifecycle.pop("detach", False))
    notify = lifecycle.pop("notify", None)  # any job may say when it ends, detached ones too
    if detach:
        _check_detached_cell(name, backend, forever, lifecycle)
    source = shell.transform_cell(raw)
    # cached under an "In[n]" name so that tracebacks show the cell's lines
    filename = shell.compile.cache(source, _cell_number(shell), raw_code=raw)
    try:
        cell = analyse(
            raw, transform=lambda _: source, filename=filename, flags=shell.compile.flags
        )
    except CellError as exc:
        raise UsageError(str(exc)) from None
    if backend is None:
        # a cell that awaits runs on the engine's loop; otherwise the configured default
        # (JobMagics.backend, the engine's default_backend) or a thread
        configured = engine.default_backend
        if configured not in ("thread", "process", "dask"):
            configured = "thread"
        backend = "async" if cell.is_async else configured
    if detach:
        from ._detached import submit_cell as submit_detached

        assert name is not None
        try:
            job = submit_detached(
                engine, cell, shell.user_ns, shell.user_ns_hidden, name=name,
                requires=list(requires), timeout=timeout, replace=replace,
            )  # fmt: skip
        except (JupyterExecutorError, ValueError, TypeError) as exc:
            raise UsageError(_one_line(exc)) from None
        if notify is not None:
            job.notify = notify
        _show_job(shell, job)
        return
    try:
        job = CellJob(
            cell,
            shell.user_ns,
            hidden=shell.user_ns_hidden,
            backend=backend,
            name=name,
            requires=list(requires),
            retries=retries,
            timeout=timeout,
            forever=forever,
            notify=notify,
            **lifecycle,
        )
        engine.submit(job, replace=replace)
    except (JupyterExecutorError, ValueError, TypeError) as exc:
        raise UsageError(_one_line(exc)) from None
    _show_job(shell, job)


def _cell_number(shell: Any) -> int:
    """The number of the cell running now, as its prompt and IPython's tracebacks show it.

    IPython 9 counts the cell before running it (``shell.execution_count`` is then one more);
    the cell itself was cached under its number just before it ran: the last name cached."""
    numbers = getattr(shell.compile, "_filename_map", None)
    if isinstance(numbers, dict) and numbers:
        last = list(numbers.values())[-1]
        if isinstance(last, int):
            return last
    return int(shell.execution_count)


def _check_detached_cell(
    name: str | None, backend: str | None, forever: bool, lifecycle: Mapping[str, Any]
) -> None:
    if name is None:
        msg = (
            "%%job --detach needs a job name (%%job NAME --detach): the next kernel finds it by it"
        )
        raise UsageError(msg)
    if backend not in (None, "process"):
        msg = f"--detach runs the cell in a process of its own: drop --backend {backend}"
        raise UsageError(msg)
    extra = [
        f"--{k.replace('_', '-')}" for k, v in lifecycle.items() if v not in (None, False, "no")
    ]
    if forever:
        extra.append("--forever")
    if extra:
        msg = f"--detach runs a cell once, in a process of its own: drop {' '.join(extra)}"
        raise UsageError(msg)


def fetch(shell: Any, engine: Any, name: str) -> Any:
    """``%jobs fetch NAME``: load a detached cell's variables; return its result."""
    from ._detached import read_file, read_outputs, result_file

    try:
        if name in engine:
            values, errors = read_outputs(engine[name])
        else:
            # Ended before this kernel started: its outputs are still in the folder.
            path = result_file(engine.log_path(name))
            if not path.exists():
                msg = f"no job named {name!r} here, and no outputs of it in {engine.folder}"
                raise UsageError(msg)
            values, errors = read_file(path, name)
    except JupyterExecutorError as exc:
        raise UsageError(_one_line(exc)) from None
    result = values.pop("result", None)
    shell.user_ns.update(values)
    if errors:
        bad = sorted(errors)
        loaded = f"loaded {', '.join(sorted(values))}; " if values else ""
        what = ", ".join(map(repr, bad))
        msg = f"{loaded}{what} of job {name!r} cannot be loaded here: {errors[bad[0]]}"
        raise UsageError(_one_line(UsageError(msg)))
    return result


def _one_line(exc: BaseException) -> str:
    # A UsageError is shown as one line; some messages (croniter's) could span several.
    return " ".join(str(exc).split())


def submit_command(
    shell: Any,
    command: str | list[str],
    *,
    name: str | None,
    requires: Sequence[str],
    retries: int,
    timeout: float | None,
    forever: bool,
    env: Mapping[str, str],
    cwd: Path | None,
    lifecycle: Mapping[str, Any] | None = None,
) -> None:
    """``%job``: submit a script or shell command, show its view (see :func:`submit_cell`)."""
    from .job import Job

    engine = _engine()
    replace = _check_name(engine, name)
    try:
        job = Job(
            command,
            name=name,
            retries=retries,
            timeout=timeout,
            forever=forever,
            env=dict(env) or None,
            cwd=cwd,
            **(lifecycle or {}),
        )
        if requires:
            job.requires(list(requires))
        engine.submit(job, replace=replace)
    except (JupyterExecutorError, ValueError, TypeError) as exc:
        raise UsageError(_one_line(exc)) from None
    _show_job(shell, job)


def _show_job(shell: Any, job: Any) -> None:
    if is_kernel(shell):
        from IPython.display import display

        view = job_view(job)
        # The display id lets the view update its saved fallback in place when the job ends.
        display_id = getattr(view, "display_id", None)
        display(_track(shell, view), display_id=display_id)  # type: ignore[no-untyped-call]
    else:
        print(f"[job {job.name}] {job.status.value} ({job.backend}): {job.describe()}")


def job_view(job: Any) -> Any:
    """The live view of one job (``widget.JobView``), or a static snapshot without it."""
    try:
        from .widget import JobView
    except ImportError:
        return JobSnapshot(job)
    return JobView(job)


class JobSnapshot:
    """A job's state as text/HTML, for front ends without widgets."""

    def __init__(self, job: Any) -> None:
        self.job = job

    def __repr__(self) -> str:
        return describe(self.job, lines=20)

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(describe(self.job, lines=20))}</pre>"


def describe(job: Any, lines: int = 0) -> str:
    """``[job NAME] status (backend, 1.2 s)``, then its last lines, result or error."""
    info = job.info()
    elapsed = f", {info.duration:.1f} s" if info.duration is not None else ""
    text = [f"[job {info.name}] {info.status} ({info.backend}{elapsed}): {info.description}"]
    if lines:
        tail = job.tail(lines)
        if tail:
            text.append(tail)
    if info.status == "done" and info.result is not None:
        text.append(f"-> {info.result}")
    elif info.error:
        text.append(info.error)
    text.extend(_lifecycle_notes(info))
    return "\n".join(text)


def _lifecycle_notes(info: Any) -> list[str]:
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


# -- %jobs ----------------------------------------------------------------------------------------


def show_dashboard(shell: Any) -> Any:
    """``%jobs``: the live dashboard in a kernel, a text table in a terminal."""
    engine = _engine()
    if is_kernel(shell):
        try:
            from .widget import Dashboard
        except ImportError:
            return engine.list()
        from IPython.display import display

        dash = Dashboard(engine)
        display(_track(shell, dash), display_id=dash.display_id)  # type: ignore[no-untyped-call]
        return None
    print(text_table(engine))
    return None


def text_table(engine: Any) -> str:
    """One line per job: name, status, backend, duration, last line / result / error."""
    jobs = list(engine.jobs.values())
    if not jobs:
        return "no jobs"
    rows = [("NAME", "STATUS", "BACKEND", "TIME", "LAST")]
    for job in jobs:
        info = job.info()
        last = info.error or (f"-> {info.result}" if info.result is not None else info.last_line)
        if info.status == "pending":
            last = "; ".join(_lifecycle_notes(info)) or last  # when it runs next, not its past
        took = f"{info.duration:.1f}s" if info.duration is not None else ""
        rows.append((info.name, info.status, info.backend, took, (last or "")[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in rows
    ).rstrip()


def jobs_command(
    shell: Any,
    command: str,
    names: Sequence[str],
    *,
    lines: int,
    timeout: float | None,
    run: int | None = None,
) -> Any:
    """``%jobs COMMAND [NAME ...]``."""
    engine = _engine()
    try:
        # History and logs outlive the kernel: NAME may be a job of an earlier kernel.
        if command == "history":
            return engine.history(names[0] if names else None)
        if command == "log":
            _print_log(engine, names[0], run)
            return None
        if command == "fetch":
            return fetch(shell, engine, names[0])
        if command == "unschedule":
            # A stored schedule may belong to no job of this kernel (another kernel armed it).
            for name in names:
                if not engine.unschedule(name):
                    msg = f"no schedule named {name!r} is stored in {engine.folder}"
                    raise UsageError(msg)
            return None
    except JupyterExecutorError as exc:
        raise UsageError(_one_line(exc)) from None
    jobs = [_job(engine, n) for n in names]
    try:
        if command == "list":
            return engine.list(next_run=True)
        if command == "wait":
            _wait(engine, jobs, timeout)
        elif command == "cancel":
            for job in jobs:
                if not engine.cancel(job):
                    print(f"job {job.name!r} was already {job.status.value}")
        elif command == "rerun":
            _show_job(shell, engine.rerun(jobs[0]))
        elif command == "tail":
            text = jobs[0].tail(lines)
            if text:
                print(text)
        elif command == "remove":
            for job in jobs:
                engine.remove(job)
        elif command == "clear":
            count = engine.clear()
            print(f"removed {count} finished job{'s' if count != 1 else ''}")
    except JupyterExecutorError as exc:
        raise UsageError(str(exc)) from None
    return None


def save_views() -> None:
    """Store the final state of every view of a finished job in its outputs, now.

    The views' publishers do it too, a moment after a job ends; a headless run (nbclient,
    papermill) stops reading when its last cell, often ``%jobs wait``, ends: without this the
    update would come too late to be saved.
    """
    for ext in list(_active.values()):
        for widget in list(ext.widgets):
            hook = getattr(widget, "_maybe_save_final", None)
            if hook is not None:
                hook()


def _job(engine: Any, name: str) -> Any:
    try:
        return engine[name]
    except KeyError as exc:
        raise UsageError(str(exc.args[0]) if exc.args else f"no job named {name!r}") from None


def _wait(engine: Any, jobs: list[Any], timeout: float | None) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        if not jobs:
            engine.wait(timeout)
            jobs = [j for j in engine.jobs.values() if not j.forever]
        else:
            from .engine import _wait_view

            # shown under the cell as engine.wait() shows its jobs
            with _wait_view(engine, lambda: [j for j in jobs if not j.done()]):
                for job in jobs:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    engine.wait_job(job, left)
    except KeyboardInterrupt:
        # ■ interrupts the waiting cell only; say so, since the jobs go on
        print("stopped waiting; the jobs keep running (%jobs cancel NAME stops one)")
        return
    save_views()
    running = [j.name for j in jobs if not j.done()]
    if running:
        print(f"still running after {timeout:g} s: {', '.join(running)}")
    for job in jobs:
        info = job.info()
        if job.done() and info.status != "done":
            print(f"job {info.name!r} {info.status}: {info.error}")


def _print_log(engine: Any, name: str, run: int | None) -> None:
    """Print the log of ``name``'s latest run, or of its ``run``-th kept run (1 = oldest)."""
    job = engine.jobs.get(name)
    if job is not None:
        files = job.logs()  # flushes what the job wrote so far
    else:
        from ._logs import logs_of

        path = engine.log_path(name)
        files = logs_of(path.parent, path.stem)
        if not files:
            known = ", ".join(list(engine.jobs)[:10]) or "none"
            msg = f"no job named {name!r} (jobs: {known}) and no log of it in {path.parent}"
            raise UsageError(msg)
    if not files:
        print(f"job {name!r} has no log yet")
        return
    if run is None:
        run = -1
    if not -len(files) <= run <= len(files):
        which = "1 log" if len(files) == 1 else f"{len(files)} logs"
        msg = (
            f"--run {run}: job {name!r} has {which} kept (--run 1 to {len(files)}, oldest "
            f"first, or -1 to -{len(files)} from the latest)"
        )
        raise UsageError(msg)
    path = files[run - 1 if run > 0 else run]
    print(Path(path).read_text(encoding="utf-8", errors="replace"), end="")


# -- display routing -----------------------------------------------------------------------------


def _route_publish(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def publish(data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> Any:
        out = current_output()
        if out is None:
            return original(data, metadata, *args, **kwargs)
        out.display(data, metadata)
        return None

    publish._jupyter_executor_original = original  # type: ignore[attr-defined]
    return publish


def _route_clear(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def clear_output(*args: Any, **kwargs: Any) -> Any:
        # clear_output() in a job would clear the foreground cell: a job's view is append-only
        if current_output() is None:
            return original(*args, **kwargs)
        return None

    clear_output._jupyter_executor_original = original  # type: ignore[attr-defined]
    return clear_output


def install_display_routing(shell: Any) -> None:
    """Route ``display()`` calls made inside jobs to the job (idempotent)."""
    pub = shell.display_pub
    for attr, wrap in (("publish", _route_publish), ("clear_output", _route_clear)):
        current = getattr(pub, attr)
        if not hasattr(current, "_jupyter_executor_original"):
            setattr(pub, attr, wrap(current))


def uninstall_display_routing(shell: Any) -> None:
    pub = shell.display_pub
    for attr in ("publish", "clear_output"):
        if hasattr(getattr(pub, attr), "_jupyter_executor_original"):
            with contextlib.suppress(AttributeError):
                delattr(pub, attr)  # the instance attribute; the class method shows again


# -- terminal fallback ----------------------------------------------------------------------------


class TerminalEcho:
    """Print job output in terminal IPython as ``[job NAME] line``.

    Lines are printed while the prompt waits for input (prompt_toolkit puts them above the
    prompt), held back while a foreground cell runs, and printed when it ends. One daemon
    thread, woken by engine events, coalescing bursts; :meth:`close` stops it.
    """

    interval = 0.2

    def __init__(self, shell: Any, engine: Any, stream: Callable[[], Any] | None = None) -> None:
        self._shell = shell
        self._engine = engine
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
                self.flush()

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
                stream.write("\n".join(text) + "\n")
                stream.flush()

    def _new_lines(self, job: Any) -> list[str]:
        key = id(job)
        info = job.info()
        out = job._output
        new: list[str] = []
        if out is not None:
            new.extend(self._complete_lines(key, out))
            displays = out.displays
            seen = self._displays.get(key, 0)
            new.extend(str(data.get("text/plain", "<display>")) for data, _ in displays[seen:])
            self._displays[key] = len(displays)
        finished = info.status in ("done", "failed", "cancelled")
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
def _temporary_echo(shell: Any, engine: Any) -> Iterator[None]:
    """Echo the lines of another engine than the kernel's while a terminal cell waits for it."""
    echo = TerminalEcho(shell, engine)
    try:
        yield
    finally:
        echo.flush()
        echo.close()


@contextlib.contextmanager
def _routed_patch_stdout(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[None]:
    # IPython's prompt replaces sys.stdout by prompt_toolkit's proxy while it waits for input;
    # wrap that proxy too, or jobs printing while the prompt waits would bypass their capture.
    with original(*args, **kwargs):
        _capture.install()
        yield


# -- the extension's state -----------------------------------------------------------------------


def _track(shell: Any, widget: Any) -> Any:
    """Remember a view so that unloading the extension closes it (and stops its thread)."""
    ext = _active.get(id(shell))
    if ext is not None and hasattr(widget, "close"):
        ext.widgets.add(widget)
    return widget


def traceback_formatter(shell: Any) -> Callable[[BaseException, Any], str]:
    """Format a job's exception as the shell formats a failed cell's: ``Cell In[3], line 4``
    with the cell's lines around it, in the shell's mode and colours (IPython's ``ultratb``; a
    new formatter per call: jobs fail in other threads than the shell's)."""

    def format_exception(exc: BaseException, tb: Any) -> str:
        from IPython.core.ultratb import AutoFormattedTB

        shown = shell.InteractiveTB
        formatter = AutoFormattedTB(  # type: ignore[no-untyped-call]
            mode=getattr(shown, "mode", "Context"),
            theme_name=getattr(shown, "_theme_name", "linux"),
        )
        return str(formatter.stb2text(formatter.structured_traceback(type(exc), exc, tb)))

    return format_exception


_FILE_LINE = re.compile(r'File "(?P<file>[^"\n]+)", line (?P<line>\d+)')


def traceback_renamer(shell: Any) -> Callable[[str], str]:
    """Rename the cells in a traceback formatted elsewhere (a worker process ran the cell under
    the name the shell cached it by): ``File "/tmp/ipykernel_1/2.py", line 4`` becomes
    ``Cell In[3], line 4``, as IPython names them."""

    def rename(text: str) -> str:
        names = getattr(shell.compile, "_filename_map", {})

        def one(m: re.Match[str]) -> str:
            count = names.get(m["file"])
            return f"Cell In[{count}], line {m['line']}" if count is not None else m[0]

        return _FILE_LINE.sub(one, text)

    return rename


class _Extension:
    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.echo: TerminalEcho | None = None
        self.patched_prompt: Any = None
        self.widgets: weakref.WeakSet[Any] = weakref.WeakSet()
        self.previous_wait_display: Any = None

    def start(self) -> None:
        from . import engine as engine_module

        install_display_routing(self.shell)
        self.previous_wait_display = engine_module.set_wait_display(self.wait_display)
        _capture.install()
        _pyplot.activate()
        _traceback.set_formatter(traceback_formatter(self.shell), traceback_renamer(self.shell))
        if is_kernel(self.shell):
            # A graceful kernel shutdown (what nbconvert, papermill and a restart do) runs no
            # atexit handler, but the kernel sets shell.exit_now when it handles the request.
            self.shell.observe(self._kernel_exiting, names="exit_now")
            return
        self.echo = TerminalEcho(self.shell, _engine())
        with contextlib.suppress(ImportError):
            from IPython.terminal import interactiveshell as terminal

            names = vars(terminal)  # the module's globals: prompt_for_code looks it up there
            original = names["patch_stdout"]
            if not isinstance(original, functools.partial):
                names["patch_stdout"] = functools.partial(_routed_patch_stdout, original)
                self.patched_prompt = original

    def wait_display(self, engine: Any, jobs: list[Any]) -> contextlib.AbstractContextManager[Any]:
        """What a blocking wait (``engine.wait()``, ``orchestrate()``, ``%jobs wait``) on the
        main thread shows: a live view under the cell in a kernel; in a terminal, the jobs'
        lines as ``[job NAME] line`` as they come (the echo holds them back while a cell runs)."""
        if is_kernel(self.shell):
            from ._wait_view import CellWaitView

            return CellWaitView(self.shell.kernel, engine, jobs)
        echo = self.echo
        if echo is not None and echo._engine is engine:
            return echo.live()
        return _temporary_echo(self.shell, engine)

    def _kernel_exiting(self, change: Mapping[str, Any]) -> None:
        """The kernel is shutting down: record its unfinished jobs as cancelled, say so."""
        if not change["new"]:
            return
        from .engine import shutdown_all

        # The kernel waits a few seconds (jupyter_client's shutdown_wait_time, 5 s by
        # default) before it is killed: stay well within that.
        stopped = shutdown_all("kernel shut down", timeout=1.0)
        if stopped:
            names = ", ".join(stopped[:5]) + (", ..." if len(stopped) > 5 else "")
            jobs = "1 job" if len(stopped) == 1 else f"{len(stopped)} jobs"
            # the process's own stderr: the kernel's output channel is closing (a headless
            # run shows this in its terminal)
            print(
                f"jupyter_executor: the kernel shut down while {jobs} had not finished "
                f"({names}): recorded as cancelled ('kernel shut down'); end a headless "
                "notebook with %jobs wait",
                file=sys.__stderr__,
                flush=True,
            )

    def stop(self) -> None:
        if is_kernel(self.shell):
            with contextlib.suppress(ValueError):
                self.shell.unobserve(self._kernel_exiting, names="exit_now")
        for widget in list(self.widgets):
            with contextlib.suppress(Exception):
                widget.close()
        self.widgets.clear()
        if self.echo is not None:
            self.echo.close()
            self.echo = None
        if self.patched_prompt is not None:
            from IPython.terminal import interactiveshell as terminal

            vars(terminal)["patch_stdout"] = self.patched_prompt
            self.patched_prompt = None
        from . import engine as engine_module

        current = engine_module.set_wait_display(self.previous_wait_display)
        if current != self.wait_display:  # another hook was installed after ours: keep it
            engine_module.set_wait_display(current)
        engine = engine_module._default
        if engine is not None:
            engine.shutdown()
        uninstall_display_routing(self.shell)
        _capture.uninstall()
        _traceback.set_formatter(None)
        _pyplot.deactivate()


_active: dict[int, _Extension] = {}


def activate(shell: Any) -> None:
    """Set up display routing (and the terminal echo); idempotent per shell."""
    if id(shell) in _active:
        return
    ext = _active[id(shell)] = _Extension(shell)
    ext.start()


def deactivate(shell: Any) -> None:
    """Shut the engine down and undo :func:`activate` (idempotent)."""
    ext = _active.pop(id(shell), None)
    if ext is not None:
        ext.stop()
    else:
        from . import engine as engine_module

        if engine_module._default is not None:
            engine_module._default.shutdown()
