"""The engine: a registry of jobs and a scheduler on its own event loop, in its own thread.

Scheduling never depends on the caller's thread: a notebook cell that blocks does not stop
dependent jobs from starting (docs/kernel-notes.md §2). Every status change goes through
:meth:`Job._set_status` under the engine's lock; a finished job wakes exactly its dependents.
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import collections
import concurrent.futures
import contextlib
import contextvars
import functools
import glob
import hashlib
import inspect
import itertools
import logging
import os
import secrets
import socket
import sys
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _capture, _durable, _traceback
from ._duration import Duration
from ._graph import Graph
from ._logs import log_stem
from ._on_finish import FinishCalls
from ._options import _check_flag
from ._platform import check_supported
from ._runtime import _current_job
from ._status import FINISHED, Status
from .backends import Backend, make_backend
from .errors import (
    CommandFailed,
    DuplicateJobName,
    InvalidOption,
    InvalidOptionType,
    JobTimeout,
    MissingOutputs,
    StoreError,
    SubmitError,
)
from .job import BACKENDS, Job, _job_of, _resolve

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Engine", "EngineEvent", "get_engine"]

logger = logging.getLogger("jupyter_executor")
# Job events (started, done, failed...) go to a child logger, so that configuring
# "jupyter_executor" shows them; its NullHandler keeps Python's last-resort handler from
# printing every failure into whatever notebook cell ran last when nothing is configured.
_events = logging.getLogger("jupyter_executor.jobs")


def _log_event(level: int, msg: str, *args: Any) -> None:
    """Log an engine event outside any job's context.

    The engine logs a job's start, end and pid from that job's own task; a logging handler
    writing to ``sys.stderr`` (the routing proxy, when logging was set up after the extension)
    would then file the engine's line in the job's output. A new, empty context has no job.
    """
    contextvars.Context().run(_events.log, level, msg, *args)


_events.addHandler(logging.NullHandler())

#: Columns of :meth:`Engine.list`, in order.
COLUMNS = (
    "name", "status", "backend", "requires", "allows", "forever", "submitted", "started",
    "finished", "duration", "attempts", "result", "error", "tail", "progress", "pid",
    "command", "cwd", "env", "schedule", "engine_id",
)  # fmt: skip

#: What ``on_duplicate=`` accepts.
_ON_DUPLICATE = ("error", "skip")


class EngineEvent(NamedTuple):
    """One line of :attr:`Engine.log`."""

    time: float
    event: str
    job: str
    detail: str = ""

    def __str__(self) -> str:
        # The date too, as in R executor's log: an engine's log often spans days.
        stamp = datetime.fromtimestamp(self.time).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return f"{stamp} {self.event:<9} {self.job}" + (f" ({self.detail})" if self.detail else "")


#: dask= values that start a dask-jobqueue cluster.
_HPC_KINDS = ("slurm", "pbs", "sge", "lsf")

#: Jobs admitted per turn of the engine's loop.
_ADMIT_BATCH = 256

#: Posts to the engine's loop run per hold of the engine's lock.
_DRAIN_BATCH = 256
# How long a job waits for a slot (once to twice this) before the history records it as
# pending; one that gets a slot sooner is recorded when it starts.
_NOTE_QUEUED_AFTER = 2.0

#: Builds an EngineEvent from a tuple with no Python-level call at all (hot path: three
#: events per job; ``EngineEvent._make`` is a Python function).
_event = functools.partial(tuple.__new__, EngineEvent)


class Engine:
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
        At most this many jobs run at once, all backends together (None: no global limit).
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
        Archived logs kept per job; each new run archives the previous log first.
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
    ) -> None:
        check_supported("Engine()")
        _check_flag("notify", notify)
        #: Jobs whose ``notify`` is None say when they end if this is True.
        self.notify = bool(notify)
        for job in jobs:
            if not isinstance(job, Job):
                msg = f"Engine(*jobs) takes Job objects, not {job!r}"
                raise TypeError(msg)
        if max_jobs is not None and max_jobs < 1:
            msg = f"max_jobs must be >= 1 or None, not {max_jobs!r}"
            raise ValueError(msg)
        self.id = id or secrets.token_hex(4)
        self.folder = Path(folder if folder is not None else ".jupyter_executor").resolve()
        self._logs = os.path.join(self.folder, "logs", "")
        self.max_jobs = max_jobs
        self.dask = dask
        self.cluster_options = dict(cluster_options or {})
        if self.cluster_options and not (isinstance(dask, str) and dask.lower() in _HPC_KINDS):
            msg = "cluster_options= needs dask='slurm', 'pbs', 'sge' or 'lsf'"
            raise ValueError(msg)
        if default_backend is not None and default_backend not in BACKENDS:
            msg = f"unknown backend {default_backend!r}; use one of {', '.join(BACKENDS)}"
            raise ValueError(msg)
        #: The backend of callables submitted without ``backend=`` (None: "thread").
        self.default_backend = default_backend
        #: Run every make-like job even when it is up to date.
        self.force = force
        if keep_logs < 1:
            msg = f"keep_logs must be >= 1, not {keep_logs!r}"
            raise ValueError(msg)
        #: Archived logs kept per job (older ones are deleted).
        self.keep_logs = keep_logs
        #: Skip a job whose identical earlier run succeeded and whose outputs still exist.
        self.resume = resume
        #: Write the traceback of each failed job to ``sys.stderr`` as it fails.
        self.print_traceback = bool(print_traceback)
        #: Prefix each line of the jobs' log files with the time it was written.
        self.log_timestamps = bool(log_timestamps)
        self.limits: dict[str, int | None] = {
            "async": None,
            "thread": 32,
            "process": os.cpu_count() or 2,
            "subprocess": None,
            "dask": None,
            "local": None,
        }
        self._backends: dict[str, Backend] = {}
        if limits:
            self.set_limits(**limits)
        self.log: deque[EngineEvent] = deque(maxlen=10_000)
        self._options = {
            "id": id, "folder": folder, "max_jobs": max_jobs, "dask": dask,
            "cluster_options": cluster_options, "history": history, "keep_logs": keep_logs,
            "resume": resume, "force": force, "default_backend": default_backend,
            "print_traceback": print_traceback, "log_timestamps": log_timestamps,
        }  # fmt: skip
        # Re-entrant: the loop holds it while it runs a batch of posts (see _drain_inbox).
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        # Jobs added with add() and not started yet (R executor's task registry).
        self._added: dict[str, Job] = {}
        self._graph = Graph()
        self._name_counts: dict[str, int] = {}
        self._unfinished = 0  # waited jobs (not forever, periodic or always restarted) unfinished
        self._bad = 0  # waited jobs failed or cancelled
        self._running = 0
        self._queued = 0  # jobs waiting in the backends' queues for a free slot
        self._noting = False  # _note_queued is due
        self._idle_waiters: builtins.list[concurrent.futures.Future[None]] = []
        self._deferred: builtins.list[Job] = list(jobs)
        self._subscribers: builtins.list[Callable[[str, Job], None]] = []
        self._finish_calls = FinishCalls()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._loop_ident = 0
        self._loop_lock = threading.Lock()
        self._inbox: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._wake_pending = False
        self._closed = False
        self._default_restart: tuple[float, int | None] | None = None
        # Pending jobs whose condition only polling can see met (an ordered set), and the timer.
        self._polled: dict[Job, None] = {}
        self._poll_handle: asyncio.TimerHandle | None = None
        self._cleanups: dict[Any, Callable[[], Any]] = {}
        self._ran: set[str] = set()  # jobs that really ran an attempt (for resume)
        self._store: Any = None
        if history:
            from .store import HistoryStore

            self._store = HistoryStore(self.folder, self.id)  # checks the folder is writable
        self._atexit = functools.partial(_shutdown_at_exit, weakref.ref(self))
        atexit.register(self._atexit)
        _live_engines.add(self)
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
    def set_limits(self, **limits: int | None) -> None:
        """Set per-backend limits on running jobs, e.g. ``set_limits(thread=8, process=2)``."""
        for name, value in limits.items():
            if name not in BACKENDS:
                msg = f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}"
                raise ValueError(msg)
            if value is not None and value < 1:
                msg = f"the limit of {name!r} must be >= 1 or None, not {value!r}"
                raise ValueError(msg)
            self.limits[name] = value
            backend = self._backends.get(name)
            if backend is not None:
                backend.limit = value

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
        name: str | None = None,
        label: str | None = None,
        backend: str | None = None,
        requires: Any = (),
        forever: bool = False,
        retries: int = 0,
        retry_delay: Duration = 1.0,
        timeout: Duration | None = None,
        condition: Any = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        replace: bool = False,
        every: Any = None,
        cron: str | None = None,
        start: Any = None,
        restart: str = "no",
        restart_delay: Duration = 1.0,
        max_restarts: int | None = None,
        detach: bool = False,
        inputs: Any = (),
        outputs: Any = (),
        force: bool = False,
        before: Callable[[Job], Any] | None = None,
        after: Callable[[Job], Any] | None = None,
        resources: Mapping[str, float] | None = None,
        priority: int | None = None,
        on_duplicate: str = "error",
        notify: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Submit work; return the :class:`Job` (a tuple of jobs when several are given).

        ``submit(fn, *args, **kwargs)`` wraps ``fn`` in a Job with the keyword-only options
        below; every other argument goes to ``fn``. ``submit(job1, job2, ...)`` submits
        :class:`Job` objects (with ``replace`` as the only option). Unsubmitted jobs that the
        submitted ones require are submitted with them.

        Parameters
        ----------
        target
            A callable, a coroutine (function), a command string or argv list, or a Job.
        name, label, backend, requires, forever, retries, retry_delay, timeout, condition, env, cwd
            As for :class:`Job`.
        every, cron, start
            Run periodically (``every="2 min"``, a timedelta, or a cron expression), from
            ``start`` (a datetime or ISO string) on; ``start`` alone runs once at that time. A
            run still going at its next time is not started twice (the tick is skipped).
        restart, restart_delay, max_restarts
            Restart policy: ``"no"``, ``"on-failure"`` or ``"always"``; the delay doubles after
            each consecutive failure; after ``max_restarts`` restarts the job stays failed.
        detach
            A command, or a function that cloudpickle can ship (with ``name=``; its arguments
            are pickled now), that outlives the kernel: a new engine on the same folder
            re-attaches to it. A function's return value comes back as
            ``engine[name].outputs["result"]`` (see :mod:`jupyter_executor._detached`).
        inputs, outputs, force
            Make-like: paths or globs. A job whose outputs exist and are newer than its inputs is
            marked done ("up to date") without running, unless ``force``; a job that succeeds
            without producing its outputs fails, naming the missing ones.
        before, after
            Callables run with the job before and after each run (in its thread or task).
        resources, priority
            Dask jobs: worker resources (``{"GPU": 1}``) and scheduling priority, passed to
            ``Client.submit``.
        notify
            Say in the browser when the job ends (its ``%%job`` view sends a notification with
            its name, status and duration); None: as :attr:`notify` says. For other ways to be
            told, see :meth:`on_finish`.
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
        if on_duplicate not in _ON_DUPLICATE:
            msg = f"on_duplicate={on_duplicate!r} is not one of {', '.join(_ON_DUPLICATE)}"
            raise InvalidOption(msg)
        if isinstance(target, Job):
            jobs = [target, *args]
            if not all(isinstance(j, Job) for j in jobs):
                msg = "submit(job, ...) takes only Job objects after a Job"
                raise InvalidOptionType(msg)
            if on_duplicate == "skip" and not replace:
                kept = [self._skip_duplicate(j) or j for j in jobs]
                jobs = [j for j, k in zip(jobs, kept, strict=True) if k is j]
                if not jobs:
                    return kept[0] if len(kept) == 1 else tuple(kept)
                if len(kept) > 1:
                    self._submit(jobs, replace)
                    return tuple(kept)
            given = {
                "name": name, "label": label, "backend": backend, "requires": requires,
                "forever": forever, "retries": retries, "timeout": timeout,
                "condition": condition, "env": env, "cwd": cwd, "every": every, "cron": cron,
                "start": start, "detach": detach, "inputs": inputs, "outputs": outputs,
                "force": force, "before": before, "after": after, "max_restarts": max_restarts,
                "resources": resources, "priority": priority, "notify": notify, **kwargs,
            }  # fmt: skip
            if restart != "no":
                given["restart"] = restart
            extra = [k for k, v in given.items() if v not in (None, (), False, 0)]
            if extra:
                msg = f"options {extra} go on Job(...) when submitting Job objects"
                raise InvalidOptionType(msg)
            self._submit(jobs, replace)
            return jobs[0] if len(jobs) == 1 else tuple(jobs)
        if detach is True and not isinstance(target, (str, list, tuple)):
            # Python that outlives the kernel: shipped to a detached command (_detached.py).
            from . import _detached

            return _detached.submit_call(
                self, target, args, kwargs, name=name, label=label, requires=requires,
                timeout=timeout, env=env, cwd=cwd, backend=backend, forever=forever,
                retries=retries, condition=condition, every=every, cron=cron, start=start,
                restart=restart, max_restarts=max_restarts, inputs=inputs, outputs=outputs,
                force=force, before=before, after=after,
            )  # fmt: skip
        if (
            backend is None
            and self.default_backend is not None
            and not isinstance(target, (str, list, tuple))
            and not asyncio.iscoroutine(target)
            and not inspect.iscoroutinefunction(target)
        ):
            backend = self.default_backend
        if on_duplicate == "skip" and not replace:
            existing = self._skip_duplicate(name if name is not None else label)
            if existing is not None:
                if inspect.iscoroutine(target):
                    target.close()  # it will never run: no "never awaited" warning
                return existing
        job = Job(
            target, args=args, kwargs=kwargs, name=name, label=label, backend=backend,
            requires=requires, forever=forever, retries=retries, retry_delay=retry_delay,
            timeout=timeout, condition=condition, env=env, cwd=cwd, every=every, cron=cron,
            start=start, restart=restart, restart_delay=restart_delay, max_restarts=max_restarts,
            detach=detach, inputs=inputs, outputs=outputs, force=force, before=before, after=after,
            resources=resources, priority=priority, notify=notify,
        )  # fmt: skip
        self._submit([job], replace)
        return job

    def _skip_duplicate(self, ref: Job | str | None) -> Job | None:
        """The job already named like ``ref`` (after a warning), or None when the name is free."""
        name = ref.name if isinstance(ref, Job) else ref
        if name is None:
            return None
        existing = self._jobs.get(name) or self._added.get(name)
        if existing is None or existing is ref:
            return None
        warnings.warn(
            f"Skipping {name}: a job named {name!r} already exists ({existing.status.value})",
            stacklevel=3,
        )
        return existing

    # the task registry (R executor) ---------------------------------------------------------------
    def add(self, target: Any, /, *args: Any, **options: Any) -> Job:
        """Add a job without starting it: :meth:`start` (or :meth:`start_all`) starts it later.

        Takes what :meth:`submit` takes (``on_duplicate="skip"`` included); the job is
        ``created`` until started, is listed by :meth:`list` and found by ``engine[name]``.
        A job without a name gets one now.

        Examples
        --------
        >>> from jupyter_executor import Engine
        >>> with Engine() as engine:
        ...     job = engine.add(sum, [1, 2], name="total")
        ...     job.status.value, engine.start("total") is job, engine.wait(), job.result()
        ('created', True, True, 3)
        """
        on_duplicate = options.pop("on_duplicate", "error")
        if on_duplicate not in _ON_DUPLICATE:
            msg = f"on_duplicate must be one of {', '.join(_ON_DUPLICATE)}, not {on_duplicate!r}"
            raise ValueError(msg)
        replace = options.pop("replace", False)
        if isinstance(target, Job):
            if args or options:
                msg = "add(job) takes one Job; give the options to Job(...)"
                raise TypeError(msg)
            job = target
        else:
            name = options.get("name", options.get("label"))
            if on_duplicate == "skip" and not replace:
                existing = self._skip_duplicate(name)
                if existing is not None:
                    return existing
            if (
                options.get("backend") is None
                and self.default_backend is not None
                and not isinstance(target, (str, list, tuple))
                and not asyncio.iscoroutine(target)
                and not inspect.iscoroutinefunction(target)
            ):
                options["backend"] = self.default_backend
            job = Job(target, args=args, kwargs=options.pop("kwargs", None), **options)
        if on_duplicate == "skip" and not replace:
            existing = self._skip_duplicate(job)
            if existing is not None:
                return existing
        with self._lock:
            if job.name is None:
                job.name = self._unique_name(job.default_name(), set(self._added))
            name = str(job.name)
            old = self._jobs.get(name)
            if name in self._added or (old is not None and not (replace and old.done())):
                msg = (
                    f"a job named {name!r} already exists; pick another name, or pass "
                    "on_duplicate='skip' to keep the existing one"
                )
                raise DuplicateJobName(msg)
            self._added[name] = job
        self._record("added", job, job.describe())
        return job

    def start(self, name: Job | str | None = None) -> Job | None:
        """Start job ``name``: an added one is submitted, a finished one rerun; returns it.

        A pending or running job is left as it is. Without a name, only the engine's thread is
        started (executor-engine's ``engine.start()``; submitting starts it anyway).
        """
        if name is None:
            self._ensure_loop()
            return None
        key = name.name if isinstance(name, Job) else name
        added = self._added.get(str(key))
        if added is not None and (not isinstance(name, Job) or added is name):
            replace = added.name in self._jobs
            self._submit([added], replace)
            self._added.pop(str(key), None)  # (_register took it out already)
            return added
        job = self._get(name)
        if job.done():
            return self.rerun(job)
        return job

    def start_all(self) -> dict[str, builtins.list[str]]:
        """Start every added or finished job (R executor's ``start_all()``); say what happened.

        Returns
        -------
        dict
            Job names under ``"started"``, ``"scheduled"`` (started but waiting for their time:
            ``every=``, ``cron=``, ``start=``) and ``"already running"`` (pending or running,
            left alone). Coroutine objects that already ran cannot start again: they are left
            out.
        """
        summary: dict[str, builtins.list[str]] = {
            "started": [], "scheduled": [], "already running": [],
        }  # fmt: skip
        for name in builtins.list(self._added):
            job = self._added[name]
            self.start(name)
            summary["scheduled" if _scheduled(job) else "started"].append(name)
        for job in builtins.list(self._jobs.values()):
            name = str(job.name)
            if name in summary["started"] or name in summary["scheduled"]:
                continue
            if not job.done():
                key = "scheduled" if _scheduled(job) else "already running"
                summary[key].append(name)
            elif job.kind != "coroutine":
                self.rerun(job)
                summary["scheduled" if _scheduled(job) else "started"].append(name)
        for key, names in summary.items():
            if names:
                _events.info("start_all: %s: %s", key, ", ".join(names))
        return summary

    def stop(self, name: Job | str | None = None, reason: str = "stopped by user") -> bool:
        """Stop job ``name`` (:meth:`cancel`); without a name, :meth:`shutdown` the engine.

        ``stop()`` with no name is executor-engine's ``engine.stop()``; ``stop(name)`` is R
        executor's ``stop_task(name)`` (a process is killed by its process group). Returns
        False when the job had already finished.
        """
        if name is None:
            self.shutdown()
            return True
        return self.cancel(name, reason)

    def stop_all(self, reason: str = "stopped by user") -> builtins.list[str]:
        """Stop every pending or running job (the engine keeps running); return their names."""
        stopped = []
        for job in builtins.list(self._jobs.values()):
            if not job.done() and self.cancel(job, reason):
                stopped.append(str(job.name))
        return stopped

    def get(self, id: str) -> Job:
        """The job whose :attr:`Job.id` (or name) is ``id``; executor-engine's ``get_job_by_id``."""
        for job in (*self._jobs.values(), *self._added.values()):
            if job._id == id:
                return job
        found = self._jobs.get(id) or self._added.get(id)
        if found is None:
            msg = f"no job with id or name {id!r}"
            raise KeyError(msg)
        return found

    def _submit(self, jobs: builtins.list[Job], replace: bool) -> None:
        if self._closed:
            msg = "this engine is shut down; create a new one (or call get_engine() again)"
            raise SubmitError(msg)
        if self._deferred and jobs is not self._deferred:
            deferred, self._deferred = self._deferred, []
            jobs = deferred + jobs
        batch = _collect(jobs)
        if self._rearmed:
            _durable.make_way(self, batch)
        # Before _register, which gives keep_restarting()'s policy: that one is not stored.
        durable = [j for j in batch if j._life is not None and _durable.durable(j)]
        with self._lock:
            ready, to_cancel = self._register(batch, replace)
        parent = _current_job.get()
        if parent is not None and parent.engine is self:
            # Submitted from inside a job: its sub-tasks (execloop), which converge() waits for.
            children = parent.children if parent.children else []
            children.extend(j for j in batch if j is not parent)
            parent.children = children
        if durable and self._store is not None:
            _durable.remember(self, durable)
        self._ensure_loop()
        for job, reason in to_cancel:
            self._cancel_pending(job, reason)
        if ready:
            self._dispatch(ready)

    def _register(
        self, batch: builtins.list[Job], replace: bool
    ) -> tuple[list[Job], list[tuple[Job, str]]]:
        jobs = self._jobs
        new: builtins.list[Job] = []
        names: set[str] = set()
        replacing: dict[str, Job] = {}
        for job in batch:
            if job.engine is self and job.name in jobs and jobs[job.name] is job:
                continue  # already submitted: submitting it again changes nothing
            if job.engine is not None or job.status is not Status.CREATED:
                msg = f"job {job.name!r} was already submitted to another engine"
                raise SubmitError(msg)
            if job.name is None:
                job.name = self._unique_name(job.default_name(), names)
            name = job.name
            if self._added and self._added.get(name) is job:
                del self._added[name]  # added earlier, submitted now: start() was skipped
            if name in names:
                msg = f"two jobs of this submission are named {name!r}; give them distinct names"
                raise DuplicateJobName(msg)
            old = jobs.get(name)
            if old is not None:
                if not old.done():
                    msg = (
                        f"job {name!r} is {old.status.value}; cancel it first "
                        f"(engine.cancel({name!r})) or pick another name"
                    )
                    raise DuplicateJobName(msg)
                if not replace:
                    msg = (
                        f"a job named {name!r} already exists ({old.status.value}); "
                        "pick another name, or pass replace=True to run it again"
                    )
                    raise DuplicateJobName(msg)
                replacing[name] = old
            names.add(name)
            new.append(job)
        if not new:
            return [], []
        specs: dict[str, tuple[str, ...]] = {}
        for job in new:
            if not job._requires_spec and not job._arg_jobs and job._condition is None:
                continue  # no edges: the graph needs no node for it
            spec = job._requires_spec
            if len(spec) == 1 and not job._arg_jobs:
                reqs: tuple[str, ...] = (_name_of(spec[0]),)  # one requirement: a chain's link
            else:
                reqs = tuple(dict.fromkeys(_name_of(r) for r in job.required_jobs()))
            job.requirements = reqs
            cond = job.condition_jobs()
            specs[str(job.name)] = reqs + tuple(_name_of(r) for r in cond) if cond else reqs
        if specs or replacing:
            # raises before anything changes; names are known when they are in the engine
            known: collections.ChainMap[str, Any] = collections.ChainMap(
                self._jobs, dict.fromkeys(names)
            )
            self._graph.add(specs, replacing=replacing, known=known)
        now = time.time()
        ready: builtins.list[Job] = []
        to_cancel: builtins.list[tuple[Job, str]] = []
        for job in new:
            name = str(job.name)
            old = replacing.get(name)
            if old is not None:
                job.previous = [*old.previous, old.info()]
                job.attempts = old.attempts
                self._forget(old, graph=False)
            jobs[name] = job
            job.engine = self
            if self._default_restart is not None:
                self._restart_by_default(job)
            job._set_status(Status.PENDING)
            job.submitted = now
            if job._waited:
                self._unfinished += 1
            waiting = 0
            for req in job.requirements:
                status = jobs[req].status
                if status is not Status.DONE:
                    if status is Status.FAILED or status is Status.CANCELLED:
                        to_cancel.append((job, f"dependency {req!r} {status.value}"))
                    waiting += 1
            job._waiting = waiting
            if waiting == 0:
                ready.append(job)
        self._record_many("submitted", new)
        if self._store is not None:
            # A job that can start now is recorded when it starts, an instant later (its run
            # keeps its submit time); the history sees those that wait at once.
            starting = {id(j) for j in ready} if len(ready) < len(new) else None
            for job in new:
                if starting is not None and id(job) not in starting:
                    self._job_changed(job)
        return ready, to_cancel

    def _unique_name(self, base: str, taken: set[str]) -> str:
        n = self._name_counts.get(base, 0)
        while True:
            n += 1
            name = base if n == 1 else f"{base}-{n}"
            if name not in self._jobs and name not in taken and name not in self._added:
                self._name_counts[base] = n
                return name

    def _forget(self, job: Job, graph: bool = True) -> None:
        # Drop a finished job from the counters (it is being replaced or removed). A replaced
        # job's node already belongs to its successor (Graph.add(replacing=...)).
        if job._waited and job.status in (Status.FAILED, Status.CANCELLED):
            self._bad -= 1
        if graph:
            self._graph.remove(str(job.name))
        del self._jobs[str(job.name)]

    # the loop thread ---------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._loop_lock:
            if self._loop is not None:
                return self._loop
            ready = threading.Event()
            thread = threading.Thread(
                target=self._loop_main, args=(ready,), name=f"jupyter-executor-{self.id}",
                daemon=True,
            )  # fmt: skip
            thread.start()
            ready.wait()
            self._thread = thread
            assert self._loop is not None
            return self._loop

    def _loop_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop_ident = threading.get_ident()
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
            # Stopped: let what the shutdown cancelled finish its cleanup (kill processes).
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=self.cancel_grace + 3))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def _call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread: now if called there, else soon."""
        if threading.get_ident() == self._loop_ident and self._loop is not None:
            fn(*args)
            return
        loop = self._ensure_loop()
        self._inbox.append((fn, args))
        if not self._wake_pending:
            # One wake-up for any number of posts made before the loop drains the inbox.
            self._wake_pending = True
            with contextlib.suppress(RuntimeError):  # the loop closed under us: shutting down
                loop.call_soon_threadsafe(self._drain_inbox)

    def _drain_inbox(self) -> None:
        self._wake_pending = False
        inbox = self._inbox
        # Under the engine's lock a batch at a time. The callbacks take the lock again and
        # again (re-entrant: almost free), and a thread that wants it (one submitting jobs)
        # waits once per batch instead of fighting for it, and for the GIL, at every callback:
        # those hand-offs cost both threads system calls, 10 µs of CPU per thread job.
        with self._lock:
            for _ in range(_DRAIN_BATCH):
                if not inbox:
                    return
                fn, args = inbox.popleft()
                try:
                    fn(*args)
                except Exception:  # pragma: no cover - a bug of ours; keep the loop alive
                    logger.exception("jupyter_executor: internal error in %r", fn)
        if inbox:  # the rest at the next turn: the lock is free for others in between
            assert self._loop is not None
            self._loop.call_soon(self._drain_inbox)

    def _backend(self, name: str) -> Backend:
        backend = self._backends.get(name)
        if backend is None:
            backend = self._backends[name] = make_backend(name, self)
            backend.limit = self.limits[name]
        return backend

    # starting ----------------------------------------------------------------------------------
    def _dispatch(self, jobs: builtins.list[Job]) -> None:
        """Admit ready jobs on the loop thread.

        Submitting and finishing threads only post to the loop's inbox; the loop admits jobs in
        batches. Measured: starting thread jobs straight from the submitting thread made the
        engine's lock contended between three threads and cost twice as much per job.
        """
        self._call_soon(self._admit_all, jobs)

    def _admit_all(self, jobs: builtins.list[Job], start: int = 0) -> None:
        # A few hundred per loop turn: admitting 100,000 at once keeps 100,000 tasks alive
        # together, and the garbage collector's full passes over them dominated the cost.
        # An offset, not a slice of the rest: a new list of what remains at every turn cost
        # a copy, and a young container that each collection of the youngest generation
        # walked through.
        end = start + _ADMIT_BATCH
        if len(jobs) > end:
            assert self._loop is not None
            self._loop.call_soon(self._admit_all, jobs, end)
        for job in itertools.islice(jobs, start, end):
            self._admit(job)

    def _admit(self, job: Job) -> None:
        """(loop thread) Start a pending job whose requirements are done, if it may start."""
        if job.status is not Status.PENDING or job._waiting:
            return
        cond = job._condition
        if cond is not None:
            try:
                answer = cond.check(self._lookup)
                wake = cond.wake_at() if answer is None else None
                polls = answer is None and cond.polls()
            except Exception as exc:  # the user's condition raised: the job fails with it
                self._fail_pending(job, exc)
                return
            if answer is None:
                assert self._loop is not None
                if polls:
                    # Nothing will wake it: ask again on job ends and on the shared timer.
                    self._polled[job] = None
                    every = cond.poll_every
                    self._arm_poll(every if wake is None else min(every, wake - time.time()))
                elif wake is not None:
                    self._loop.call_later(max(0.0, wake - time.time()), self._admit, job)
                return
            if answer is False:
                self._cancel_pending(job, f"condition {cond.describe()} can never be met")
                return
        life = job._life
        if life is None and self.resume and job.kind != "coroutine":
            from .job import Lifecycle

            life = job._life = Lifecycle()  # resuming needs the job's identity
        if life is not None:
            if life.schedule is not None and not life.ticking:
                life.ticking = True
                self._schedule_tick(job, None)
                return
            if (life.inputs or life.outputs or self.resume) and life.checked != job.attempts:
                life.checked = job.attempts
                assert self._loop is not None
                upstream_ran = any(r in self._ran for r in job.requirements)
                fut = self._loop.run_in_executor(
                    None, _freshness, job, self.resume and not upstream_ran, self._store, self.force
                )
                fut.add_done_callback(functools.partial(self._after_freshness, job))
                return
        self._run(job, self._backend(job.backend))

    def _arm_poll(self, delay: float) -> None:
        """(loop thread) Make sure the conditions that poll are asked again within ``delay``."""
        assert self._loop is not None
        at = self._loop.time() + max(0.05, delay)  # a floor: a condition cannot spin the loop
        handle = self._poll_handle
        if handle is not None:
            if handle.when() <= at:
                return
            handle.cancel()
        self._poll_handle = self._loop.call_at(at, self._repoll, True)

    def _repoll(self, timer: bool = False) -> None:
        """(loop thread) Ask the waiting conditions that poll again (a timer, or a job ended)."""
        if timer:
            self._poll_handle = None
        polled, self._polled = self._polled, {}
        for job in polled:
            self._admit(job)  # puts it back (and re-arms the timer) while still not met

    # long-running jobs (schedules, restarts, make-like) -------------------------------------------
    def _after_freshness(self, job: Job, fut: asyncio.Future[tuple[str, str | None]]) -> None:
        if job.status is not Status.PENDING:
            return
        try:
            verdict, identity = fut.result()
        except Exception as exc:
            self._fail_pending(job, exc)
            return
        assert job._life is not None
        job._life.identity = identity
        if verdict == "run":
            self._admit(job)
            return
        with self._lock:
            job._cancel_reason = None
        self._record(verdict.split(":")[0], job, verdict)
        self._settle(job, Status.DONE, verdict, None)

    def _fail_pending(self, job: Job, exc: BaseException) -> None:
        with self._lock:
            if job.status is not Status.PENDING:
                return
            # pending -> failed is no transition: the job fails as an attempt that failed at
            # once (no slot is taken), so its history row and attempts count it as a run.
            job._set_status(Status.RUNNING)
            job.started = time.time()
            job.attempts += 1
        job.traceback, job._traceback_ansi = _traceback.format_exception(exc)
        self._settle(job, Status.FAILED, None, exc)

    def _schedule_tick(self, job: Job, after: Any) -> None:
        life = job._life
        assert life is not None and self._loop is not None
        now = datetime.now().astimezone()
        when = life.schedule.first(now) if after is None else life.schedule.next_after(after)
        if when is None:
            life.next_run = None
            return
        life.next_run = when.timestamp()
        self._emit("progress", job)  # the next run time changed: views refresh the row
        self._loop.call_later(max(0.0, life.next_run - time.time()), self._tick, job, when)

    def _tick(self, job: Job, when: Any) -> None:
        life = job._life
        assert life is not None
        if job.status in FINISHED:
            # Cancelled: no more runs. The chain of ticks ends here, so that a rerun of the
            # job starts a new one (else it would run once and then wait for a dead timer).
            life.ticking = False
            life.next_run = None
            return
        if job.status is Status.RUNNING:
            self._record("skipped", job, "still running at its next time; not started twice")
        elif job.status is Status.PENDING and not job._waiting:
            self._admit(job)
        if life.periodic:
            self._schedule_tick(job, when)
        else:
            life.next_run = None

    def _run_over(self, job: Job, status: Status, result: Any, exc: BaseException | None) -> bool:
        """A run of a long-running job ended: schedule its next run or restart; True if so."""
        life = job._life
        assert life is not None
        if job._cancel_requested and not isinstance(job._exception, JobTimeout):
            return False  # cancelled by the user or the shutdown: no more runs
        if self._closed:
            return False
        if life.periodic:
            self._settle(job, status, result, exc, rearm=f"next run at {_clock(life.next_run)}")
            return True
        ok = status is Status.DONE
        if life.restart == "always" or (life.restart == "on-failure" and not ok):
            if life.max_restarts is not None and life.restarts >= life.max_restarts:
                self._record("gave up", job, f"after {life.restarts} restarts")
                return False
            life.restarts += 1
            life.failures = 0 if ok else life.failures + 1
            delay = min(life.restart_delay * 2 ** max(0, life.failures - 1), 600.0)
            why = "it ended" if ok else f"{type(exc).__name__}: {exc}" if exc else "it failed"
            self._settle(
                job,
                status,
                result,
                exc,
                rearm=f"restarting ({life.restarts}) in {delay:g} s after {why}",
            )
            self._admit_later(job, delay)
            return True
        return False

    def _rearm_locked(self, job: Job, why: str) -> None:
        # Back to pending for the next run; the run that ended stays in job.previous.
        job.previous = [*job.previous[-49:], job.info()]
        if job._waited:
            self._unfinished += 1
            if job.status is not Status.DONE:
                self._bad -= 1
        job._set_status(Status.PENDING)
        job._cancel_reason = None
        job._cancel_requested = False
        job._future = None
        if self._store is not None:
            # The next run is pending: without this the store would file a cancel before it
            # starts under the run that just ended, and overwrite that run's outcome.
            self._job_changed(job)
        self.log.append(_event((time.time(), "rearmed", job.name, why)))
        if self._subscribers:
            self._emit("status", job)

    def keep_restarting(self, delay: float = 30.0, max_restarts: int | None = None) -> int:
        """Restart failed jobs from now on, like R's ``keep_restarting()``; return how many now.

        Jobs without a restart policy get ``restart="on-failure"`` with this delay (doubling
        after each consecutive failure), and so do the jobs submitted later; jobs failed
        already are rerun at once. Coroutine objects (which can run only once) are left alone.
        """
        with self._lock:  # a job submitted meanwhile gets the policy from _register
            self._default_restart = (float(delay), max_restarts)
            jobs = list(self._jobs.values())
        rerun = 0
        for job in jobs:
            if not self._restart_by_default(job):
                continue
            if job.status is Status.FAILED:
                self.rerun(job)
                rerun += 1
        return rerun

    def _restart_by_default(self, job: Job) -> bool:
        """Give ``job`` the policy of :meth:`keep_restarting` unless it has its own; True if so."""
        default = self._default_restart
        if default is None or job.kind == "coroutine":
            return False  # a coroutine object cannot run twice
        life = job._life
        if life is None:
            from .job import Lifecycle

            life = job._life = Lifecycle()
        if life.restart == "no":
            life.restart, life.restart_delay = "on-failure", default[0]
            life.max_restarts = default[1]
        return True

    def _lookup(self, ref: Any) -> Job:
        job = _job_of(ref)
        return job if job is not None else self._jobs[ref]

    def _run(self, job: Job, backend: Backend) -> None:
        if self._begin(job, backend):
            try:
                backend.start(job)
            except Exception as exc:
                self._finish(job, exc=exc)

    def _begin(self, job: Job, backend: Backend) -> bool:
        """Take a slot and mark ``job`` running; queue it when no slot is free."""
        with self._lock:
            if job.status is not Status.PENDING:
                return False
            if (self.max_jobs is not None and self._running >= self.max_jobs) or (
                backend.limit is not None and backend.running >= backend.limit
            ):
                backend.queue.append(job)
                backend.enqueued += 1
                self._queued += 1
                if self._store is not None and not self._noting:
                    self._arm_note_queued()
                return False
            self._mark_running(job, backend)
        self._after_begin(job)
        return True

    def _arm_note_queued(self) -> None:
        # (loop thread, under the lock) The jobs queued by now are checked a delay later.
        self._noting = True
        for b in self._backends.values():
            b.mark = b.enqueued
        assert self._loop is not None
        self._loop.call_later(_NOTE_QUEUED_AFTER, self._note_queued)

    def _note_queued(self) -> None:
        """(loop thread) Record as pending the jobs that have waited a while for a slot.

        A job that gets a slot soon is recorded when it starts (so that a burst of short jobs
        queued behind the pool costs no extra write); one that waits behind a limit must be in
        the history meanwhile, so that a kernel that dies does not lose it. Each check records
        the jobs queued before the previous one that still wait, oldest first.
        """
        with self._lock:
            self._noting = False
            if self._store is None:
                return
            waiting = False
            for b in self._backends.values():
                popped = b.enqueued - len(b.queue)
                first = max(b.noted, popped)
                for job in itertools.islice(b.queue, first - popped, max(0, b.mark - popped)):
                    if job.status is Status.PENDING:
                        self._job_changed(job)
                b.noted = max(b.noted, b.mark)
                waiting = waiting or bool(b.queue)
            if waiting:
                self._arm_note_queued()

    def _mark_running(self, job: Job, backend: Backend) -> None:
        # (under the lock) A slot is taken: the job runs.
        job._set_status(Status.RUNNING)
        job.started = now = time.time()
        job.finished = None
        job.attempts += 1
        if self.resume:
            self._ran.add(str(job.name))
        job._exception = None
        job.traceback = None
        if job._output is not None:  # an earlier run: this one starts a new tail and log
            job._output.close()
            job._output = None
        self._running += 1
        backend.running += 1
        self.log.append(_event((now, "started", job.name, "")))
        if job.kind != "command" and _events.isEnabledFor(logging.INFO):
            # (a command is logged when its process exists, with its pid: _note_pid)
            _log_event(logging.INFO, "started %s %s", job.name, job.describe())
        if self._subscribers:
            self._emit("status", job)
        if self._store is not None:
            if job._life is None:  # _job_changed inlined: a call less per job
                self._store.job_changed(job)
            else:
                self._job_changed(job)

    def _note_pid(self, job: Job) -> None:
        """A job's process started: log it like R executor ("started LOL jobs/test.R (pid N)")."""
        self.log.append(_event((time.time(), "pid", job.name, f"{job.describe()} (pid {job.pid})")))
        if _events.isEnabledFor(logging.INFO):
            _log_event(logging.INFO, "started %s %s (pid %s)", job.name, job.describe(), job.pid)

    def _after_begin(self, job: Job) -> None:
        if job.timeout is not None:
            self._call_soon(self._arm_timeout, job, job.attempts)
        if sys.stdout.__class__ is not _capture._StreamProxy:
            _capture.install()

    def _arm_timeout(self, job: Job, attempt: int) -> None:
        if job.status is Status.RUNNING and job.attempts == attempt:
            assert self._loop is not None and job.timeout is not None
            job._timeout_handle = self._loop.call_later(job.timeout, self._on_timeout, job, attempt)

    def _on_timeout(self, job: Job, attempt: int) -> None:
        if job.status is not Status.RUNNING or job.attempts != attempt:
            return
        reason = f"timed out after {job.timeout:g} s"
        job._exception = JobTimeout(str(job.name), reason)
        job._cancel_reason = reason
        job._cancel_requested = True
        self._record("timeout", job, reason)
        self._backends[job.backend].cancel(job)

    # finishing ---------------------------------------------------------------------------------
    def _finish(
        self,
        job: Job,
        result: Any = None,
        exc: BaseException | None = None,
        cancelled: bool = False,
        tb: str | None = None,
        handoff: Backend | None = None,
    ) -> Job | None:
        """(loop thread) An attempt of ``job`` ended: settle it, or schedule a retry.

        With ``handoff``, a dependent that became ready and runs on that backend is started
        and returned instead of dispatched, so that the caller runs it in the same task: a
        chain of async jobs then costs no new task and no event-loop turn per hop.
        """
        handle = job._timeout_handle
        if handle is not None:
            handle.cancel()
            job._timeout_handle = None
        job._task = None
        backend = self._backends.get(job.backend)
        if backend is None or (self._closed and job.detach and not job._cancel_requested):
            return None  # the engine stopped; a detached job runs on, the next engine takes it
        with self._lock:
            if job.status is not Status.RUNNING:
                return None
            self._running -= 1
            backend.running -= 1
        ready: builtins.list[Job] | None = [] if handoff is not None else None
        if exc is None and not (job._cancel_requested or cancelled) and type(job) is not Job:
            try:
                result = job._on_result(result)
            except Exception as hook_exc:
                exc = hook_exc
        life = job._life
        if life is not None and life.outputs and exc is None and not job._cancel_requested:
            missing = _missing_outputs(job)
            if missing:
                exc = MissingOutputs(
                    f"job {job.name!r} succeeded but did not produce its declared outputs: "
                    + ", ".join(missing)
                )
        if job._cancel_requested or cancelled:
            timed_out = isinstance(job._exception, JobTimeout)
            if timed_out and job.attempts <= job.retries and not self._closed:
                self._retry(job, str(job._cancel_reason))
            elif life is None or not self._run_over(job, Status.CANCELLED, None, job._exception):
                self._settle(job, Status.CANCELLED, None, job._exception, ready)
        elif exc is not None:
            if tb is None:
                tb, job._traceback_ansi = _traceback.format_exception(exc)
            else:  # formatted where it ran (a worker process): name the cells as IPython does
                tb, job._traceback_ansi = _traceback.rename(tb), None
            job.traceback = tb
            # the log says how the attempt ended (plain text: the log is read in a terminal)
            job.output.log_only(tb if tb.endswith("\n") else tb + "\n")
            if job.attempts <= job.retries and not self._closed:
                self._retry(job, f"{type(exc).__name__}: {exc}")
            elif life is None or not self._run_over(job, Status.FAILED, None, exc):
                self._settle(job, Status.FAILED, None, exc, ready)
        elif life is None or not self._run_over(job, Status.DONE, result, None):
            self._settle(job, Status.DONE, result, None, ready)
        if (
            exc is None
            and life is not None
            and (life.inputs or life.outputs)
            and self._store is not None
            and not (job._cancel_requested or cancelled)
            and self._loop is not None
        ):
            # Hashing may take a while: off the loop. Recorded after the outcome, so a
            # "which run made it" query right after wait() may miss it for a moment.
            self._loop.run_in_executor(None, _record_files, self._store, job, job.attempts)
        if self._queued:
            self._call_soon(self._drain_queues, backend)
        if not ready:
            return None
        nxt = None
        for i, candidate in enumerate(ready):
            if candidate.backend == backend.name and candidate._condition is None:
                if self._begin(candidate, backend):
                    nxt = candidate
                    del ready[i]
                break
        if ready:
            self._dispatch(ready)
        return nxt

    def _retry(self, job: Job, why: str) -> None:
        delay = job.retry_delay * 2 ** (job.attempts - 1)
        with self._lock:
            job._set_status(Status.PENDING)
            # The store and the subscribers (a store of their own, a view) see the failed
            # attempt with its error before it is cleared for the next one.
            self._job_changed(job)
            self._record(
                "retried", job, f"attempt {job.attempts} failed: {why}; next in {delay:g} s"
            )
            job._exception = None
            job._cancel_reason = None
            job._cancel_requested = False
        self._call_soon(self._admit_later, job, delay)

    def _admit_later(self, job: Job, delay: float) -> None:
        assert self._loop is not None
        self._loop.call_later(delay, self._admit, job)

    def _settle(
        self,
        job: Job,
        status: Status,
        result: Any,
        exc: BaseException | None,
        collect: builtins.list[Job] | None = None,
        rearm: str | None = None,
        not_started: bool = False,
    ) -> bool:
        """Give ``job`` its final status and wake its dependents (any thread).

        The dependents that became ready are dispatched, or appended to ``collect``. With
        ``rearm`` (why), the job goes back to pending for another run, in the same locked step
        so that ``wait()`` never sees it finished in between. With ``not_started``, a job that
        is running by now is left alone (its slot is given back by :meth:`_finish`, not here).
        Returns False when the job was left alone.
        """
        ready: builtins.list[Job] = [] if collect is None else collect
        to_cancel: builtins.list[tuple[Job, str]] = []
        with self._lock:
            if job.status in FINISHED or (not_started and job.status is Status.RUNNING):
                return False
            job._set_status(status)
            job.finished = now = time.time()
            job._result = result
            job._exception = exc
            if job._waited:
                self._unfinished -= 1
                if status is not Status.DONE:
                    self._bad += 1
            detail = ""
            if status is Status.CANCELLED:
                detail = job._cancel_reason or "cancelled"
            elif exc is not None:
                detail = f"{type(exc).__name__}: {exc}"
            self.log.append(_event((now, status._value_, job.name, detail)))
            if status is Status.FAILED:
                self._log_failure(job, detail)
            elif _events.isEnabledFor(logging.INFO):
                suffix = f" ({detail})" if detail else ""
                _log_event(logging.INFO, "%s %s%s", status._value_, job.name, suffix)
            if self._subscribers:
                self._emit("status", job)
            if self._store is not None:
                if job._life is None:  # _job_changed inlined: a call less per job
                    self._store.job_changed(job)
                else:
                    self._job_changed(job)
            if job._future is not None:
                _resolve(job._future, job)
            name = str(job.name)
            jobs = self._jobs
            for dep_name in self._graph.dependents(name):
                dep = jobs.get(dep_name)
                if dep is None or dep.status is not Status.PENDING:
                    continue
                if name in dep.requirements:
                    if status is Status.DONE:
                        dep._waiting -= 1
                        if dep._waiting == 0:
                            ready.append(dep)
                    elif rearm is None:  # a job that will run again keeps its dependents
                        to_cancel.append((dep, f"dependency {name!r} {status.value}"))
                elif dep._waiting == 0:
                    ready.append(dep)  # its condition may now be met
            if rearm is not None:
                self._rearm_locked(job, rearm)
            elif job._life is not None:
                job._life.next_run = None  # finished for good: no next run to show
            if self._unfinished == 0:
                self._cond.notify_all()
                waiters, self._idle_waiters = self._idle_waiters, []
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(None)
        out = job._output
        if out is not None:
            out.close()
        for dep, reason in to_cancel:
            self._cancel_pending(dep, reason)
        if ready and collect is None:
            self._dispatch(ready)
        if self._polled:
            self._call_soon(self._repoll)  # a job ended: conditions on the engine may now hold
        return True

    def _log_failure(self, job: Job, detail: str) -> None:
        # WARNING for the failure, the traceback at DEBUG (executor-engine's loguru lines).
        _log_event(logging.WARNING, "failed %s: %s", job.name, detail)
        tb = job.traceback
        if tb:
            _log_event(logging.DEBUG, "traceback of %s:\n%s", job.name, tb.rstrip())
            if self.print_traceback:
                # Asked for: executor-engine's print_traceback=True. Past the routing proxy:
                # this may run in the failed job's task, whose prints go to the job itself.
                stream = sys.stderr
                if type(stream) is _capture._StreamProxy:
                    stream = stream._original
                print(f"job {job.name!r} failed:\n{tb.rstrip()}", file=stream)

    def _cancel_pending(self, job: Job, reason: str) -> None:
        with self._lock:
            if job.status is not Status.PENDING and job.status is not Status.CREATED:
                return
            job._cancel_reason = reason
            job._cancel_requested = True
        if not self._settle(job, Status.CANCELLED, None, None, not_started=True):
            self._call_soon(self._stop, job)  # it started meanwhile: stop it like a running one

    def _drain_queues(self, backend: Backend) -> None:
        """(loop thread) A slot was freed: start what waits in the queues, this backend's first."""
        for b in (backend, *self._backends.values()):
            while b.queue:
                # One lock hold per job, from the queue to running (a queued job is pending).
                with self._lock:
                    if not b.queue or not (
                        (self.max_jobs is None or self._running < self.max_jobs)
                        and (b.limit is None or b.running < b.limit)
                    ):
                        break
                    job = b.queue.popleft()
                    self._queued -= 1
                    if job.status is not Status.PENDING:
                        continue  # cancelled while it waited
                    self._mark_running(job, b)
                self._after_begin(job)
                try:
                    b.start(job)
                except Exception as exc:
                    self._finish(job, exc=exc)
            if not self._queued:
                break

    # control -----------------------------------------------------------------------------------
    def cancel(self, job: Job | str, reason: str = "cancelled by user") -> bool:
        """Stop a job; return False when it had already finished.

        A pending job is removed from the queue at once. A running one is asked to stop: an async
        task is cancelled; a process or subprocess has its process group terminated (then killed
        after :attr:`cancel_grace` seconds); a thread sees :func:`~jupyter_executor.cancelled`
        turn True, and gets an exception injected after the grace period; one blocked where no
        exception reaches it (a lock, a long call into C) is abandoned after another grace
        period: the job is settled, the thread runs on until that call returns. Its dependents
        are cancelled in turn.
        """
        job = self._get(job)
        with self._lock:
            status = job.status
            if status in FINISHED:
                return False
            job._cancel_requested = True
            if job._cancel_reason is None or not isinstance(job._exception, JobTimeout):
                job._cancel_reason = reason
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
        return _durable.unschedule(self, name)

    def _stop(self, job: Job) -> None:
        if job.status is Status.RUNNING:
            self._backends[job.backend].cancel(job)

    def rerun(self, job: Job | str) -> Job:
        """Run a finished job again (its requirements are checked again); returns the job."""
        job = self._get(job)
        if job.kind == "coroutine":
            msg = (
                f"job {job.name!r} runs a coroutine object, which can run only once; "
                "submit a new job (replace=True), or use the coroutine function"
            )
            raise SubmitError(msg)
        ready = False
        with self._lock:
            if not job.done():
                msg = (
                    f"job {job.name!r} is {job.status.value}; only a finished job can be rerun "
                    f"(cancel it first with engine.cancel({job.name!r}))"
                )
                raise SubmitError(msg)
            job.previous = [*job.previous, job.info()]
            old = job.status
            job._set_status(Status.PENDING)
            if job._waited:
                self._unfinished += 1
                if old is not Status.DONE:
                    self._bad -= 1
            job._result = job._exception = job.traceback = None
            job._cancel_reason = None
            job._cancel_requested = False
            job._future = None
            job._output = None
            job.started = job.finished = None
            job.submitted = time.time()
            waiting = 0
            failed_req = None
            for req in job.requirements:
                status = self._jobs[req].status
                if status is not Status.DONE:
                    waiting += 1
                    if status in (Status.FAILED, Status.CANCELLED):
                        failed_req = (req, status)
            job._waiting = waiting
            self._record("rerun", job)
            ready = waiting == 0
        if failed_req is not None:
            self._cancel_pending(job, f"dependency {failed_req[0]!r} {failed_req[1].value}")
        elif ready:
            self._dispatch([job])
        return job

    def remove(self, job: Job | str) -> None:
        """Forget a finished job (its log file stays)."""
        job = self._get(job)
        with self._lock:
            if not job.done():
                msg = f"job {job.name!r} is {job.status.value}; cancel it before removing it"
                raise SubmitError(msg)
            live = [d for d in self._graph.dependents(str(job.name)) if not self._jobs[d].done()]
            if live:
                msg = f"job {job.name!r} is required by unfinished jobs: {', '.join(sorted(live))}"
                raise SubmitError(msg)
            self._forget(job)
            self._emit("removed", job)

    def clear(self) -> int:
        """Forget every finished job that no unfinished job requires; return how many."""
        removed = 0
        for job in list(self._jobs.values()):
            if job.done():
                with contextlib.suppress(SubmitError):
                    self.remove(job)
                    removed += 1
        return removed

    # waiting -----------------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        """Block until every non-forever job has finished.

        Works from any thread, including a notebook cell (it waits on a lock, not on an event
        loop). Returns True when all of them succeeded; False on timeout, or when one failed or
        was cancelled. On the main thread with the IPython extension loaded, the jobs waited for
        are shown meanwhile (under the cell, or as ``[job NAME] line`` in a terminal; see
        :func:`set_wait_display`).
        """
        self._check_not_in_job("wait")
        if self._deferred:
            self._submit([], False)
        with _wait_view(self, self._waited_unfinished), self._cond:
            if not self._cond.wait_for(lambda: self._unfinished == 0, timeout):
                return False
            ok = self._bad == 0
        self._on_disk()
        return ok

    def _waited_unfinished(self) -> builtins.list[Job]:
        return [j for j in builtins.list(self._jobs.values()) if j._waited and not j.done()]

    def _on_disk(self) -> None:
        """Block until the history holds every change reported so far (the ends a wait saw).

        Bounded by the store's busy timeout; a history that cannot be written is logged, not
        raised: the jobs did end, and the store retries the write.
        """
        store = self._store
        if store is None:
            return
        try:
            store.flush(store.busy_timeout)
        except (StoreError, TimeoutError) as exc:
            logger.warning("jupyter_executor: the ends waited for are not on disk yet: %s", exc)

    async def join(self, timeout: float | None = None) -> bool:
        """``await`` until every non-forever job has finished; the async twin of :meth:`wait`.

        The jobs themselves are shielded: cancelling the awaiting code (a kernel interrupt of
        the cell) does not cancel them.
        """
        self._check_not_in_job("join")
        if self._deferred:
            self._submit([], False)
        with self._lock:
            fut: concurrent.futures.Future[None] | None = None
            if self._unfinished:
                fut = concurrent.futures.Future()
                self._idle_waiters.append(fut)
        if fut is not None:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), timeout)
            except TimeoutError:
                return False
        ok = self._bad == 0
        if self._store is not None:
            await asyncio.to_thread(self._on_disk)  # the awaiting loop goes on meanwhile
        return ok

    def wait_job(self, job: Job | str, timeout: float | None = None) -> bool:
        """Block until ``job`` has finished; True when it is done (succeeded)."""
        job = self._get(job)
        if job is _current_job.get():
            msg = f"job {job.name!r} cannot wait for itself"
            raise SubmitError(msg)
        deadline = None if timeout is None else time.monotonic() + timeout
        # A job that restarts (or runs on a schedule) resolves its future at the end of each
        # run and gets a new one for the next: wait until it has finished for good.
        while not job.done():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            concurrent.futures.wait([job.future], left)
        if job.done():
            self._on_disk()
        return job.status is Status.DONE

    async def gather(self, *jobs: Job | str) -> builtins.list[Any]:
        """``await`` several jobs; return their results in order (raise the first failure)."""
        return [await self._get(j) for j in jobs]

    def orchestrate(self, timeout: float | None = None) -> bool:
        """Run the jobs given to ``Engine(*jobs)`` (and any submitted) until the finite ones end.

        Forever jobs are then cancelled. On timeout the unfinished jobs are cancelled too. The
        engine's thread is released when this returns. Works inside a running event loop (a
        notebook cell): the waiting happens on a lock, not on that loop.

        Returns
        -------
        bool
            True when every finite job succeeded within the timeout.
        """
        if self._deferred:
            self._submit([], False)
        jobs = builtins.list(self._jobs.values())
        with _wait_view(self, lambda: [j for j in jobs if not j.done()]):
            return self._orchestrate(timeout)

    def _orchestrate(self, timeout: float | None) -> bool:
        ok = self.wait(timeout)
        if not ok and self._unfinished:
            for job in list(self._jobs.values()):
                if job._waited and not job.done():
                    self.cancel(job, f"orchestrate() timed out after {timeout} s")
        forever = [j for j in self._jobs.values() if not j._waited and not j.done()]
        for job in forever:
            self.cancel(job, "the finite jobs are done")
        deadline = time.monotonic() + self.cancel_grace + 5
        for job in list(self._jobs.values()):
            if not job.done():
                self.wait_job(job, max(0.0, deadline - time.monotonic()))
        self._cleanup()
        if self._running == 0:
            self._stop_thread()
        return ok

    def add_cleanup(self, key: Any, fn: Callable[[], Any]) -> bool:
        """Run ``await fn()`` once, on the engine's loop, when this run ends.

        "This run" ends when :meth:`orchestrate` returns or at :meth:`shutdown`; cleanups run
        last registered first, each bounded to 30 s, a failing one not stopping the others.
        Returns False (and registers nothing) when ``key`` is registered already: shared
        resources are torn down exactly once.
        """
        with self._lock:
            if key in self._cleanups:
                return False
            self._cleanups[key] = fn
            return True

    def _cleanup(self) -> None:
        with self._lock:
            cleanups, self._cleanups = builtins.list(self._cleanups.values()), {}
        if not cleanups or self._loop is None:
            return

        async def run_all() -> None:
            for fn in reversed(cleanups):
                try:
                    await asyncio.wait_for(fn(), 30)
                except Exception:
                    logger.exception("jupyter_executor: cleanup %r failed", fn)

        asyncio.run_coroutine_threadsafe(run_all(), self._loop).result(timeout=len(cleanups) * 31)

    def _check_not_in_job(self, what: str) -> None:
        job = _current_job.get()
        if job is not None and job.engine is self and job._waited:
            msg = (
                f"engine.{what}() inside job {job.name!r} would wait for that job itself; "
                "wait for the jobs you need with engine.wait_job(...) or `await job`"
            )
            raise SubmitError(msg)

    # inspection --------------------------------------------------------------------------------
    @property
    def jobs(self) -> JobsView:
        """The jobs by name: a read-only mapping that prints one line per job.

        Also ``engine.jobs.running`` (``pending``, ``done``, ``failed``, ``cancelled``): the jobs
        in that status by name, and ``engine.jobs.get_job_by_id(id)`` (executor-engine's
        manager). ``for job in engine:`` iterates the jobs themselves.
        """
        return JobsView(self._jobs)

    def _allows(self, name: str) -> tuple[str, ...]:
        """The jobs that require job ``name`` (its dependents by requirement)."""
        jobs = self._jobs
        return tuple(
            d for d in self._graph.dependents(name) if d in jobs and name in jobs[d].requirements
        )

    def __getitem__(self, name: str) -> Job:
        added = self._added.get(name)
        return added if added is not None else self._get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)

    def _get(self, ref: Job | str) -> Job:
        if isinstance(ref, Job):
            if ref.engine is not self:
                msg = f"job {ref.name!r} does not belong to this engine"
                raise KeyError(msg)
            return ref
        job = self._jobs.get(ref)
        if job is None:
            known = ", ".join(list(self._jobs)[:10]) or "none"
            msg = f"no job named {ref!r} (jobs: {known})"
            raise KeyError(msg)
        return job

    def select(self, status: str | Iterable[str] | None = None) -> builtins.list[Job]:
        """The jobs whose status is ``status`` (a name or several), in submission order."""
        if status is None:
            return list(self._jobs.values())
        wanted = {Status(status)} if isinstance(status, str) else {Status(s) for s in status}
        return [j for j in list(self._jobs.values()) if j.status in wanted]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        counts = dict.fromkeys((s.value for s in Status), 0)
        for job in list(self._jobs.values()):
            counts[job.status.value] += 1
        return counts

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
        import pandas as pd

        rows = []
        jobs = self.select(status)
        wanted = [status] if isinstance(status, str) else status
        if self._added and (wanted is None or "created" in wanted):
            jobs += builtins.list(self._added.values())
        for job in jobs:
            info = job._info_dict()
            life = job._life
            schedule = _describe_schedule(life.schedule) if life is not None else None
            rows.append(
                (
                    info["name"],
                    info["status"],
                    info["backend"],
                    list(info["requires"]),
                    list(job.allows),
                    info["forever"],
                    _dt(info["submitted"]),
                    _dt(info["started"]),
                    _dt(info["finished"]),
                    info["duration"],
                    info["attempts"],
                    info["result"],
                    info["error"],
                    "\n".join(info["tail"].splitlines()[-3:]),
                    info["progress"],
                    job.pid,
                    info["description"],
                    os.fspath(job.cwd) if job.cwd is not None else None,
                    sorted(job.env) if job.env else [],
                    schedule,
                    self.id,
                )
                + ((_dt(info["next_run"]), info["restarts"], info["url"]) if next_run else ())
            )
        columns = list(COLUMNS) + (["next_run", "restarts", "url"] if next_run else [])
        return pd.DataFrame(rows, columns=columns)

    def history(self, name: str | None = None) -> pd.DataFrame:
        """Every run of every job recorded in this engine's folder, across kernel restarts.

        One row per run, oldest first, with the engine id that ran it (several engines may
        share a folder): name, attempt, status, times, exit code, result, error, log, pid...
        """
        import pandas as pd

        if self._store is None:
            msg = "this engine keeps no history (it was created with history=False)"
            raise SubmitError(msg)
        self._store.flush()
        frame = pd.DataFrame(self._store.history(name))
        for column in ("submitted", "started", "finished"):
            if column in frame:
                frame[column] = frame[column].map(_dt)
        return frame

    def _job_changed(self, job: Job) -> None:
        life = job._life
        if self._store is not None and (life is None or life.reattached is None):
            self._store.job_changed(job)

    # clusters -------------------------------------------------------------------------------------
    @property
    def cluster(self) -> Any:
        """The dask cluster of the dask backend (started on first use; None for a client)."""
        backend = self._backend("dask")
        loop = self._ensure_loop()
        asyncio.run_coroutine_threadsafe(backend.client(), loop).result()  # type: ignore[attr-defined]
        return backend._cluster  # type: ignore[attr-defined]

    def scale(self, n: int | None = None, **options: Any) -> Any:
        """Scale the dask cluster (an HPC cluster: ``jobs=``, ``cores=``, ``memory=`` too)."""
        from ._hpc import scale

        return scale(self._require_cluster(), n, **options)

    def adapt(self, minimum: int = 0, maximum: int = 1, **options: Any) -> Any:
        """Let the dask cluster grow and shrink with the load, between the bounds."""
        from ._hpc import adapt

        return adapt(self._require_cluster(), minimum=minimum, maximum=maximum, **options)

    def _require_cluster(self) -> Any:
        cluster = self.cluster
        if cluster is None:
            msg = "the dask backend uses a client given to the engine; scale its cluster there"
            raise SubmitError(msg)
        return cluster

    # loops, web apps, detached jobs ------------------------------------------------------------
    def converge(
        self,
        plan: Callable[[], Any],
        *,
        errors_to_tolerate: int = 0,
        sleep_between_runs: float = 0.0,
        timeout: float | None = None,
        logger: logging.Logger | None = None,
    ) -> bool:
        """Run ``plan()``'s jobs, again and again, until it returns none (a control loop).

        Each round submits the jobs ``plan()`` returns (Job objects or callables; a name that
        finished in an earlier round is replaced) and waits for them and for their sub-tasks:
        the jobs a job submitted to this engine while it ran (:attr:`Job.children`), and the
        Job objects it returned (a Job, or a list of Jobs, submitted when it succeeds, as
        execloop's ``PerformAction`` returns sub-tasks). Sub-tasks count like the others,
        failures included. Stops with True when ``plan()`` returns nothing; with False when
        more than ``errors_to_tolerate`` jobs have failed in all, or when ``timeout`` seconds
        have passed (unfinished jobs are cancelled).

        Each round logs ``round N: M tasks remaining`` at INFO on ``logger`` (the
        ``"jupyter_executor"`` logger when None), and each failure at WARNING.
        """
        log = logger if logger is not None else _events
        deadline = None if timeout is None else time.monotonic() + timeout
        errors = 0
        round_ = 0
        while True:
            batch = plan()
            if not batch:
                self.log.append(_event((time.time(), "converged", "-", f"after {round_} rounds")))
                log.info("converged after %d rounds", round_)
                return True
            round_ += 1
            jobs = [j if isinstance(j, Job) else Job(j) for j in _as_list(batch)]
            log.info("round %d: %d tasks remaining", round_, len(jobs))
            self._submit(jobs, True)
            ran, timed_out = self._wait_family(jobs, deadline)
            if timed_out:
                for job in ran:
                    self.cancel(job, f"converge() timed out after {timeout} s")
                log.warning("converge() timed out after %s s in round %d", timeout, round_)
                return False
            failed = [job for job in ran if job.status is not Status.DONE]
            for job in failed:
                log.warning("round %d: task %s %s", round_, job.name, job.status.value)
            errors += len(failed)
            if errors > errors_to_tolerate:
                log.warning("giving up: %d tasks failed, %d tolerated", errors, errors_to_tolerate)
                return False
            if sleep_between_runs:
                time.sleep(sleep_between_runs)

    def _wait_family(
        self, jobs: builtins.list[Job], deadline: float | None
    ) -> tuple[builtins.list[Job], bool]:
        """Wait for ``jobs`` and their sub-tasks; return all of them and whether time ran out."""
        todo = collections.deque(jobs)
        seen = {id(j) for j in jobs}
        ran: builtins.list[Job] = []
        while todo:
            job = todo.popleft()
            ran.append(job)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self.wait_job(job, left) and not job.done():
                ran.extend(todo)
                return ran, True
            subs: builtins.list[Job] = builtins.list(job.children)
            if job.status is Status.DONE:
                returned = _subtasks(job._result)
                fresh = [j for j in returned if j.engine is None]
                if fresh:
                    self._submit(fresh, True)
                subs += returned
            for sub in subs:
                if id(sub) not in seen:
                    seen.add(id(sub))
                    todo.append(sub)
        return ran, False

    def submit_webapp(
        self,
        target: Callable[..., Any] | str,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        ready_timeout: float = 30.0,
        **options: Any,
    ) -> Job:
        """Start a web app as a job; its row shows the URL once the port answers.

        Parameters
        ----------
        target
            A command template (``"python -m http.server {port} --bind {host}"``; ``{ip}`` is
            accepted for ``{host}``, as in executor-engine), run as a subprocess job, or a
            callable ``target(host, port)`` that serves (a thread job).
        port
            The port; a free one is picked when None.
        ready_timeout
            Seconds to wait for the port to answer before logging that it did not.
        **options
            Job options (``name=``, ``requires=``, ``restart=``...).
        """
        if port is None:
            port = _free_port(host)
        job: Job
        if isinstance(target, str):
            try:
                command = target.format(port=port, host=host, ip=host)
            except (KeyError, IndexError, ValueError) as exc:
                msg = (
                    f"submit_webapp(): bad command template {target!r} ({exc!r}); "
                    "it may use {port}, {host} and {ip}"
                )
                raise ValueError(msg) from exc
            job = self.submit(command, **options)
        elif callable(target):
            job = self.submit(target, host, port, **options)
        else:
            msg = f"submit_webapp() takes a command template or a callable, not {target!r}"
            raise TypeError(msg)
        if job._life is None:
            from .job import Lifecycle

            job._life = Lifecycle()
        self._call_soon(self._watch_port, job, host, port, ready_timeout)
        return job

    def _watch_port(self, job: Job, host: str, port: int, ready_timeout: float) -> None:
        async def watch() -> None:
            deadline = time.monotonic() + ready_timeout
            while time.monotonic() < deadline and not job.done():
                try:
                    _, writer = await asyncio.open_connection(host, port)
                except OSError:
                    await asyncio.sleep(0.1)
                    continue
                writer.close()
                assert job._life is not None
                job._life.url = f"http://{host}:{port}/"
                self._record("listening", job, job._life.url)
                self._emit("progress", job)
                return
            if not job.done():
                self._record("no answer", job, f"port {port} did not answer in {ready_timeout} s")

        assert self._loop is not None
        self._loop.create_task(watch())

    def _reattach(self) -> None:
        """Take back the detached jobs that an earlier kernel left running in this folder.

        Also closes the runs that a kernel which died left open: without this they would stay
        "running" or "pending" in the history forever. A run whose engine's process (on this
        host) is gone ends as failed when it was running (attached processes die with their
        kernel: their supervisor kills them), as cancelled when it had not started.
        """
        from .backends.subprocess import claim_file_of, exit_file_of

        here = socket.gethostname()
        for row in self._store.running_attached():
            if row.get("engine_pid") is not None:
                # The engine recorded where it ran: its runs are over when that process is.
                if _engine_alive(row, here):
                    continue  # a live engine (another notebook), or one we cannot see
            elif (
                row.get("engine_id") == self.id
                or row.get("pid") is None
                or _same_process(row["pid"], row.get("pid_start_time"))
            ):
                continue  # an older version's engine: judged by the run's process, if it has one
            now = time.time()
            if row.get("status") == Status.RUNNING.value:
                self._store.record_exit(
                    row["id"], "failed", None, now, "the kernel died while it ran"
                )
            else:
                reason = "the kernel died before it started"
                self._store.record_exit(row["id"], "cancelled", None, now, None, reason)

        for row in self._store.running_detached():
            name = row["name"]
            log_path = Path(row["log_path"]) if row.get("log_path") else self.log_path(name)
            exit_file = exit_file_of(log_path)
            if row.get("pid") is None:
                # Recorded before its process started (write-ahead); its engine died before
                # it recorded the pid, or is starting it right now.
                if _engine_alive(row, here):
                    continue
                pid = _claimed_pid(claim_file_of(log_path))
                if pid is None:
                    reason = "the kernel died before it started"
                    self._store.record_exit(row["id"], "cancelled", None, time.time(), None, reason)
                    continue
                row["pid"], row["pid_start_time"] = pid, _supervisor_start_time(pid, log_path)
                if row["pid_start_time"] is not None:
                    self._store.record_pid(row["id"], pid, row["pid_start_time"])
            if name in self._jobs or not _same_process(row.get("pid"), row.get("pid_start_time")):
                status, code, error = _read_exit(exit_file)
                self._store.record_exit(row["id"], status, code, time.time(), error)
                continue
            job = Job(row.get("description") or name, name=name, detach=True)
            with self._lock:
                self._jobs[name] = job
                job.engine = self
                job._set_status(Status.PENDING)
                job._set_status(Status.RUNNING)
                job.submitted = row.get("submitted") or time.time()
                job.started = row.get("started") or time.time()
                job.attempts = int(row.get("attempt") or 1)
                job.pid = int(row["pid"])
                assert job._life is not None
                job._life.pid_start_time = row.get("pid_start_time")
                job._life.reattached = int(row["id"])
                self._unfinished += 1
                self._running += 1
            self._record("reattached", job, f"pid {job.pid}")
            self._call_soon(self._start_watch, job, exit_file)

    def _start_watch(self, job: Job, exit_file: Path) -> None:
        backend = self._backend("subprocess")
        backend.running += 1
        assert self._loop is not None
        task = self._loop.create_task(self._watch_detached(job, exit_file))
        job._task = task
        # A cancel is carried out when the task ends, not in its coroutine: a cancel posted
        # right after the re-attach (`%jobs cancel` as soon as a new kernel's engine is up)
        # can reach the loop in the same turn as this, and a task cancelled before its first
        # step never runs its coroutine's body: the job said cancelled, its process ran on.
        task.add_done_callback(functools.partial(self._watch_cancelled, job))

    def _watch_cancelled(self, job: Job, task: asyncio.Task[None]) -> None:
        """(loop thread) Stop the process of a re-attached job whose watch was cancelled."""
        if not task.cancelled() or not job._cancel_requested:
            return  # it ended by itself, or the engine stopped: a detached job runs on
        assert job.pid is not None
        _kill_group(job.pid, self.cancel_grace)
        life = job._life
        if self._store is not None and life is not None and life.reattached is not None:
            reason = job._cancel_reason or "cancelled"
            try:
                self._store.record_exit(
                    life.reattached, "cancelled", None, time.time(), None, reason
                )
            except StoreError:
                logger.exception("jupyter_executor: cannot record the end of %s", job.name)
        self._finish(job, cancelled=True)

    async def _watch_detached(self, job: Job, exit_file: Path) -> None:
        import psutil

        from .backends.subprocess import describe_returncode, follow

        log_path = job.log_path
        assert log_path is not None and job.pid is not None
        follower = asyncio.get_running_loop().create_task(follow(log_path, job.output))
        try:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc = psutil.Process(job.pid)
                # Not our child: psutil waits by polling the pid (it cannot wait() on it).
                await asyncio.to_thread(proc.wait)
        except asyncio.CancelledError:
            follower.cancel()
            raise  # a cancel requested is carried out by _watch_cancelled
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        status, code, error = _read_exit(exit_file)
        if self._store is not None:
            assert job._life is not None and job._life.reattached is not None
            self._store.record_exit(job._life.reattached, status, code, time.time(), error)
        if status == "done":
            self._finish(job, code)
        else:
            rc = code if code is not None else -1
            self._finish(
                job,
                exc=CommandFailed(
                    f"command {job.describe()!r} {describe_returncode(rc)}"
                    if code is not None
                    else str(error),
                    rc,
                ),
            )

    def widget(self) -> Any:
        """A live dashboard of this engine's jobs (an anywidget)."""
        from .widget import Dashboard

        return Dashboard(self)

    # events ------------------------------------------------------------------------------------
    def subscribe(self, callback: Callable[[str, Job], None]) -> Callable[[], None]:
        """Call ``callback(event, job)`` on every job event; return a function that unsubscribes.

        Events: ``"submitted"``, ``"status"``, ``"output"``, ``"display"``, ``"progress"``,
        ``"removed"``. The callback runs in whatever thread the event happens in, sometimes with
        the engine's lock held: it must be quick, must not block and must not call the engine.
        """
        self._subscribers = [*self._subscribers, callback]

        def unsubscribe() -> None:
            self._subscribers = [s for s in self._subscribers if s is not callback]

        return unsubscribe

    def on_finish(self, callback: Callable[[Job], Any]) -> Callable[[], None]:
        """Call ``callback(job)`` once each time a job ends; return a function that unsubscribes.

        For a word when a job ends by email, Slack or a sound. A job ends when it is done, has
        failed (after its last retry) or is cancelled; a periodic, forever or restarted job ends
        once per run. The calls are made in order, in a thread of the engine's own (not in the
        job's thread or context, without the engine's lock), so the callback may block, print
        or call the engine; what it raises is logged (``"jupyter_executor"`` logger), never
        raised. By the time of the call, a job that runs again may have started its next run.
        Calls still queued when the engine shuts down are made before it stops (up to 5 s).

        Examples
        --------
        >>> from jupyter_executor import Engine
        >>> ended = []
        >>> with Engine(history=False) as engine:
        ...     stop = engine.on_finish(lambda job: ended.append((job.name, job.status.value)))
        ...     job = engine.submit(sum, [1, 2], name="total")
        ...     engine.wait()
        True
        >>> ended
        [('total', 'done')]
        """
        if not callable(callback):
            msg = f"on_finish({callback!r}): give a function taking the job"
            raise InvalidOptionType(msg)
        calls = self._finish_calls

        def on_event(event: str, job: Job) -> None:
            # "status" with a final status is emitted once per end, by _settle (under the lock:
            # only queue the call here).
            if event == "status" and job.status in FINISHED:
                calls.put(callback, job)

        return self.subscribe(on_event)

    def _emit(self, event: str, job: Job) -> None:
        for callback in self._subscribers:
            try:
                callback(event, job)
            except Exception:
                logger.exception("jupyter_executor: subscriber %r failed", callback)

    def _record(self, event: str, job: Job, detail: str = "") -> None:
        self.log.append(EngineEvent(time.time(), event, str(job.name), detail))
        logger.debug("%s %s %s", event, job.name, detail)
        if event in ("retried", "rerun") and self._subscribers:
            self._emit("status", job)

    def _record_many(self, event: str, jobs: builtins.list[Job]) -> None:
        now = time.time()
        if len(jobs) == 1:
            self.log.append(_event((now, event, jobs[0].name, "")))
        else:
            keep = jobs[-(self.log.maxlen or len(jobs)) :]
            self.log.extend(_event((now, event, j.name, "")) for j in keep)
        if self._subscribers:
            for job in jobs:
                self._emit(event, job)

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
        self._closed = True
        with contextlib.suppress(Exception):
            atexit.unregister(self._atexit)
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
        self._finish_calls.close()
        if self._store is not None:
            _durable.release(self)
            self._store.close()

    def _abandon_running(self, reason: str) -> None:
        """Settle, as cancelled, the jobs still running once shutdown has waited for them.

        A thread blocked in C code or on a lock, or a process still in its grace period, would
        otherwise end after the loop has stopped, and its run would stay open in the history
        (to be closed as "failed" by the next engine): the engine stops now, so their end is
        recorded now.
        """
        loop = self._loop
        left = [j for j in self._jobs.values() if j.status is Status.RUNNING and not j.detach]
        if loop is None or not left or threading.get_ident() == self._loop_ident:
            return
        why = "abandoned: still running when the engine stopped"
        done = threading.Event()

        def settle() -> None:
            try:
                for job in left:
                    if job.status is Status.RUNNING:
                        job._cancel_reason = f"{job._cancel_reason or reason}; {why}"
                        self._finish(job, cancelled=True)
            finally:
                done.set()

        self._call_soon(settle)
        done.wait(5.0)

    def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if threading.get_ident() == self._loop_ident:
            msg = "the engine cannot stop its own thread from a job; call it from outside"
            raise RuntimeError(msg)
        backends = list(self._backends.values())

        async def close_backends() -> None:
            for backend in backends:
                try:
                    await backend.aclose()
                except Exception:
                    logger.exception("jupyter_executor: closing backend %s failed", backend.name)

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(close_backends(), loop).result(timeout=30)
        for backend in backends:
            backend.close()
        self._backends.clear()
        with self._loop_lock:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            self._loop = None
            self._thread = None
            self._loop_ident = 0
            self._inbox.clear()
            self._wake_pending = False

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has run."""
        return self._closed


class JobsView(Mapping[str, Job]):
    """A read-only view of an engine's jobs by name; printing it lists one job a line."""

    __slots__ = ("_jobs",)

    def __init__(self, jobs: Mapping[str, Job]) -> None:
        self._jobs = MappingProxyType(jobs)

    def __getitem__(self, name: str) -> Job:
        return self._jobs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    def __repr__(self) -> str:
        if not self._jobs:
            return "<no jobs>"
        return "\n".join(repr(job) for job in builtins.list(self._jobs.values()))

    def _having(self, status: Status) -> dict[str, Job]:
        return {n: j for n, j in builtins.list(self._jobs.items()) if j.status is status}

    @property
    def pending(self) -> dict[str, Job]:
        """The pending jobs by name."""
        return self._having(Status.PENDING)

    @property
    def running(self) -> dict[str, Job]:
        """The running jobs by name."""
        return self._having(Status.RUNNING)

    @property
    def done(self) -> dict[str, Job]:
        """The jobs done (succeeded) by name."""
        return self._having(Status.DONE)

    @property
    def failed(self) -> dict[str, Job]:
        """The failed jobs by name."""
        return self._having(Status.FAILED)

    @property
    def cancelled(self) -> dict[str, Job]:
        """The cancelled jobs by name."""
        return self._having(Status.CANCELLED)

    def get_job_by_id(self, id: str) -> Job:
        """The job whose :attr:`Job.id` is ``id`` (or whose name is ``id``)."""
        for job in builtins.list(self._jobs.values()):
            if job._id == id:
                return job
        return self._jobs[id]


def _record_files(store: Any, job: Job, attempt: int) -> None:
    """(worker thread) Record the paths and content hashes of a run's inputs and outputs."""
    life = job._life
    assert life is not None
    cwd = os.fspath(job.cwd) if job.cwd is not None else None
    files: builtins.list[tuple[str, str, str | None, int, float]] = []
    try:
        for role, patterns in (("input", life.inputs), ("output", life.outputs)):
            for paths in _expand(patterns, cwd).values():
                for path in paths:
                    if path.is_file():
                        stat = path.stat()
                        files.append(
                            (role, str(path.resolve()), _sha256(path), stat.st_size, stat.st_mtime)
                        )
        if files:
            store.record_files(str(job.name), attempt, files)
    except Exception:
        logger.exception("jupyter_executor: recording the files of %s failed", job.name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _describe_schedule(schedule: Any) -> str | None:
    """A schedule in a few words: ``every 0:02:00``, ``cron 0 6 * * *``, ``from <start>``."""
    if schedule is None:
        return None
    parts = []
    if schedule.every is not None:
        parts.append(f"every {schedule.every}")
    if schedule.cron is not None:
        parts.append(f"cron {schedule.cron}")
    if schedule.start is not None:
        parts.append(f"from {schedule.start:%Y-%m-%d %H:%M:%S}")
    return ", ".join(parts)


def _scheduled(job: Job) -> bool:
    """True for a job that runs at given times (``every=``, ``cron=``, ``start=``)."""
    return job._life is not None and job._life.schedule is not None


def _dt(t: float | None) -> datetime | None:
    return None if t is None or t != t else datetime.fromtimestamp(t)  # t != t: NaN


def _name_of(ref: Any) -> str:
    if isinstance(ref, str):
        return ref
    job = _job_of(ref)
    if job is None or job.name is None:  # pragma: no cover - _collect names them first
        msg = f"cannot name {ref!r}"
        raise SubmitError(msg)
    return job.name


def _collect(jobs: list[Job]) -> list[Job]:
    """The jobs plus the unsubmitted jobs they depend on, dependencies first."""
    if not any(j._requires_spec or j._arg_jobs or j._condition is not None for j in jobs):
        return jobs  # nothing to walk (the common case of independent jobs)
    # Jobs given dependencies first (a chain built in order, a script's natural order) need no
    # walk either: one pass checks that each one's unsubmitted dependencies came before it.
    earlier: set[int] = set()
    for job in jobs:
        if id(job) in earlier:
            break  # given twice: the walk drops the repeat
        spec = job._requires_spec
        deps = spec if not job._arg_jobs and job._condition is None else job.required_jobs()
        if job._condition is not None:
            deps = [*deps, *job.condition_jobs()]
        if any(
            (d := _job_of(dep)) is not None and d.engine is None and id(d) not in earlier
            for dep in deps
        ):
            break
        earlier.add(id(job))
    else:
        return jobs
    seen: set[int] = set()
    order: list[Job] = []
    stack: list[tuple[Job, bool]] = [(j, False) for j in reversed(jobs)]
    while stack:
        job, expanded = stack.pop()
        if expanded:
            order.append(job)
            continue
        if id(job) in seen:
            continue
        seen.add(id(job))
        stack.append((job, True))
        for dep in (*job.required_jobs(), *job.condition_jobs()):
            dep_job = _job_of(dep)
            if dep_job is not None and dep_job.engine is None and id(dep_job) not in seen:
                stack.append((dep_job, False))
    return order


def _subtasks(result: Any) -> builtins.list[Job]:
    """The sub-tasks a job returned: a Job, or a non-empty list or tuple of Jobs; else none."""
    if isinstance(result, Job):
        return [result]
    if isinstance(result, (list, tuple)) and result and all(isinstance(j, Job) for j in result):
        return builtins.list(result)
    return []


def _as_list(batch: Any) -> builtins.list[Any]:
    if isinstance(batch, (Job,)) or callable(batch):
        return [batch]
    return builtins.list(batch)


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _same_process(pid: Any, start_time: Any) -> bool:
    """True when ``pid`` runs and started at ``start_time`` (so it is not a recycled pid).

    A zombie (dead, not yet reaped by its parent) does not run.
    """
    if not pid or start_time is None:
        return False
    import psutil

    try:
        proc = psutil.Process(int(pid))
        return bool(
            abs(proc.create_time() - float(start_time)) < 0.05
            and proc.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.Error:
        return False


def _engine_alive(row: dict[str, Any], here: str) -> bool:
    """Whether the engine of a run is alive (or on another host, where we cannot tell)."""
    if row.get("engine_pid") is None:
        return False
    if row.get("engine_host") != here:
        return True
    return _same_process(row["engine_pid"], row.get("engine_pid_start_time"))


def _claimed_pid(claim_file: Path) -> int | None:
    """The pid a detached job's supervisor claimed its run with; None: it never will.

    No claim yet: the engine claims the run itself, so that a supervisor still starting
    exits without running the command (see _supervise.py).
    """
    import json

    from ._supervise import claim

    for _ in range(3):
        try:
            data = json.loads(claim_file.read_text())
        except FileNotFoundError:
            try:
                if claim(str(claim_file), json.dumps({"pid": None})):
                    return None
            except OSError:
                return None  # no logs folder: no supervisor could have claimed it either
            continue  # the supervisor claimed it meanwhile: read its pid
        except (OSError, ValueError):
            return None
        pid = data.get("pid") if isinstance(data, dict) else None
        return pid if isinstance(pid, int) else None
    return None


def _supervisor_start_time(pid: int, log_path: Path) -> float | None:
    """The start time of ``pid`` if it is the supervisor of the job logging to ``log_path``."""
    import psutil

    from .backends.subprocess import claim_file_of

    try:
        proc = psutil.Process(pid)
        if str(claim_file_of(log_path)) not in proc.cmdline():
            return None  # the pid was reused: the supervisor ended
        return float(proc.create_time())
    except psutil.Error:
        return None


def _read_exit(exit_file: Path) -> tuple[str, int | None, str | None]:
    import json

    try:
        code = int(json.loads(exit_file.read_text())["returncode"])
    except (OSError, ValueError, KeyError):
        return (
            "failed",
            None,
            "the detached process ended while no kernel watched it, and left no exit status",
        )
    if code == 0:
        return "done", 0, None
    return "failed", code, f"exit code {code}"


def _kill_group(pid: int, grace: float) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _clock(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _expand(patterns: tuple[str, ...], cwd: str | None) -> dict[str, builtins.list[Path]]:
    base = Path(cwd) if cwd else Path.cwd()
    found: dict[str, builtins.list[Path]] = {}
    for pattern in patterns:
        path = Path(pattern)
        if not path.is_absolute():
            path = base / path
        if glob.has_magic(pattern):
            found[pattern] = [Path(p) for p in sorted(glob.glob(str(path), recursive=True))]
        else:
            found[pattern] = [path] if path.exists() else []
    return found


def _missing_outputs(job: Job) -> builtins.list[str]:
    assert job._life is not None
    cwd = os.fspath(job.cwd) if job.cwd is not None else None
    return [p for p, files in _expand(job._life.outputs, cwd).items() if not files]


def _freshness(job: Job, resume: bool, store: Any, force: bool = False) -> tuple[str, str | None]:
    """(worker thread) Decide whether a make-like job must run: ``("run", identity)`` or a
    reason to skip it. Hashes the inputs' contents, which may take a while for big files."""
    life = job._life
    assert life is not None
    cwd = os.fspath(job.cwd) if job.cwd is not None else None
    inputs = _expand(life.inputs, cwd)
    missing = [p for p, files in inputs.items() if not files]
    if missing:
        msg = f"job {job.name!r} cannot start: its inputs do not exist: {', '.join(missing)}"
        raise FileNotFoundError(msg)
    digest = hashlib.sha256(repr((job.kind, job.describe(), getattr(job, "source", None))).encode())
    for pattern in sorted(inputs):
        for path in inputs[pattern]:
            digest.update(str(path).encode())
            if path.is_file():
                with open(path, "rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
    identity = digest.hexdigest()
    if life.force or force:
        return "run", identity
    outputs = _expand(life.outputs, cwd)
    outputs_exist = all(files for files in outputs.values())
    if resume and store is not None and outputs_exist:
        store.flush()
        if store.last_success(str(job.name), identity):
            return "up to date: resumed from an identical earlier run", identity
    if not life.outputs or not outputs_exist:
        return "run", identity
    newest_input = max(
        (p.stat().st_mtime for files in inputs.values() for p in files), default=None
    )
    oldest_output = min(p.stat().st_mtime for files in outputs.values() for p in files)
    if newest_input is None or oldest_output >= newest_input:
        return "up to date", identity
    return "run", identity


# Every engine of this process, so that all of them can be shut down when the kernel is: a
# kernel's graceful shutdown does not run atexit handlers (docs/kernel-notes.md §7).
_live_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def shutdown_all(reason: str, timeout: float = 2.0) -> builtins.list[str]:
    """Shut down every engine of this process, cancelling its jobs with ``reason``.

    Returns the names of the jobs that were still pending or running (detached jobs, which
    outlive the process, are not among them).
    """
    stopped: builtins.list[str] = []
    for engine in list(_live_engines):
        if engine.closed:
            continue
        stopped += [
            str(job.name)  # a registered job always has its name
            for job in engine
            if not job.done()
            and not job.forever  # a monitor is expected to stop with the kernel
            and not (job.detach and job.status is Status.RUNNING)
        ]
        try:
            engine.shutdown(timeout=timeout, reason=reason)
        except Exception:
            logger.exception("jupyter_executor: shutting engine %s down failed", engine.id)
    return stopped


def _shutdown_at_exit(ref: weakref.ReferenceType[Engine]) -> None:
    engine = ref()
    if engine is not None:
        engine.shutdown(timeout=5)


# -- what a blocking wait shows -----------------------------------------------------------------

#: Makes the context manager that shows the jobs a blocking wait waits for; installed by the
#: IPython extension (set_wait_display), so that this module imports no IPython.
_wait_display: Callable[[Engine, builtins.list[Job]], contextlib.AbstractContextManager[Any]] | None
_wait_display = None
_wait_shown = False  # a wait on the main thread shows its jobs now (nested waits show nothing)


def set_wait_display(
    fn: Callable[[Engine, builtins.list[Job]], contextlib.AbstractContextManager[Any]] | None,
) -> Callable[[Engine, builtins.list[Job]], contextlib.AbstractContextManager[Any]] | None:
    """Install ``fn(engine, jobs)``, entered while a blocking wait on the main thread waits.

    :meth:`Engine.wait`, :meth:`Engine.orchestrate` (and ``%jobs wait``) called on the main
    thread enter the context manager it returns around the waiting, with the jobs waited for;
    the IPython extension shows them under the cell (or prints their lines in a terminal).
    A hook that raises is logged and the wait goes on. None removes it; returns the previous.
    """
    global _wait_display
    previous, _wait_display = _wait_display, fn
    return previous


@contextlib.contextmanager
def _wait_view(engine: Engine, jobs: Callable[[], builtins.list[Job]]) -> Iterator[None]:
    """Show ``jobs()`` with the installed hook while the body waits (main thread, not nested)."""
    global _wait_shown
    hook = _wait_display
    if hook is None or _wait_shown or threading.current_thread() is not threading.main_thread():
        yield
        return
    waited = jobs()
    if not waited:
        yield
        return
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(hook(engine, waited))
    except Exception:
        logger.exception("jupyter_executor: the wait display failed")
    _wait_shown = True
    try:
        yield
    finally:
        _wait_shown = False
        try:
            stack.close()
        except Exception:
            logger.exception("jupyter_executor: the wait display failed")


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


def showing_wait(
    engine: Engine, jobs: Callable[[], builtins.list[Job]]
) -> contextlib.AbstractContextManager[None]:
    """Show ``jobs()`` while the body waits for them, as :meth:`Engine.wait` does (on the main
    thread, with the hook of :func:`set_wait_display`; nested waits show nothing)."""
    return _wait_view(engine, jobs)


def rearmed_schedules(engine: Engine) -> frozenset[str]:
    """The names of the stored schedules ``engine`` re-armed when it was created."""
    return frozenset(engine._rearmed)
