"""The run state of one job: one record, written by the engine's scheduler, read by the job.

``Job.runstate`` is this record. It is internal: the public face of the same state is the job's
properties (``status``, ``result()``, ``exception()``, ``cancel_reason``, ``output``,
``future``, ...), which read it. Before a job is submitted the job writes its own record (its
dependency spec: ``requires()``, the condition, job arguments); from submission on, the
engine's scheduler and its rooms (``_scheduler``, ``_intake``, ``_policies``, ...) and the
backends it drives write it, and nothing else does (issue 10: the state the scheduler pokes has
one owner, instead of private attributes of the job reached into from a dozen modules).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._capture import Output
    from ._conditions import Condition
    from ._lifecycle import Lifecycle

__all__ = ["RunState"]


class RunState:
    """What the engine keeps per job besides its public attributes (see the module docstring).

    Attributes
    ----------
    requires_spec, arg_jobs, condition
        What the job depends on, as given: ``requires()`` items (until the engine has named
        them in ``job.requirements``: then ``()``), whether a job is among its arguments, the
        ``condition=`` option.
    dask_options
        ``Client.submit`` options of a dask job (``resources``, ``priority``), or None.
    life
        The long-running part (``Lifecycle``: schedule, restarts, detach, make-like), or None.
    waited
        Whether ``wait()``/``orchestrate()`` wait for the job (not monitors nor schedules).
    waiting
        Requirements (and condition) of a pending job not met yet: it starts at 0.
    task, timeout_handle
        What runs the current attempt (an asyncio task, a thread id, a process) and the timer
        of its timeout.
    cancel_requested, cancel_reason
        Whether the engine has asked the current attempt to stop, and why.
    result, exception, traceback_ansi
        How the last attempt ended; the traceback as the views show it (coloured).
    future
        The ``concurrent.futures.Future`` of ``Job.future``, made on first use.
    output, progress
        The job's :class:`~jupyter_executor._capture.Output` (made on first use) and its last
        ``progress()`` report ``(fraction, text)``.
    history, id
        The fields of its snapshots that never change (cached by ``snapshot_of``), and the
        job's random id (made on first read of ``Job.id``).
    """

    __slots__ = (
        "arg_jobs",
        "cancel_reason",
        "cancel_requested",
        "condition",
        "dask_options",
        "exception",
        "future",
        "history",
        "id",
        "life",
        "met",
        "output",
        "progress",
        "requires_spec",
        "result",
        "task",
        "timeout_handle",
        "traceback_ansi",
        "waited",
        "waiting",
    )

    def __init__(
        self,
        condition: Condition | None,
        arg_jobs: bool,
        dask_options: dict[str, Any] | None,
    ) -> None:
        self.requires_spec: list[Any] | tuple[()] = ()
        self.arg_jobs = arg_jobs
        self.condition = condition
        self.dask_options = dask_options
        self.life: Lifecycle | None = None
        self.waited = True
        self.waiting = 0
        self.met: str | set[str] | None = None
        self.task: Any = None
        self.timeout_handle: Any = None
        self.cancel_requested = False
        self.cancel_reason: str | None = None
        self.result: Any = None
        self.exception: BaseException | None = None
        self.traceback_ansi: str | None = None
        self.future: Future[Any] | None = None
        self.output: Output | None = None
        self.progress: tuple[float, str] | None = None
        self.history: Any = None
        self.id: str | None = None


def met(run: RunState, name: str) -> bool:
    """Whether the requirement ``name`` of ``run``'s job was counted as done already; it is
    counted from now on (test and set).

    A requirement may end done more than once while its dependent waits for others (it is
    rerun, replaced, restarted or scheduled): each dependent counts it once, or it would start
    with another requirement still running. One met name is kept as the name itself (a chain's
    every link has one), more in a set.
    """
    seen = run.met
    if seen is None:
        run.met = name
        return False
    if isinstance(seen, str):
        if seen == name:
            return True
        run.met = {seen, name}
        return False
    if name in seen:
        return True
    seen.add(name)
    return False
