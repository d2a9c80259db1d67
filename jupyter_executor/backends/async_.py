"""The async backend: coroutines on the engine's own event loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..job import resolve_args
from ._base import TaskBackend

if TYPE_CHECKING:
    from ..job import Job

__all__ = ["AsyncBackend"]


class AsyncBackend(TaskBackend):
    """Awaits the job's coroutine in a task of the engine's loop; cancel = cancel the task."""

    name = "async"
    direct_coroutines = True
    local = True

    async def execute(self, job: Job) -> Any:
        if job.kind == "coroutine":
            return await job.target
        args, kwargs = resolve_args(job)
        result = job.target(*args, **kwargs)
        if hasattr(result, "__await__"):
            return await result
        return result
