"""Gates: a pending job's ``condition=``, asked when it may start, again when it may hold.

A condition answers True (start), False (never: the job is cancelled) or None (not yet): the
job is then asked again at the condition's wake-up time, or, for conditions only polling can
see met, on every job end and on one shared timer.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ._slots import Slots
from .job import Job, job_of

if TYPE_CHECKING:
    from ._conditions import Condition


class Gates(Slots):
    """The conditions of pending jobs: asked, and asked again (owns the polled set and timer)."""

    _jobs: dict[str, Job]
    _polled: dict[Job, None]
    _poll_handle: asyncio.TimerHandle | None

    if TYPE_CHECKING:
        # Provided by the scheduler, above.
        def _admit(self, job: Job) -> None: ...

        def _fail_pending(self, job: Job, exc: BaseException) -> None: ...

        def _cancel_pending(self, job: Job, reason: str) -> None: ...

    def _init_gates(self) -> None:
        # Pending jobs whose condition only polling can see met (an ordered set), and the timer.
        self._polled = {}
        self._poll_handle = None

    def _lookup(self, ref: Any) -> Job:
        job = job_of(ref)
        return job if job is not None else self._jobs[ref]

    def _condition_met(self, job: Job, cond: Condition) -> bool:
        """(loop thread) True when ``job``'s condition holds; else ask again later, or end it.

        Not known yet: asked again at its wake-up time, or on job ends and the shared polling
        timer; never: the job is cancelled; the condition raised: the job fails with that.
        """
        try:
            answer = cond.check(self._lookup)
            wake = cond.wake_at() if answer is None else None
            polls = answer is None and cond.polls()
        except Exception as exc:  # the user's condition raised: the job fails with it
            self._fail_pending(job, exc)
            return False
        if answer is None:
            assert self._loop is not None
            if polls:
                # Nothing will wake it: ask again on job ends and on the shared timer.
                self._polled[job] = None
                every = cond.poll_every
                self._arm_poll(every if wake is None else min(every, wake - time.time()))
            elif wake is not None:
                self._loop.call_later(max(0.0, wake - time.time()), self._admit, job)
            return False
        if answer is False:
            self._cancel_pending(job, f"condition {cond.describe()} can never be met")
            return False
        return True

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
