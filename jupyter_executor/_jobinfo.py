"""``JobInfo``: the frozen picture of a job that ``Job.info()`` gives, and the dict it is made of.

Below job.py (it never imports it: the job is typed ``Any`` here), so that job.py imports it
without an import circle. The history and the views read :class:`~._snapshot.JobSnapshot`
instead; ``JobSnapshot.info_dict()`` gives the same row as :func:`info_dict` ``(tail=False)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

from ._status import FINISHED, Status
from ._text import short_repr

__all__ = ["JobInfo", "info_dict"]


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of a job, read by ``engine.list()`` and by the widgets.

    Times are epoch seconds (None until they happen); ``result`` and ``error`` are short reprs.
    """

    name: str
    status: str
    backend: str
    kind: str
    description: str
    requires: tuple[str, ...]
    forever: bool
    submitted: float | None
    started: float | None
    finished: float | None
    duration: float | None
    attempts: int
    result: str | None
    error: str | None
    traceback: str | None
    cancel_reason: str | None
    tail: str
    last_line: str
    progress: float | None
    progress_text: str
    output_version: int
    next_run: float | None = None
    restarts: int = 0
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-safe data."""
        # A shallow copy: every field is immutable (asdict's deep copy cost 5x more at 10k jobs).
        data = {name: getattr(self, name) for name in _INFO_FIELDS}
        data["requires"] = list(self.requires)
        return data


_INFO_FIELDS = tuple(f.name for f in fields(JobInfo))


def info_dict(job: Any, tail: bool = True) -> dict[str, Any]:
    """What ``job.info()`` holds, as a dict (``tail`` empty unless asked for).

    The widgets build 10,000 rows from this at once: no dataclass, no output tail. ``job`` is a
    :class:`~jupyter_executor.Job`.
    """
    status = job.status
    run = job.runstate
    started, finished = job.started, job.finished
    out, life, progress = run.output, run.life, run.progress
    return {
        "name": str(job.name),
        "status": status.value,
        "backend": job.backend,
        "kind": job.kind,
        "description": job.describe(),
        "requires": job.requirements,
        "forever": job.forever,
        "submitted": job.submitted,
        "started": started,
        "finished": finished if status in FINISHED else None,
        "duration": _duration(status, started, finished),
        "attempts": job.attempts,
        "result": short_repr(run.result) if status is Status.DONE else None,
        "error": _error(status, run.exception, run.cancel_reason),
        "traceback": job.traceback,
        "cancel_reason": run.cancel_reason if status is Status.CANCELLED else None,
        "tail": out.tail(20) if tail and out is not None else "",
        "last_line": out.last_line() if out is not None else "",
        "progress": progress[0] if progress else None,
        "progress_text": progress[1] if progress else "",
        "output_version": out.version if out is not None else 0,
        "next_run": life.next_run if life is not None else None,
        "restarts": life.restarts if life is not None else 0,
        "url": life.url if life is not None else None,
    }


def _duration(status: Status, started: float | None, finished: float | None) -> float | None:
    if started is None:
        return None
    end = finished if finished is not None and status in FINISHED else time.time()
    return max(0.0, end - started)


def _error(status: Status, exc: BaseException | None, reason: str | None) -> str | None:
    if exc is not None:
        return f"{type(exc).__name__}: {exc}"
    if status is Status.CANCELLED:
        return f"cancelled: {reason or 'cancelled'}"
    return None
