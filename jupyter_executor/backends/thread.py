"""The thread backend: callables on a bounded pool of daemon threads.

Cancellation is cooperative first (:func:`jupyter_executor.cancelled` turns True), then forced:
after the engine's grace period an exception is injected into the thread with
``PyThreadState_SetAsyncExc``. It takes effect between bytecodes, so it stops Python loops but
not a single long call into C (a ``time.sleep(60)`` ends first) nor a wait on a lock. A thread
still in its job one more grace period later is abandoned: the job is settled as cancelled (or
timed out), its slot is given back, and whatever the thread does when its call returns (a
result, an exception, a second finish) is ignored.
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import threading
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from .._context import Attempt, attempt_hooks, run_hooks, running_attempt, running_job
from .._protocols import CANCELLED
from ..job import resolve_args
from ._base import Backend

if TYPE_CHECKING:
    from .._protocols import BackendHost
    from ..job import Job

__all__ = ["ThreadBackend"]


class JobThreadCancelled(BaseException):
    """Injected into a thread whose job was cancelled (a BaseException: ``except Exception``
    in the job does not swallow it)."""


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> None:
    # None is passed as NULL, which clears an exception injected but not yet raised.
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None else None
    )


def _call_hook(hook: Any, job: Job) -> None:
    result = hook(job)
    if inspect.iscoroutine(result):
        asyncio.run(result)


def _call(job: Job) -> Any:
    """The attempt itself: the job's target between its hooks, run to its end if async.

    (Its frame, like every frame of the package, is left out of the job's traceback.)
    """
    run = job.runstate
    args, kwargs = resolve_args(job) if run.arg_jobs else (job.args, job.kwargs)
    life = run.life
    if life is not None and life.before is not None:
        _call_hook(life.before, job)
    if job.kind == "coroutine function":
        result = asyncio.run(job.target(*args, **kwargs))
    else:
        result = job.target(*args, **kwargs)
        if result is not None and inspect.iscoroutine(result):
            result = asyncio.run(result)
    if life is not None and life.after is not None:
        _call_hook(life.after, job)
    return result


def settles_anywhere(job: Job) -> bool:
    """Whether the end of ``job``'s attempt needs nothing of the engine's loop.

    A timeout's timer lives on the loop, and so do the timers of a retry and of a long-running
    job's next run (restart, schedule): those attempts end on the loop thread.
    """
    return job.timeout is None and job.retries == 0 and job.runstate.life is None


class ThreadBackend(Backend):
    """Runs callables in worker threads created on demand, up to the backend's limit."""

    name = "thread"
    takes_queued = True

    def __init__(self, engine: BackendHost) -> None:
        super().__init__(engine)
        self._queue: SimpleQueue[Job | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        # Guards injection: an exception is injected only while the thread still runs that job.
        self._inject_lock = threading.Lock()
        self._injected: set[int] = set()
        # (thread ident, job) of the attempts that were abandoned, under _inject_lock.
        self._abandoned: set[tuple[int, Job]] = set()
        self._spawn_lock = threading.Lock()
        self._idle = 0  # threads waiting for a job and not promised to one

    def start(self, job: Job) -> None:
        # Each start takes an idle thread or makes one, so a queued job never waits behind a
        # long one while its slot is free; threads are not made when idle ones exist.
        with self._spawn_lock:
            if self._idle > 0:
                self._idle -= 1
                spawn = None
            else:
                spawn = threading.Thread(
                    target=self._work,
                    name=f"jupyter-executor-{self.engine.id}-thread-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(spawn)
        self._queue.put(job)
        if spawn is not None:
            spawn.start()

    def _work(self) -> None:
        queue = self._queue
        ident = threading.get_ident()
        while True:
            job = queue.get()
            if job is None:
                return
            while job is not None:  # then the jobs the engine hands this thread as each ends
                job = self._execute(job, ident)
            with self._spawn_lock:
                self._idle += 1

    def _execute(self, job: Job, ident: int) -> Job | None:
        """Run one attempt of ``job`` in thread ``ident`` (this one); the next job to run in
        this thread, or None."""
        result: Any = None
        exc: BaseException | None = None
        abandoned = False
        token = running_job.set(job)
        seat = running_attempt.set(Attempt(job))
        hooks = bool(attempt_hooks)
        run = job.runstate
        try:
            try:
                run.task = ident
                if run.cancel_requested:
                    raise JobThreadCancelled
                if hooks:
                    run_hooks(job, leaving=False)
                result = _call(job)
            except JobThreadCancelled:
                exc = CANCELLED
            except BaseException as e:
                # formatted by the engine (without its own frames, see _traceback)
                exc = e
            finally:
                if hooks:
                    run_hooks(job, leaving=True)
                abandoned = self._disarm(job, ident)
        except JobThreadCancelled:  # injected just as the job ended
            abandoned = self._disarm(job, ident)
            exc = CANCELLED
        finally:
            running_attempt.reset(seat)
            running_job.reset(token)
        if abandoned:
            return None  # settled long ago; the job may even run again by now: not news
        if settles_anywhere(job):
            # Settled from this thread (under the engine's lock), and the freed slot's next
            # job run here: a plain job's end costs the loop thread nothing (issue 14).
            return self.engine.finish_here(job, result, exc, self)
        self.engine.call_soon(self.engine.finish, job, result, exc)
        return None

    def _disarm(self, job: Job, ident: int) -> bool:
        """The attempt's call returned: no exception is injected from now on. Returns whether
        the attempt was abandoned (its end is then ignored). No lock unless a cancel was asked.
        """
        run = job.runstate
        if run.task == ident and not run.cancel_requested:
            # Nothing can have been (nor be) injected for this attempt, nor abandoned: both
            # need a cancel request, which _inject and _abandon read under the lock after the
            # attempt's task. Cleared first, checked again: a cancel asked in between sees no
            # task (and injects nothing), or is seen here and takes the locked path.
            run.task = None
            if not run.cancel_requested:
                return False
        with self._inject_lock:
            # Not a later attempt's (this one may have been abandoned).
            if job.runstate.task == ident:
                job.runstate.task = None
            if ident in self._injected:
                self._injected.discard(ident)
                _set_async_exc(ident, None)
            # _abandon adds an attempt only while its task is still this thread (under this
            # lock): once cleared above, the set cannot gain it. Consumed on first sight.
            if self._abandoned and (ident, job) in self._abandoned:
                self._abandoned.discard((ident, job))
                return True
            return False

    def cancel(self, job: Job) -> None:
        # The cooperative flag is already set by the engine; force after the grace period.
        attempt = job.attempts
        self.loop.call_later(self.engine.cancel_grace, self._inject, job, attempt)

    def _inject(self, job: Job, attempt: int) -> None:
        with self._inject_lock:
            ident = job.runstate.task
            if not (isinstance(ident, int) and job.attempts == attempt and job.cancel_requested):
                return
            self._injected.add(ident)
            _set_async_exc(ident, JobThreadCancelled)
        self.loop.call_later(self.engine.cancel_grace, self._abandon, job, attempt, ident)

    def _abandon(self, job: Job, attempt: int, ident: int) -> None:
        """(loop thread) The injected exception did not stop the thread: settle without it.

        The thread is blocked in a call into C or on a lock, where no exception reaches it; it
        cannot be killed, so the job no longer waits for it (nor do ``wait()`` and the slot).
        """
        with self._inject_lock:
            if job.runstate.task != ident or job.attempts != attempt:
                return  # it ended meanwhile: its own finish is on its way
            self._abandoned.add((ident, job))
        self.engine.give_up(job, "abandoned: the thread is still blocked in C code or a lock")

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=1.0)
        self._threads = [t for t in self._threads if t.is_alive()]
