"""``engine.jobs``: a read-only view of an engine's jobs by name."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, overload

from ._status import Status
from .job import Job

logger = logging.getLogger("jupyter_executor")


class _OfStatus:
    """``jobs.running`` and the like (executor-engine's names): the jobs that have one status
    now, by name, as a new dict at each read."""

    def __init__(self, status: Status) -> None:
        self.wanted = status
        self.__doc__ = f"The {status.value} jobs by name."

    @overload
    def __get__(self, view: None, owner: type[JobsView]) -> _OfStatus: ...
    @overload
    def __get__(self, view: JobsView, owner: type[JobsView]) -> dict[str, Job]: ...
    def __get__(self, view: JobsView | None, owner: type[JobsView]) -> Any:
        if view is None:  # on the class: help() and the API docs read the docstring
            return self
        jobs = builtins.list(view._jobs.items())
        return {name: job for name, job in jobs if job.status is self.wanted}


class JobsView(Mapping[str, Job]):
    """A read-only view of an engine's jobs by name; printing it lists one job a line."""

    __slots__ = ("_jobs",)

    def __init__(self, jobs: Mapping[str, Job]) -> None:
        self._jobs = MappingProxyType(jobs)

    def __getitem__(self, name: str) -> Job:
        return self._jobs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    def __repr__(self) -> str:
        if not self._jobs:
            return "<no jobs>"
        return "\n".join(repr(job) for job in builtins.list(self._jobs.values()))

    pending = _OfStatus(Status.PENDING)
    running = _OfStatus(Status.RUNNING)
    done = _OfStatus(Status.DONE)
    failed = _OfStatus(Status.FAILED)
    cancelled = _OfStatus(Status.CANCELLED)

    def get_job_by_id(self, id: str) -> Job:
        """The job whose :attr:`Job.id` is ``id`` (or whose name is ``id``)."""
        for job in builtins.list(self._jobs.values()):
            if job.runstate.id == id:
                return job
        return self._jobs[id]
