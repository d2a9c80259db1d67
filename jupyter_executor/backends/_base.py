"""What every backend provides to the engine."""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from typing import TYPE_CHECKING, Any

from .._context import Attempt, attempt_hooks, run_hooks, running_attempt, running_job
from .._protocols import CANCELLED

if TYPE_CHECKING:
    from .._protocols import BackendHost
    from ..job import Job

__all__ = ["Backend", "TaskBackend"]


async def _call_hook(hook: Any, job: Job) -> None:
    """Run a before=/after= hook: a coroutine function on the loop, a function in a thread."""
    if inspect.iscoroutinefunction(hook):
        await hook(job)
        return
    result = await asyncio.to_thread(hook, job)
    if inspect.isawaitable(result):
        await result


class Backend:
    """A way of running jobs. The engine calls every method on its loop thread.

    ``start(job)`` begins an attempt and must make sure that ``engine.finish(job, ...)`` is
    called exactly once, on the loop thread, when it ends; ``cancel(job)`` asks it to stop.
    ``engine`` is the engine as backends see it (:class:`~.._protocols.BackendHost`).
    ``running``, ``limit`` and ``queue`` are the engine's bookkeeping of this backend's slots.
    """

    name = "backend"
    #: ``engine.finish(job, ..., handoff=self)`` may return a job queued on this backend for a
    #: slot, started, for the caller to run (the caller runs whatever it is handed).
    takes_queued = False
    #: The backend may be given a job before it can run it (prefetch: a worker holds it): the
    #: job takes a slot but stays pending until the backend calls ``engine.started(job)``,
    #: which it must do before it ends the attempt any other way than cancelled.
    holds = False

    def __init__(self, engine: BackendHost) -> None:
        self.engine = engine
        self.limit: int | None = None
        self.running = 0
        self.queue: deque[Job] = deque()
        # Counts of jobs ever queued, by which the engine finds those that wait long enough to
        # be recorded as pending (queued jobs keep their order: the queue is first in, first out).
        self.enqueued = 0
        self.noted = 0  # those up to this count were recorded (or started)
        self.mark = 0  # those up to this count are recorded at the next check if still queued

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self.engine.loop
        assert loop is not None
        return loop

    def start(self, job: Job) -> None:
        raise NotImplementedError

    def cancel(self, job: Job) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what lives on the loop (processes, clients), before the loop stops."""

    def close(self) -> None:
        """Release what lives outside the loop (threads), after :meth:`aclose`."""


class TaskBackend(Backend):
    """A backend whose attempt is a coroutine, :meth:`execute`, run as a task on the loop.

    Cancelling the task raises ``CancelledError`` inside :meth:`execute`, which stops its work
    (kills its process, cancels its remote future) before letting the error through.
    """

    #: Await a job's coroutine object directly instead of through :meth:`execute`.
    direct_coroutines = False
    #: The job's own code runs in this process, in the task (the async backend): the attempt
    #: hooks of ``_runtime`` are called around it.
    local = False

    def __init__(self, engine: BackendHost) -> None:
        super().__init__(engine)
        # The tasks of local jobs settled without them (see _abandon): their late end is not
        # news (the job may even be in its next attempt by then).
        self._abandoned: set[asyncio.Task[Any]] = set()

    def start(self, job: Job) -> None:
        job.runstate.task = self.loop.create_task(self._run(job))

    async def _run(self, job: Job) -> None:
        engine = self.engine
        task: asyncio.Task[Any] | None = None  # looked up only for a handoff (most jobs: none)
        inline = 0
        current: Job | None = job
        me = asyncio.current_task() if self.local else None  # (see _abandon)
        while current is not None:
            running_job.set(current)  # the task runs in a copy of the context: this stays local
            running_attempt.set(Attempt(current))  # where a local job's prints go (see Attempt)
            result: Any = None
            exc: BaseException | None = None
            try:
                if current.runstate.life is not None or (self.local and attempt_hooks):
                    result = await self._attempt(current)
                elif self.direct_coroutines and current.kind == "coroutine":
                    result = await current.target  # one coroutine frame less per job
                else:
                    result = await self.execute(current)
            except BaseException as error:  # a job's failure is stored on the job, never raised
                exc = error
            if self._abandoned and me in self._abandoned:
                return  # settled without it (see _abandon): its end is not news
            if isinstance(exc, asyncio.CancelledError):
                engine.finish(current, exc=CANCELLED)
                return
            current = engine.finish(current, result, exc, handoff=self)
            if current is None:
                return
            inline += 1
            if inline % 64 == 0:
                # Let the loop breathe: a long chain run inline would starve other callbacks.
                self.start(current)
                return
            if task is None:
                task = asyncio.current_task()
            current.runstate.task = task

    async def _attempt(self, job: Job) -> Any:
        """One attempt with its hooks: the attempt hooks (local jobs) and ``before``/``after``.

        Apart from :meth:`_run`'s plain path, so that most jobs (no hooks, no lifecycle) await
        one coroutine less.
        """
        hooks = self.local and bool(attempt_hooks)
        if hooks:
            run_hooks(job, leaving=False)
        try:
            life = job.runstate.life
            if life is not None and life.before is not None:
                await _call_hook(life.before, job)
            if self.direct_coroutines and job.kind == "coroutine":
                result = await job.target
            else:
                result = await self.execute(job)
            if life is not None and life.after is not None:
                await _call_hook(life.after, job)
            return result
        finally:
            if hooks:
                run_hooks(job, leaving=True)

    async def execute(self, job: Job) -> Any:
        raise NotImplementedError

    def cancel(self, job: Job) -> None:
        task = job.runstate.task
        if task is None:
            return
        task.cancel()
        # A task cancelled before its first step never enters _run: settle it from here.
        task.add_done_callback(lambda _t, job=job: self._cancelled_early(job, _t))
        if self.local:
            # The job's own coroutine may catch the CancelledError and go on.
            self.loop.call_later(self.engine.cancel_grace, self._abandon, job, task)

    def _abandon(self, job: Job, task: asyncio.Task[Any]) -> None:
        """(loop thread) A local job's task still runs a grace after it was cancelled: its
        coroutine caught the cancellation. Settle the job without it, as a thread job that
        cannot be stopped (its slot is given back, ``wait()`` no longer waits for it); the
        task runs on, and its end is ignored."""
        if task.done() or job.runstate.task is not task or job.done():
            return
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)
        self.engine.give_up(job, "abandoned: its coroutine went on after it was cancelled")

    def _cancelled_early(self, job: Job, task: asyncio.Task[Any]) -> None:
        if job.runstate.task is task:
            target = job.target
            if inspect.iscoroutine(target) and inspect.getcoroutinestate(target) == "CORO_CREATED":
                target.close()
            self.engine.finish(job, exc=CANCELLED)
