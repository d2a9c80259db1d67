"""Taking a submission in: which jobs are new, their names, their edges; pending or ready.

What :class:`~._scheduler.Scheduler` checks before anything of a submission changes (a
duplicate name, a job of another engine, an unknown requirement, a cycle), and the order in which
a submission's unsubmitted dependencies join it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from ._events import new_event
from ._gates import Gates
from ._graph import Graph
from ._runstate import met
from ._status import Status, set_status
from .errors import DuplicateJobName, SubmitError
from .job import Job, job_of, name_generated, requirements_named

if TYPE_CHECKING:
    from ._snapshot import JobSnapshot
    from .backends import Backend

#: A job with more requirements than this also gets a set of their names, so that a settling
#: requirement finds its edge in O(1): scanning the tuple made fan-in quadratic (1 -> 16k -> 1
#: cost 5x more per job than 1 -> 1k -> 1). Below it a tuple scan is as fast as a hash, and
#: chains (one requirement) pay nothing.
WIDE = 8

# Read on every submission: an enum member read through its class costs ~70 ns on Python 3.11
# (EnumType defines __getattr__), a module global ~10.
_CREATED = Status.CREATED
_PENDING = Status.PENDING
_NO_NAMES: frozenset[str] = frozenset()  # the names taken by the rest of a one-job submission


class Intake(Gates):
    """Takes a submission in: names its jobs, adds their edges (the graph checks them), makes
    them pending, and says which can start now. The scheduler's first part (it only adds)."""

    _jobs: dict[str, Job]
    _added: dict[str, Job]  # added with add() and not started yet (R executor's registry)
    _graph: Graph
    _name_counts: dict[str, int]
    # The requirement names of the jobs that have more than WIDE, as sets (see WIDE).
    _wide: dict[str, frozenset[str]]
    _unfinished: int  # waited jobs (not forever, periodic or always restarted) unfinished
    _default_restart: tuple[float, int | None] | None

    if TYPE_CHECKING:
        # Provided by the rooms above: the scheduler, the policies, the slots.
        def _forget(self, job: Job, graph: bool = True) -> None: ...

        def _begin_locked(self, job: Job, backend: Backend) -> bool: ...

        def _begin_here(self, job: Job, backend: Backend) -> bool: ...

        def _restart_by_default(self, job: Job) -> bool: ...

    def _take_in(
        self, batch: builtins.list[Job], replace: bool
    ) -> tuple[builtins.list[Job], builtins.list[tuple[Job, str]], Backend | None]:
        """Register ``batch``: the jobs ready now, those to cancel, and the backend on which
        the submitting thread starts the ready ones (None: the loop admits them).

        With a backend, the ready jobs returned are those that took a slot (marked running
        here, in the same lock hold: one per submission, issue 14); the others are queued for
        a slot. The caller starts them (``_start_here``) once the lock is released.
        """
        with self._lock:
            if len(batch) == 1 and (one := self._take_in_one(batch[0])) is not None:
                return one
            ready, to_cancel = self._register(batch, replace)
            # Decided under the lock that _register holds anyway (no second hold per submit).
            here = self._thread_backend_for(ready) if ready else None
            if here is not None:
                if len(ready) > 1:
                    ready = [job for job in ready if self._begin_here(job, here)]
                elif not self._begin_here(ready[0], here):  # (a burst: one job a submit)
                    ready = []
            elif ready:
                self._admitting += 1  # until the loop admits them (see _thread_backend_for)
        return ready, to_cancel, here

    def _take_in_one(
        self, job: Job
    ) -> tuple[list[Job], list[tuple[Job, str]], Backend | None] | None:
        """(under the lock) :meth:`_take_in` for the commonest submission, ``submit(fn)``: one
        new job with no edges, no lifecycle and a free name. None for any other (the general
        path takes it).

        What ``_register`` does for it, without the batch's lists, sets and edge checks, and
        the thread backend's start decided here (issue 14: ~2 µs of the submitting thread's
        ~11 per job).
        """
        run = job.runstate
        if (
            job.engine is not None
            or job.status is not _CREATED
            or run.requires_spec
            or run.arg_jobs
            or run.condition is not None
            or run.life is not None
            or self._added
            or self._default_restart is not None
        ):
            return None
        jobs = self._jobs
        name = job.name
        if name is None:
            name = self._next_name(job.default_name())
            name_generated(job, name)
        elif name in jobs:
            return None  # a duplicate, or a replacement: the general path says which
        jobs[name] = job
        job.engine = self._as_engine
        set_status(job, _PENDING)
        job.submitted = now = self._now()
        if run.waited:
            self._unfinished += 1
        run.waiting = 0
        # (a job that can start now is recorded by the history when it starts)
        self.log.append(new_event((now, "submitted", name, "")))
        if self._subscribers:
            self._emit("submitted", job, None)
        return self._start_one(job)

    def _start_one(self, job: Job) -> tuple[list[Job], list[tuple[Job, str]], Backend | None]:
        """(under the lock) What :meth:`_take_in` returns for ``job``, ready and plain (see
        :meth:`_take_in_one`): :meth:`_thread_backend_for` and its start, for one job."""
        backend = self._backends.get("thread")
        if (
            job.backend == "thread"
            and backend is not None
            and not self._admitting
            and not self._resumes(job)
        ):
            return ([job] if self._begin_here(job, backend) else []), [], backend
        self._admitting += 1  # until the loop admits it (see _thread_backend_for)
        return [job], [], None

    def _register(
        self, batch: builtins.list[Job], replace: bool
    ) -> tuple[list[Job], list[tuple[Job, str]]]:
        """(under the lock) Take a submission in, all or nothing; return what can start now.

        Also returns the jobs to cancel at once (a requirement already failed or cancelled).
        Raises, before anything changes, on a duplicate name, an unknown requirement or a cycle.
        """
        new, names, replacing = self._admissible(batch, replace)
        if not new:
            return [], []
        self._add_edges(new, names, replacing)
        ready, to_cancel = self._enter(new, replacing)
        snaps: dict[int, JobSnapshot] | None = None
        if self._store is not None:
            # A job that can start now is recorded when it starts, an instant later (its run
            # keeps its submit time); the history sees a waiting job with a lifecycle record
            # (write-ahead) at once, a plain one if it still waits a moment later.
            starting = {id(j) for j in ready} if len(ready) < len(new) else None
            if starting is not None:
                snaps = {}
                for job in new:
                    if id(job) in starting:
                        continue
                    if job.runstate.life is None:
                        self._note_later(job)
                    elif (snap := self._job_changed(job)) is not None:
                        snaps[id(job)] = snap
        # The subscribers that take snapshots get those the history took (one per change).
        self._record_many("submitted", new, snaps)
        return ready, to_cancel

    def _enter(
        self, new: builtins.list[Job], replacing: dict[str, Job]
    ) -> tuple[list[Job], list[tuple[Job, str]]]:
        """(under the lock) Make the checked jobs pending: the ready ones, the ones to cancel."""
        jobs = self._jobs
        engine = self._as_engine
        now = self._now()
        restart = self._default_restart is not None
        ready: builtins.list[Job] = []
        to_cancel: builtins.list[tuple[Job, str]] = []
        unfinished = 0  # (counted here, added once: the loop runs once per job of a burst)
        for job in new:
            name = str(job.name)
            if replacing and (old := replacing.get(name)) is not None:
                job.previous = [*old.previous, old.info()]
                job.attempts = old.attempts
                self._forget(old, graph=False)
            jobs[name] = job
            job.engine = engine
            if restart:
                self._restart_by_default(job)
            set_status(job, Status.PENDING)
            job.submitted = now
            run = job.runstate
            if run.waited:
                unfinished += 1
            reqs = job.requirements
            if len(reqs) > WIDE:
                self._wide[name] = frozenset(reqs)
            waiting = 0
            for req in reqs:
                status = jobs[req].status
                if status is not Status.DONE:
                    if status is Status.FAILED or status is Status.CANCELLED:
                        to_cancel.append((job, f"dependency {req!r} {status.value}"))
                    waiting += 1
                else:
                    met(run, req)  # done already: its next end (a rerun) is not counted again
            run.waiting = waiting
            if waiting == 0:
                ready.append(job)
        self._unfinished += unfinished
        return ready, to_cancel

    def _admissible(
        self, batch: builtins.list[Job], replace: bool
    ) -> tuple[list[Job], set[str], dict[str, Job]]:
        """The new jobs of ``batch`` (named now), their names, and the finished jobs replaced."""
        jobs = self._jobs
        new: builtins.list[Job] = []
        names: set[str] = set()
        replacing: dict[str, Job] = {}
        for job in batch:
            # job.engine is a JobHost (what a job sees of an engine): this room is part of one.
            if job.engine is self and job.name in jobs and jobs[job.name] is job:  # type: ignore[comparison-overlap]
                continue  # already submitted: submitting it again changes nothing
            if job.engine is not None or job.status is not Status.CREATED:
                msg = f"job {job.name!r} was already submitted to another engine"
                raise SubmitError(msg)
            name = job.name
            if name is None:
                name = self._unique_name(job.default_name(), names)
                name_generated(job, name)
            if self._added and self._added.get(name) is job:
                del self._added[name]  # added earlier, submitted now: start() was skipped
            if name in names:
                msg = f"two jobs of this submission are named {name!r}; give them distinct names"
                raise DuplicateJobName(msg)
            old = jobs.get(name)
            if old is not None:
                check_replaceable(name, old, replace)
                replacing[name] = old
            names.add(name)
            new.append(job)
        return new, names, replacing

    def _add_edges(
        self, new: builtins.list[Job], names: set[str], replacing: dict[str, Job]
    ) -> None:
        """Name each new job's requirements and add its edges to the graph (which checks them)."""
        specs: dict[str, tuple[str, ...]] = {}
        for job in new:
            run = job.runstate
            spec = run.requires_spec
            if run.arg_jobs or run.condition is not None:
                required = job.required_jobs()
                cond = job.condition_jobs()
                self._check_own(job, [*required, *cond])
                reqs = tuple(dict.fromkeys(_name_of(r) for r in required))
                requirements_named(job, reqs)
                specs[str(job.name)] = reqs + tuple(_name_of(r) for r in cond) if cond else reqs
            elif spec:
                reqs = self._spec_names(job, spec)
                requirements_named(job, reqs)
                specs[str(job.name)] = reqs
            # else no edges: the graph needs no node for it
        if specs or replacing:
            # raises before anything changes; names are known when they are in the engine
            self._graph.add(specs, replacing=replacing, known=_Known(self._jobs, names))
        if specs:
            _drop_specs(new)

    def _spec_names(self, job: Job, spec: builtins.list[Any]) -> tuple[str, ...]:
        """The names of the requirements ``job`` was given (``requires()``), each once."""
        if len(spec) == 1:  # one requirement: a chain's link (no generator, no dict)
            ref = spec[0]
            if type(ref) is Job and ref.name:
                if ref.engine is not None and ref.engine is not self._as_engine:
                    self._check_own(job, spec)
                return (ref.name,)
        self._check_own(job, spec)
        return tuple(dict.fromkeys(_name_of(r) for r in spec))

    def _check_own(self, job: Job, refs: Iterable[Any]) -> None:
        """Refuse a requirement (or a job given as an argument, or named by a condition) that
        was submitted to another engine: it would be taken for this engine's job of the same
        name, or be unknown here.

        Raises
        ------
        SubmitError
            One of ``refs`` is a job of another engine.
        """
        for ref in refs:
            other = job_of(ref)
            if other is not None and other.engine not in (None, self._as_engine):
                msg = (
                    f"job {job.name!r} requires job {other.name!r} of another engine "
                    f"({other.engine!r}); a job can require only jobs of its own engine"
                )
                raise SubmitError(msg)

    def _next_name(self, base: str) -> str:
        """(under the lock) :meth:`_unique_name` for :meth:`_take_in_one`, whose submission
        holds no other name and adds none: its next number for ``base`` is free unless a job
        was named so by hand (one lookup per unnamed job of a burst, issue 14)."""
        n = self._name_counts.get(base, 0) + 1
        name = f"{base}-{n}" if n > 1 else base
        if name in self._jobs:
            return self._unique_name(base, _NO_NAMES)
        self._name_counts[base] = n
        return name

    def _unique_name(self, base: str, taken: AbstractSet[str]) -> str:
        n = self._name_counts.get(base, 0)
        while True:
            n += 1
            name = base if n == 1 else f"{base}-{n}"
            if name not in self._jobs and name not in taken and name not in self._added:
                self._name_counts[base] = n
                return name


class _Known:
    """The names of the engine's jobs and of a submission's, without copying either.

    (A ``ChainMap`` of the two cost a dict of the submission's names, and a generator at each
    test: a fifth of registering one job of a chain submitted one at a time, issue 14.)
    """

    __slots__ = ("jobs", "names")

    def __init__(self, jobs: dict[str, Job], names: set[str]) -> None:
        self.jobs = jobs
        self.names = names

    def __contains__(self, name: object) -> bool:
        return name in self.jobs or name in self.names


def check_replaceable(name: str, old: Job, replace: bool) -> None:
    """Raise unless finished job ``old`` may give its name to a new job."""
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


def _name_of(ref: Any) -> str:
    if isinstance(ref, str):
        return ref
    job = job_of(ref)
    if job is None or job.name is None:  # pragma: no cover - collect_jobs names them first
        msg = f"cannot name {ref!r}"
        raise SubmitError(msg)
    return job.name


def _drop_specs(jobs: list[Job]) -> None:
    """Named and in the graph: the ``requires()`` spec as given is read no more.

    Dropped, a chain's jobs each leave one object fewer for the garbage collector to walk,
    and no reference to the job before it (issue 14).
    """
    for job in jobs:
        run = job.runstate
        if run.requires_spec:
            run.requires_spec = ()


def collect_jobs(jobs: list[Job]) -> list[Job]:
    """The jobs plus the unsubmitted jobs they depend on, dependencies first."""
    for j in jobs:  # a loop, not any(generator): this runs once per submit (issue 14)
        run = j.runstate
        if run.requires_spec or run.arg_jobs or run.condition is not None:
            break
    else:
        return jobs  # nothing to walk (the common case of independent jobs)
    if _in_order(jobs):
        return jobs
    return _walk(jobs)


def _in_order(jobs: list[Job]) -> bool:
    """True when each job's unsubmitted dependencies come before it (and none is repeated).

    Jobs given dependencies first (a chain built in order, a script's natural order) then need
    no walk: one pass checks it.
    """
    earlier: set[int] = set()
    for job in jobs:
        key = id(job)
        if key in earlier:
            return False  # given twice: the walk drops the repeat
        run = job.runstate
        spec = run.requires_spec
        if spec or run.arg_jobs or run.condition is not None:
            deps = spec if not run.arg_jobs and run.condition is None else job.required_jobs()
            if run.condition is not None:
                deps = [*deps, *job.condition_jobs()]
            # A plain loop, not any() over a generator: its frame per job was a fifth of
            # the cost of registering a chain (issue 14).
            for dep in deps:
                d = dep if type(dep) is Job else job_of(dep)
                if d is not None and d.engine is None and id(d) not in earlier:
                    return False
        earlier.add(key)
    return True


def _walk(jobs: list[Job]) -> list[Job]:
    """Depth-first: every unsubmitted dependency of ``jobs`` before its dependents, once."""
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
        run = job.runstate
        deps = run.requires_spec
        if run.arg_jobs or run.condition is not None:
            deps = [*job.required_jobs(), *job.condition_jobs()]
        for dep in deps:  # (the spec itself when it is all: no copy per job, issue 14)
            dep_job = dep if type(dep) is Job else job_of(dep)
            if dep_job is not None and dep_job.engine is None and id(dep_job) not in seen:
                stack.append((dep_job, False))
    return order
