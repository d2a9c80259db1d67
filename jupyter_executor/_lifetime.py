"""Every engine of this process, and their shutdown when the interpreter or the kernel ends.

A kernel's graceful shutdown does not run ``atexit`` handlers (docs/kernel-notes.md §7): the
IPython extension calls :func:`shutdown_all` from the hook the kernel does run, and ``atexit``
covers a plain interpreter.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import weakref
from collections.abc import Callable, Iterator
from typing import Protocol

from ._status import Status
from .job import Job

__all__ = ["register", "shutdown_all", "unregister"]

logger = logging.getLogger("jupyter_executor")


class _Engine(Protocol):
    """What this module needs of an engine."""

    id: str

    @property
    def closed(self) -> bool: ...

    def __iter__(self) -> Iterator[Job]: ...

    def shutdown(self, timeout: float | None = None, *, reason: str = ...) -> None: ...


_live_engines: weakref.WeakSet[_Engine] = weakref.WeakSet()


def register(engine: _Engine) -> Callable[[], None]:
    """Count ``engine`` among the live ones; shut it down at exit. Returns the exit hook."""
    hook = functools.partial(_shutdown_at_exit, weakref.ref(engine))
    atexit.register(hook)
    _live_engines.add(engine)
    return hook


def unregister(hook: Callable[[], None]) -> None:
    """The engine of ``hook`` (from :func:`register`) is shut down: no exit hook any more."""
    with contextlib.suppress(Exception):
        atexit.unregister(hook)


def unfinished_jobs() -> list[str]:
    """The names of the jobs of every live engine of this process that :func:`shutdown_all`
    would cancel: pending or running, not monitors (``forever``), not detached and running."""
    return [
        str(job.name)  # a registered job always has its name
        for engine in list(_live_engines)
        if not engine.closed
        for job in engine
        if not job.done()
        and not job.forever  # a monitor is expected to stop with the kernel
        and not (job.detach and job.status is Status.RUNNING)
    ]


def shutdown_all(reason: str, timeout: float = 2.0) -> list[str]:
    """Shut down every engine of this process, cancelling its jobs with ``reason``.

    Returns the names of the jobs that were still pending or running (detached jobs, which
    outlive the process, are not among them).
    """
    stopped = unfinished_jobs()
    for engine in list(_live_engines):
        if engine.closed:
            continue
        try:
            engine.shutdown(timeout=timeout, reason=reason)
        except Exception:
            logger.exception("jupyter_executor: shutting engine %s down failed", engine.id)
    return stopped


def _shutdown_at_exit(ref: weakref.ReferenceType[_Engine]) -> None:
    engine = ref()
    if engine is not None:
        engine.shutdown(timeout=5)
