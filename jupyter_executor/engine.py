"""The engine: a registry of jobs and a scheduler on its own event loop, in its own thread.

Scheduling never depends on the caller's thread: a notebook cell that blocks does not stop
dependent jobs from starting (docs/kernel-notes.md §2). Every status change is made by
the scheduler (_scheduler.py) under the engine's lock; a finished job wakes exactly its dependents.

This module is the public facade; :class:`Engine` is assembled from rooms, each in its own
file and each initialising the state it owns (bottom up; each room builds on the one above)::

    _events.py     EventBus     the log, subscribers, the history hooks; the clock it reads
    _loop.py       LoopThread   the loop thread, its inbox (call_soon), cleanups, the lock
    _slots.py      Slots        max_jobs, per-backend limits, queues; the backends' host
    _gates.py      Gates        conditions of pending jobs, asked and asked again
    _intake.py     Intake       a submission's new jobs, their names and edges, checked
    _scheduler.py  Scheduler    the run state: register, admit, begin, finish, settle
    _policies.py   Policies     retry delays, restart back-off, schedule ticks, timeouts
    _registry.py   Registry     lookups by name; add/start/stop (R executor's registry)
    _waiting.py    Waiting      wait, join, wait_job, gather, orchestrate
    _reattach.py   Reattach     detached commands an earlier kernel left running
    _webapp.py, _converge.py, _clusters.py: web apps, converge(), the dask cluster

Beside them, functions without state: _make.py (freshness, resume identity), _listing.py
(list() and history() tables), _lifetime.py (every live engine, shut down at exit),
_clock.py (the clock), _protocols.py (what a backend sees of the engine).
"""

from __future__ import annotations

import builtins
import contextlib
import inspect
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack, cast

from . import _durable, _lifetime, _listing, _slots
from ._clock import Clock
from ._clusters import Clusters
from ._context import running_job
from ._converge import Converge
from ._engine_options import check_engine_flags, check_engine_options
from ._events import EngineEvent
from ._lifetime import shutdown_all as shutdown_all  # the kernel's shutdown hook calls it
from ._logs import log_stem
from ._options import (
    JobOptions,
    check_limit,
    check_options,
    check_unknown,
    split_submit_options,
)
from ._platform import check_supported
from ._policies import Policies
from ._reattach import Reattach
from ._registry import ON_DUPLICATE
from ._status import Status
from ._text import short_repr
from ._waiting import Waiting
from ._waiting import set_wait_display as set_wait_display  # the IPython extension's hook
from ._waiting import showing_wait as showing_wait  # _ipython.py's %jobs wait shows its jobs
from ._webapp import WebApps
from .errors import (
    ENGINE_SHUT_DOWN,
    InvalidOption,
    InvalidOptionType,
    SubmitError,
)
from .job import Job

if TYPE_CHECKING:
    import pandas as pd

    from .store._query import HistoryFilters

__all__ = ["Engine", "EngineEvent", "get_engine"]

logger = logging.getLogger("jupyter_executor")

#: Adapters that build views of an engine, by kind ("dashboard"), installed by the package
#: (``jupyter_executor/__init__.py``): the arrows point from the views to the engine, never back.
_view_makers: dict[str, Callable[[Engine], Any]] = {}

#: Columns of :meth:`Engine.list`, in order.
COLUMNS = _listing.COLUMNS


class Engine(Waiting, Policies, Reattach, WebApps, Converge, Clusters):
    """Runs jobs in the background, with dependencies, retries, timeouts and cancellation.

    Parameters
    ----------
    *jobs
        Jobs to run when :meth:`orchestrate` (or :meth:`wait`) is called (asynciojobs style).
    id
        The engine's identity, given to subprocess jobs as ``JUPYTER_EXECUTOR_ID``; random
        when None.
    folder
        Where logs are written (``./.jupyter_executor/`` by default, created on first use).
    max_jobs
        At most this many jobs run at once, all backends together (None: no global limit);
        like each of ``limits``, a whole number from 1 to 1,000,000.
    dask
        For the dask backend: a ``distributed.Client``, a scheduler address, a dict of
        ``LocalCluster`` options, or None to start a ``LocalCluster`` on first use.
    limits
        Per-backend limits on running jobs, e.g. ``{"thread": 8, "process": 2}``.
    cluster_options
        With ``dask="slurm"`` (or ``"pbs"``, ``"sge"``, ``"lsf"``): options of the dask-jobqueue
        cluster started for the dask backend.
    history
        Record every run in ``FOLDER/history.db`` (SQLite), read by :meth:`history`; a new
        engine on the same folder re-attaches to the detached jobs still running.
    keep_logs
        Archived logs kept per job; each new run archives the previous log first (0: the
        previous log is deleted).
    resume
        Mark done, without running, a job whose identical earlier run (same command, same input
        contents) succeeded and whose outputs still exist (unless something it requires ran).
    force
        Run make-like jobs even when they are up to date.
    default_backend
        The backend of callables submitted without ``backend=`` ("thread" when None).
    print_traceback
        Also write the traceback of each failed job to ``sys.stderr`` when it fails
        (executor-engine's setting). Failures are logged anyway: ``WARNING`` on the
        ``"jupyter_executor"`` logger, the traceback at ``DEBUG``.
    log_timestamps
        Start every line of the jobs' log files with the local time it was written
        (``2024-05-01 12:00:00.123``). A failed attempt's log ends with its traceback either
        way.
    notify
        The default of the jobs' ``notify`` option: their ``%%job`` views say in the browser
        (Web Notification API) when they end. Also the attribute ``engine.notify``, which
        ``%jobs notify on|off`` sets.
    clock
        The clock of the job timestamps, retry delays, restart back-off, schedule ticks and
        timeouts: the real one when None; :class:`jupyter_executor.testing.MockClock` in tests
        that move time by hand instead of sleeping.

    Examples
    --------
    >>> from jupyter_executor import Engine
    >>> with Engine() as engine:
    ...     job = engine.submit(sum, [1, 2, 3], name="total")
    ...     engine.wait()
    ...     job.result()
    True
    6
    """

    #: Seconds a cancelled process is given between SIGTERM and SIGKILL, and a cancelled thread
    #: between the cooperative flag and the injected exception.
    cancel_grace: float = 2.0

    def __init__(
        self,
        *jobs: Job,
        id: str | None = None,
        folder: str | os.PathLike[str] | None = None,
        max_jobs: int | None = None,
        dask: Any = None,
        limits: Mapping[str, int | None] | None = None,
        cluster_options: Mapping[str, Any] | None = None,
        history: bool = True,
        keep_logs: int = 20,
        resume: bool = False,
        force: bool = False,
        default_backend: str | None = None,
        print_traceback: bool = False,
        log_timestamps: bool = False,
        notify: bool = False,
        clock: Clock | None = None,
    ) -> None:
        check_supported("Engine()")
        check_engine_options(jobs, notify, dask, cluster_options, default_backend)
        # Checked before anything starts: a refused engine leaves no thread behind.
        checked_max_jobs = check_limit("max_jobs", max_jobs)
        checked_limits = _slots.checked_limits(limits) if limits is not None else {}
        check_engine_flags(
            folder,
            {"history": history, "resume": resume, "force": force,
             "print_traceback": print_traceback, "log_timestamps": log_timestamps},
        )  # fmt: skip
        #: Jobs whose ``notify`` is None say when they end if this is True.
        self.notify = bool(notify)
        self.id = id or secrets.token_hex(4)
        self.folder = Path(folder if folder is not None else ".jupyter_executor").resolve()
        self._logs = os.path.join(self.folder, "logs", "")
        self.dask = dask
        self.cluster_options = dict(cluster_options or {})
        #: The backend of callables submitted without ``backend=`` (None: "thread").
        self.default_backend = default_backend
        #: Run every make-like job even when it is up to date.
        self.force = force
        #: Archived logs kept per job (older ones are deleted; 0: none is kept).
        self.keep_logs = check_limit("keep_logs", keep_logs, least=0, none=False)
        #: Skip a job whose identical earlier run succeeded and whose outputs still exist.
        self.resume = resume
        #: Write the traceback of each failed job to ``sys.stderr`` as it fails.
        self.print_traceback = bool(print_traceback)
        #: Prefix each line of the jobs' log files with the time it was written.
        self.log_timestamps = bool(log_timestamps)
        self._init_events(clock)
        self._init_loop()
        self._init_slots(checked_max_jobs)
        self._init_run_state(jobs)
        if checked_limits:
            self.set_limits(**checked_limits)
        self._options = {
            "id": id, "folder": folder, "max_jobs": max_jobs, "dask": dask,
            "cluster_options": cluster_options, "history": history, "keep_logs": keep_logs,
            "resume": resume, "force": force, "default_backend": default_backend,
            "print_traceback": print_traceback, "log_timestamps": log_timestamps,
        }  # fmt: skip
        if history:
            from .store import HistoryStore

            self._store = HistoryStore(self.folder, self.id)  # checks the folder is writable
        self._atexit = _lifetime.register(self)
        # Durable schedules (_durable.py): names whose schedule this engine stored, or re-armed.
        self._durable_names: set[str] = set()
        self._rearmed: set[str] = set()
        if self._store is not None:
            self._reattach()
            _durable.rearm(self)

    # context manager -------------------------------------------------------------------------
    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<Engine {self.id} jobs={len(self._jobs)} running={self._running}>"

    # configuration -----------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        """Where the log file of job ``name`` is written."""
        return Path(self._log_file(name))

    def _log_file(self, name: str) -> str:
        # A string built by hand: the history records one per job, and pathlib costs several
        # microseconds per path.
        return f"{self._logs}{log_stem(name)}.log"

    # submitting --------------------------------------------------------------------------------
    def submit(
        self,
        target: Any,
        /,
        *args: Any,
        replace: bool = False,
        on_duplicate: str = "error",
        **options: Unpack[JobOptions],
    ) -> Any:
        """Submit work; return the :class:`Job` (a tuple of jobs when several are given).

        ``submit(fn, *args, **kwargs)`` wraps ``fn`` in a Job with the keyword options of
        :class:`Job` (the one list is :class:`~jupyter_executor._options.JobOptions`, which
        type checkers see); every other argument goes to ``fn``. A type checker sees only the
        options: for ``fn``'s own keywords, typed code writes ``submit(functools.partial(fn,
        x=1))`` or ``submit(Job(fn, kwargs={"x": 1}))``. ``submit(job1, job2, ...)`` submits
        :class:`Job` objects (with ``replace`` and ``on_duplicate`` as the only options).
        Unsubmitted jobs that the submitted ones require are submitted with them.

        Parameters
        ----------
        target
            A callable, a coroutine (function), a command string or argv list, or a Job.
        **options
            The job's options (``name``, ``backend``, ``requires``, ``retries``, ``timeout``,
            ``every``, ``restart``, ``detach``, ``inputs``, ``notify``, ...): each is documented
            once, in :class:`Job`'s docstring; their types are
            :class:`~jupyter_executor._options.JobOptions`.
        replace
            Let the new job take the name of a finished job (that run stays in the new job's
            ``previous`` record).
        on_duplicate
            ``"error"`` (default): a name already taken raises :class:`DuplicateJobName`.
            ``"skip"``: warn (``warnings.warn``) and return the job that has the name, unchanged
            (R executor's ``add_task`` in a loop). ``replace=True`` takes precedence.

        Raises
        ------
        DuplicateJobName, UnknownDependency, DependencyCycle
            Nothing of the submission is started.
        """
        if replace not in (True, False):
            msg = f"replace={replace!r} is not True or False"
            raise InvalidOptionType(msg)
        if on_duplicate not in ON_DUPLICATE:
            msg = f"on_duplicate={on_duplicate!r} is not one of {', '.join(ON_DUPLICATE)}"
            raise InvalidOption(msg)
        if isinstance(target, Job):
            return self._submit_jobs([target, *args], replace, on_duplicate, options)
        # (``options`` is this call's own dict: split without a copy)
        job_options, kwargs = split_submit_options(cast("dict[str, Any]", options), for_jobs=False)
        command = isinstance(target, (str, list, tuple))
        if kwargs and command:
            # A command has no function to pass them to: a misspelt option (timout=5) would
            # otherwise be dropped without a word.
            check_unknown(kwargs)
        if job_options.get("detach") is True and not command:
            # Python that outlives the kernel: shipped to a detached command (_detached.py).
            from . import _detached

            check_options(job_options)  # (env=, cwd=...: at the door, before anything ships)
            job_options.pop("detach")
            return _detached.submit_call(self, target, args, kwargs, replace, **job_options)
        if job_options.get("backend") is None:
            backend = self._backend_default(target)
            if backend is not None:
                job_options["backend"] = backend
        if on_duplicate == "skip" and not replace:
            name = job_options.get("name")
            existing = self._skip_duplicate(name if name is not None else job_options.get("label"))
            if existing is not None:
                if inspect.iscoroutine(target):
                    target.close()  # it will never run: no "never awaited" warning
                return existing
        job = Job(target, args=args, kwargs=kwargs, **job_options)
        self._submit([job], replace)
        return job

    # the task registry (R executor) ---------------------------------------------------------------

    # the loop thread ---------------------------------------------------------------------------

    # starting ----------------------------------------------------------------------------------

    # long-running jobs (schedules, restarts, make-like) -------------------------------------------

    # finishing ---------------------------------------------------------------------------------

    # control -----------------------------------------------------------------------------------
    def cancel(self, job: Job | str, reason: str = "cancelled by user") -> bool:
        """Stop a job; return False when it had already finished.

        A pending job is removed from the queue at once; one a process worker already holds
        (prefetched, not started) is taken back from it a moment later, without stopping the
        worker. A running one is asked to stop: an async
        task is cancelled; a process or subprocess has its process group terminated (then killed
        after :attr:`cancel_grace` seconds); a thread sees :func:`~jupyter_executor.cancelled`
        turn True, and gets an exception injected after the grace period; one blocked where no
        exception reaches it (a lock, a long call into C) is abandoned after another grace
        period: the job is settled, the thread runs on until that call returns. Its dependents
        are cancelled in turn.
        """
        job = self._get(job)
        if not isinstance(reason, str):  # it is shown and stored as text (every view reads it)
            msg = f"reason= takes text, not {short_repr(reason)}"
            raise InvalidOptionType(msg)
        status = self._ask_to_cancel(job, reason)
        if status is None:
            return False
        # The loop may start a pending job between the check above and the settling: settling
        # a running job here would keep its slot forever, so such a job is stopped instead.
        if status is Status.RUNNING or not self._settle(
            job, Status.CANCELLED, None, None, not_started=True
        ):
            self._call_soon(self._stop, job)
        return True

    def unschedule(self, name: str) -> bool:
        """Remove the stored schedule (or restart policy) of command ``name`` for good.

        The schedules and restart policies of commands are stored in the engine's folder, and
        the next engine on it re-arms them (see :mod:`jupyter_executor._durable`).
        :meth:`cancel` stops such a job in this engine only; ``unschedule`` also removes it from
        the folder, and stops it here. A schedule armed by another live engine (another
        kernel) runs there until that engine cancels it or ends.

        Returns
        -------
        bool
            True if a stored schedule was removed or a job stopped; False if there was none.
        """
        if not isinstance(name, str):
            msg = f"unschedule() takes a job's name, not {short_repr(name)}"
            raise InvalidOptionType(msg)
        return _durable.unschedule(self, name)

    def rerun(self, job: Job | str) -> Job:
        """Run a finished job again (its requirements are checked again); returns the job."""
        job = self._get(job)
        if self._closed:  # (its threads would start again, with nothing left to stop them)
            raise SubmitError(ENGINE_SHUT_DOWN)
        if job.kind == "coroutine":
            msg = (
                f"job {job.name!r} runs a coroutine object, which can run only once; "
                "submit a new job (replace=True), or use the coroutine function"
            )
            raise SubmitError(msg)
        failed_req, ready = self._renew(job)
        if failed_req is not None:
            self._cancel_pending(job, f"dependency {failed_req[0]!r} {failed_req[1].value}")
        elif ready:
            self._dispatch([job])
        return job

    def remove(self, job: Job | str) -> None:
        """Forget a finished job (its log file stays)."""
        self._remove(self._get(job))

    def clear(self) -> int:
        """Forget every finished job that no unfinished job requires; return how many."""
        removed = 0
        for job in list(self._jobs.values()):
            if job.done():
                with contextlib.suppress(SubmitError):
                    self.remove(job)
                    removed += 1
        return removed

    # inspection --------------------------------------------------------------------------------

    def list(
        self, status: str | Iterable[str] | None = None, *, next_run: bool = False
    ) -> pd.DataFrame:
        """The jobs as a pandas DataFrame, one row per job.

        Columns, in order (:data:`COLUMNS`): ``name, status, backend, requires, allows,
        forever, submitted, started, finished, duration, attempts, result, error, tail,
        progress, pid, command, cwd, env, schedule, engine_id``: times as datetimes, duration
        in seconds, result and error as short reprs, tail as the last lines printed,
        ``allows`` the jobs that require this one, ``command`` what it runs, ``env`` the
        *names* of the variables it sets (never their values), ``schedule`` its period, cron
        or start time. ``next_run=True`` adds ``next_run`` (scheduled jobs), ``restarts`` and
        ``url``. Jobs added with :meth:`add` and not started show as ``created``.
        """
        jobs = self.select(status)
        wanted = [status] if isinstance(status, str) else status
        if self._added and (wanted is None or "created" in wanted):
            jobs += builtins.list(self._added.values())
        return _listing.jobs_frame(jobs, self.id, next_run)

    def history(self, name: str | None = None, **filters: Unpack[HistoryFilters]) -> pd.DataFrame:
        """Every run of every job recorded in this engine's folder, across kernel restarts.

        One row per run, oldest first, with the engine id that ran it (several engines may
        share a folder): name, attempt, status, times, exit code, result, error, log, pid...
        The filters are applied by the database (see :meth:`HistoryStore.history`): ``name``,
        ``since`` (epoch seconds, a datetime, or how long ago: ``"2h"``), ``status`` (one or
        several) and ``limit`` (the latest runs only).

        Raises
        ------
        SubmitError
            The engine keeps no history (``history=False``);
            :class:`~jupyter_executor.errors.InvalidOption` (a SubmitError) for a filter that
            cannot be used, named in the message.
        """
        if self._store is None:
            msg = "this engine keeps no history (it was created with history=False)"
            raise SubmitError(msg)
        self._store.flush()
        return self._store.frame(name, **filters)

    # loops, web apps, detached jobs ------------------------------------------------------------

    def widget(self) -> Any:
        """A live dashboard of this engine's jobs (an anywidget).

        The same as ``jupyter_executor.widget.Dashboard(engine)``: the package installs the
        adapter that builds it, so that the engine itself never imports the widget.
        """
        make = _view_makers.get("dashboard")
        if make is None:  # pragma: no cover - jupyter_executor/__init__.py installs it
            msg = "no dashboard adapter installed: use jupyter_executor.widget.Dashboard(engine)"
            raise RuntimeError(msg)
        return make(self)

    # events ------------------------------------------------------------------------------------

    # shutdown ----------------------------------------------------------------------------------
    def shutdown(
        self, timeout: float | None = None, *, reason: str = "the engine shut down"
    ) -> None:
        """Cancel every unfinished job, kill child processes, stop the thread and any cluster.

        Idempotent; also runs at interpreter exit and when the kernel is shut down.

        Parameters
        ----------
        timeout
            Seconds to wait for the cancelled jobs to end (default: the cancel grace + 5 s).
        reason
            The cancel reason recorded for the jobs that had not finished.
        """
        if self._closed:
            return
        job = running_job.get()
        if job is not None and job.engine is self:
            # Refused before anything changes: from a job, it would cancel and wait for that
            # job itself, and cannot stop the thread the job runs on (a half-closed engine).
            msg = (
                f"engine.shutdown() inside job {job.name!r} would stop the engine that runs "
                "that job; shut it down from outside its jobs"
            )
            raise SubmitError(msg)
        self._closed = True
        _lifetime.unregister(self._atexit)
        for job in list(self._jobs.values()):
            if job.detach and job.status is Status.RUNNING:
                continue  # it outlives the kernel; the next engine on this folder re-attaches
            if not job.done():
                self.cancel(job, reason)
        deadline = time.monotonic() + (timeout if timeout is not None else self.cancel_grace + 5)
        for job in list(self._jobs.values()):
            if job.status is Status.RUNNING and not job.detach and self._loop is not None:
                self.wait_job(job, max(0.0, deadline - time.monotonic()))
        self._abandon_running(reason)
        try:
            self._cleanup()
        except Exception:
            logger.exception("jupyter_executor: cleanups at shutdown failed")
        self._stop_thread()
        self._thaw_gc()  # (its timer stopped with the loop)
        self._finish_calls.close()
        if self._store is not None:
            _durable.release(self)
            self._store.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has run."""
        return self._closed


_default: Engine | None = None
_default_lock = threading.Lock()


def get_engine(**options: Any) -> Engine:
    """Return this process's engine, creating it on the first call.

    Parameters
    ----------
    **options
        :class:`Engine` options (``id``, ``folder``, ``max_jobs``, ``dask``), used when the
        engine is created. Options that differ from those of the existing engine are an error.
    """
    global _default
    with _default_lock:
        engine = _default
        if engine is None or engine.closed:
            engine = _default = Engine(**options)
            return engine
        for key, value in options.items():
            if key not in engine._options:
                msg = f"unknown engine option {key!r}; use one of {', '.join(engine._options)}"
                raise TypeError(msg)
            current = engine._options[key]
            same = current == value
            if key == "folder" and value is not None:
                same = engine.folder == Path(value).resolve()
            if not same:
                msg = (
                    f"the engine already exists with {key}={current!r}; options apply when it is "
                    "created (shut it down first to start another)"
                )
                raise ValueError(msg)
        return engine


# -- for the adapters (magics, cli): public names over this module's state ----------------------


def current_engine() -> Engine | None:
    """This process's engine (what :func:`get_engine` returns) if it exists and is open, else
    None; never creates one."""
    engine = _default
    return None if engine is None or engine.closed else engine


def rearmed_schedules(engine: Engine) -> frozenset[str]:
    """The names of the stored schedules ``engine`` re-armed when it was created."""
    return frozenset(engine._rearmed)
