"""The task registry (R executor's): jobs added without starting, started later by name."""

from __future__ import annotations

import asyncio
import builtins
import inspect
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._context import running_job
from ._events import jobs_logger
from ._jobsview import JobsView
from ._options import split_submit_options
from ._policies import is_scheduled
from ._scheduler import Scheduler
from ._status import Status
from .errors import DuplicateJobName, InvalidOptionType, SubmitError
from .job import Job

#: What ``on_duplicate=`` accepts.
ON_DUPLICATE = ("error", "skip")


class Registry(Scheduler):
    """``add`` a job without starting it; ``start``, ``start_all``, ``stop_all``, ``get``."""

    default_backend: str | None

    if TYPE_CHECKING:

        def rerun(self, job: Job | str) -> Job: ...

        def cancel(self, job: Job | str, reason: str = ...) -> bool: ...

        def shutdown(self, timeout: float | None = None, *, reason: str = ...) -> None: ...

    def _skip_duplicate(self, ref: Job | str | None, stacklevel: int = 3) -> Job | None:
        """The job already named like ``ref`` (after a warning), or None when the name is free.

        ``stacklevel`` points the warning at the user's line (``add``/``submit``'s caller).
        """
        name = ref.name if isinstance(ref, Job) else ref
        if name is None:
            return None
        existing = self._jobs.get(name) or self._added.get(name)
        if existing is None or existing is ref:
            return None
        warnings.warn(
            f"Skipping {name}: a job named {name!r} already exists ({existing.status.value})",
            stacklevel=stacklevel,
        )
        return existing

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
        if on_duplicate not in ON_DUPLICATE:
            msg = f"on_duplicate must be one of {', '.join(ON_DUPLICATE)}, not {on_duplicate!r}"
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
            if options.get("backend") is None:
                options["backend"] = self._backend_default(target)
            job = Job(target, args=args, kwargs=options.pop("kwargs", None), **options)
        if on_duplicate == "skip" and not replace:
            existing = self._skip_duplicate(job)
            if existing is not None:
                return existing
        self._enlist(job, replace)
        self._record("added", job, job.describe())
        return job

    def _submit_jobs(
        self,
        jobs: builtins.list[Any],
        replace: bool,
        on_duplicate: str,
        options: Mapping[str, Any],
    ) -> Job | tuple[Job, ...]:
        """``submit(job1, job2, ...)``: submit Job objects (the job, or a tuple of them)."""
        if not all(isinstance(j, Job) for j in jobs):
            msg = "submit(job, ...) takes only Job objects after a Job"
            raise InvalidOptionType(msg)
        if options:
            split_submit_options(dict(options), for_jobs=True)  # they go on Job(...)
        if on_duplicate == "skip" and not replace:
            kept = []
            for j in jobs:  # not a comprehension: its frame (3.11) would shift the stacklevel
                # stacklevel: the warning names the line that called submit().
                kept.append(self._skip_duplicate(j, stacklevel=4) or j)
            jobs = [j for j, k in zip(jobs, kept, strict=True) if k is j]
            if not jobs:
                return kept[0] if len(kept) == 1 else tuple(kept)
            if len(kept) > 1:
                self._submit(jobs, replace)
                return tuple(kept)
        self._submit(jobs, replace)
        return jobs[0] if len(jobs) == 1 else tuple(jobs)

    def _backend_default(self, target: Any) -> str | None:
        """The engine's ``default_backend`` for a callable; None (each kind's own) otherwise."""
        if (
            self.default_backend is not None
            and not isinstance(target, (str, list, tuple))
            and not asyncio.iscoroutine(target)
            and not inspect.iscoroutinefunction(target)
        ):
            return self.default_backend
        return None

    def _enlist(self, job: Job, replace: bool) -> None:
        """Put ``job`` in the registry under its name (given one now if it has none)."""
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
            summary["scheduled" if is_scheduled(job) else "started"].append(name)
        for job in builtins.list(self._jobs.values()):
            name = str(job.name)
            if name in summary["started"] or name in summary["scheduled"]:
                continue
            if not job.done():
                key = "scheduled" if is_scheduled(job) else "already running"
                summary[key].append(name)
            elif job.kind != "coroutine":
                self.rerun(job)
                summary["scheduled" if is_scheduled(job) else "started"].append(name)
        for key, names in summary.items():
            if names:
                jobs_logger.info("start_all: %s: %s", key, ", ".join(names))
        return summary

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
            if job.runstate.id == id:
                return job
        found = self._jobs.get(id) or self._added.get(id)
        if found is None:
            msg = f"no job with id or name {id!r}"
            raise KeyError(msg)
        return found

    def _get(self, ref: Job | str) -> Job:
        if isinstance(ref, Job):
            # job.engine is a JobHost (what a job sees of an engine): this room is part of one.
            if ref.engine is not self:  # type: ignore[comparison-overlap]
                msg = f"job {ref.name!r} does not belong to this engine"
                raise KeyError(msg)
            return ref
        job = self._jobs.get(ref)
        if job is None:
            known = ", ".join(list(self._jobs)[:10]) or "none"
            msg = f"no job named {ref!r} (jobs: {known})"
            raise KeyError(msg)
        return job

    def _check_not_in_job(self, what: str) -> None:
        job: Job | None = running_job.get()
        # job.engine is a JobHost (what a job sees of an engine): this room is part of one.
        if job is not None and job.engine is self and job.runstate.waited:  # type: ignore[comparison-overlap]
            msg = (
                f"engine.{what}() inside job {job.name!r} would wait for that job itself; "
                "wait for the jobs you need with engine.wait_job(...) or `await job`"
            )
            raise SubmitError(msg)

    @property
    def jobs(self) -> JobsView:
        """The jobs by name: a read-only mapping that prints one line per job.

        Also ``engine.jobs.running`` (``pending``, ``done``, ``failed``, ``cancelled``): the jobs
        in that status by name, and ``engine.jobs.get_job_by_id(id)`` (executor-engine's
        manager). ``for job in engine:`` iterates the jobs themselves.
        """
        return JobsView(self._jobs)

    def __getitem__(self, name: str) -> Job:
        added = self._added.get(name)
        return added if added is not None else self._get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)

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
