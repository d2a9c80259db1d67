"""Slots: the global ``max_jobs`` limit, per-backend limits, the queues of jobs waiting for a
slot, and the timer that records as pending the jobs that wait long for one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from . import _capture
from ._loop import LoopThread
from ._options import check_limit
from ._protocols import Exc
from ._status import Status
from ._text import short_repr
from .backends import Backend, make_backend
from .errors import ENGINE_SHUT_DOWN, InvalidOption, InvalidOptionType, SubmitError
from .job import BACKENDS, Job

logger = logging.getLogger("jupyter_executor")


# How long a job waits for a slot (once to twice this) before the history records it as
# pending; one that gets a slot sooner is recorded when it starts.
_NOTE_QUEUED_AFTER = 2.0

# Seconds the backends get to close at shutdown (all at once) when the caller gives no timeout.
# One that has not closed by then is left behind with a warning: a backend that hangs (a dask
# cluster waiting for a task it cannot stop) must not keep the loop, the thread and the history
# open.
_CLOSE_TIMEOUT = 30.0

# Read on every start and end: an enum member read through its class costs ~70 ns on Python
# 3.11 (EnumType defines __getattr__), a module global ~10.
_PENDING, _RUNNING = Status.PENDING, Status.RUNNING


_T = TypeVar("_T")


def checked_limits(limits: Any) -> dict[str, int | None]:
    """``limits`` (``Engine(limits=...)``, ``set_limits(...)``) checked whole, as the engine
    keeps them: backend name to a whole number >= 1, or None (no limit).

    Raises
    ------
    InvalidOption
        An unknown backend name, or a limit out of range; :class:`InvalidOptionType` for what
        is not a mapping of names to numbers. One line naming it and the value.
    """
    if not isinstance(limits, Mapping):
        msg = (
            f"limits={short_repr(limits)} is not a mapping of backend names to limits "
            "(like {'thread': 8, 'process': 2})"
        )
        raise InvalidOptionType(msg)
    checked: dict[str, int | None] = {}
    for name, value in limits.items():
        if not isinstance(name, str):
            msg = f"limits: {name!r} is not a backend; use one of {', '.join(BACKENDS)}"
            raise InvalidOptionType(msg)
        if name not in BACKENDS:
            msg = f"limits: unknown backend {name!r}; use one of {', '.join(BACKENDS)}"
            raise InvalidOption(msg)
        checked[name] = check_limit(f"limits[{name!r}]", value)
    return checked


class _EngineAttr(Generic[_T]):
    """An attribute of :class:`EngineHost` that is the engine's attribute ``name``, read at
    each access."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, host: EngineHost, owner: type[EngineHost] | None = None) -> _T:
        return cast("_T", getattr(host._engine, self.name))


class EngineHost:
    """The engine as its backends see it (:class:`~._protocols.BackendHost`).

    The engine's methods are bound once here, so that a backend's call costs what a call on the
    engine itself cost; what may change (the loop, the grace period) is read when asked.
    """

    __slots__ = (
        "_engine", "call_soon", "finish", "finish_here", "give_up", "job_changed", "note_pid",
        "started",
    )  # fmt: skip

    def __init__(self, engine: Slots) -> None:
        self._engine = engine
        self.finish = engine._finish
        self.finish_here = engine._finish_here
        self.give_up = engine._give_up
        self.call_soon = engine._call_soon
        self.job_changed = engine._job_changed
        self.note_pid = engine._note_pid
        self.started = engine._started

    # What may change (the grace period, the loop, the dask options...), read when asked.
    id: _EngineAttr[str] = _EngineAttr("id")
    cancel_grace: _EngineAttr[float] = _EngineAttr("cancel_grace")
    closed: _EngineAttr[bool] = _EngineAttr("closed")
    max_jobs: _EngineAttr[int | None] = _EngineAttr("max_jobs")
    dask: _EngineAttr[Any] = _EngineAttr("dask")
    cluster_options: _EngineAttr[dict[str, Any]] = _EngineAttr("cluster_options")
    loop: _EngineAttr[asyncio.AbstractEventLoop | None] = _EngineAttr("_loop")
    store: _EngineAttr[Any] = _EngineAttr("_store")


class Slots(LoopThread):
    """Who may run now: ``max_jobs``, the per-backend limits and the queues of those who wait.

    Owns the backends, the running and queued counts and the "pending while waiting" timer.
    """

    max_jobs: int | None
    limits: dict[str, int | None]
    resume: bool
    _backends: dict[str, Backend]
    _running: int
    _held: set[Job]
    _queued: int
    _noting: bool
    _ran: set[str]
    _admitting: int
    _closed: bool
    _host: EngineHost
    dask: Any
    cluster_options: dict[str, Any]

    if TYPE_CHECKING:
        # Provided by the rooms above (the scheduler and the policies). Restated, not typed
        # loosely: mypy then checks Scheduler._finish against this and BackendHost.finish.
        def _start_attempt(self, job: Job) -> None: ...

        def _finish(
            self, job: Job, result: Any = None, exc: Exc = None, handoff: Backend | None = None
        ) -> Job | None: ...

        def _give_up(self, job: Job, why: str) -> None: ...

        def _arm_timeout(self, job: Job, attempt: int) -> None: ...

        def _dispatch(self, jobs: list[Job]) -> None: ...

    def _init_slots(self, max_jobs: int | None) -> None:
        self.max_jobs = max_jobs
        self.limits = {
            "async": None,
            "thread": 32,
            "process": os.cpu_count() or 2,
            "subprocess": None,
            "dask": None,
            "local": None,
        }
        self._backends = {}
        self._host = EngineHost(self)
        self._running = 0
        # Jobs in a slot of a backend that ``holds`` (prefetch) and not started there yet: they
        # stay pending until the backend says they run (_started).
        self._held = set()
        self._queued = 0  # jobs waiting in the backends' queues for a free slot
        self._noting = False  # _note_queued is due
        self._ran = set()  # jobs that really ran an attempt (for resume)
        self._admitting = 0  # submissions posted to the loop and not admitted yet

    def set_limits(self, **limits: int | None) -> None:
        """Set per-backend limits on running jobs, e.g. ``set_limits(thread=8, process=2)``.

        Each limit is a whole number >= 1, or None for no limit.

        Raises
        ------
        InvalidOption
            An unknown backend, or a limit that is no whole number >= 1 (one line naming it);
            then no limit is changed.
        """
        for name, value in checked_limits(limits).items():
            self.limits[name] = value
            backend = self._backends.get(name)
            if backend is not None:
                backend.limit = value

    def prestart(self, *backends: str) -> concurrent.futures.Future[None]:
        """Start the processes of ``backends`` now, in the background, so that their first job
        does not wait for them to start.

        The ``"process"`` backend starts its fork server, which preloads cloudpickle: its first
        job then waits for a fork, not for a Python to start. The other backends have nothing
        to start. A prestarted process costs memory while it waits (a Python with cloudpickle).

        Parameters
        ----------
        *backends
            Backend names, e.g. ``"process"``.

        Returns
        -------
        concurrent.futures.Future
            Done when they are ready; its exception says why one could not start.

        Raises
        ------
        ValueError
            An unknown backend name.
        SubmitError
            The engine is shut down.

        Examples
        --------
        >>> from jupyter_executor import Engine
        >>> with Engine(history=False) as engine:
        ...     engine.prestart("process").result(timeout=60)
        """
        for name in backends:
            if name not in BACKENDS:
                msg = f"unknown backend {name!r}; use one of {', '.join(BACKENDS)}"
                raise ValueError(msg)
        if getattr(self, "_closed", False):
            raise SubmitError(ENGINE_SHUT_DOWN)

        async def start() -> None:
            for name in backends:
                prestart = getattr(self._backend(name), "prestart", None)
                if prestart is not None:
                    await prestart()

        return asyncio.run_coroutine_threadsafe(start(), self._ensure_loop())

    def _backend(self, name: str) -> Backend:
        backend = self._backends.get(name)
        if backend is None:
            backend = self._backends[name] = make_backend(name, self._host)
            backend.limit = self.limits[name]
        return backend

    def _begin(self, job: Job, backend: Backend) -> bool:
        """Take a slot and mark ``job`` running; queue it when no slot is free."""
        with self._lock:
            if not self._begin_locked(job, backend):
                return False
        self._after_begin(job)
        return True

    def _begin_locked(self, job: Job, backend: Backend) -> bool:
        """(under the lock) :meth:`_begin` but for :meth:`_after_begin`, which the caller
        does once the lock is released: True when ``job`` took a slot."""
        if job.status is not _PENDING or job in self._held:
            return False
        if not self._slot_free(backend):
            self._enqueue(job, backend)
            return False
        # _mark_running inline (a call less per hop of a chain)
        self._running += 1
        backend.running += 1
        if backend.holds:
            self._held.add(job)
        else:
            self._start_attempt(job)
        return True

    def _next_after(
        self, ready: list[Job] | None, backend: Backend, handoff: Backend | None
    ) -> Job | None:
        """A slot of ``backend`` was freed: what runs next. Returns the job handed to the caller."""
        nxt = None
        if ready:
            job = ready[0]
            run = job.runstate
            if (
                len(ready) == 1
                and job.backend == backend.name
                and run.condition is None
                and run.life is None
                and not (self.resume and job.kind != "coroutine")
            ):
                # A chain's link, once per hop: _hand_off with _starts_at_once and _begin
                # inline, three calls less (issue 14).
                with self._lock:
                    began = self._begin_locked(job, backend)
                if began:
                    self._after_begin(job)
                    nxt = job
                # else it is queued for a slot, or in one already, or no longer pending
            else:
                nxt = self._hand_off(ready, backend)
        if self._queued:
            if nxt is None and handoff is not None and handoff.takes_queued:
                # The freed slot goes to the next job queued on this backend, run by the
                # caller: no loop turn (and no wake-up of the loop thread) per queued job.
                nxt = self._pop_queued(backend)
            if nxt is None:
                self._call_soon(self._drain_queues, backend)
        return nxt

    def _hand_off(self, ready: list[Job], backend: Backend) -> Job | None:
        """Start the first ready dependent on ``backend`` for the caller; dispatch the rest.

        Any other goes through the loop's admission (handed off, an up-to-date make-like job
        would run again and a scheduled one at once instead of at its first tick).
        """
        nxt = None
        for i, candidate in enumerate(ready):
            if candidate.backend == backend.name and self._starts_at_once(candidate):
                # Not dispatched when it did not take a slot either: it is queued for one,
                # already in one, or no longer pending (the loop's admission would find the
                # same, or queue it a second time).
                del ready[i]
                if self._begin(candidate, backend):
                    nxt = candidate
                break
        if ready:
            self._dispatch(ready)
        return nxt

    def _begin_here(self, job: Job, backend: Backend) -> bool:
        """(under the lock) :meth:`_begin_locked` for a job the submitting thread starts:
        behind the jobs already queued on ``backend``, which a free slot goes to first (it
        was freed a moment ago: their drain is on its way, or posted here)."""
        if not backend.queue:
            return self._begin_locked(job, backend)
        if job.status is not _PENDING or job in self._held:
            return False
        if self._slot_free(backend):
            self._call_soon(self._drain_queues, backend)
        self._enqueue(job, backend)
        return False

    def _slot_free(self, backend: Backend) -> bool:
        return (self.max_jobs is None or self._running < self.max_jobs) and (
            backend.limit is None or backend.running < backend.limit
        )

    def _enqueue(self, job: Job, backend: Backend) -> None:
        # (under the lock) ``job`` waits for a slot of ``backend``, after those queued before.
        backend.queue.append(job)
        backend.enqueued += 1
        self._queued += 1
        if self._store is not None and not self._noting:
            # Posted: the timer is the loop's, and this may be the submitting thread.
            self._noting = True
            self._call_soon(self._arm_note_queued)

    def _thread_backend_for(self, ready: list[Job]) -> Backend | None:
        """(under the lock) The thread backend, when the submitting thread may start ``ready``.

        With the thread backend's workers settling plain jobs themselves (``finish_here``), a
        burst of thread jobs then never needs the loop thread: its wake-up per submission cost
        more than the job. Only when no submission made earlier still waits for admission on
        the loop (the start order stays the submission order), and only for jobs the loop
        would start at once (no condition, no lifecycle, no resume check). None otherwise.

        Other posts to the loop (the history's timers, a repoll) do not send it there: with
        the history on, the first of them in a burst sent every later submission of the burst
        through the loop's admission (each waited for the one before), 70% of them (issue 14).
        Admissions of dependents count as submissions (``_dispatch``); jobs queued for a slot
        are started before it in any case (:meth:`_begin_here`).
        """
        backend = self._backends.get("thread")  # made on the loop, by the first thread job
        if backend is None or self._admitting:
            return None
        for job in ready:
            if job.backend != "thread" or not self._starts_at_once(job):
                return None
        return backend

    def _resumes(self, job: Job) -> bool:
        """Whether ``job`` is checked against the runs of a resumed flow before it starts."""
        return self.resume and job.kind != "coroutine"

    def _starts_at_once(self, job: Job) -> bool:
        """Whether admitting ``job`` (its requirements met) starts it with no check first: no
        condition, no lifecycle (a schedule's first tick, a make-like freshness check) and no
        resume check. Only such a job may be started by another path than the loop's
        admission (the submitting thread, or the task that finished its requirement)."""
        run = job.runstate
        return run.condition is None and run.life is None and not self._resumes(job)

    def _start_here(self, started: list[Job], backend: Backend) -> None:
        """Start on ``backend``, from this (the submitting) thread, the jobs ``_take_in``
        marked running (one lock hold for the submission and their slots: issue 14)."""
        for job in started:
            self._after_begin(job)
            try:
                backend.start(job)
            except Exception as exc:
                self._call_soon(self._finish, job, None, exc)

    def _arm_note_queued(self) -> None:
        # (loop thread, under the lock) The jobs queued by now are checked a delay later.
        self._noting = True
        for b in self._backends.values():
            b.mark = b.enqueued
        assert self._loop is not None
        self._loop.call_later(_NOTE_QUEUED_AFTER, self._note_queued)

    def _note_queued(self) -> None:
        """(loop thread) Record as pending the jobs that have waited a while for a slot.

        A job that gets a slot soon is recorded when it starts (so that a burst of short jobs
        queued behind the pool costs no extra write); one that waits behind a limit must be in
        the history meanwhile, so that a kernel that dies does not lose it. Each check records
        the jobs queued before the previous one that still wait, oldest first.
        """
        with self._lock:
            self._noting = False
            if self._store is None:
                return
            waiting = False
            pending: list[Job] = []
            for b in self._backends.values():
                popped = b.enqueued - len(b.queue)
                first = max(b.noted, popped)
                for job in itertools.islice(b.queue, first - popped, max(0, b.mark - popped)):
                    if job.status is Status.PENDING:
                        pending.append(job)
                b.noted = max(b.noted, b.mark)
                waiting = waiting or bool(b.queue)
            # Queued at once: one put per job waited out a writer that is behind (every
            # 1,024th, up to a second each) with the lock held, holding every job thread.
            self._record_notes(pending)
            if waiting:
                self._arm_note_queued()

    def _after_begin(self, job: Job) -> None:
        # (a held job's timeout starts with its run: _started)
        if job.timeout is not None and job.status is _RUNNING:
            self._call_soon(self._arm_timeout, job, job.attempts)
        if sys.stdout.__class__ is not _capture.StreamProxy:
            _capture.install()

    def _mark_running(self, job: Job, backend: Backend) -> None:
        # (under the lock) A slot is taken: the job runs, or stays pending until its backend,
        # which holds jobs before it runs them (prefetch), says it started (_started).
        self._running += 1
        backend.running += 1
        if backend.holds:
            self._held.add(job)
            return
        self._start_attempt(job)

    def _in_slot(self, job: Job) -> bool:
        """Whether ``job`` holds a slot: it runs, or its backend holds it (not started yet)."""
        return job.status is _RUNNING or job in self._held

    def _started(self, job: Job) -> bool:
        """(loop thread; ``BackendHost.started``) A job held by its backend starts to run: it
        becomes running now (its attempt, start time, timeout). False when it was not held
        (already started, or settled meanwhile)."""
        with self._lock:
            if job not in self._held:
                return False
            self._held.discard(job)
            self._start_attempt(job)
        self._after_begin(job)
        return True

    def _drain_queues(self, backend: Backend) -> None:
        """(loop thread) A slot was freed: start what waits in the queues, this backend's first."""
        for b in (backend, *self._backends.values()):
            while b.queue:
                job = self._pop_queued(b)
                if job is None:
                    break
                try:
                    b.start(job)
                except Exception as exc:
                    self._finish(job, exc=exc)
            if not self._queued:
                break

    def _finish_here(self, job: Job, result: Any, exc: Exc, backend: Backend) -> Job | None:
        """(a backend's worker thread) :meth:`_finish` without crossing to the loop thread.

        Only for an attempt whose end needs nothing of the loop (:func:`settles_anywhere`): no
        timeout timer to cancel, no retry or restart to schedule. Runs under the engine's lock,
        so the loop's batches and this settle never interleave. Returns the job that the
        caller runs next (a dependent it made ready, or one queued for a slot), started.
        """
        with self._lock:
            return self._finish(job, result, exc, backend)

    def _pop_queued(self, backend: Backend) -> Job | None:
        """Take the first job queued on ``backend`` into a free slot, marked running; None when
        no slot is free or nothing is queued. The caller starts it (any thread)."""
        # One lock hold per job, from the queue to running (a queued job is pending).
        with self._lock:
            while backend.queue and (
                (self.max_jobs is None or self._running < self.max_jobs)
                and (backend.limit is None or backend.running < backend.limit)
            ):
                job = backend.queue.popleft()
                self._queued -= 1
                if job.status is _PENDING:  # (not cancelled while it waited)
                    self._mark_running(job, backend)
                    break
            else:
                return None
        self._after_begin(job)
        return job

    def _stop_thread(self, timeout: float | None = None) -> None:
        """Close the backends, then stop the loop and its thread.

        Parameters
        ----------
        timeout
            Seconds the backends get to close, all at once (default :data:`_CLOSE_TIMEOUT`).
            One still closing then is abandoned with a warning; this never raises for it.
        """
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if threading.get_ident() == self._loop_ident:
            msg = "the engine cannot stop its own thread from a job; call it from outside"
            raise RuntimeError(msg)
        backends = list(self._backends.values())
        budget = _CLOSE_TIMEOUT if timeout is None else max(0.0, timeout)

        async def close(backend: Backend) -> None:
            try:
                await asyncio.wait_for(backend.aclose(), budget)
            except TimeoutError:
                logger.warning(
                    "jupyter_executor: backend %s did not close within %.3g s; left behind",
                    backend.name, budget,
                )  # fmt: skip
            except Exception:
                logger.exception("jupyter_executor: closing backend %s failed", backend.name)

        async def close_backends() -> None:
            # At once: a backend that hangs takes no time from the others' cleanup.
            await asyncio.gather(*(close(backend) for backend in backends))

        with contextlib.suppress(RuntimeError):  # the loop closed under us
            future = asyncio.run_coroutine_threadsafe(close_backends(), loop)
            try:
                # (a margin for the closes' own cleanup once cancelled)
                future.result(timeout=budget + 5)
            except (TimeoutError, concurrent.futures.CancelledError):
                # A backend blocks the loop itself: stop waiting, the loop is stopped below.
                future.cancel()
                logger.warning(
                    "jupyter_executor: the backends did not close within %.3g s", budget + 5
                )
        for backend in backends:
            try:
                backend.close()
            except Exception:  # the loop, its thread and the history still stop
                logger.exception("jupyter_executor: closing backend %s failed", backend.name)
        self._backends.clear()
        with self._loop_lock:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            self._loop = None
            self._thread = None
            self._loop_ident = 0
            self._inbox.clear()
            self._wake_pending = False
            self._admitting = 0  # (the dispatches cleared with the inbox are not coming)
