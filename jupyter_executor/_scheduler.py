"""The run state and its owner: registering, admitting, starting, finishing and settling jobs.

Every status change of a submitted job is made here, under the engine's lock (the other rooms call
``Scheduler._move``; ``_status.py`` holds the one transition table), and so is every write of a
run's cancel request; a finished job wakes exactly its dependents.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import functools
import inspect
import logging
import sys
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from . import _capture, _durable, _gcfreeze, _traceback
from ._context import running_job
from ._events import jobs_logger, log_event, new_event
from ._graph import Graph
from ._intake import WIDE, Intake, collect_jobs
from ._lifecycle import Lifecycle
from ._make import freshness, missing_outputs, record_files
from ._protocols import CANCELLED, Exc
from ._runstate import met
from ._snapshot import record_of, snapshot_of
from ._status import FINISHED, Status, set_status
from ._text import error_text
from .backends import Backend
from .errors import (
    ENGINE_SHUT_DOWN,
    JobTimeout,
    MissingOutputs,
    SubmitError,
)
from .job import Job, resolve_future

logger = logging.getLogger("jupyter_executor")


#: Jobs admitted per turn of the engine's loop.
_ADMIT_BATCH = 64

# Read a few times per job on the hot path: an enum member read through its class costs ~70 ns
# on Python 3.11 (EnumType defines __getattr__), a module global ~10.
_PENDING, _RUNNING, _DONE = Status.PENDING, Status.RUNNING, Status.DONE
_FAILED, _CANCELLED = Status.FAILED, Status.CANCELLED


class Scheduler(Intake):
    """The run state: the jobs, their graph and the counters, changed only under the lock.

    Registers a submission, admits the jobs whose requirements are met, finishes an attempt and
    settles a job (its final status, its dependents woken or cancelled).
    """

    force: bool
    print_traceback: bool
    _closed: bool
    _bad: int
    _idle_waiters: builtins.list[concurrent.futures.Future[None]]
    _deferred: builtins.list[Job]
    _rearmed: set[str]
    _gc_held: bool

    if TYPE_CHECKING:
        # Provided by the rooms above: policies, make-like jobs.
        def _run_over(
            self, job: Job, status: Status, result: Any, exc: BaseException | None
        ) -> bool: ...

        def _retry(self, job: Job, why: str) -> None: ...

        def _schedule_tick(self, job: Job, after: Any) -> None: ...

        def _rearm_locked(self, job: Job, why: str) -> None: ...

        def _restart_by_default(self, job: Job) -> bool: ...

    def _init_run_state(self, jobs: tuple[Job, ...]) -> None:
        self._closed = False
        self._jobs = {}
        # Jobs added with add() and not started yet (R executor's task registry).
        self._added = {}
        self._graph = Graph()
        # The requirement names of the jobs that have more than WIDE, as sets (see WIDE).
        self._wide = {}
        self._name_counts = {}
        self._unfinished = 0  # waited jobs (not forever, periodic or always restarted) unfinished
        self._bad = 0  # waited jobs failed or cancelled
        self._idle_waiters = []
        self._deferred = list(jobs)
        self._default_restart = None
        self._gc_held = False  # a freeze of the collector for a burst (see _gcfreeze)
        self._init_gates()

    def _submit(self, jobs: builtins.list[Job], replace: bool) -> None:
        if self._closed:
            raise SubmitError(ENGINE_SHUT_DOWN)
        if self._deferred and jobs is not self._deferred:
            deferred, self._deferred = self._deferred, []
            jobs = deferred + jobs
        batch = collect_jobs(jobs)
        if self._rearmed:
            _durable.make_way(self._as_engine, batch)
        # Before _register, which gives keep_restarting()'s policy: that one is not stored.
        durable: builtins.list[Job] = []
        for j in batch:  # (a loop: a comprehension's frame costs more, for a burst's one job)
            if j.runstate.life is not None and _durable.durable(j):
                durable.append(j)
        # With ``here``, ``ready`` holds the jobs marked running: this thread starts them.
        ready, to_cancel, here = self._take_in(batch, replace)
        parent: Job | None = running_job.get()
        # job.engine is a JobHost (what a job sees of an engine): this room is part of one.
        if parent is not None and parent.engine is self:  # type: ignore[comparison-overlap]
            _adopt(parent, batch)
        if durable and self._store is not None:
            _durable.remember(self._as_engine, durable)
        self._ensure_loop()
        self._freeze_gc(len(batch))
        for job, reason in to_cancel:
            self._cancel_pending(job, reason)
        if here is not None:
            self._start_here(ready, here)
        elif ready:
            self._call_soon(self._admit_all, ready, 0, True)

    def _forget(self, job: Job, graph: bool = True) -> None:
        # Drop a finished job from the counters (it is being replaced or removed). A replaced
        # job's node already belongs to its successor (Graph.add(replacing=...)).
        if job.runstate.waited and job.status in (Status.FAILED, Status.CANCELLED):
            self._bad -= 1
        if graph:
            self._graph.remove(str(job.name))
            self._wide.pop(str(job.name), None)  # (a replaced job's entry is its successor's)
        del self._jobs[str(job.name)]

    def _ask_to_cancel(self, job: Job, reason: str) -> Status | None:
        """Mark ``job`` as asked to stop, with ``reason``; its status, or None if finished.

        A timeout's reason is kept: the cancel it caused is that timeout's.
        """
        with self._lock:
            status = job.status
            if status in FINISHED:
                return None
            run = job.runstate
            run.cancel_requested = True
            if run.cancel_reason is None or not isinstance(run.exception, JobTimeout):
                run.cancel_reason = reason
        return status

    def _renew(self, job: Job) -> tuple[tuple[str, Status] | None, bool]:
        """Make finished ``job`` pending for a new run (its last run kept in ``previous``).

        Returns a requirement that failed or was cancelled (the job is then to be cancelled),
        and whether it can start now.
        """
        with self._lock:
            if not job.done():
                msg = (
                    f"job {job.name!r} is {job.status.value}; only a finished job can be rerun "
                    f"(cancel it first with engine.cancel({job.name!r}))"
                )
                raise SubmitError(msg)
            job.previous = [*job.previous, job.info()]
            old = job.status
            set_status(job, Status.PENDING)
            if job.runstate.waited:
                self._unfinished += 1
                if old is not Status.DONE:
                    self._bad -= 1
            job.runstate.result = job.runstate.exception = job.traceback = None
            self._clear_cancel(job)
            job.runstate.future = None
            job.runstate.output = None
            job.started = job.finished = None
            job.submitted = self._now()
            waiting = 0
            failed_req = None
            job.runstate.met = None
            for req in job.requirements:
                status = self._jobs[req].status
                if status is not Status.DONE:
                    waiting += 1
                    if status in (Status.FAILED, Status.CANCELLED):
                        failed_req = (req, status)
                else:
                    met(job.runstate, req)
            job.runstate.waiting = waiting
            self._record("rerun", job)
        return failed_req, waiting == 0

    def _remove(self, job: Job) -> None:
        """Forget finished ``job``, unless an unfinished job requires it."""
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

    def _dispatch(self, jobs: builtins.list[Job]) -> None:
        """Admit ready jobs on the loop thread.

        Submitting and finishing threads only post to the loop's inbox; the loop admits jobs in
        batches. Measured: starting thread jobs straight from the submitting thread made the
        engine's lock contended between three threads and cost twice as much per job, while
        their ends went through the loop; plain thread jobs, which their worker threads settle
        themselves, are started by the submitting thread (``Slots._start_here``) unless an
        admission is on its way (counted: ``_thread_backend_for``).
        """
        with self._lock:
            self._admitting += 1
        self._call_soon(self._admit_all, jobs, 0, True)

    def _admit_all(self, jobs: builtins.list[Job], start: int = 0, counted: bool = False) -> None:
        # A few dozen per loop turn: 100,000 tasks alive at once made the collector's full
        # passes dominate; a few hundred outlived a young collection (one per ~275 jobs) and
        # set off full passes too (64: none). An offset, not a slice: no copy per turn.
        end = start + _ADMIT_BATCH
        if len(jobs) > end:
            assert self._loop is not None
            self._loop.call_soon(self._admit_all, jobs, end, counted)
        admit = self._admit
        try:
            for i in range(start, min(end, len(jobs))):  # (islice would skip the first start)
                try:
                    admit(jobs[i])
                except Exception as exc:  # (a bug) that job fails, not the rest of its batch
                    self._fail_pending(jobs[i], exc)
        finally:
            if counted and len(jobs) <= end:
                with self._lock:
                    self._admitting -= 1  # this submission is admitted (_thread_backend_for)

    def _admit(self, job: Job) -> None:
        """(loop thread) Start a pending job whose requirements are done, if it may start."""
        if job.status is not _PENDING or job.runstate.waiting:
            return
        cond = job.runstate.condition
        if cond is not None and not self._condition_met(job, cond):
            return
        life = job.runstate.life
        if life is None and self._resumes(job):
            life = job.runstate.life = Lifecycle()  # resuming needs the job's identity
        if life is not None and self._held_by_life(job, life):
            return
        self._run(job, self._backend(job.backend))

    def _held_by_life(self, job: Job, life: Lifecycle) -> bool:
        """(loop thread) True when ``job`` waits for its schedule's first tick or its freshness.

        A scheduled job starts its chain of ticks instead of running; a make-like (or resumed)
        job has its inputs and outputs checked off the loop first (:meth:`_after_freshness`).
        """
        if life.schedule is not None and not life.ticking:
            life.ticking = True
            self._schedule_tick(job, None)
            return True
        if (life.inputs or life.outputs or self.resume) and life.checked != job.attempts:
            life.checked = job.attempts
            assert self._loop is not None
            upstream_ran = any(r in self._ran for r in job.requirements)
            fut = self._loop.run_in_executor(
                None, freshness, job, self.resume and not upstream_ran, self._store, self.force
            )
            fut.add_done_callback(functools.partial(self._after_freshness, job))
            return True
        return False

    def _fail_pending(self, job: Job, exc: BaseException) -> None:
        with self._lock:
            if job.status is not Status.PENDING:
                return
            # pending -> failed is no transition: an attempt failed at once (no slot taken).
            set_status(job, Status.RUNNING)
            job.started = self._now()
            job.attempts += 1
        job.traceback, job.runstate.traceback_ansi = _traceback.format_exception(exc)
        self._settle(job, Status.FAILED, None, exc)
        _close_unstarted(job)

    def _run(self, job: Job, backend: Backend) -> None:
        if self._begin(job, backend):
            try:
                backend.start(job)
            except Exception as exc:
                self._finish(job, exc=exc)

    def _give_up(self, job: Job, why: str) -> None:
        """(loop thread) Settle a cancelled attempt that does not stop (see ``BackendHost``)."""
        job.runstate.cancel_reason = f"{job.runstate.cancel_reason or 'cancelled'}; {why}"
        self._finish(job, exc=CANCELLED)

    def _finish(
        self, job: Job, result: Any = None, exc: Exc = None, handoff: Backend | None = None
    ) -> Job | None:
        """(loop thread; or a worker thread under the lock, ``_finish_here``) An attempt of
        ``job`` ended (``exc``: why it failed, or ``CANCELLED``): settle it, or schedule a retry.

        With ``handoff``, a dependent that became ready and runs on that backend is started
        and returned instead of dispatched, so that the caller runs it in the same task: a
        chain of async jobs then costs no new task and no event-loop turn per hop.
        """
        backend = self._release(job)
        if backend is None:
            return None
        ready: builtins.list[Job] | None = [] if handoff is not None else None
        run = job.runstate
        stopped = run.cancel_requested or exc is CANCELLED
        life = run.life
        if exc is None and not stopped and (life is not None or type(job) is not Job):
            result, exc = self._check_result(job, result)
        if stopped:
            self._conclude_cancelled(job, ready)
        elif exc is not None:
            self._conclude_failed(job, exc, ready)
        else:
            if life is None or not self._run_over(job, _DONE, result, None):
                self._settle(job, _DONE, result, None, ready)
            if life is not None:
                self._record_made(job, life)
        if ready or self._queued:  # (most jobs free a slot nobody waits for: no call)
            return self._next_after(ready, backend, handoff)
        return None

    def _release(self, job: Job) -> Backend | None:
        """(as :meth:`_finish`) Give back the slot of ``job``'s attempt; its backend, or None.

        None when there is nothing to settle: the job is not running any more, or the engine
        stopped and the job is detached (it runs on; the next engine takes it).
        """
        run = job.runstate
        handle = run.timeout_handle
        if handle is not None:
            handle.cancel()
            run.timeout_handle = None
        run.task = None
        backend = self._backends.get(job.backend)
        if backend is None or (self._closed and job.detach and not job.cancel_requested):
            return None
        with self._lock:
            if job.status is not _RUNNING and job not in self._held:  # (_in_slot, inline)
                return None
            self._held.discard(job)  # (one that ended before it started: cancelled while held)
            self._running -= 1
            backend.running -= 1
        return backend

    def _check_result(self, job: Job, result: Any) -> tuple[Any, BaseException | None]:
        """A successful attempt's result, through the job's hook; or why it failed after all.

        A job class may turn a result into a failure (``_on_result``); a make-like job that
        did not produce its declared outputs fails naming them.
        """
        exc: BaseException | None = None
        if type(job) is not Job:
            try:
                result = job._on_result(result)
            except Exception as hook_exc:
                exc = hook_exc
        life = job.runstate.life
        if life is not None and life.outputs and exc is None:
            missing = missing_outputs(job)
            if missing:
                exc = MissingOutputs(
                    f"job {job.name!r} succeeded but did not produce its declared outputs: "
                    + ", ".join(missing)
                )
        return result, exc

    def _conclude_cancelled(self, job: Job, ready: builtins.list[Job] | None) -> None:
        # A timeout is a cancel that may be retried; any other cancel ends the job's runs.
        exc = job.runstate.exception
        if isinstance(exc, JobTimeout) and job.attempts <= job.retries and not self._closed:
            self._retry(job, str(job.runstate.cancel_reason))
        elif job.runstate.life is None or not self._run_over(job, Status.CANCELLED, None, exc):
            self._settle(job, Status.CANCELLED, None, exc, ready)

    def _conclude_failed(
        self, job: Job, exc: BaseException, ready: builtins.list[Job] | None
    ) -> None:
        # A failure formatted where it ran (a worker process) carries its text.
        tb: str | None = getattr(exc, "_jupyter_executor_tb", None)
        if tb is None:
            tb, job.runstate.traceback_ansi = _traceback.format_exception(exc)
        else:  # formatted where it ran (a worker process): name the cells as IPython does
            tb, job.runstate.traceback_ansi = _traceback.rename(tb), None
        job.traceback = tb
        # the log says how the attempt ended (plain text: the log is read in a terminal)
        job.output.log_only(tb if tb.endswith("\n") else tb + "\n")
        if job.attempts <= job.retries and not self._closed:
            self._retry(job, error_text(exc))
        elif job.runstate.life is None or not self._run_over(job, Status.FAILED, None, exc):
            self._settle(job, Status.FAILED, None, exc, ready)

    def _record_made(self, job: Job, life: Lifecycle) -> None:
        """Record the files a make-like job's successful run read and wrote (in a thread)."""
        if (life.inputs or life.outputs) and self._store is not None and self._loop is not None:
            # Hashing may take a while: off the loop. Recorded after the outcome, so a
            # "which run made it" query right after wait() may miss it for a moment.
            self._loop.run_in_executor(None, record_files, self._store, job, job.attempts)

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
            if job.status in FINISHED or (not_started and self._in_slot(job)):
                return False
            set_status(job, status)
            job.finished = now = self._now()
            job.runstate.result = result
            job.runstate.exception = exc
            self._report_end(job, status, exc, now)
            if job.runstate.future is not None:
                resolve_future(job.runstate.future, job)
            dependents = self._graph.dependents(str(job.name))
            if dependents:  # (most jobs have none: no call)
                self._wake_dependents(job, dependents, status, rearm is None, ready, to_cancel)
            if rearm is not None:
                self._rearm_locked(job, rearm)
            elif job.runstate.life is not None:
                job.runstate.life.next_run = None  # finished for good: no next run to show
            if self._unfinished == 0:
                self._wake_waiters()
        _close_ends(job, not_started)
        for dep, reason in to_cancel:
            self._cancel_pending(dep, reason)
        if ready and collect is None:
            self._dispatch(ready)
        if self._polled:
            self._call_soon(self._repoll)  # a job ended: conditions on the engine may now hold
        return True

    def _report_end(self, job: Job, status: Status, exc: BaseException | None, now: float) -> None:
        """(under the lock) Count the end of ``job``; tell the log, logger, subscribers, history."""
        if job.runstate.waited:
            self._unfinished -= 1
            if status is not _DONE:
                self._bad += 1
        detail = ""
        if status is _CANCELLED:
            detail = job.runstate.cancel_reason or "cancelled"
        elif exc is not None:
            detail = error_text(exc)
        self.log.append(new_event((now, status._value_, job.name, detail)))
        if status is _FAILED:
            _log_failure(job, detail, self.print_traceback)
        elif jobs_logger.isEnabledFor(logging.INFO):
            suffix = f" ({detail})" if detail else ""
            log_event(logging.INFO, "%s %s%s", status._value_, job.name, suffix)
        self._status_changed(job)

    def _status_changed(self, job: Job, started: bool = False) -> None:
        """Tell the history and the subscribers that ``job``'s status changed: one snapshot,
        taken only when one of them wants it, for both."""
        snap = None
        store = self._store
        if store is not None:
            if job.runstate.life is not None:
                snap = self._job_changed(job)
            elif started:
                self._note_later(job)  # recorded if it still runs a moment later
            elif self._takes_snapshots or type(job) is not Job:
                snap = snapshot_of(job)  # _job_changed inlined: a call less per job
                store.job_changed(snap)
            else:
                # The history alone wants this change: the values that change, read here
                # (under the lock), its snapshot made in its own thread.
                store.job_recorded(record_of(job))
        if self._subscribers:
            # The same snapshot for the history and the subscribers that take one.
            self._emit("status", job, snap)

    def _wake_dependents(
        self,
        job: Job,
        dependents: Iterable[str],
        status: Status,
        final: bool,
        ready: builtins.list[Job],
        to_cancel: builtins.list[tuple[Job, str]],
    ) -> None:
        """(under the lock) ``job`` ended with ``status``: find which ``dependents`` it wakes.

        A dependent that requires it has one requirement less to wait for when it is done, and
        is cancelled when it is not (unless ``job`` runs again: ``final`` False); one whose
        condition names it may now start. O(1) per edge (see ``WIDE``).
        """
        name = str(job.name)
        jobs = self._jobs
        wide = self._wide
        done = status is _DONE
        for dep_name in dependents:
            dep = jobs.get(dep_name)
            if dep is None or dep.status is not _PENDING:
                continue
            reqs: Collection[str] = dep.requirements
            if len(reqs) > WIDE:
                reqs = wide[dep_name]
            if name in reqs:
                if done:
                    if not met(dep.runstate, name):  # (a requirement done again: a rerun)
                        dep.runstate.waiting -= 1
                        if dep.runstate.waiting == 0:
                            ready.append(dep)
                elif final:  # a job that will run again keeps its dependents
                    to_cancel.append((dep, f"dependency {name!r} {status.value}"))
            elif dep.runstate.waiting == 0:
                ready.append(dep)  # its condition may now be met

    def _freeze_gc(self, submitted: int) -> None:
        """``submitted`` jobs were registered: when they make a burst, what is alive now is out
        of the collector's sight until the engine is idle, or for ``MAX_FROZEN`` seconds (see
        ``_gcfreeze``)."""
        if submitted < _gcfreeze.FREEZE_AT:
            return
        with self._lock:
            if self._gc_held:
                _gcfreeze.refreeze()
                return
            self._gc_held = _gcfreeze.freeze()
            if not self._gc_held:
                return
        # Real time, as the history's timers (not the user's clock).
        self._call_soon(self._arm_thaw_gc)

    def _arm_thaw_gc(self) -> None:
        # (loop thread)
        assert self._loop is not None
        self._loop.call_later(_gcfreeze.MAX_FROZEN, self._thaw_gc)

    def _thaw_gc(self) -> None:
        """(any thread) Give what a burst froze back to the collector (idempotent)."""
        with self._lock:
            held, self._gc_held = self._gc_held, False
        _gcfreeze.thaw(held)

    def _wake_waiters(self) -> None:
        """(under the lock) Nothing waited for is unfinished: wake wait() and join()."""
        if self._gc_held:  # the burst is over (the lock is an RLock: _thaw_gc takes it again)
            self._thaw_gc()
        self._cond.notify_all()
        waiters, self._idle_waiters = self._idle_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _start_attempt(self, job: Job) -> None:
        # (under the lock) The job, in its slot (Slots._mark_running), runs.
        set_status(job, _RUNNING)
        job.started = now = self._now()
        job.finished = None
        job.attempts += 1
        if self.resume:
            self._ran.add(str(job.name))
        job.runstate.exception = None
        job.traceback = None
        if job.runstate.output is not None:  # an earlier run: this one starts a new tail and log
            job.runstate.output.close()
            job.runstate.output = None
        self.log.append(new_event((now, "started", job.name, "")))
        if job.kind != "command" and jobs_logger.isEnabledFor(logging.INFO):
            # (a command is logged when its process exists, with its pid: _note_pid)
            log_event(logging.INFO, "started %s %s", job.name, job.describe())
        self._status_changed(job, started=True)

    @staticmethod
    def _move(job: Job, status: Status) -> None:
        """(under the lock) The rooms above change a status through here (_status.py checks it)."""
        set_status(job, status)

    # The cancel request of a job's run: written here only (jobs and backends read
    # Job.cancel_requested and Job.cancel_reason).
    @staticmethod
    def _note_cancel(job: Job, reason: str) -> None:
        job.runstate.cancel_reason = reason
        job.runstate.cancel_requested = True

    @staticmethod
    def _clear_cancel(job: Job) -> None:
        job.runstate.cancel_reason = None
        job.runstate.cancel_requested = False

    @staticmethod
    def _amend_cancel(job: Job, default: str, why: str) -> None:
        """Add ``why`` to the reason the job was asked to stop (``default`` when none)."""
        job.runstate.cancel_reason = f"{job.runstate.cancel_reason or default}; {why}"

    def _cancel_pending(self, job: Job, reason: str) -> None:
        with self._lock:
            if job.status is not Status.PENDING and job.status is not Status.CREATED:
                return
            self._note_cancel(job, reason)
        if not self._settle(job, Status.CANCELLED, None, None, not_started=True):
            self._call_soon(self._stop, job)  # it started meanwhile: stop it like a running one

    def _stop(self, job: Job) -> None:
        if self._in_slot(job):
            self._backends[job.backend].cancel(job)

    def _allows(self, name: str) -> tuple[str, ...]:
        """The jobs that require job ``name`` (its dependents by requirement)."""
        dependents = self._graph.dependents(name)
        if not dependents:
            return ()  # most jobs, and every snapshot of a job just submitted: no generator
        return _requiring(name, dependents, self._jobs, self._wide)

    def _after_freshness(self, job: Job, fut: asyncio.Future[tuple[str, str | None]]) -> None:
        if job.status is not Status.PENDING:
            return
        try:
            verdict, identity = fut.result()
        except Exception as exc:
            self._fail_pending(job, exc)
            return
        assert job.runstate.life is not None
        job.runstate.life.identity = identity
        if verdict == "run":
            self._admit(job)
            return
        with self._lock:
            job.runstate.cancel_reason = None
        self._record(verdict.split(":")[0], job, verdict)
        self._settle(job, Status.DONE, verdict, None)
        _close_unstarted(job)


def _close_ends(job: Job, not_started: bool) -> None:
    """Close what settled ``job`` holds open: its output, or the coroutine it never ran."""
    if not_started:
        _close_unstarted(job)
    out = job.runstate.output  # (made on first use: even a job that never ran may have one)
    if out is not None:
        out.close()


def _close_unstarted(job: Job) -> None:
    """Close the coroutine object of ``job``, which ended without running it.

    Otherwise Python warns "coroutine ... was never awaited" when it is collected: a job
    cancelled while it waited (a failed dependency, ``engine.cancel``), one up to date or
    resumed, one that failed before it started. Such a job cannot run again (``rerun`` refuses
    a coroutine object).
    """
    target = job.target
    if inspect.iscoroutine(target) and inspect.getcoroutinestate(target) == "CORO_CREATED":
        target.close()


def _requiring(
    name: str, dependents: Iterable[str], jobs: dict[str, Job], wide: dict[str, frozenset[str]]
) -> tuple[str, ...]:
    """Those of ``dependents`` that require ``name`` (not those whose condition only names it)."""
    # A plain loop, not a generator in tuple(): every snapshot of a job with dependents asks
    # (with the history on, at least one per hop of a chain), and the generator's frame and
    # the second lookup of each dependent made a third of the snapshot's cost.
    allows: builtins.list[str] = []
    for d in dependents:
        dep = jobs.get(d)
        if dep is not None:
            reqs: Collection[str] = dep.requirements
            if len(reqs) > WIDE:
                reqs = wide[d]
            if name in reqs:
                allows.append(d)
    return tuple(allows)


def _log_failure(job: Job, detail: str, print_traceback: bool) -> None:
    # WARNING for the failure, the traceback at DEBUG (executor-engine's loguru lines).
    log_event(logging.WARNING, "failed %s: %s", job.name, detail)
    tb = job.traceback
    if tb:
        log_event(logging.DEBUG, "traceback of %s:\n%s", job.name, tb.rstrip())
        if print_traceback:
            # Asked for: executor-engine's print_traceback=True. Past the routing proxy:
            # this may run in the failed job's task, whose prints go to the job itself.
            stream = sys.stderr
            if type(stream) is _capture.StreamProxy:
                stream = stream.original
            print(f"job {job.name!r} failed:\n{tb.rstrip()}", file=stream)


def _adopt(parent: Job, batch: builtins.list[Job]) -> None:
    """Jobs submitted from inside job ``parent`` are its sub-tasks, which converge() waits for."""
    children = parent.children if parent.children else []
    children.extend(j for j in batch if j is not parent)
    parent.children = children
