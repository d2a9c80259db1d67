"""What code running inside a job can ask: which job am I, was I cancelled, report progress."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ._context import running_job

if TYPE_CHECKING:
    from .job import Job

__all__ = ["cancelled", "current_job", "progress"]


def current_job() -> Job | None:
    """Return the job whose code is running in this thread or task, or None outside jobs."""
    return cast("Job | None", running_job.get())


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
    job = running_job.get()
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
    job = running_job.get()
    if job is None:
        return
    fraction = done / total if total else done
    job._set_progress(max(0.0, min(1.0, float(fraction))), str(text))
