"""After-run decisions: retry delays, restart back-off, schedule ticks and timeouts."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._events import new_event
from ._protocols import CANCELLED
from ._scheduler import Scheduler
from ._status import FINISHED, Status
from ._text import error_text
from .errors import (
    JobTimeout,
)
from .job import Job

logger = logging.getLogger("jupyter_executor")


class Policies(Scheduler):
    """After-run decisions: retries, restarts, schedule ticks, timeouts."""

    if TYPE_CHECKING:

        def rerun(self, job: Job | str) -> Job: ...

    def _retry(self, job: Job, why: str) -> None:
        delay = doubled(job.retry_delay, job.attempts - 1)
        with self._lock:
            self._move(job, Status.PENDING)
            # The store and the subscribers (a store of their own, a view) see the failed
            # attempt with its error before it is cleared for the next one.
            snap = self._job_changed(job)
            self._record(
                "retried", job, f"attempt {job.attempts} failed: {why}; next in {delay:g} s", snap
            )
            job.runstate.exception = None
            self._clear_cancel(job)
        self._call_soon(self._admit_later, job, delay)

    def _admit_later(self, job: Job, delay: float) -> None:
        assert self._loop is not None
        self._call_later(delay, self._admit, job)

    def _schedule_tick(self, job: Job, after: Any) -> None:
        life = job.runstate.life
        assert life is not None and self._loop is not None
        now = datetime.fromtimestamp(self._now()).astimezone()
        when = life.schedule.first(now) if after is None else life.schedule.next_after(after)
        if when is None:
            life.next_run = None
            return
        life.next_run = when.timestamp()
        self._emit("progress", job)  # the next run time changed: views refresh the row
        self._call_later(max(0.0, life.next_run - self._now()), self._tick, job, when)

    def _tick(self, job: Job, when: Any) -> None:
        life = job.runstate.life
        assert life is not None
        if job.status in FINISHED:
            # Cancelled: no more runs. The chain of ticks ends here, so that a rerun of the
            # job starts a new one (else it would run once and then wait for a dead timer).
            life.ticking = False
            life.next_run = None
            return
        if job.status is Status.RUNNING:
            self._record("skipped", job, "still running at its next time; not started twice")
        elif job.status is Status.PENDING and not job.runstate.waiting:
            self._admit(job)
        if life.periodic:
            self._schedule_tick(job, when)
        else:
            life.next_run = None

    def _run_over(self, job: Job, status: Status, result: Any, exc: BaseException | None) -> bool:
        """A run of a long-running job ended: schedule its next run or restart; True if so."""
        life = job.runstate.life
        assert life is not None
        if job.cancel_requested and not isinstance(job.runstate.exception, JobTimeout):
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
            delay = doubled(life.restart_delay, life.failures - 1, 600.0)
            why = "it ended" if ok else error_text(exc) if exc else "it failed"
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
        if job.runstate.waited:
            self._unfinished += 1
            if job.status is not Status.DONE:
                self._bad -= 1
        self._move(job, Status.PENDING)
        self._clear_cancel(job)
        job.runstate.future = None
        snap = None
        if self._store is not None:
            # The next run is pending: without this the store would file a cancel before it
            # starts under the run that just ended, and overwrite that run's outcome.
            snap = self._job_changed(job)
        self.log.append(new_event((self._now(), "rearmed", job.name, why)))
        if self._subscribers:
            self._emit("status", job, snap)

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
        life = job.runstate.life
        if life is None:
            from ._lifecycle import Lifecycle

            life = job.runstate.life = Lifecycle()
        if life.restart == "no":
            life.restart, life.restart_delay = "on-failure", default[0]
            life.max_restarts = default[1]
        return True

    def _arm_timeout(self, job: Job, attempt: int) -> None:
        if job.status is Status.RUNNING and job.attempts == attempt:
            assert self._loop is not None and job.timeout is not None
            job.runstate.timeout_handle = self._call_later(
                job.timeout, self._on_timeout, job, attempt
            )

    def _on_timeout(self, job: Job, attempt: int) -> None:
        if job.status is not Status.RUNNING or job.attempts != attempt:
            return
        reason = f"timed out after {job.timeout:g} s"
        job.runstate.exception = JobTimeout(str(job.name), reason)
        self._note_cancel(job, reason)
        self._record("timeout", job, reason)
        self._backends[job.backend].cancel(job)

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
                        self._amend_cancel(job, reason, why)
                        self._finish(job, exc=CANCELLED)
            finally:
                done.set()

        self._call_soon(settle)
        done.wait(5.0)


def describe_schedule(schedule: Any) -> str | None:
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


def is_scheduled(job: Job) -> bool:
    """True for a job that runs at given times (``every=``, ``cron=``, ``start=``)."""
    return job.runstate.life is not None and job.runstate.life.schedule is not None


def _clock(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


#: The longest delay a retry or a restart waits (a year): its doubling goes on no further.
LONGEST_DELAY = 365 * 86400.0


def doubled(delay: float, times: int, longest: float = LONGEST_DELAY) -> float:
    """``delay`` doubled ``times`` times (none when negative), at most ``longest`` seconds.

    In floats, with the doubling bounded: ``delay * 2 ** times`` in ints overflowed the
    conversion to a float after 1,024 attempts (a job retried or restarted without a delay),
    which left the job running for ever.

    Examples
    --------
    >>> doubled(1.0, 3), doubled(0.0, 5000), doubled(2.0, 100, 600.0)
    (8.0, 0.0, 600.0)
    """
    return min(delay * 2.0 ** min(max(0, times), 1000), longest)
