"""The engine's loop thread: its own event loop, the inbox other threads post to, cleanups.

Scheduling never depends on the caller's thread: a notebook cell that blocks does not stop
dependent jobs from starting (docs/kernel-notes.md §2). Other threads post callables with
:meth:`LoopThread._call_soon`; the loop runs them in batches under the engine's lock.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from ._clock import Timer
from ._events import EventBus

#: Seconds a stopping loop waits for the work of its default executor (see _loop_main).
EXECUTOR_GRACE = 10.0

logger = logging.getLogger("jupyter_executor")


#: Posts to the engine's loop run per hold of the engine's lock.
_DRAIN_BATCH = 256


class LoopThread(EventBus):
    """The engine's own event loop in its own daemon thread, and the inbox other threads post to.

    Owns the loop, the thread, the inbox, the cleanups and the engine's lock (re-entrant: the
    loop holds it while it runs a batch of posts, see :meth:`_drain_inbox`).
    """

    id: str
    cancel_grace: float
    _lock: threading.RLock
    _cond: threading.Condition
    _loop: asyncio.AbstractEventLoop | None
    _thread: threading.Thread | None
    _loop_ident: int
    _loop_lock: threading.Lock
    _inbox: deque[tuple[Callable[..., Any], tuple[Any, ...]]]
    _wake_pending: bool
    _cleanups: dict[Any, Callable[[], Any]]

    def _init_loop(self) -> None:
        # Re-entrant: the loop holds it while it runs a batch of posts (see _drain_inbox).
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._loop = None
        self._thread = None
        self._loop_ident = 0
        self._loop_lock = threading.Lock()
        self._inbox = deque()
        self._wake_pending = False
        self._cleanups = {}

    def _call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """(loop thread) Call ``fn(*args)`` on the loop ``delay`` s of the engine's clock later."""
        assert self._loop is not None
        return self._clock.call_later(self._loop, delay, fn, *args)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None:
            return loop
        with self._loop_lock:
            if self._loop is not None:
                return self._loop
            ready = threading.Event()
            thread = threading.Thread(
                target=self._loop_main, args=(ready,), name=f"jupyter-executor-{self.id}",
                daemon=True,
            )  # fmt: skip
            thread.start()
            ready.wait()
            self._thread = thread
            assert self._loop is not None
            return self._loop

    def _loop_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop_ident = threading.get_ident()
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
            # Stopped: let what the shutdown cancelled finish its cleanup (kill processes).
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=self.cancel_grace + 3))
            loop.run_until_complete(loop.shutdown_asyncgens())
            # The work handed to the default executor (the files of a make-like job, hashed
            # and recorded) ends before the history is closed: loop.close() does not wait for
            # it, and a record written after the engine's shutdown had returned could land in
            # a history the next engine, or the user, already had in hand. Bounded: a hash of
            # a huge file is given up on, not waited for.
            with contextlib.suppress(TimeoutError):
                loop.run_until_complete(
                    asyncio.wait_for(loop.shutdown_default_executor(), EXECUTOR_GRACE)
                )
        finally:
            loop.close()

    def _call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread: now if called there, else soon."""
        if threading.get_ident() == self._loop_ident and self._loop is not None:
            fn(*args)
            return
        loop = self._ensure_loop()
        self._inbox.append((fn, args))
        if not self._wake_pending:
            # One wake-up for any number of posts made before the loop drains the inbox.
            self._wake_pending = True
            with contextlib.suppress(RuntimeError):  # the loop closed under us: shutting down
                loop.call_soon_threadsafe(self._drain_inbox)

    def _drain_inbox(self) -> None:
        self._wake_pending = False
        inbox = self._inbox
        # Under the engine's lock a batch at a time. The callbacks take the lock again and
        # again (re-entrant: almost free), and a thread that wants it (one submitting jobs)
        # waits once per batch instead of fighting for it, and for the GIL, at every callback:
        # those hand-offs cost both threads system calls, 10 µs of CPU per thread job.
        with self._lock:
            for _ in range(_DRAIN_BATCH):
                if not inbox:
                    return
                fn, args = inbox.popleft()
                try:
                    fn(*args)
                except Exception:  # pragma: no cover - a bug of ours; keep the loop alive
                    logger.exception("jupyter_executor: internal error in %r", fn)
        if inbox:  # the rest at the next turn: the lock is free for others in between
            assert self._loop is not None
            self._loop.call_soon(self._drain_inbox)

    def add_cleanup(self, key: Any, fn: Callable[[], Any]) -> bool:
        """Run ``await fn()`` once, on the engine's loop, when this run ends.

        "This run" ends when :meth:`orchestrate` returns or at :meth:`shutdown`; cleanups run
        last registered first, each bounded to 30 s, a failing one not stopping the others.
        Returns False (and registers nothing) when ``key`` is registered already: shared
        resources are torn down exactly once.
        """
        with self._lock:
            if key in self._cleanups:
                return False
            self._cleanups[key] = fn
            return True

    def _cleanup(self) -> None:
        with self._lock:
            cleanups, self._cleanups = builtins.list(self._cleanups.values()), {}
        if not cleanups or self._loop is None:
            return

        async def run_all() -> None:
            for fn in reversed(cleanups):
                try:
                    await asyncio.wait_for(fn(), 30)
                except Exception:
                    logger.exception("jupyter_executor: cleanup %r failed", fn)

        asyncio.run_coroutine_threadsafe(run_all(), self._loop).result(timeout=len(cleanups) * 31)
