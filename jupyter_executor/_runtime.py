"""What code running inside a job can ask: which job am I, was I cancelled, report progress."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .job import Job

__all__ = ["cancelled", "current_job", "progress"]

logger = logging.getLogger("jupyter_executor")

#: The job whose code runs in this context. Set by the engine around every attempt, read by the
#: stdout/stderr proxy (routing) and by :func:`cancelled` / :func:`progress`.
_current_job: ContextVar[Job | None] = ContextVar("jupyter_executor_job", default=None)

#: ``(enter, leave)`` pairs called with the job, in the job's own context, before and after each
#: attempt of a thread or async job (the code runs in this process). Adapters keep per-job state
#: of libraries with them (the IPython extension: pyplot's figures). Empty, they cost one check.
_attempt_hooks: list[tuple[Callable[[Job], None], Callable[[Job], None]]] = []


def _run_hooks(job: Job, leaving: bool) -> None:
    for enter, leave in list(_attempt_hooks):
        try:
            (leave if leaving else enter)(job)
        except Exception:
            # Never the job's failure: the job's own code ran (or runs) regardless.
            logger.warning("jupyter_executor: a job hook failed for %r", job.name, exc_info=True)


def current_job() -> Job | None:
    """Return the job whose code is running in this thread or task, or None outside jobs."""
    return _current_job.get()


def cancelled() -> bool:
    """Return True when the running job has been asked to stop.

    Thread-backend jobs should check this in their loops and return early; a job that does not
    gets an exception injected into its thread after a grace period.

    Examples
    --------
    >>> from jupyter_executor import cancelled
    >>> cancelled()   # outside a job: never cancelled
    False
    """
    job = _current_job.get()
    return job is not None and job.cancel_requested


def progress(done: float, total: float | None = None, text: str = "") -> None:
    """Report the running job's progress; shown as a bar in the dashboard and in ``engine.list()``.

    Outside a job this does nothing, so functions can report progress whether or not they run
    as jobs.

    Parameters
    ----------
    done
        Work done so far; a fraction in ``[0, 1]`` when ``total`` is None.
    total
        Total amount of work, in the same unit as ``done``.
    text
        A short message shown next to the bar.
    """
    job = _current_job.get()
    if job is None:
        return
    fraction = done / total if total else done
    job._set_progress(max(0.0, min(1.0, float(fraction))), str(text))
