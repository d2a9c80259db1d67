"""Which job runs in this context, and the hooks around each attempt: the lowest rung.

Read by the stream routing (:mod:`._capture`), the backends, the scheduler and the public
helpers of :mod:`._runtime`. Typed loosely (``Any`` for the job): this module imports no other
module of the package, so that whatever the job model imports can import it without closing
an import circle (job -> _capture -> here; issue 10).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

__all__ = ["Attempt", "attempt_hooks", "run_hooks", "running_attempt", "running_job"]

logger = logging.getLogger("jupyter_executor")

#: The job whose code runs in this context (a ``Job``, or None). Set by the engine around every
#: attempt, read by the stdout/stderr proxy (routing) and by ``cancelled()`` / ``progress()``.
running_job: ContextVar[Any] = ContextVar("jupyter_executor_job", default=None)


class Attempt:
    """One attempt of a job, as the code it runs sees it: where its output goes.

    Set with :data:`running_job` by the backends that run the code in this process. The job's
    ``Output`` is made on first use and is a new one at each attempt, so a thread or a task
    the attempt left running, which keeps this context, would otherwise write into a later
    run's output (the stream proxy found ``job.output`` at write time). ``output`` is bound on
    the attempt's first write (``_capture._output_of``).
    """

    __slots__ = ("job", "number", "output")

    def __init__(self, job: Any) -> None:
        self.job = job
        self.number: int = job.attempts
        self.output: Any = None


#: The :class:`Attempt` whose code runs in this context (None outside thread and async jobs).
running_attempt: ContextVar[Attempt | None] = ContextVar("jupyter_executor_attempt", default=None)

#: ``(enter, leave)`` pairs called with the job, in the job's own context, before and after each
#: attempt of a thread or async job (the code runs in this process). Adapters keep per-job state
#: of libraries with them (the IPython extension: pyplot's figures). Empty, they cost one check.
attempt_hooks: list[tuple[Callable[[Any], None], Callable[[Any], None]]] = []


def run_hooks(job: Any, leaving: bool) -> None:
    """Call every attempt hook's ``enter`` (or ``leave``) with ``job``; a failing hook is logged."""
    for enter, leave in list(attempt_hooks):
        try:
            (leave if leaving else enter)(job)
        except Exception:
            # Never the job's failure: the job's own code ran (or runs) regardless.
            logger.warning("jupyter_executor: a job hook failed for %r", job.name, exc_info=True)
