"""What the magics do: submit a cell or a command, and the ``%jobs`` commands.

:mod:`.magics` parses the arguments and calls these; they call the engine's public API, raise
``UsageError`` (one line) for a user's mistake, and show what they made with :mod:`._display`.
The rest of the IPython side lives in :mod:`._extension` (loading, display routing, the kernel's
exit hook) and :mod:`._terminal` (the plain-text views).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
                requires=list(requires), retries=retries, timeout=timeout, replace=replace,
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


@dataclass(frozen=True)
class _Call:
    """What one ``%jobs COMMAND`` line gives its handler besides the names or jobs."""

    shell: Any
    engine: Any
    lines: int
    timeout: float | None
    run: int | None


def _history(call: _Call, names: Sequence[str]) -> Any:
    return call.engine.history(names[0] if names else None)


def _log(call: _Call, names: Sequence[str]) -> None:
    _print_log(call.engine, names[0], call.run)


def _fetch(call: _Call, names: Sequence[str]) -> Any:
    return fetch(call.shell, call.engine, names[0])


def _unschedule(call: _Call, names: Sequence[str]) -> None:
    # A stored schedule may belong to no job of this kernel (another kernel armed it).
    for name in names:
        if not call.engine.unschedule(name):
            msg = f"no schedule named {name!r} is stored in {call.engine.folder}"
            raise UsageError(msg)


def _list(call: _Call, jobs: list[Any]) -> Any:
    return call.engine.list(next_run=True)


def _wait_for(call: _Call, jobs: list[Any]) -> None:
    _wait(call.engine, jobs, call.timeout)


def _cancel(call: _Call, jobs: list[Any]) -> None:
    for job in jobs:
        if not call.engine.cancel(job):
            print(f"job {job.name!r} was already {job.status.value}")


def _rerun(call: _Call, jobs: list[Any]) -> None:
    show_job(call.shell, call.engine.rerun(jobs[0]))


def _tail(call: _Call, jobs: list[Any]) -> None:
    text = jobs[0].tail(call.lines)
    if text:
        print(text)


def _remove(call: _Call, jobs: list[Any]) -> None:
    for job in jobs:
        call.engine.remove(job)


def _clear(call: _Call, jobs: list[Any]) -> None:
    count = call.engine.clear()
    print(f"removed {count} finished job{'s' if count != 1 else ''}")


#: The commands that take names, not jobs: history and logs outlive the kernel, so NAME may
#: be a job of an earlier kernel.
_BY_NAME: dict[str, Callable[[_Call, Sequence[str]], Any]] = {
    "history": _history,
    "log": _log,
    "fetch": _fetch,
    "unschedule": _unschedule,
}
#: The commands on jobs of this kernel's engine.
_BY_JOB: dict[str, Callable[[_Call, list[Any]], Any]] = {
    "list": _list,
    "wait": _wait_for,
    "cancel": _cancel,
    "rerun": _rerun,
    "tail": _tail,
    "remove": _remove,
    "clear": _clear,
}


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
    call = _Call(shell, kernel_engine(), lines, timeout, run)
    by_name = _BY_NAME.get(command)
    if by_name is not None:
        try:
            return by_name(call, names)
        except JupyterExecutorError as exc:
            raise UsageError(_one_line(exc)) from None
    jobs = [_job(call.engine, n) for n in names]
    by_job = _BY_JOB.get(command)
    if by_job is None:
        return None
    try:
        return by_job(call, jobs)
    except JupyterExecutorError as exc:
        raise UsageError(str(exc)) from None


def _job(engine: Any, name: str) -> Any:
    try:
        return engine[name]
    except KeyError as exc:
        raise UsageError(str(exc.args[0]) if exc.args else f"no job named {name!r}") from None


def _wait(engine: Any, jobs: list[Any], timeout: float | None) -> None:
    try:
        jobs = _wait_until_done(engine, jobs, timeout)
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


def _wait_until_done(engine: Any, jobs: list[Any], timeout: float | None) -> list[Any]:
    """Wait for ``jobs`` (none: every job that is not ``forever``, scheduled or restarted
    always) up to ``timeout`` seconds in all; return the jobs waited for."""
    if not jobs:
        engine.wait(timeout)
        # what engine.wait() waits for: not schedules nor jobs restarted always, which are
        # never "still running after" the timeout, even without one
        return [j for j in engine.jobs.values() if j.runstate.waited]
    from .engine import showing_wait

    deadline = None if timeout is None else time.monotonic() + timeout
    # shown under the cell as engine.wait() shows its jobs
    with showing_wait(engine, lambda: [j for j in jobs if not j.done()]):
        for job in jobs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            engine.wait_job(job, left)
    return jobs


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
