"""``JobInfo``: the frozen picture of a job that ``Job.info()`` gives.

Made from the job's :class:`~._snapshot.JobSnapshot` (``JobSnapshot.info_dict()``) and the tail
of its output: the one place a job's row is built is the snapshot, which the history, the views,
``engine.list()`` and ``info()`` all read.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["JobInfo"]


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
