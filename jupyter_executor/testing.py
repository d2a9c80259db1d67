"""Helpers for testing code that uses the engine: :class:`MockClock`.

Examples
--------
>>> from jupyter_executor import Engine
>>> from jupyter_executor.testing import MockClock
>>> clock = MockClock()
>>> with Engine(history=False, clock=clock) as engine:
...     job = engine.submit(lambda: 1 / 0, name="flaky", retries=1, retry_delay=60)
...     at = clock.advance_to_next()  # the retry, 60 s later, without waiting a minute
...     engine.wait(), job.attempts, at - clock.start
(False, 2, 60.0)
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["MockClock"]


@dataclasses.dataclass(slots=True, eq=False)
class _MockTimer:
    when: float
    loop: asyncio.AbstractEventLoop
    fn: Callable[..., Any]
    args: Any
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class MockClock:
    """A clock that moves only when told to: ``Engine(clock=MockClock())`` (trio's MockClock).

    The engine's timestamps, retry delays, restart back-off, schedule ticks and timeouts
    follow it (see :mod:`jupyter_executor._clock` for what does not), so a test of a schedule
    or a back-off runs without sleeping and can assert exact times.

    Parameters
    ----------
    start
        The time it shows at first, in seconds since the epoch (the real time when None).
    """

    def __init__(self, start: float | None = None) -> None:
        #: The time it showed when created.
        self.start = time.time() if start is None else float(start)
        self._now = self.start
        self._timers: list[tuple[float, int, _MockTimer]] = []
        self._order = itertools.count()  # timers due at the same time fire in arming order
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MockClock(time={self._now:.3f}, timers={len(self.pending())})"

    def time(self) -> float:
        """The current (mock) time, in seconds since the epoch."""
        return self._now

    def call_later(
        self, loop: asyncio.AbstractEventLoop, delay: float, fn: Callable[..., Any], *args: Any
    ) -> _MockTimer:
        """Arm a timer that fires when the clock is advanced ``delay`` seconds from now."""
        with self._lock:
            timer = _MockTimer(self._now + max(0.0, delay), loop, fn, args)
            heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    def pending(self) -> list[float]:
        """The times at which the armed timers fire, soonest first."""
        with self._lock:
            return sorted(t.when for _, _, t in self._timers if not t.cancelled)

    def advance(self, seconds: float, timeout: float = 10.0) -> None:
        """Move the time ``seconds`` ahead, firing the timers due meanwhile, in time order.

        Each timer's callback runs on its event loop, and has run when the next one fires (a
        callback may arm a timer that is due before the end of the move: it fires too). Waits
        at most ``timeout`` real seconds for each callback.
        """
        if seconds < 0:
            msg = f"MockClock.advance(seconds={seconds!r}): time cannot go back"
            raise ValueError(msg)
        target = self._now + seconds
        while True:
            with self._lock:
                while self._timers and self._timers[0][2].cancelled:
                    heapq.heappop(self._timers)
                if not self._timers or self._timers[0][0] > target:
                    self._now = target
                    return
                when, _, timer = heapq.heappop(self._timers)
                self._now = max(self._now, when)
            self._fire(timer, timeout)

    def advance_to_next(self, timeout: float = 10.0) -> float:
        """Wait (real time, at most ``timeout`` s) until a timer is armed; advance to it.

        Returns the new time. For a test that does not know yet when the engine's next timer
        will be armed (a job that fails in a thread arms its retry when it ends).
        """
        deadline = time.monotonic() + timeout
        while True:
            due = self.pending()
            if due:
                self.advance(max(0.0, due[0] - self._now), timeout)
                return self._now
            if time.monotonic() > deadline:
                msg = f"no timer was armed on the mock clock within {timeout} s"
                raise TimeoutError(msg)
            time.sleep(0.005)

    @staticmethod
    def _fire(timer: _MockTimer, timeout: float) -> None:
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is timer.loop:  # advanced from the loop itself (a job, a callback): call now
            if not timer.cancelled:
                timer.fn(*timer.args)
            return
        done = threading.Event()

        def run() -> None:
            try:
                if not timer.cancelled:
                    timer.fn(*timer.args)
            finally:
                done.set()

        try:
            timer.loop.call_soon_threadsafe(run)
        except RuntimeError:  # its loop is closed: the engine stopped
            return
        if not done.wait(timeout):
            msg = f"a timer's callback {timer.fn!r} did not run within {timeout} s"
            raise TimeoutError(msg)
