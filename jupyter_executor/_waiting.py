"""Waiting: ``wait``, ``join``, ``wait_job``, ``gather`` and ``orchestrate``.

Each waits on a lock, a condition or a future, never on an event loop, so it works from a notebook
cell (docs/kernel-notes.md §2); a wait that saw jobs end also waits until the history holds those
ends (:meth:`Waiting._on_disk`).
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextlib
import logging
import math
import numbers
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._context import running_job
from ._duration import parse_duration
from ._registry import Registry
from ._status import Status
from .errors import InvalidOption, StoreError, SubmitError
from .job import Job

logger = logging.getLogger("jupyter_executor")

#: ``fn(engine, jobs)``: the context manager a blocking wait on the main thread enters.
WaitDisplay = Callable[[Any, builtins.list[Job]], contextlib.AbstractContextManager[Any]]


class Waiting(Registry):
    """Block (or ``await``) until jobs end; run the jobs given to ``Engine(*jobs)``."""

    if TYPE_CHECKING:

        def cancel(self, job: Job | str, reason: str = ...) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every non-forever job has finished.

        Works from any thread, including a notebook cell (it waits on a lock, not on an event
        loop). Returns True when all of them succeeded; False on timeout, or when one failed or
        was cancelled. On the main thread with the IPython extension loaded, the jobs waited for
        are shown meanwhile (under the cell, or as ``[job NAME] line`` in a terminal; see
        :func:`set_wait_display`).
        """
        self._check_not_in_job("wait")
        timeout = wait_seconds(timeout)
        if self._deferred:
            self._submit([], False)
        with _wait_view(self, self._waited_unfinished), self._cond:
            if not self._cond.wait_for(lambda: self._unfinished == 0, timeout):
                return False
            ok = self._bad == 0
        self._on_disk()
        return ok

    def _waited_unfinished(self) -> builtins.list[Job]:
        return [j for j in builtins.list(self._jobs.values()) if j.runstate.waited and not j.done()]

    def _on_disk(self) -> None:
        """Block until the history holds every change reported so far (the ends a wait saw).

        Bounded by the store's busy timeout; a history that cannot be written is logged, not
        raised: the jobs did end, and the store retries the write.
        """
        store = self._store
        if store is None:
            return
        try:
            store.flush(store.busy_timeout)
        except (StoreError, TimeoutError) as exc:
            logger.warning("jupyter_executor: the ends waited for are not on disk yet: %s", exc)

    async def join(self, timeout: float | None = None) -> bool:
        """``await`` until every non-forever job has finished; the async twin of :meth:`wait`.

        The jobs themselves are shielded: cancelling the awaiting code (a kernel interrupt of
        the cell) does not cancel them.
        """
        self._check_not_in_job("join")
        timeout = wait_seconds(timeout)
        if self._deferred:
            self._submit([], False)
        with self._lock:
            fut: concurrent.futures.Future[None] | None = None
            if self._unfinished:
                fut = concurrent.futures.Future()
                self._idle_waiters.append(fut)
        if fut is not None:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)), timeout)
            except TimeoutError:
                return False
        ok = self._bad == 0
        if self._store is not None:
            await asyncio.to_thread(self._on_disk)  # the awaiting loop goes on meanwhile
        return ok

    def wait_job(self, job: Job | str, timeout: float | None = None) -> bool:
        """Block until ``job`` has finished; True when it is done (succeeded)."""
        job = self._get(job)
        timeout = wait_seconds(timeout)
        if job is running_job.get():
            msg = f"job {job.name!r} cannot wait for itself"
            raise SubmitError(msg)
        deadline = None if timeout is None else time.monotonic() + timeout
        # A job that restarts (or runs on a schedule) resolves its future at the end of each
        # run and gets a new one for the next: wait until it has finished for good.
        while not job.done():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            concurrent.futures.wait([job.future], left)
        if job.done():
            self._on_disk()
        return job.status is Status.DONE

    async def gather(self, *jobs: Job | str) -> builtins.list[Any]:
        """``await`` several jobs; return their results in order (raise the first failure)."""
        return [await self._get(j) for j in jobs]

    def orchestrate(self, timeout: float | None = None) -> bool:
        """Run the jobs given to ``Engine(*jobs)`` (and any submitted) until the finite ones end.

        Forever jobs are then cancelled. On timeout the unfinished jobs are cancelled too. The
        engine's thread is released when this returns. Works inside a running event loop (a
        notebook cell): the waiting happens on a lock, not on that loop.

        Returns
        -------
        bool
            True when every finite job succeeded within the timeout.
        """
        timeout = wait_seconds(timeout)
        if self._deferred:
            self._submit([], False)
        jobs = builtins.list(self._jobs.values())
        with _wait_view(self, lambda: [j for j in jobs if not j.done()]):
            return self._orchestrate(timeout)

    def _orchestrate(self, timeout: float | None) -> bool:
        ok = self.wait(timeout)
        if not ok and self._unfinished:
            for job in list(self._jobs.values()):
                if job.runstate.waited and not job.done():
                    self.cancel(job, f"orchestrate() timed out after {timeout} s")
        forever = [j for j in self._jobs.values() if not j.runstate.waited and not j.done()]
        for job in forever:
            self.cancel(job, "the finite jobs are done")
        deadline = time.monotonic() + self.cancel_grace + 5
        for job in list(self._jobs.values()):
            if not job.done():
                self.wait_job(job, max(0.0, deadline - time.monotonic()))
        self._cleanup()
        if self._running == 0:
            self._stop_thread()
        return ok


def wait_seconds(timeout: Any) -> float | None:
    """A wait's ``timeout`` in seconds, or None for no limit (checked at the door).

    The duration grammar of the options (``90``, ``"5m"``, a timedelta). A negative number
    counts as 0: a deadline already past (``wait(deadline - time.time())``). An infinite one,
    or one longer than a lock can wait (``threading.TIMEOUT_MAX``, about 292 years), is no limit.

    Raises
    ------
    InvalidOption
        Not a duration (NaN, ``"abc"``); :class:`~jupyter_executor.errors.InvalidOptionType`
        for a value of the wrong type. One line, naming the value.

    Examples
    --------
    >>> wait_seconds("1m"), wait_seconds(-3), wait_seconds(1e300)
    (60.0, 0.0, None)
    """
    if timeout is None:
        return None
    if isinstance(timeout, numbers.Real) and not isinstance(timeout, bool):
        try:
            seconds = float(timeout)
        except OverflowError:  # an int beyond a float (10**400): no limit
            return None
        if math.isnan(seconds):
            msg = f"timeout={timeout!r} is not a number of seconds"
            raise InvalidOption(msg)
        if seconds <= 0:
            return 0.0
    else:
        seconds = parse_duration(timeout, "timeout", zero=True)
    return None if seconds >= threading.TIMEOUT_MAX else seconds


# -- what a blocking wait shows -----------------------------------------------------------------

#: Makes the context manager that shows the jobs a blocking wait waits for; installed by the
#: IPython extension (set_wait_display), so that the core imports no IPython.
_wait_display: WaitDisplay | None = None
_wait_shown = False  # a wait on the main thread shows its jobs now (nested waits show nothing)


def set_wait_display(
    fn: WaitDisplay | None,
) -> WaitDisplay | None:
    """Install ``fn(engine, jobs)``, entered while a blocking wait on the main thread waits.

    :meth:`Engine.wait`, :meth:`Engine.orchestrate` (and ``%jobs wait``) called on the main
    thread enter the context manager it returns around the waiting, with the jobs waited for;
    the IPython extension shows them under the cell (or prints their lines in a terminal).
    A hook that raises is logged and the wait goes on. None removes it; returns the previous.
    """
    global _wait_display
    previous, _wait_display = _wait_display, fn
    return previous


@contextlib.contextmanager
def _wait_view(engine: Any, jobs: Callable[[], builtins.list[Job]]) -> Iterator[None]:
    """Show ``jobs()`` with the installed hook while the body waits (main thread, not nested)."""
    global _wait_shown
    hook = _wait_display
    if hook is None or _wait_shown or threading.current_thread() is not threading.main_thread():
        yield
        return
    waited = jobs()
    if not waited:
        yield
        return
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(hook(engine, waited))
    except Exception:
        logger.exception("jupyter_executor: the wait display failed")
    _wait_shown = True
    try:
        yield
    finally:
        _wait_shown = False
        try:
            stack.close()
        except Exception:
            logger.exception("jupyter_executor: the wait display failed")


def showing_wait(
    engine: Any, jobs: Callable[[], builtins.list[Job]]
) -> contextlib.AbstractContextManager[None]:
    """Show ``jobs()`` while the body waits for them, as :meth:`Engine.wait` does (on the main
    thread, with the hook of :func:`set_wait_display`; nested waits show nothing)."""
    return _wait_view(engine, jobs)
