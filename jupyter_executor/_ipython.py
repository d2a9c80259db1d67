"""What the magics do: submit a cell or a command, and the ``%jobs`` commands.

:mod:`.magics` parses the arguments and calls these; they call the engine's public API, raise
``UsageError`` (one line) for a user's mistake, and show what they made with :mod:`._display`.
The rest of the IPython side lives in :mod:`._extension` (loading, display routing, the kernel's
exit hook) and :mod:`._terminal` (the plain-text views).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from . import _display
from ._cell import CellError, analyse
from ._display import show_job
from .errors import JupyterExecutorError

__all__ = [
    "fetch",
    "jobs_command",
    "kernel_engine",
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


def kernel_engine() -> Any:
    """The kernel's engine; made with the options set by ``JobMagics`` if there is none yet."""
    from .engine import current_engine, get_engine

    if current_engine() is None:
        return get_engine(**_engine_defaults)
    return get_engine()


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

    engine = kernel_engine()
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
        show_job(shell, job)
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
    show_job(shell, job)


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

    engine = kernel_engine()
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
    show_job(shell, job)


# -- %jobs ----------------------------------------------------------------------------------------


def show_dashboard(shell: Any) -> Any:
    """``%jobs``: the live dashboard in a kernel, a text table in a terminal."""
    return _display.show_dashboard(shell, kernel_engine())


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
    engine = kernel_engine()
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
            show_job(shell, engine.rerun(jobs[0]))
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
            from .engine import showing_wait

            # shown under the cell as engine.wait() shows its jobs
            with showing_wait(engine, lambda: [j for j in jobs if not j.done()]):
                for job in jobs:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    engine.wait_job(job, left)
    except KeyboardInterrupt:
        # ■ interrupts the waiting cell only; say so, since the jobs go on
        print("stopped waiting; the jobs keep running (%jobs cancel NAME stops one)")
        return
    _display.save_views()
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
