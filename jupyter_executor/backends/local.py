"""The local backend: a plain function called on the engine's own loop thread.

executor-engine's ``LocalJob``: for tiny functions, where starting a thread would cost more
than the call. The call blocks the engine's loop while it runs (no other job starts, no
event is handled), so it must be quick; it cannot be cancelled once it has begun.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..job import resolve_args
from ._base import TaskBackend

if TYPE_CHECKING:
    from ..job import Job

__all__ = ["LocalBackend"]


class LocalBackend(TaskBackend):
    """Calls the job's function in a task of the engine's loop, with no thread in between."""

    name = "local"
    local = True  # the job's code runs in this process: its prints go to the job

    async def execute(self, job: Job) -> Any:
        args, kwargs = resolve_args(job)
        return job.target(*args, **kwargs)
