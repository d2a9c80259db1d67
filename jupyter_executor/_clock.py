"""The engine's clock: what time it is, and timers that fire at a time of that clock.

The engine reads the time (job timestamps, log lines, schedule ticks) and arms the timers of
its after-run policies (retry delays, restart back-off, schedule ticks, timeouts) through one
:class:`Clock`, given as ``Engine(clock=...)``. :class:`SystemClock` is the real one;
:class:`jupyter_executor.testing.MockClock` lets a test move time by hand (trio's MockClock).

Not on the clock, on purpose: blocking waits (``wait(timeout=...)``), the grace period of a
cancel (real processes and threads need real seconds), conditions (``AfterTime`` and the
polling of ``FunctionCondition`` read the real time) and the history's bookkeeping timers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "Timer"]


class Timer(Protocol):
    """A timer armed on a clock (an ``asyncio.TimerHandle`` for the system clock)."""

    def cancel(self) -> None:
        """Disarm it; cancelling a timer that fired or was cancelled does nothing."""


class Clock(Protocol):
    """What the engine needs of a clock."""

    def time(self) -> float:
        """The current time, in seconds since the epoch (``time.time()`` for the real one)."""

    def call_later(
        self, loop: asyncio.AbstractEventLoop, delay: float, fn: Callable[..., Any], *args: Any
    ) -> Timer:
        """Call ``fn(*args)`` on ``loop``'s thread once ``delay`` seconds of this clock passed."""


class SystemClock:
    """The real clock: ``time.time()`` and the event loop's own timers."""

    __slots__ = ()

    #: The time, as fast as the engine read it before it had a clock (a C function).
    time = staticmethod(time.time)

    def call_later(
        self, loop: asyncio.AbstractEventLoop, delay: float, fn: Callable[..., Any], *args: Any
    ) -> Timer:
        """``loop.call_later(delay, fn, *args)``."""
        return loop.call_later(delay, fn, *args)

    def __repr__(self) -> str:
        return "SystemClock()"


#: The clock of every engine created without ``clock=``.
SYSTEM_CLOCK = SystemClock()
