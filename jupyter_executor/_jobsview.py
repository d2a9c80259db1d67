"""``engine.jobs``: a read-only view of an engine's jobs by name."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Iterator, Mapping
from types import MappingProxyType

from ._status import Status
from .job import Job

logger = logging.getLogger("jupyter_executor")


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

    def _having(self, status: Status) -> dict[str, Job]:
        return {n: j for n, j in builtins.list(self._jobs.items()) if j.status is status}

    @property
    def pending(self) -> dict[str, Job]:
        """The pending jobs by name."""
        return self._having(Status.PENDING)

    @property
    def running(self) -> dict[str, Job]:
        """The running jobs by name."""
        return self._having(Status.RUNNING)

    @property
    def done(self) -> dict[str, Job]:
        """The jobs done (succeeded) by name."""
        return self._having(Status.DONE)

    @property
    def failed(self) -> dict[str, Job]:
        """The failed jobs by name."""
        return self._having(Status.FAILED)

    @property
    def cancelled(self) -> dict[str, Job]:
        """The cancelled jobs by name."""
        return self._having(Status.CANCELLED)

    def get_job_by_id(self, id: str) -> Job:
        """The job whose :attr:`Job.id` is ``id`` (or whose name is ``id``)."""
        for job in builtins.list(self._jobs.values()):
            if job.runstate.id == id:
                return job
        return self._jobs[id]
