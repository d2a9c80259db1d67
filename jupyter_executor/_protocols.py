"""The narrow interfaces between the engine's core and what it drives.

A backend sees its engine only through :class:`BackendHost`: no backend imports the engine,
and none reaches into its private state. The engine builds one host per engine
(``_slots.EngineHost``) and gives it to every backend it makes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias

if TYPE_CHECKING:
    from .job import Job

__all__ = ["CANCELLED", "BackendHost"]


class _Cancelled(BaseException):
    """The type of :data:`CANCELLED`; never raised."""


#: Given as ``exc`` to :meth:`BackendHost.finish`: the attempt was cancelled. A value of its
#: own (compared by identity), so that no exception a job raises can be taken for it. A
#: failure formatted where it ran (a worker process) carries its text as the exception's
#: ``_jupyter_executor_tb`` attribute, read by the engine.
CANCELLED: Final[BaseException] = _Cancelled("cancelled")

#: How an attempt failed (an exception, or :data:`CANCELLED`), or None when it did not.
Exc: TypeAlias = BaseException | None


class BackendHost(Protocol):
    """What a backend sees of the engine that runs it.

    Every call is made on the engine's loop thread, except :meth:`call_soon`, which any thread
    may call to get there, and :meth:`finish_here`, which a backend's own thread calls.
    """

    @property
    def id(self) -> str:
        """The engine's id (given to commands as ``JUPYTER_EXECUTOR_ID``)."""

    @property
    def cancel_grace(self) -> float:
        """Seconds between a polite stop (SIGTERM, the cooperative flag) and a forced one."""

    @property
    def closed(self) -> bool:
        """True once the engine is shut down."""

    @property
    def max_jobs(self) -> int | None:
        """The engine's limit on jobs in slots at once, all backends together (None: none)."""

    @property
    def dask(self) -> Any:
        """The engine's ``dask=`` option (a client, an address, options, a kind or None)."""

    @property
    def cluster_options(self) -> dict[str, Any]:
        """Options of the dask-jobqueue cluster, with ``dask="slurm"`` and the like."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The engine's event loop (None before it starts and after it stops)."""

    @property
    def store(self) -> Any:
        """The history store (None without a history)."""

    def finish(
        self, job: Job, result: Any = None, exc: Exc = None, handoff: Any = None
    ) -> Job | None:
        """An attempt of ``job`` ended; exactly once per attempt, on the loop thread.

        ``exc`` is why it failed, or :data:`CANCELLED`. With ``handoff`` (the calling
        backend), a dependent that became ready on the same backend is started and returned,
        to be run in the caller's task.
        """

    def give_up(self, job: Job, why: str) -> None:
        """(loop thread) Settle a cancelled attempt of ``job`` that does not stop (a thread
        blocked in C, a coroutine that swallows its cancellation) without waiting for it any
        longer: cancelled, ``why`` added to its reason. The backend ignores its late end."""

    def finish_here(self, job: Job, result: Any, exc: Exc, backend: Any) -> Job | None:
        """:meth:`finish` with ``handoff=backend``, called from a backend's own thread.

        Only for an attempt whose end needs nothing of the loop (no timeout, retry or
        lifecycle: ``settles_anywhere``); returns the job the caller runs next, or None.
        """

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread (now when called there)."""

    def job_changed(self, job: Job) -> object:
        """Tell the history that ``job`` changed (its pid, its log); what it returns is unused."""

    def note_pid(self, job: Job) -> None:
        """Log that ``job``'s process started, with its pid."""

    def started(self, job: Job) -> bool:
        """(a backend that ``holds``) ``job``, held in its slot, runs now; False if it was not
        held (already started, or settled meanwhile)."""
