"""The calls of ``engine.on_finish(callback)``: one thread that calls them, in order.

An engine event is emitted in whatever thread the job ended in, sometimes with the engine's lock
held, and inside the job's context (its output routing). A user's callback sends an email or a
Slack message: it may block for seconds, print, or raise. So the event only queues the call; a
thread of its own, started without the job's context (a new thread has an empty one), makes it,
and logs what it raises.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["FinishCalls"]

logger = logging.getLogger("jupyter_executor")

_STOP = object()


class FinishCalls:
    """A queue of ``callback(job)`` calls and the daemon thread that makes them."""

    def __init__(self, name: str = "jupyter-executor-on-finish") -> None:
        self._name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def put(self, callback: Callable[[Any], Any], job: Any) -> None:
        """Queue ``callback(job)`` (any thread; never blocks). Dropped once closed."""
        with self._lock:
            if self._closed:
                return
            if self._thread is None:
                # Started on first use: most engines never have an on_finish callback.
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        self._queue.put((callback, job))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            callback, job = item
            try:
                callback(job)
            except Exception:
                logger.exception(
                    "jupyter_executor: on_finish callback %r failed for job %r", callback, job.name
                )

    def close(self, timeout: float = 5.0) -> None:
        """Make the calls queued so far, then stop the thread (idempotent).

        A callback still blocked after ``timeout`` seconds is left to its daemon thread, with a
        warning in the log: the engine's shutdown does not hang on a user's mail server.
        """
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning(
                "jupyter_executor: an on_finish callback still runs after %g s; left to finish",
                timeout,
            )
