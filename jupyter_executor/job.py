"""The job: what to run and how, and what happened to it. Scheduling lives in :mod:`.engine`."""

from __future__ import annotations

import asyncio
import inspect
import operator
import os
import secrets
import types
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Unpack

from ._capture import Output
from ._conditions import flatten
from ._jobinfo import JobInfo
from ._lifecycle import Lifecycle, has_lifecycle
from ._options import (
    BACKENDS,
    DEFAULTS,
    OPTIONS,
    RESTART_POLICIES,
    JobOptions,
    check_options,
    check_os_text,
)
from ._runstate import RunState
from ._snapshot import snapshot_of
from ._status import FINISHED, Status, set_status
from ._text import error_message, short_repr
from .errors import InvalidOption, InvalidOptionType, JobCancelled, JobNotFinished, SubmitError


class JobHost(Protocol):
    """What a job sees of the engine it was submitted to (``job.engine``).

    A protocol, not ``Engine``: job.py never imports engine.py (the engine imports the job),
    so the job model stays out of the engine's import circle (issue 10).
    """

    #: Whether log lines get a time stamp.
    log_timestamps: bool
    #: How many earlier logs of a job are kept.
    keep_logs: int
    #: Whether a job's end is told in the browser by default (the job's ``notify=None``).
    notify: bool

    def log_path(self, name: str) -> Path:
        """The log file of the job called ``name``."""

    def cancel(self, job: Job | str, reason: str = ...) -> bool:
        """Ask ``job`` to stop."""

    def rerun(self, job: Job | str) -> Job:
        """Run finished ``job`` again."""

    def _allows(self, name: str) -> tuple[str, ...]: ...

    def _emit(self, event: str, job: Job) -> None: ...


__all__ = ["BACKENDS", "RESTART_POLICIES", "Job", "JobInfo", "Lifecycle"]


def _frozen(slot: str, what: str, check: Callable[[Any], Any] | None) -> property:
    """A property over ``slot`` that refuses changes once the job is submitted."""

    def set_value(job: Job, value: Any) -> None:
        if job.status is not Status.CREATED:
            msg = (
                f"job {job.name!r} is already submitted: its {what} cannot change "
                "(submit a new Job instead)"
            )
            raise SubmitError(msg)
        if check is not None:
            value = check(value)
        setattr(job, slot, value)
        if slot == "_forever":  # whether wait() waits for it follows
            life = job.runstate.life
            job.runstate.waited = not value and (
                life is None or (not life.periodic and life.restart != "always")
            )

    return property(operator.attrgetter(slot), set_value, doc=f"The job's {what}.")


#: Options that make neither a long-running job nor a dask job's submit options: a job given
#: no others (``submit(fn)``, ``Job(coro, name=...)``) skips those checks.
_PLAIN_OPTIONS = frozenset({"name", "label", "backend"})


def name_generated(job: Job, name: str) -> None:
    """Give unsubmitted ``job`` the name its engine generated for it.

    The engine's own names are well formed: unlike ``job.name = ...``, no check (once per
    unnamed job submitted, issue 14).
    """
    job._name = name


def requirements_named(job: Job, names: tuple[str, ...]) -> None:
    """Give unsubmitted ``job`` the names of its requirements, as its engine found them.

    Unlike ``job.requirements = ...``, no check nor copy: the engine made the tuple from the
    job's own ``requires()`` (once per job of a chain, issue 14).
    """
    job._requirements = names


def _check_name(name: Any) -> str | None:
    checked: str | None = OPTIONS["name"].check(name)  # the option's check (_options.py)
    return checked


def _check_backend(backend: Any) -> str:
    # Unlike the option, the attribute is never None: the backend was inferred by then.
    checked = OPTIONS["backend"].check(backend)
    if checked is None:
        msg = f"backend=None is not a backend: use one of {', '.join(BACKENDS)}"
        raise InvalidOptionType(msg)
    return str(checked)


class Job:
    """One piece of work for an :class:`~jupyter_executor.Engine`.

    Parameters
    ----------
    target
        What to run: a callable (thread backend by default), a coroutine function or coroutine
        object (async backend), or a shell command string / argv list (subprocess backend).
    args, kwargs
        Arguments for a callable target. A :class:`Job` (or its ``future``) among them makes a
        dependency, and is replaced by that job's result when this one starts.
    **options
        The job options, each checked when the job is made (one list:
        :class:`~jupyter_executor._options.JobOptions`):

        - ``name``, ``label``: The job's unique name in its engine (``label`` is an alias, as in
          asynciojobs); a name is generated from the target when neither is given.
        - ``backend``: ``"async"``, ``"thread"``, ``"process"``, ``"subprocess"`` or ``"dask"``;
          inferred from the target when None.
        - ``requires``: Jobs or names that must be done before this one starts (see
          :meth:`requires`).
        - ``forever``: A monitor loop: not waited for by ``wait()``/``orchestrate()``, cancelled
          when the finite work is done (``orchestrate``) or at shutdown.
        - ``retries``, ``retry_delay``: Run again up to ``retries`` times after a failure or a
          timeout, waiting ``retry_delay`` (default 1 s), doubled after each attempt.
        - ``timeout``: How long an attempt may run before it is stopped. Every duration option
          (``timeout``, ``retry_delay``, ``restart_delay``, ``every``) takes seconds, a
          :class:`~datetime.timedelta` or text: ``"90"``, ``"1.5"``, ``"5m"``, ``"2 min"``,
          ``"1h30m"``, ``"1d"``.
        - ``condition``: A :class:`~jupyter_executor.Condition` that must also be met before the
          job starts.
        - ``env``, ``cwd``: Extra environment variables and working directory (subprocess and
          process jobs; by default the kernel's environment and working directory when the job
          starts).
        - ``resources``, ``priority``: Dask jobs only: worker resources the task needs (``{"GPU":
          1}``, as declared by the workers) and its scheduling priority (higher first); passed to
          ``Client.submit``.
        - ``notify``: Say when the job ends with a browser notification (its name, status and
          duration), sent by its ``%%job`` view; None (default) follows ``engine.notify``.
        - ``every``, ``cron``, ``start``: Run periodically (``every="2 min"``, a timedelta, or a
          cron expression), from ``start`` (a datetime or ISO string) on; ``start`` alone runs once
          at that time. A run still going at its next time is not started twice (the tick is
          skipped).
        - ``restart``, ``restart_delay``, ``max_restarts``: Restart policy: ``"no"``,
          ``"on-failure"`` or ``"always"``; the delay doubles after each consecutive failure; after
          ``max_restarts`` restarts the job stays failed.
        - ``detach``: A command, or (through ``Engine.submit``) a function that cloudpickle can
          ship (with ``name=``; its arguments are pickled now), that outlives the kernel: a new
          engine on the same folder re-attaches to it. A function's return value comes back as
          ``engine[name].outputs["result"]`` (see :mod:`jupyter_executor._detached`).
        - ``inputs``, ``outputs``, ``force``: Make-like: paths or globs. A job whose outputs exist
          and are newer than its inputs is marked done ("up to date") without running, unless
          ``force``; a job that succeeds without producing its outputs fails, naming the missing
          ones.
        - ``before``, ``after``: Callables run with the job before and after each run (in its
          thread or task).

    Raises
    ------
    InvalidOption
        A bad option value (``InvalidOptionType``, also a TypeError, for a wrong type or an
        unknown keyword), in one line naming the option and the value.

    Notes
    -----
    The options are written once, in :class:`~jupyter_executor._options.JobOptions` (their
    types) and ``_options.OPTIONS`` (their defaults, checks and ``%%job`` flags), which
    ``Job``, ``Engine.submit``, ``@launcher``, ``AbstractJob`` and the magics share.

    ``job.runstate`` is internal: the run state the engine's scheduler owns (see
    :mod:`jupyter_executor._runstate`); read the job's properties instead.

    Life cycle: ``created`` until submitted, then ``pending`` until its requirements are done,
    its condition is met and a slot of its backend is free, then ``running``, and finally
    ``done``, ``failed`` or ``cancelled``. ``rerun()`` brings a finished job back to ``pending``.
    A coroutine *object* can be awaited only once: pass the coroutine function to be able to
    retry or rerun.

    Examples
    --------
    >>> import asyncio
    >>> from jupyter_executor import Engine, Job
    >>> async def double(x):
    ...     await asyncio.sleep(0)
    ...     return 2 * x
    >>> a = Job(double(1), name="a")
    >>> b = Job(double(2), name="b").requires(a)
    >>> Engine(a, b).orchestrate()
    True
    >>> b.result()
    4
    """

    __slots__ = (
        "__weakref__",
        "_backend",
        "_forever",
        "_name",
        "_requirements",
        "args",
        "attempts",
        "children",
        "cwd",
        "engine",
        "env",
        "finished",
        "kind",
        "kwargs",
        "notify",
        "pid",
        "previous",
        "retries",
        "retry_delay",
        "runstate",
        "started",
        "status",
        "submitted",
        "target",
        "timeout",
        "traceback",
    )

    def __init__(
        self,
        target: Any,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[JobOptions],
    ) -> None:
        try:
            # Every option at the door, one line naming it and its value (see _options).
            if _PLAIN_OPTIONS.issuperset(options):
                # A plain job (``submit(fn)``, ``Job(coro, name=...)``): the options given
                # checked, the others read from the shared defaults, not a copy of them
                # (issue 14: once per job of a burst).
                opts: Mapping[str, Any] = DEFAULTS
                name, backend = _plain_options(options) if options else (None, None)
                self.kind, backend = _kind_and_backend(target, backend, 0)
                dask_options = life = None
            else:
                opts = check_options(options)
                name = _one_name(opts["name"], opts["label"])
                self.kind, backend = _kind_and_backend(target, opts["backend"], opts["retries"])
                dask_options = _dask_options(backend, opts["resources"], opts["priority"])
                life = Lifecycle.build(self.kind, opts) if has_lifecycle(opts) else None
            if self.kind == "command":
                _no_arguments(args, kwargs)
        except BaseException:
            # A refused coroutine object will never run: close it, or Python warns later
            # that it was never awaited, far from the line that made it.
            if inspect.iscoroutine(target):
                target.close()
            raise
        self.target = target
        self.args = tuple(args)
        self.kwargs = dict(kwargs) if kwargs else {}
        self._name = name
        self._backend = backend
        self._forever: bool = opts["forever"]
        self.retries: int = opts["retries"]
        self.retry_delay: float = opts["retry_delay"]
        self.timeout: float | None = opts["timeout"]
        self.env: dict[str, str] | None = opts["env"]
        self.cwd: str | os.PathLike[str] | None = opts["cwd"]
        #: Say in the browser when this job ends (None: as ``engine.notify`` says).
        self.notify: bool | None = opts["notify"]
        #: Internal: the run state the engine's scheduler owns (see :mod:`._runstate`); the
        #: properties above and below are its public face.
        self.runstate = run = RunState(
            opts["condition"],
            _has_job_args(self.args, self.kwargs) if args or kwargs else False,
            dask_options,
        )
        run.life = life
        # Waited for by wait()/orchestrate(): not monitors, schedules or jobs restarted always.
        run.waited = not self._forever and (
            life is None or (not life.periodic and life.restart != "always")
        )
        self.engine: JobHost | None = None
        self.status = Status.CREATED
        self._requirements: tuple[str, ...] = ()
        self.submitted: float | None = None
        self.started: float | None = None
        self.finished: float | None = None
        self.attempts = 0
        self.traceback: str | None = None
        #: Jobs submitted to the same engine while this one ran (its sub-tasks).
        self.children: list[Job] | tuple[()] = ()
        self.pid: int | None = None
        self.previous: list[JobInfo] | tuple[()] = ()  # earlier runs (a list once there are)
        if opts["requires"]:
            self.requires(opts["requires"])

    # What the engine files the job under and schedules it by: fixed once it is submitted
    # (a renamed job would stay filed under its old name). Reads go through a C-level
    # attrgetter: the engine reads these on every job, writes are rare.
    if TYPE_CHECKING:  # what mypy sees: properties with setters

        @property
        def name(self) -> str | None: ...
        @name.setter
        def name(self, value: str | None) -> None: ...
        @property
        def backend(self) -> str: ...
        @backend.setter
        def backend(self, value: str) -> None: ...
        @property
        def forever(self) -> bool: ...
        @forever.setter
        def forever(self, value: bool) -> None: ...
        @property
        def requirements(self) -> tuple[str, ...]: ...
        @requirements.setter
        def requirements(self, value: tuple[str, ...]) -> None: ...
    else:
        name = _frozen("_name", "name", _check_name)
        backend = _frozen("_backend", "backend", _check_backend)
        forever = _frozen("_forever", "forever", None)
        requirements = _frozen("_requirements", "requirements", tuple)

    # building ------------------------------------------------------------------------------
    def requires(self, *jobs: Any) -> Job:
        """Add requirements: jobs, job names, None, or (nested) lists of them; returns self.

        Must be called before the job is submitted.
        """
        if self.status is not Status.CREATED:
            msg = f"job {self.name!r} is already submitted; declare requirements before submitting"
            raise SubmitError(msg)
        # One job or name (a chain's link): no flattening (issue 14).
        items = jobs if len(jobs) == 1 and isinstance(jobs[0], (Job, str)) else flatten(jobs)
        for item in items:
            if item is self:
                msg = f"job {self.name!r} cannot require itself"
                raise SubmitError(msg)
            if not isinstance(item, (Job, str)):
                msg = f"requires() takes jobs or job names, not {item!r}"
                raise InvalidOptionType(msg)
            if not self.runstate.requires_spec:
                self.runstate.requires_spec = []
            self.runstate.requires_spec.append(item)
        return self

    def required_jobs(self) -> list[Any]:
        """Everything this job depends on, as given: requirements, job arguments, condition jobs.

        Until it is submitted: from then on, :attr:`requirements` names them.
        """
        deps: list[Any] = list(self.runstate.requires_spec)
        if self.runstate.arg_jobs:
            deps += [job_of(a) for a in (*self.args, *self.kwargs.values()) if job_of(a)]
        return deps

    def condition_jobs(self) -> tuple[Any, ...]:
        return self.runstate.condition.jobs() if self.runstate.condition is not None else ()

    # long-running options ------------------------------------------------------------------
    @property
    def next_run(self) -> float | None:
        """When a scheduled job runs next (epoch seconds), or None."""
        return self.runstate.life.next_run if self.runstate.life is not None else None

    @property
    def restarts(self) -> int:
        """How many times the restart policy has restarted the job."""
        return self.runstate.life.restarts if self.runstate.life is not None else 0

    @property
    def detach(self) -> bool:
        """True for a subprocess job that outlives the kernel."""
        return self.runstate.life is not None and self.runstate.life.detach

    @property
    def outputs(self) -> dict[str, Any]:
        """What a detached Python job left: the variables its cell assigned, and ``result``.

        For ``%%job NAME --detach`` cells and ``engine.submit(fn, detach=True, name=...)``,
        read from the file the job wrote next to its log, in this kernel or a later one.

        Raises
        ------
        JobNotFinished
            The job is still pending or running.
        OutputsError
            It left no outputs, or a value cannot be unpickled here (named in the message).
        """
        from ._outputs import load_outputs

        return load_outputs(self)

    @property
    def url(self) -> str | None:
        """The address of a web app job, once it answers."""
        return self.runstate.life.url if self.runstate.life is not None else None

    @property
    def identity(self) -> str | None:
        """A hash of what the job runs and the content of its inputs (for resuming flows)."""
        return self.runstate.life.identity if self.runstate.life is not None else None

    @property
    def pid_start_time(self) -> float | None:
        """When the job's process started (with ``pid``, identifies it; never a recycled pid)."""
        return self.runstate.life.pid_start_time if self.runstate.life is not None else None

    def logs(self) -> list[Path]:
        """The job's log files: archived runs, oldest first, then the current one."""
        from ._logs import logs_of

        path = self.log_path
        if path is None:
            return []
        if self.runstate.output is not None:
            self.runstate.output.flush()
        return logs_of(path.parent, path.stem)

    @property
    def id(self) -> str:
        """A random id, fixed for the life of this job object (executor-engine's ``job.id``).

        ``engine.get(job.id)`` finds the job again; the name stays the key of
        ``engine[name]`` and of the history (with the engine's id and the attempt).
        """
        if self.runstate.id is None:
            self.runstate.id = secrets.token_hex(8)
        return self.runstate.id

    @property
    def allows(self) -> tuple[str, ...]:
        """The names of the jobs that require this one (asynciojobs' "allows")."""
        engine = self.engine
        if engine is None or self.name is None:
            return ()
        return engine._allows(self.name)

    # results -------------------------------------------------------------------------------
    def done(self) -> bool:
        """True when the job is finished (done, failed or cancelled)."""
        return self.status in FINISHED

    def is_done(self) -> bool:
        """The same as :meth:`done` (asynciojobs' name)."""
        return self.status in FINISHED

    async def join(self) -> None:
        """``await job.join()``: wait until the job has finished, whatever its end.

        executor-engine's spelling; ``await job`` waits too and gives the result.
        """
        if self.status is Status.CREATED:
            msg = f"job {self.name!r} was never submitted, so joining it would wait forever"
            raise SubmitError(msg)
        fut = asyncio.wrap_future(self.future)
        await asyncio.wait([asyncio.shield(fut)])
        if fut.done() and not fut.cancelled():
            fut.exception()  # retrieved: no "exception was never retrieved" warning

    def result(self) -> Any:
        """The job's return value (a subprocess job's exit code).

        Raises
        ------
        JobNotFinished
            The job is not finished yet (``engine.wait_job(job)`` waits for it).
        Exception
            The job's own exception when it failed; :class:`JobCancelled` when it was cancelled.
        """
        status = self.status
        if status is Status.DONE:
            return self.runstate.result
        if status is Status.FAILED or (status is Status.CANCELLED and self.runstate.exception):
            assert self.runstate.exception is not None
            raise self.runstate.exception
        if status is Status.CANCELLED:
            raise JobCancelled(str(self.name), self.runstate.cancel_reason or "cancelled")
        msg = (
            f"job {self.name!r} is {status.value}; it has no result yet (wait with engine.wait_job)"
        )
        raise JobNotFinished(msg)

    def exception(self) -> BaseException | None:
        """The exception that ended the job, or None (also None while it runs)."""
        if self.status is Status.CANCELLED and self.runstate.exception is None:
            return JobCancelled(str(self.name), self.runstate.cancel_reason or "cancelled")
        return self.runstate.exception

    @property
    def cancel_requested(self) -> bool:
        """Whether the engine has asked the job to stop (cancel, timeout, shutdown) this run.

        Set and cleared by the engine's scheduler only; :func:`~jupyter_executor.cancelled`
        reads it from inside the job.
        """
        return self.runstate.cancel_requested

    @property
    def cancel_reason(self) -> str | None:
        """Why the job was cancelled (by the user, timeout, a failed dependency, shutdown)."""
        return self.runstate.cancel_reason if self.status is Status.CANCELLED else None

    @property
    def future(self) -> Future[Any]:
        """A :class:`concurrent.futures.Future` resolved when the job finishes.

        Passing it as an argument of another job works like passing the job itself.
        """
        fut = self.runstate.future
        if fut is None:
            fut = self.runstate.future = Future()
            fut._jupyter_executor_job = self  # type: ignore[attr-defined]
            if self.status in FINISHED:
                resolve_future(fut, self)
        return fut

    def __await__(self) -> Any:
        """``await job`` returns its result (raises its exception) without cancelling it.

        Awaiting does not submit (unlike scriptflow's tasks): a job never submitted would wait
        forever, so awaiting one raises :class:`~jupyter_executor.SubmitError` at once. Submit
        it first (``await engine.submit(job)``), or use a launcher's ``asubmit``.
        """
        if self.status is Status.CREATED:
            msg = (
                f"job {self.name!r} was never submitted, so awaiting it would wait forever: "
                "submit it first (await engine.submit(job))"
            )
            raise SubmitError(msg)
        return asyncio.shield(asyncio.wrap_future(self.future)).__await__()

    # output --------------------------------------------------------------------------------
    @property
    def output(self) -> Output:
        """Everything the job printed or displayed (created on first use)."""
        out = self.runstate.output
        if out is None:
            stamps = self.engine is not None and self.engine.log_timestamps
            out = self.runstate.output = Output(
                self._log_path, self._notify, archive=self._archive_log, timestamps=stamps
            )
        return out

    def _archive_log(self, path: Path) -> None:
        # A new run starts a new log; the previous one is kept with a timestamp (R executor).
        from ._logs import archive

        keep = self.engine.keep_logs if self.engine is not None else 20
        archive(path, keep=keep)

    @property
    def log_path(self) -> Path | None:
        """The job's log file in the engine's folder (None before it is submitted)."""
        return self._log_path()

    def _log_path(self) -> Path | None:
        if self.engine is None or self.name is None:
            return None
        return self.engine.log_path(self.name)

    def tail(self, n: int = 20) -> str:
        """The last ``n`` lines the job printed."""
        return self.runstate.output.tail(n) if self.runstate.output is not None else ""

    def _notify(self, event: str) -> None:
        engine = self.engine
        if engine is not None:
            engine._emit(event, self)

    def _set_progress(self, fraction: float, text: str) -> None:
        self.runstate.progress = (fraction, text)
        self._notify("progress")

    # control -------------------------------------------------------------------------------
    def cancel(self, reason: str = "cancelled by user") -> None:
        """Stop the job (see :meth:`Engine.cancel`)."""
        if self.engine is None:
            set_status(self, Status.CANCELLED)
            self.runstate.cancel_reason = reason
            return
        self.engine.cancel(self, reason)

    def rerun(self) -> Job:
        """Run a finished job again (see :meth:`Engine.rerun`)."""
        if self.engine is None:
            msg = f"job {self.name!r} was never submitted; submit it to an engine"
            raise SubmitError(msg)
        return self.engine.rerun(self)

    def _on_result(self, value: Any) -> Any:
        """Turn what an attempt returned into the job's result (runs in the engine's process).

        Subclasses override it, e.g. to write names a worker sent back into a namespace; an
        exception raised here fails the attempt like one raised by the target.
        """
        return value

    # inspection ----------------------------------------------------------------------------
    def info(self) -> JobInfo:
        """A frozen snapshot of the job."""
        return JobInfo(**{**snapshot_of(self).info_dict(), "tail": self.tail(20)})

    def describe(self) -> str:
        """What the job runs, in a few words (function name, command, ...)."""
        target = self.target
        if self.kind == "command":
            return target if isinstance(target, str) else " ".join(map(str, target))
        if self.kind == "coroutine":
            return f"{getattr(target, '__qualname__', 'coroutine')}()"
        return f"{getattr(target, '__qualname__', type(target).__name__)}()"

    def default_name(self) -> str:
        """A readable base for a generated name."""
        target = self.target
        if self.kind == "command":
            words = target.split() if isinstance(target, str) else [str(w) for w in target]
            base = Path(words[0]).name if words else "command"
        else:
            try:
                base = getattr(target, "__name__", None) or type(target).__name__
            except Exception:  # a proxy whose __getattr__ raises something else
                base = type(target).__name__
        return base.strip("<>") or "job"

    def __repr__(self) -> str:
        # asynciojobs' listing: the result or error, whom it requires and whom it allows.
        text = f"<Job {self.name!r} {self.status.value}"
        if self.status is Status.DONE:
            text += f" -> {short_repr(self.runstate.result)}"
        elif self.runstate.exception is not None:
            exc = self.runstate.exception
            text += f" ({type(exc).__name__}: {short_repr(error_message(exc))})"
        text += f" backend={self.backend}"
        if self.requirements:
            text += f" requires={list(self.requirements)}"
        allows = self.allows
        if allows:
            text += f" allows={list(allows)}"
        return text + ">"


# helpers -------------------------------------------------------------------------------------
def _one_name(name: str | None, label: str | None) -> str | None:
    if name is not None and label is not None and name != label:
        msg = f"give name= or label= (an alias), not both: {name!r} != {label!r}"
        raise InvalidOption(msg)
    return name if name is not None else label


def _plain_options(options: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The name (or label) and backend of a job given no other option, each checked."""
    name = label = backend = None
    for key, value in options.items():
        checked = OPTIONS[key].check(value)
        if key == "backend":
            backend = checked
        elif key == "name":
            name = checked
        else:
            label = checked
    return _one_name(name, label), backend


def _kind_and_backend(target: Any, backend: str | None, retries: int) -> tuple[str, str]:
    """What ``target`` is, and the backend that runs it (``backend=`` or inferred), checked."""
    kind, inferred = _classify(target)
    if backend is None:
        backend = inferred
    _check_target(kind, backend, target)
    if retries and kind == "coroutine":
        msg = (
            "a coroutine object can run only once, so it cannot be retried: "
            "pass the coroutine function and its arguments instead"
        )
        raise InvalidOption(msg)
    return kind, str(backend)


def _classify(target: Any) -> tuple[str, str]:
    kind = type(target)
    if kind is types.CoroutineType:  # fast paths for the two commonest targets
        return "coroutine", "async"
    if kind is types.FunctionType:
        if target.__code__.co_flags & inspect.CO_COROUTINE:
            return "coroutine function", "async"
        return "callable", "thread"
    if inspect.iscoroutine(target):
        return "coroutine", "async"
    if isinstance(target, (str, list, tuple)):
        if not target:
            msg = "an empty command cannot run"
            raise InvalidOption(msg)
        return "command", "subprocess"
    try:
        is_async = inspect.iscoroutinefunction(target)
    except Exception:  # a proxy whose __getattr__ raises other than AttributeError
        is_async = False
    if is_async:
        return "coroutine function", "async"
    if inspect.isawaitable(target):
        return "coroutine", "async"
    if callable(target):
        return "callable", "thread"
    msg = (
        f"cannot run {target!r}: give a callable, a coroutine (function), "
        "or a shell command string / argv list"
    )
    raise InvalidOptionType(msg)


def _dask_options(
    backend: str, resources: Mapping[str, float] | None, priority: int | None
) -> dict[str, Any] | None:
    """The options for ``Client.submit`` of a dask job (None when there are none).

    Their values were checked with the other options (see :mod:`._options`)."""
    if resources is None and priority is None:
        return None
    if backend != "dask":
        msg = f"resources= and priority= are for backend='dask', not {backend!r}"
        raise InvalidOption(msg)
    options: dict[str, Any] = {}
    if resources is not None:
        options["resources"] = dict(resources)
    if priority is not None:
        options["priority"] = priority
    return options


def _check_target(kind: str, backend: str, target: Any) -> None:
    if kind == "coroutine" and backend != "async":
        if inspect.iscoroutine(target):
            target.close()  # it will never run; closing avoids a "never awaited" warning
        msg = f"a coroutine object runs on the async backend only, not {backend!r}"
        raise InvalidOption(msg)
    if kind == "command" and backend not in ("subprocess", "dask"):
        # On dask, a command runs in a subprocess of a worker (scriptflow on a cluster or an
        # HPC queue).
        msg = f"a command runs on the subprocess or dask backend, not {backend!r}"
        raise InvalidOption(msg)
    if backend == "local" and kind != "callable":
        msg = "the local backend calls a plain function on the engine's loop: give a callable"
        raise InvalidOption(msg)
    if kind != "command" and backend == "subprocess":
        msg = "the subprocess backend runs commands: give a string or an argv list"
        raise InvalidOption(msg)
    if kind == "command":
        _check_command(target)


def _no_arguments(args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> None:
    """Refuse the arguments given with a command: it has no function to pass them to (they
    used to be dropped without a word)."""
    if not args and not kwargs:
        return
    given = short_repr(tuple(args) if args else dict(kwargs or {}))
    msg = f"a command takes no arguments: write them in it, not as {given}"
    raise InvalidOption(msg)


def _check_command(command: str | Sequence[Any]) -> None:
    """Refuse a command the system cannot be given: an argv item that is not text, a NUL, a
    lone surrogate (see :func:`~._options.os_text_problem`).

    Found here, at submit, and not when the command is spawned: a bad item used to fail the
    job later with a message that named no item, or reach the subprocess zygote that all the
    engine's commands share.
    """
    if isinstance(command, str):
        check_os_text("command", command)
        return
    for i, item in enumerate(command):
        # A path is text: the backends run os.fspath(item). Bytes are refused, not decoded:
        # the job, its history and its listing show the command as given, and bytes are not
        # text there (JSON); os.fsdecode makes the one text that encodes back to those bytes.
        text = os.fspath(item) if isinstance(item, os.PathLike) else item
        if isinstance(text, bytes):
            msg = f"command[{i}]={text!r} is bytes: give text, os.fsdecode({text!r})"
            raise InvalidOptionType(msg)
        if not isinstance(text, str):
            msg = f"command[{i}]={short_repr(item)} is not text: give str or a path (os.PathLike)"
            raise InvalidOptionType(msg)
        check_os_text(f"command[{i}]", text)


def job_of(value: Any) -> Job | None:
    """The job ``value`` is, or whose ``future`` it is; None for anything else."""
    if isinstance(value, Job):
        return value
    if isinstance(value, Future):
        return getattr(value, "_jupyter_executor_job", None)
    return None


def _has_job_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return any(job_of(a) is not None for a in args) or any(
        job_of(v) is not None for v in kwargs.values()
    )


def resolve_args(job: Job) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The job's arguments with jobs (and job futures) replaced by their results."""
    if not job.runstate.arg_jobs:
        return job.args, job.kwargs

    def sub(v: Any) -> Any:
        dep = job_of(v)
        return dep.result() if dep is not None else v

    return tuple(sub(a) for a in job.args), {k: sub(v) for k, v in job.kwargs.items()}


def resolve_future(fut: Future[Any], job: Job) -> None:
    """Settle ``fut`` (the job's ``future``) with how finished ``job`` ended, unless done."""
    if fut.done():
        return
    if job.status is Status.DONE:
        fut.set_result(job.runstate.result)
    else:
        exc = job.exception()
        fut.set_exception(exc if exc is not None else JobCancelled(str(job.name), "cancelled"))
