"""``Engine.converge``: run a plan's jobs round after round until it returns none."""

from __future__ import annotations

import builtins
import collections
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._events import jobs_logger, new_event
from ._scheduler import Scheduler
from ._status import Status
from .job import Job

logger = logging.getLogger("jupyter_executor")


class Converge(Scheduler):
    """The control loop :meth:`converge`."""

    if TYPE_CHECKING:

        def cancel(self, job: Job | str, reason: str = ...) -> bool: ...

        def wait_job(self, job: Job | str, timeout: float | None = None) -> bool: ...

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
        log = logger if logger is not None else jobs_logger
        deadline = None if timeout is None else time.monotonic() + timeout
        errors = 0
        round_ = 0
        while True:
            batch = plan()
            if not batch:
                self.log.append(
                    new_event((self._now(), "converged", "-", f"after {round_} rounds"))
                )
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
                returned = _subtasks(job.runstate.result)
                fresh = [j for j in returned if j.engine is None]
                if fresh:
                    self._submit(fresh, True)
                subs += returned
            for sub in subs:
                if id(sub) not in seen:
                    seen.add(id(sub))
                    todo.append(sub)
        return ran, False


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
