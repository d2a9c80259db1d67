"""The history's writer thread: takes what the engine reports and writes it in batches.

Reporting a change (:meth:`Writer.put`) is on the engine's hot path: it appends one item to a
deque (atomic, no lock) and wakes the thread once per batch. The thread waits ``batch_delay``
for more to gather (longer while a burst goes on, up to ``max_delay``), then hands everything
queued to ``write`` in one call, which writes it in one transaction. :meth:`Writer.flush`
blocks until what was reported before it is written; :meth:`Writer.close` writes what is
queued and stops the thread for good. The thread stops by itself after ``idle_timeout``
seconds without changes (the next change starts a new one), so that an engine nobody shut
down leaves no thread behind for long.

The writer competes with the jobs for the GIL: during a burst of short jobs it sleeps
(``_gather``) so that its history is written in large batches, each in few statements (SQLite
writes them without the GIL, while the jobs run); a backlog of ``WRITE_AT`` changes ends the
sleep at once, so that the batches are written while the burst goes on, not after its end.
The threads reporting changes wait for it only when the oldest change not yet written is
older than ``max_delay`` (checked every ``CHECK_EVERY`` changes): a flood faster than the
writer can record is slowed to its pace, so that an end never waits long in memory (an end is
on disk within about a second: the gather's ``max_delay``, then at most the rest of the write
the jobs wait for). A limit by count instead (a backlog of 5,000) made the job threads of a
burst wait for every batch, idle while SQLite wrote it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Marker", "Writer"]

logger = logging.getLogger("jupyter_executor")

# Changes per batch_delay that make a burst, during which the writer waits (see _gather), and
# how many queued changes it lets a burst pile up at most.
BURST = 1000
MAX_DEFERRED = 200_000
# Changes between two checks of the age of the oldest unwritten one (see Writer.put): a power
# of two (the check is a mask of the queue's length).
CHECK_EVERY = 1024
# Unwritten changes that end the writer's gather at once (checked with the age, above): a
# burst's batches stay large, and the writer writes them while the burst goes on (SQLite
# writes without the GIL, on the other core), so that what is left when the burst ends, which
# wait() then waits for, is at most about this many (it was up to max_delay's worth: 0.4-0.7 s
# of writing alone after a burst of 1e5 thread no-ops).
WRITE_AT = 8 * CHECK_EVERY


class Marker:
    """Put in the queue by flush(), flush_then() and close(): set once everything before it is
    written (then ``then``, if any, is called with the write's error, in the writer thread)."""

    __slots__ = ("done", "error", "stop", "then")

    def __init__(
        self, stop: bool = False, then: Callable[[BaseException | None], None] | None = None
    ) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.stop = stop
        self.then = then

    def set(self, error: BaseException | None) -> None:
        """(writer thread) Everything before it is written, or failed with ``error``."""
        self.error = error
        self.done.set()
        if self.then is not None:
            try:
                self.then(error)
            except Exception:  # the waiter's own failure (its loop closed) is not the writer's
                logger.exception("jupyter_executor: a flush's callback failed")


class Writer:
    """A thread that hands what is queued, in batches, to ``write``.

    Parameters
    ----------
    name
        The thread's name.
    write
        Called in the thread with the items of one batch (markers left out) and whether a
        flush or close waits for it (then it must write all it holds); returns the error that
        kept it from writing them, or None. It keeps what it could not (or chose not to) write
        and is called again (with an empty list, at growing intervals from ``retry`` seconds
        after an error) while ``pending()`` says so.
    pending
        True while ``write`` holds items it did not write yet.
    on_stop
        Called in the thread when it stops (idle or closed), to release what it holds open.
    batch_delay, idle_timeout, max_delay
        Seconds: see the module docstring.
    """

    def __init__(
        self,
        name: str,
        write: Callable[[list[Any], bool], BaseException | None],
        pending: Callable[[], bool],
        on_stop: Callable[[], None],
        *,
        batch_delay: float,
        idle_timeout: float,
        max_delay: float,
    ) -> None:
        self.name = name
        self.batch_delay = batch_delay
        self.idle_timeout = idle_timeout
        self.max_delay = max_delay
        self._write = write
        self._pending = pending
        self._on_stop = on_stop
        self.queue: deque[Any] = deque()
        self._signalled = False  # the thread was woken and has not taken the queue yet
        self._wake = threading.Event()
        self._urgent = threading.Event()  # a flush or close waits: skip the batch delay
        self._taken = threading.Condition(threading.Lock())  # notified when a batch is taken
        self.batches = 0  # batches taken so far
        # When the oldest change of the queue came (time.monotonic), and the oldest of the
        # batch being written (None when none is): see put.
        self._since = 0.0
        self._writing_since: float | None = None
        self._lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.closed = False

    # any thread -------------------------------------------------------------------------------
    def put(self, item: Any) -> None:
        """Queue ``item`` (cheap, safe from any thread); ignored once closed."""
        if self.closed:
            return
        queue = self.queue
        queue.append(item)
        if not self._signalled:
            self._signal()
        elif not len(queue) & (CHECK_EVERY - 1):
            oldest = self._writing_since
            if oldest is None:
                if len(queue) >= WRITE_AT:
                    # The writer gathers (or is about to): a backlog this large is written
                    # now, while the burst goes on, not after it (see _gather).
                    self._urgent.set()
                oldest = self._since
            if time.monotonic() - oldest > self.max_delay:
                self._throttle()

    def put_many(self, items: list[Any]) -> None:
        """Queue ``items`` at once (see :meth:`put`), never slowed by a backlog.

        For the engine's notes of jobs still waiting, taken under its lock by the thousand:
        a wait there for the writer (see :meth:`_throttle`) would hold every job thread and
        the loop with it, and their count is bounded by the jobs alive.
        """
        if self.closed or not items:
            return
        self.queue.extend(items)
        if not self._signalled:
            self._signal()

    def _throttle(self) -> None:
        # The writer is behind: wake it now and wait until it has taken the queue, which it
        # does once the batch it writes is written (bounded: a writer stuck on another
        # engine's lock slows the jobs, it does not stop them). No live writer (it failed):
        # nothing to wait for.
        thread = self.thread
        if thread is None or thread is threading.current_thread() or not thread.is_alive():
            return
        with self._taken:
            seen = self.batches
            self._urgent.set()
            self._wake.set()
            self._taken.wait_for(lambda: self.batches != seen, 1.0)

    def _signal(self) -> None:
        # Once per batch. Under the lock, so that the thread cannot decide to exit (idle)
        # between this item being queued and the check that it runs.
        with self._lock:
            self._signalled = True
            self._since = time.monotonic()
            if self.thread is None and not self.closed:
                # Daemon: interpreter exit joins non-daemon threads *before* atexit runs the
                # engine's shutdown, which is what closes the store.
                self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self.thread.start()
        self._wake.set()

    def flush(self, timeout: float | None = None) -> BaseException | None:
        """Block until what was queued before is written; the write's error, if any.

        Raises
        ------
        TimeoutError
            Not written within ``timeout`` seconds.
        """
        if self.thread is threading.current_thread():
            return None
        marker = Marker()
        if not self._queue_marker(marker):
            return None
        if not marker.done.wait(timeout):
            msg = f"not written within {timeout} s"
            raise TimeoutError(msg)
        return marker.error

    def flush_then(self, then: Callable[[BaseException | None], None]) -> None:
        """Call ``then`` (in the writer thread) once what was queued before is written, with
        the write's error or None; at once, in this thread, when nothing is left to write.

        A :meth:`flush` that blocks no thread: an event loop that must know that a change is
        on disk (a command's write-ahead) gets the news from the writer itself, not through
        a thread of its own that blocks in :meth:`flush` (two more thread wake-ups per flush,
        each a time slice away on a loaded machine).
        """
        if not self._queue_marker(Marker(then=then)):
            then(None)

    def _queue_marker(self, marker: Marker) -> bool:
        # After everything queued, for the thread to set at once (no batch delay); False
        # when there is no thread: everything was written (it stops only when idle).
        with self._lock:
            if self.closed or self.thread is None:
                return False
            self.queue.append(marker)
        self._urgent.set()
        self._wake.set()
        return True

    def close(self, timeout: float) -> bool:
        """Write what is queued and stop the thread (idempotent); False if it did not stop."""
        with self._lock:
            if self.closed:
                return True
            self.closed = True
            thread = self.thread
            if thread is not None:
                self.queue.append(Marker(stop=True))
        if thread is None:
            return True
        self._urgent.set()
        self._wake.set()
        thread.join(timeout=timeout)
        return not thread.is_alive()

    # the thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        retry_in = 0.5
        stop = False
        try:
            while not stop:
                # Sleep until woken; while a failed batch waits, retry it now and then.
                pending = self._pending()
                woken = self._wake.wait(retry_in if pending else self.idle_timeout)
                if not woken and not pending:
                    if self._stop_idle():
                        return
                    continue
                if not self._urgent.is_set() and self.batch_delay > 0:
                    self._gather()
                # Clear the event before the flag: an item queued meanwhile sets both again.
                self._wake.clear()
                since = self._since
                self._signalled = False
                self._urgent.clear()
                markers: list[Marker] = []
                error = self._batch(markers, since)
                stop = any(marker.stop for marker in markers)
                retry_in = 0.5 if error is None else min(2 * retry_in, 30.0)
                for marker in markers:
                    marker.set(error)
            self._on_stop()  # closed for good: no other thread will start
        except BaseException:
            # A bug: log it, release whoever waits, and let the next change start a new thread.
            logger.exception("jupyter_executor: the history writer %s failed", self.name)
            with self._lock:
                self._on_stop()
                self.thread = None
                for item in self.queue:
                    if type(item) is Marker:
                        item.set(None)

    def _stop_idle(self) -> bool:
        """Stop the thread if nothing came while it slept (True: it must return now)."""
        with self._lock:
            if self.queue or self._signalled:
                return False
            self._on_stop()  # before a new thread may open what it opens
            self.thread = None
            return True

    def _batch(self, markers: list[Marker], since: float) -> BaseException | None:
        """Take what is queued now and write it (a function, so that the batch's items, and
        the results they hold, are released when it is written, not when the next one comes).

        ``since``: when the oldest of them came.
        """
        queue = self.queue
        pop = queue.popleft
        items = []
        # What is there now, not what keeps coming: a batch always ends.
        for _ in range(len(queue)):
            item = pop()
            if type(item) is Marker:
                markers.append(item)
            else:
                items.append(item)
        with self._taken:  # release the threads waiting out a flood (see _throttle)
            self.batches += 1
            self._taken.notify_all()
        self._writing_since = since
        try:
            return self._write(items, bool(markers))
        except Exception as exc:  # a bug there must not stop the thread: flush() waits
            logger.exception("jupyter_executor: cannot write the history")
            return exc
        finally:
            self._writing_since = None

    def _gather(self) -> None:
        """Wait for a batch to gather; while a burst goes on, for the burst to end.

        Bounded by ``max_delay`` and by the size of the queue; :meth:`flush` and
        :meth:`close` cut it short, and so does :meth:`put` once ``WRITE_AT`` changes wait.
        """
        urgent, queue = self._urgent, self.queue
        deadline = time.monotonic() + self.max_delay
        if urgent.wait(min(self.batch_delay, self.max_delay)):
            return
        seen = len(queue)
        while seen >= BURST and seen < MAX_DEFERRED:
            left = deadline - time.monotonic()
            if left <= 0 or urgent.wait(min(self.batch_delay, left)):
                return
            now = len(queue)
            if now - seen < BURST:
                return  # the burst is over
            seen = now
